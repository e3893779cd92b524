//! jsonwebtoken with `rust_crypto` beside tower-mandate: the application's
//! `jsonwebtoken::decode` must keep working (it panics when two of
//! jsonwebtoken's backends are on and none is installed), and so must
//! tower-mandate's own verification.

use tower_mandate::testing::TestIssuer;
use tower_mandate::{Issuer, Verifier};

fn main() {
    let idp = TestIssuer::es256("https://id.example").with_audience("app");
    let token = idp.token("alice").sign();

    let verifier = Verifier::new([Issuer::new("https://id.example", "app").with_keys(idp.key_set())])
        .expect("verifier");
    let principal = verifier.verify(&token).expect("tower-mandate verifies");
    assert_eq!(principal.subject(), "alice");

    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(idp.current_key().jwk().expect("public key")).expect("jwk");
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["app"]);
    validation.set_issuer(&["https://id.example"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation)
        .expect("the application's jsonwebtoken verifies");
    assert_eq!(data.claims["sub"], "alice");
    println!("compat: jsonwebtoken (rust_crypto) and tower-mandate (aws-lc-rs) both verify");
}
