//! Metrics through the `metrics` facade, read back from metrics-util's
//! debugging recorder (installed for this test binary alone): a real axum
//! server under the layer, keys from a real JWKS endpoint, a guard inside
//! the handler, the revocation check and a token provider.

mod support;

use std::collections::BTreeMap;

use axum::Router;
use axum::routing::get;
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tower_mandate::keys::JwksSource;
use tower_mandate::provider::{SelfSigned, TokenProvider, TokenRequest};
use tower_mandate::revocation::{MemoryStore, Revocation};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{Caller, Issuer, MandateLayer, Require, Slot, Verifier, permission};

permission! { Read = "images:read"; Delete = "images:delete"; }

/// `name{label=value,…}` → value, for counters and gauges; histograms as
/// their number of samples.
fn values(snapshotter: &Snapshotter) -> BTreeMap<String, f64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            let value = match value {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(h) => h.len() as f64,
            };
            (name, value)
        })
        .collect()
}

#[tokio::test]
async fn the_layer_reports_through_the_metrics_facade() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let users = TestIssuer::rs256("https://users.example").with_audience("a");
    let published = users.jwks();
    let jwks = support::Server::start(Router::new().route(
        "/jwks",
        get(move || {
            let body = published.clone();
            async move { body }
        }),
    ))
    .await;
    let jwks_url = jwks.url("/jwks");
    let source = JwksSource::builder(&jwks_url)
        .insecure_allow_http()
        .build()
        .unwrap();
    let verifier = Verifier::new([Issuer::new(users.issuer(), "a").with_jwks(source)]).unwrap();
    let layer = MandateLayer::builder()
        .user(Slot::required(verifier))
        .with_revocation(Revocation::new(MemoryStore::new()))
        .build()
        .unwrap();
    async fn read(_: Require<Read>) -> &'static str {
        "read"
    }
    async fn delete(caller: Caller) -> Result<&'static str, tower_mandate::AuthError> {
        caller.require::<Delete>()?;
        Ok("deleted")
    }
    let server = support::Server::start(
        Router::new()
            .route("/read", get(read))
            .route("/delete", get(delete))
            .route_layer(layer),
    )
    .await;
    let client = support::http_client();
    let alice = users.token("alice").scope("images:read").sign();
    let send = |path: &'static str, token: Option<&str>| {
        let mut req = client.get(server.url(path));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.send()
    };
    assert_eq!(send("/read", Some(&alice)).await.unwrap().status(), 200);
    assert_eq!(send("/read", Some(&alice)).await.unwrap().status(), 200);
    assert_eq!(send("/read", None).await.unwrap().status(), 401);
    assert_eq!(
        send("/read", Some("not.a.token")).await.unwrap().status(),
        401
    );
    // Refused inside the handler, by a guard: forbidden, not allowed.
    assert_eq!(send("/delete", Some(&alice)).await.unwrap().status(), 403);

    // A provider: one token request, then a cached token.
    let me = SelfSigned::new(
        "https://me.example",
        tower_mandate::mint::SigningKey::generate(tower_mandate::keys::Algorithm::ES256, "me-1"),
    )
    .unwrap();
    for _ in 0..2 {
        me.token(TokenRequest::for_audience("b")).await.unwrap();
    }

    let m = values(&snapshotter);
    let get = |name: &str| m.get(name).copied().unwrap_or(0.0);
    assert_eq!(
        get("mandate_requests_total{outcome=allowed}"),
        2.0,
        "{m:#?}"
    );
    assert_eq!(get("mandate_requests_total{outcome=unauthenticated}"), 1.0);
    assert_eq!(get("mandate_requests_total{outcome=invalid_token}"), 1.0);
    assert_eq!(get("mandate_requests_total{outcome=forbidden}"), 1.0);
    assert_eq!(
        get("mandate_verifications_total{slot=user,result=valid}"),
        1.0
    );
    // The first token waited for the JWKS fetch; the same token came from
    // the cache twice after (the second /read and /delete).
    assert_eq!(
        get("mandate_verifications_total{slot=user,result=cached}"),
        2.0
    );
    assert_eq!(
        get("mandate_verifications_total{slot=user,result=invalid}"),
        1.0
    );
    assert_eq!(get("mandate_verify_duration_seconds{slot=user}"), 1.0);
    let issuer = format!("issuer={jwks_url}");
    assert!(
        get(&format!(
            "mandate_jwks_fetches_total{{{issuer},outcome=ok}}"
        )) >= 1.0
    );
    assert_eq!(get(&format!("mandate_jwks_keys{{{issuer}}}")), 1.0);
    let age = get(&format!("mandate_jwks_age_seconds{{{issuer}}}"));
    assert!((0.0..60.0).contains(&age), "{age}");
    assert_eq!(
        get("mandate_guard_decisions_total{permission=images:read,decision=allow}"),
        2.0
    );
    assert_eq!(
        get("mandate_guard_decisions_total{permission=images:delete,decision=deny}"),
        1.0
    );
    assert_eq!(get("mandate_revocation_checks_total{outcome=fresh}"), 3.0);
    assert_eq!(
        get("mandate_token_requests_total{provider=self_signed,outcome=ok}"),
        1.0
    );
    assert_eq!(get("mandate_token_cache_total{result=miss}"), 1.0);
    assert_eq!(get("mandate_token_cache_total{result=hit}"), 1.0);

    // Labels are bounded: nothing of a token (subject, scope text, token)
    // is ever a label value.
    for name in m.keys() {
        assert!(!name.contains("alice") && !name.contains("eyJ"), "{name}");
    }
}
