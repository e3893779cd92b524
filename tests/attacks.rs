//! The attack suite: tokens made by independent implementations (PyJWT,
//! jwcrypto, raw `cryptography` signing; tests/support/attacks.py) sent to a
//! real axum server on 127.0.0.1. Every attack is refused with 401 — never
//! a 5xx, never a panic — and the valid controls are accepted. SECURITY.md
//! lists each class with its decision and source.

mod support;

use axum::Router;
use axum::routing::get;
use serde_json::Value;
use tower_mandate::{Caller, Issuer, MandateLayer, Verifier, keys::KeySet};

const ISS: &str = "https://id.example";
const AUD: &str = "image-store";

#[tokio::test]
async fn every_attack_is_refused_with_401() {
    let out = support::python(&["tests/support/attacks.py", ISS, AUD]);
    let suite: Value = serde_json::from_str(&out).unwrap();
    // The JWKS holds good keys and keys that must be skipped (use: enc,
    // key_ops without verify, 1024-bit RSA): loading it must not fail.
    let keys = KeySet::from_jwks(&suite["jwks"].to_string()).unwrap();
    assert_eq!(keys.kids().collect::<Vec<_>>(), ["rsa", "ec", "ps-only"]);
    let verifier = Verifier::new([Issuer::new(ISS, AUD).with_keys(keys)]).unwrap();
    async fn me(caller: Caller) -> String {
        caller.user().unwrap().subject().to_owned()
    }
    let server = support::Server::start(
        Router::new()
            .route("/me", get(me))
            .route_layer(MandateLayer::new(verifier)),
    )
    .await;
    let client = support::http_client();
    let send = |token: String| {
        let client = client.clone();
        let url = server.url("/me");
        async move {
            client
                .get(url)
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .unwrap()
        }
    };

    for (name, token) in suite["valid"].as_object().unwrap() {
        let res = send(token.as_str().unwrap().to_owned()).await;
        assert_eq!(res.status(), 200, "valid control {name} was refused");
        assert_eq!(res.text().await.unwrap(), "alice");
    }
    let attacks = suite["attacks"].as_array().unwrap();
    assert!(attacks.len() >= 90, "{}", attacks.len());
    let mut failures = Vec::new();
    for attack in attacks {
        let class = attack["class"].as_str().unwrap();
        let name = attack["name"].as_str().unwrap();
        let res = send(attack["token"].as_str().unwrap().to_owned()).await;
        let status = res.status().as_u16();
        let challenge = res
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        if status != 401 || !challenge.contains("invalid_token") {
            failures.push(format!("{class} / {name}: {status} {challenge}"));
        }
    }
    assert!(
        failures.is_empty(),
        "attacks not refused with 401:\n{}",
        failures.join("\n")
    );
}
