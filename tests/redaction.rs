//! `Debug` of every type holding a key or a token prints `<redacted>` and
//! none of the secret.

use tower_mandate::mint::SigningKey;
use tower_mandate::provider::OnBehalfOf;
use tower_mandate::provider::{
    AccessToken, ClientAuth, ClientCredentials, SelfSigned, TokenExchange, TokenRequest,
};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{
    Caller, Issuer, Verifier,
    keys::{Algorithm, JwksSource, KeySet},
};

/// A job's handle, the job opened from it and its sealing keys: `Debug`
/// shows the purpose, audience, expiry and key ids, never the sealed text.
#[tokio::test]
async fn debug_never_prints_a_job_handle() {
    use tower_mandate::job::{Delegation, Grant, SealingKeys};
    let idp = TestIssuer::es256("https://id.example").with_audience("a");
    let verifier =
        Verifier::new([Issuer::new("https://id.example", "a").with_keys(idp.key_set())]).unwrap();
    let caller = Caller::new(
        Some(
            verifier
                .verify(&idp.token("alice").scope("x").sign())
                .unwrap(),
        ),
        None,
    );
    let keys = SealingKeys::new("k1", &[0x5a; 32]).unwrap();
    let jobs = Delegation::builder(
        Grant::jwt_bearer(
            "https://id.example/token",
            "worker",
            ClientAuth::SecretBasic("hunter2-client-secret".into()),
            "https://id.example",
            SigningKey::generate(Algorithm::ES256, "w"),
        ),
        keys.clone(),
    )
    .build();
    let handle = jobs
        .capture(
            &caller,
            "p",
            TokenRequest::for_audience("b").with_scope("x"),
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    let json: serde_json::Value = serde_json::to_value(&handle).unwrap();
    let job = jobs.open(&handle, "p").unwrap();
    let text = format!("{handle:?} {job:?} {jobs:?} {keys:?}");
    for secret in [
        json["sealed"].as_str().unwrap(),
        json["nonce"].as_str().unwrap(),
        "hunter2",
        "WlpaWlpa",
        "90, 90",
    ] {
        assert!(!text.contains(secret), "{secret:?} in {text}");
    }
    assert!(text.contains("<redacted>"), "{text}");
}

#[test]
fn debug_never_prints_secrets() {
    let idp = TestIssuer::rs256("https://id.example").with_audience("a");
    let token = idp.token("alice").sign();
    let secret = "hunter2-client-secret";
    let verifier =
        Verifier::new([Issuer::new("https://id.example", "a").with_keys(idp.key_set())]).unwrap();
    let principal = verifier.verify(&token).unwrap();
    let caller = Caller::new(Some(principal.clone()), None);
    let hmac = KeySet::new()
        .add_hmac_secret(Some("h"), [0x5a; 32])
        .unwrap();
    let jwk = idp.current_key().jwk().unwrap();
    let private_parts = format!("{:?}", SigningKey::generate(Algorithm::ES256, "k"));
    let exchange = TokenExchange::new(
        "https://id/token",
        "c",
        ClientAuth::SecretBasic(secret.into()),
    );
    let job =
        OnBehalfOf::capture(&caller, exchange.clone(), TokenRequest::for_audience("b")).unwrap();

    let cases: Vec<(&str, String, Vec<String>)> = vec![
        ("principal", format!("{principal:?}"), vec![token.clone()]),
        ("caller", format!("{caller:?}"), vec![token.clone()]),
        (
            "verifier",
            format!("{verifier:?}"),
            vec![jwk["n"].as_str().unwrap()[..40].to_owned()],
        ),
        (
            "hmac key set",
            format!("{hmac:?}"),
            vec!["90, 90".into(), "5a5a".into(), "WlpaWlpa".into()],
        ),
        (
            "access token",
            format!(
                "{:?}",
                AccessToken::new(token.clone(), std::time::Duration::from_secs(60))
            ),
            vec![token.clone()],
        ),
        (
            "token request",
            format!(
                "{:?}",
                TokenRequest::for_audience("b").with_subject_token(token.as_str())
            ),
            vec![token.clone()],
        ),
        (
            "client credentials",
            format!(
                "{:?}",
                ClientCredentials::new(
                    "https://id/token",
                    "c",
                    ClientAuth::SecretPost(secret.into())
                )
            ),
            vec![secret.into()],
        ),
        (
            "token exchange",
            format!("{exchange:?}"),
            vec![secret.into()],
        ),
        ("job", format!("{job:?}"), vec![token.clone()]),
        (
            "self-signed",
            format!(
                "{:?}",
                SelfSigned::new("https://me", SigningKey::generate(Algorithm::EdDSA, "me"))
                    .unwrap()
            ),
            vec![],
        ),
        ("signing key", private_parts, vec![]),
        ("test key", format!("{:?}", idp.current_key()), vec![]),
        (
            "jwks source",
            format!("{:?}", JwksSource::new("https://id/jwks").unwrap()),
            vec![],
        ),
    ];
    for (name, text, secrets) in cases {
        for s in secrets {
            // Any 20-character slice of the secret is a leak.
            for start in 0..s.len().saturating_sub(20).max(1) {
                let slice = &s[start..(start + 20).min(s.len())];
                assert!(!text.contains(slice), "{name} leaks {slice:?}: {text}");
            }
        }
        let holds_secret = !matches!(name, "jwks source");
        if holds_secret {
            assert!(text.contains("<redacted>"), "{name}: {text}");
        }
    }
}
