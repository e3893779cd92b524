//! The crate's own Transaction Token Service (draft -10 §10–§11) on a real
//! axum server, the edge exchange through propagation, replacements, and
//! the service's tokens checked by PyJWT with the draft's claim rules.

mod support;

use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};
use tower_mandate::keys::KeySet;
use tower_mandate::propagate::{Destination, PropagateLayer, PropagateMiddleware};
use tower_mandate::provider::TokenRequest;
use tower_mandate::testing::TestIssuer;
use tower_mandate::transaction::TransactionSlot;
use tower_mandate::{Caller, Issuer, MandateLayer, Slot, Verifier};

use support::{Server, http_client};

use support::txn::{DOMAIN, Domain, domain, exchange};

async fn post_token(d: &Domain, form: &[(&str, &str)], workload: Option<&str>) -> (u16, Value) {
    let mut req = http_client().post(d.tts.url("/token")).form(form);
    if let Some(w) = workload {
        req = req.bearer_auth(d.services.token(w).audience("tts").sign());
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn the_gateway_pattern_end_to_end() {
    let d = domain().await;
    let keys = KeySet::from_jwks(&d.jwks).unwrap();
    // The store: the transaction decides.
    let store_layer = MandateLayer::builder()
        .transaction(TransactionSlot::required(DOMAIN).with_keys(keys.clone()))
        .build()
        .unwrap();
    let store = Server::start(
        Router::new()
            .route(
                "/chain",
                get(|caller: Caller| async move {
                    let t = caller.transaction().unwrap();
                    axum::Json(json!({
                        "txn": t.txn(), "sub": t.subject(), "scope": t.scope(),
                        "req_wl": t.requesting_workload(), "tctx": t.tctx(), "rctx": t.rctx(),
                        "token": t.token(),
                    }))
                }),
            )
            .route_layer(store_layer),
    )
    .await;
    // The gateway: authenticates users, exchanges their token for a
    // Transaction Token for the purpose `images:read images:delete`.
    let policy = PropagateLayer::builder()
        .add_destination(
            Destination::insecure_http("127.0.0.1", store.addr.port())
                .drop_user_token()
                .with_transaction_token(
                    exchange(&d, "gateway").with_request_details(|caller| {
                        let mut details = serde_json::Map::new();
                        details.insert("for".into(), json!(caller.user().map(|u| u.subject())));
                        Some(details)
                    }),
                    TokenRequest::default().with_scope("images:read images:delete"),
                ),
        )
        .build();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(PropagateMiddleware::new(&policy))
        .build();
    let store_url = store.url("/chain");
    // The gateway also reads Txn-Tokens (optional): one a client sends
    // along is never what goes on (regression: SECURITY.md).
    let gateway_layer = MandateLayer::builder()
        .user(Slot::required(
            Verifier::new([Issuer::new(d.users.issuer(), "gateway").with_keys(d.users.key_set())])
                .unwrap(),
        ))
        .transaction(TransactionSlot::optional(DOMAIN).with_keys(keys.clone()))
        .build()
        .unwrap();
    let gateway = Server::start(
        Router::new()
            .route(
                "/chain",
                get(move || {
                    let (client, url) = (client.clone(), store_url.clone());
                    async move {
                        let res = client.get(url).send().await.unwrap();
                        axum::Json(res.json::<Value>().await.unwrap())
                    }
                }),
            )
            .route_layer(gateway_layer),
    )
    .await;
    let alice = d
        .users
        .token("alice")
        .scope("images:read images:write images:delete")
        .claim("acr", json!("urn:example:mfa"))
        .sign();
    let mallory = d.users.token("mallory").scope("images:read").sign();
    let (_, injected) = post_token(
        &d,
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:txn_token",
            ),
            ("audience", DOMAIN),
            ("scope", "images:read"),
            ("subject_token", mallory.as_str()),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
        ],
        Some("gateway"),
    )
    .await;
    let injected = injected["access_token"].as_str().unwrap().to_owned();
    let res = http_client()
        .get(gateway.url("/chain"))
        .bearer_auth(&alice)
        .header("txn-token", &injected)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen: Value = res.json().await.unwrap();
    // `sub` is unique in the trust domain: the issuer is part of it.
    assert_eq!(seen["sub"], format!("{}#alice", d.users.issuer()));
    assert_ne!(
        seen["token"],
        injected.as_str(),
        "the client's Txn-Token went on"
    );
    assert_eq!(seen["req_wl"], "gateway");
    // The request's context, from the gateway's request (draft §11.1).
    assert_eq!(seen["rctx"]["authn"], "urn:example:mfa");
    assert_eq!(seen["tctx"]["for"], "alice");
    // Narrowed: the gateway may not ask for images:delete.
    assert_eq!(seen["scope"], "images:read");
    assert_eq!(seen["txn"].as_str().unwrap().len(), 36);

    // PyJWT checks the service's token with the draft's rules (§9).
    let token = seen["token"].as_str().unwrap();
    let checked = support::python(&[
        "tests/support/txn_tokens.py",
        "--verify",
        &d.jwks,
        token,
        DOMAIN,
    ]);
    let claims: Value = serde_json::from_str(&checked).unwrap();
    assert_eq!(claims["txn"], seen["txn"]);

    // A replacement keeps txn, sub and aud and may only narrow.
    let tagger = exchange(&d, "tagger");
    let replaced = tagger.replace(token, "images:read").await.unwrap();
    let again = support::python(&[
        "tests/support/txn_tokens.py",
        "--verify",
        &d.jwks,
        &replaced,
        DOMAIN,
    ]);
    let again: Value = serde_json::from_str(&again).unwrap();
    assert_eq!(
        (&again["txn"], &again["sub"]),
        (&claims["txn"], &claims["sub"])
    );
    let widened = tagger.replace(token, "images:write").await.unwrap_err();
    assert!(widened.to_string().contains("invalid_scope"), "{widened}");
}

