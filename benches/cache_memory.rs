//! Memory of the verified-token cache: bytes held per cached token, and
//! what 100,000 cached tokens take. A counting allocator measures the heap
//! before and after verifying distinct tokens into one verifier's cache.
//!
//! ```text
//! cargo bench --bench cache_memory            # 100,000 tokens
//! CACHE_TOKENS=10000 cargo bench --bench cache_memory
//! ```

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{Issuer, Verifier};

/// The system allocator, counting what it hands out and takes back.
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

fn main() {
    let n: usize = std::env::var("CACHE_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let idp =
        TestIssuer::es256("https://id.example.com/realms/images").with_audience("image-store");
    // Tokens shaped as an identity provider's access tokens: issuer,
    // subject, audience, jti, iat/exp, three scopes, a client id.
    let tokens: Vec<String> = (0..n)
        .map(|i| {
            idp.token(&format!("user-{i:08}"))
                .scope("images:read images:write profile")
                .claim("client_id", serde_json::json!("web-frontend"))
                .sign()
        })
        .collect();
    let token_len = tokens.iter().map(String::len).sum::<usize>() / n;
    let verifier =
        Verifier::builder([Issuer::new(idp.issuer(), "image-store").with_keys(idp.key_set())])
            .with_cache(n)
            .build()
            .unwrap();
    verifier.verify(&tokens[0]).unwrap();
    let region = Region::new(GLOBAL);
    for token in &tokens[1..] {
        verifier.verify(token).unwrap();
    }
    let change = region.change();
    let held = change.bytes_allocated as isize - change.bytes_deallocated as isize
        + change.bytes_reallocated;
    let stats = verifier.cache_stats();
    // Per entry held: the cache may have turned a few away at capacity.
    let per = held as f64 / stats.entries.max(1) as f64;
    println!(
        "{} cached tokens of {token_len} bytes: {:.0} bytes per cached token \
         (the token itself included), {:.1} MiB for {n}",
        stats.entries,
        per,
        per * n as f64 / (1024.0 * 1024.0)
    );
}
