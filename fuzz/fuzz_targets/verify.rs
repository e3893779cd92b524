//! Token decoding and verification: any input is refused or verified,
//! never a panic. Keys of every type are configured so every path runs.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tower_mandate::testing::TestIssuer;
use tower_mandate::{keys::{Algorithm, KeySet}, Issuer, Verifier};

fn verifier() -> &'static (Verifier, String) {
    static V: OnceLock<(Verifier, String)> = OnceLock::new();
    V.get_or_init(|| {
        let idp = TestIssuer::es256("https://id.example").with_audience("a");
        let mut keys = KeySet::from_jwks(&idp.jwks()).unwrap();
        keys = keys.add_hmac_secret(Some("h"), [7u8; 64]).unwrap();
        let v = Verifier::builder([Issuer::new("https://id.example", "a")
            .with_keys(keys)
            .with_algorithms(Algorithm::ALL)])
        .without_cache()
        .build()
        .unwrap();
        (v, idp.token("alice").sign())
    })
}

fuzz_target!(|data: &[u8]| {
    let (v, valid) = verifier();
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = v.verify(token);
    }
    // Mutations of a valid token reach the signature and claims checks.
    if !data.is_empty() {
        let mut t = valid.clone().into_bytes();
        let at = data[0] as usize % t.len();
        t[at] = data.get(1).copied().unwrap_or(b'A');
        if let Ok(t) = String::from_utf8(t) {
            let _ = v.verify(&t);
        }
    }
});
