//! JWKS documents, as fetched from the network: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tower_mandate::__fuzz::jwks_document(text);
        let _ = tower_mandate::keys::KeySet::from_jwks(text);
        let _ = tower_mandate::keys::KeySet::new().add_jwk(text);
    }
});
