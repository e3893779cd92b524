//! Credential-header parsing: any header bytes are refused or read, never a panic.
#![no_main]

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tower_mandate::server::TokenSource;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for part in data.split(|b| *b == b'\n').take(4) {
        if let Ok(v) = HeaderValue::from_bytes(part) {
            headers.append("authorization", v);
        }
    }
    let _ = TokenSource::authorization().extract(&headers);
    let _ = TokenSource::raw_header(http::header::AUTHORIZATION).extract(&headers);
});
