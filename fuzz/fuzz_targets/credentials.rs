//! Credential parsing: any header bytes (as `Authorization` values and as
//! `Cookie` headers) and any query string are refused or read, never a panic.
#![no_main]

use http::{HeaderMap, HeaderValue, Uri};
use libfuzzer_sys::fuzz_target;
use tower_mandate::server::TokenSource;

fuzz_target!(|data: &[u8]| {
    let root = Uri::from_static("/");
    let mut headers = HeaderMap::new();
    let mut cookies = HeaderMap::new();
    for part in data.split(|b| *b == b'\n').take(4) {
        if let Ok(v) = HeaderValue::from_bytes(part) {
            headers.append("authorization", v.clone());
            cookies.append("cookie", v);
        }
    }
    let _ = TokenSource::authorization().extract(&headers, &root);
    let _ = TokenSource::raw_header(http::header::AUTHORIZATION).extract(&headers, &root);
    let _ = TokenSource::cookie("at").extract(&cookies, &root);
    if let Ok(query) = std::str::from_utf8(data)
        && let Ok(uri) = format!("/ws?{query}").parse::<Uri>()
    {
        let _ = TokenSource::insecure_query("access_token").extract(&HeaderMap::new(), &uri);
    }
});