#[tokio::test]
async fn the_service_refuses_what_it_must() {
    let d = domain().await;
    let alice = d.users.token("alice").scope("images:read").sign();
    let base = [
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        ),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:txn_token",
        ),
        ("audience", DOMAIN),
        ("scope", "images:read"),
        ("subject_token", alice.as_str()),
        (
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        ),
    ];
    let (status, ok) = post_token(&d, &base, Some("gateway")).await;
    assert_eq!(status, 200, "{ok}");
    assert_eq!(ok["token_type"], "N_A");
    assert_eq!(
        ok["issued_token_type"],
        "urn:ietf:params:oauth:token-type:txn_token"
    );
    let with = |name: &str, value: &'static str| {
        base.iter()
            .map(|(k, v)| if *k == name { (*k, value) } else { (*k, *v) })
            .collect::<Vec<_>>()
    };
    // (form, workload, status, error code)
    type Case<'a> = (Vec<(&'a str, &'a str)>, Option<&'a str>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (base.to_vec(), None, 401, "invalid_client"),
        (
            with("audience", "other.example"),
            Some("gateway"),
            400,
            "invalid_target",
        ),
        (
            with("subject_token", "not.a.token"),
            Some("gateway"),
            400,
            "invalid_grant",
        ),
        (
            with("scope", "images:write"),
            Some("gateway"),
            400,
            "invalid_scope",
        ),
        (
            with("scope", "images:read"),
            Some("nobody"),
            400,
            "invalid_scope",
        ),
        (
            with(
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            Some("gateway"),
            400,
            "invalid_request",
        ),
        (
            with("grant_type", "client_credentials"),
            Some("gateway"),
            400,
            "unsupported_grant_type",
        ),
        (
            with(
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:refresh_token",
            ),
            Some("gateway"),
            400,
            "invalid_request",
        ),
    ];
    for (form, workload, want, code) in cases {
        let (status, body) = post_token(&d, &form, workload).await;
        assert_eq!(
            (status, body["error"].as_str().unwrap_or("")),
            (want, code),
            "{form:?}"
        );
    }
    // A workload token from another issuer does not authenticate.
    let stranger = TestIssuer::es256("https://stranger.example")
        .token("gateway")
        .audience("tts")
        .sign();
    let res = http_client()
        .post(d.tts.url("/token"))
        .form(&base)
        .bearer_auth(stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}
