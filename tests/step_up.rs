//! Step-up authentication (RFC 9470) with access tokens from a real
//! identity provider (oidc-provider, its `/__user_token` login stand-in
//! carrying `acr` and `auth_time`): a strong, recent login passes; a weak,
//! an old or an unknown one is answered 401 `insufficient_user_authentication`
//! with the `acr_values` and `max_age` to log in with — over HTTP, and as a
//! gRPC status with the challenge in its metadata.

mod support;

use axum::Router;
use axum::routing::post;
use tower_mandate::axum::RequireAuthentication;
use tower_mandate::keys::JwksSource;
use tower_mandate::step_up::AuthenticationLevel;
use tower_mandate::{Issuer, MandateLayer, Require, Verifier, permission};

permission! {
    Pay = "payments:write";
}

/// Multi-factor, within the last five minutes.
struct RecentMfa;
impl AuthenticationLevel for RecentMfa {
    const ACR_VALUES: &'static [&'static str] = &["urn:example:mfa", "phrh"];
    const MAX_AGE: Option<u64> = Some(300);
}

async fn pay(_: RequireAuthentication<RecentMfa>, _: Require<Pay>) -> &'static str {
    "paid"
}

#[tokio::test]
async fn weak_or_old_logins_are_asked_to_step_up() {
    let idp = support::Idp::start();
    let http = support::http_client();
    let keys = JwksSource::discovery(idp.issuer.clone())
        .insecure_allow_http()
        .build()
        .unwrap();
    let layer = MandateLayer::new(
        Verifier::new([Issuer::new(idp.issuer.clone(), "payments").with_jwks(keys)]).unwrap(),
    );
    let server =
        support::Server::start(Router::new().route("/pay", post(pay)).route_layer(layer)).await;
    let login = |query: &'static str| {
        let url = format!(
            "{}/__user_token?sub=alice&aud=payments&scope=payments:write{query}",
            idp.issuer
        );
        let http = http.clone();
        async move {
            let body: serde_json::Value = http.get(url).send().await.unwrap().json().await.unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        }
    };
    let challenge = |reason: &str| {
        format!(
            r#"Bearer error="insufficient_user_authentication", error_description="{reason}", acr_values="urn:example:mfa phrh", max_age=300"#
        )
    };
    let cases = [
        ("&acr=urn:example:mfa&auth_age=10", 200, None),
        ("&acr=phrh&auth_age=299", 200, None),
        (
            "&acr=urn:example:pwd&auth_age=10",
            401,
            Some("authentication too weak"),
        ),
        ("&auth_age=10", 401, Some("authentication too weak")),
        (
            "&acr=urn:example:mfa&auth_age=900",
            401,
            Some("authentication too old"),
        ),
        (
            "&acr=urn:example:mfa",
            401,
            Some("authentication time unknown"),
        ),
    ];
    for (query, status, reason) in cases {
        let token = login(query).await;
        let res = http
            .post(server.url("/pay"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), status, "{query}");
        let got = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(got, reason.map(challenge), "{query}");
    }

    // The same refusal as a gRPC status.
    let verifier = Verifier::new([Issuer::new(idp.issuer.clone(), "payments").with_jwks(
        JwksSource::discovery(idp.issuer.clone())
            .insecure_allow_http()
            .build()
            .unwrap(),
    )])
    .unwrap();
    let weak = verifier
        .verify_async(&login("&acr=urn:example:pwd&auth_age=10").await)
        .await
        .unwrap();
    let status: tonic::Status = tower_mandate::Caller::new(Some(weak), None)
        .require_authentication::<RecentMfa>()
        .unwrap_err()
        .into();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        status
            .metadata()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap(),
        challenge("authentication too weak")
    );
}
