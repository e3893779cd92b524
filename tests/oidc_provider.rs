//! Against a real identity provider, panva's oidc-provider (npm), started by
//! the test on 127.0.0.1: OIDC discovery, client_credentials access tokens
//! (RFC 9068 `at+jwt`) accepted, keys rotated and the new tokens accepted.

mod support;

use std::time::Duration;

use tower_mandate::{Issuer, JwksSource, MandateLayer, Slot, Verifier};

const RELAY_SECRET: &str = "relay-secret-0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn discovery_client_credentials_and_rotation() {
    let idp = support::Idp::start();
    let client = support::http_client();
    let keys = JwksSource::discover(idp.issuer.clone())
        .unwrap()
        .insecure_allow_http()
        .with_cooldown(Duration::from_millis(200));
    let verifier = Verifier::new([Issuer::new(idp.issuer.clone(), "image-store")
        .require_typ("at+jwt")
        .with_jwks(keys.clone())])
    .unwrap();

    let first = idp
        .client_credentials(&client, "relay", RELAY_SECRET, "images:read images:write")
        .await;
    let p = verifier.verify_async(&first).await.unwrap();
    assert_eq!(p.subject(), "relay");
    assert_eq!(p.issuer(), idp.issuer);
    assert!(p.permissions().contains("images:read"));
    assert!(p.permissions().contains("images:write"));
    assert_eq!(keys.stats().fetches, 1);

    // The IdP rotates its signing key; the next token has a new kid.
    let rotated = idp.rotate(&client).await;
    assert_eq!(rotated["kids"].as_array().unwrap().len(), 2);
    let second = idp
        .client_credentials(&client, "relay", RELAY_SECRET, "images:read")
        .await;
    assert_ne!(kid(&first), kid(&second));
    let p = verifier.verify_async(&second).await.unwrap();
    assert_eq!(p.subject(), "relay");
    assert_eq!(keys.stats().refetches_on_miss, 1);
    // The old key is still published: the first token still verifies.
    assert!(verifier.verify_async(&first).await.is_ok());
}

#[tokio::test]
async fn idp_tokens_through_the_layer() {
    let idp = support::Idp::start();
    let client = support::http_client();
    let keys = JwksSource::discover(idp.issuer.clone())
        .unwrap()
        .insecure_allow_http();
    keys.prefetch();
    let service = Verifier::new([Issuer::new(idp.issuer.clone(), "image-store")
        .require_typ("at+jwt")
        .with_jwks(keys)])
    .unwrap();
    let layer = MandateLayer::builder()
        .service(Slot::required(service))
        .build()
        .unwrap();
    async fn me(caller: tower_mandate::Caller) -> String {
        caller.service().unwrap().subject().to_owned()
    }
    let app = axum::Router::new()
        .route("/me", axum::routing::get(me))
        .route_layer(layer);
    let server = support::Server::start(app).await;
    let token = idp
        .client_credentials(&client, "relay", RELAY_SECRET, "images:read")
        .await;
    let res = client
        .get(server.url("/me"))
        .header("service-authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "relay");
    // A token whose signature was tampered with is refused.
    let res = client
        .get(server.url("/me"))
        .header(
            "service-authorization",
            format!("Bearer {}x", &token[..token.len() - 1]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

fn kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn image_store_binary_with_a_jwks_url_and_discovery() {
    use tower_mandate::testing::TestIssuer;
    let idp = support::Idp::start();
    let client = support::http_client();
    // Users: keys from a JWKS URL served by a real axum endpoint.
    let users = TestIssuer::rs256("https://users.example").with_audience("image-store");
    let jwks = users.jwks();
    let jwks_server = support::Server::start(
        axum::Router::new().route("/jwks", axum::routing::get(move || async move { jwks })),
    )
    .await;
    // Services: the oidc-provider, found by discovery from SERVICE_ISSUER.
    let server = support::Example::spawn(
        "image_store",
        &[
            ("USER_ISSUER", "https://users.example"),
            ("USER_JWKS_URL", &jwks_server.url("/jwks")),
            ("SERVICE_ISSUER", &idp.issuer),
            ("VERIFIED_CACHE", "off"),
            ("KEY_COOLDOWN_SECS", "1"),
        ],
    )
    .await;
    let user = users.token("alice").scope("images:read").sign();
    let service = idp
        .client_credentials(&client, "relay", RELAY_SECRET, "images:read")
        .await;
    let (status, me) = server
        .call(&client, "GET", "/me", Some(&user), Some(&service))
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["sub"], "alice");
    assert_eq!(me["service"]["sub"], "relay");
}
