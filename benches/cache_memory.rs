//! Memory of the verified-token cache: bytes held per cached token, and
//! what 100,000 cached tokens take. A counting allocator measures the heap
//! before and after sending distinct tokens through a `MandateLayer` (as a
//! service runs: whatever the layer does to a cached principal counts).
//!
//! ```text
//! cargo bench --bench cache_memory            # 100,000 tokens
//! CACHE_TOKENS=10000 cargo bench --bench cache_memory
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::task::{Context, Poll, Waker};

use http::{Request, Response};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower::{Layer, Service};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{Issuer, MandateLayer, Verifier};

/// The system allocator, counting what it hands out and takes back.
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// One request with `token` through `service`, which answers at once.
fn call<S>(service: &mut S, token: &str) -> u16
where
    S: Service<Request<String>, Response = Response<String>, Error = Infallible>,
{
    let req = Request::get("/hello")
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    let mut future = std::pin::pin!(service.call(req));
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(res) => res.unwrap().status().as_u16(),
        Poll::Pending => panic!("the layer waited"),
    }
}

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
    let mut service =
        MandateLayer::new(verifier.clone()).layer(tower::service_fn(|_: Request<String>| async {
            Ok::<_, Infallible>(Response::new(String::new()))
        }));
    assert_eq!(call(&mut service, &tokens[0]), 200);
    let region = Region::new(GLOBAL);
    // CACHE_VIA=verify: through `Verifier::verify` alone, for comparison.
    let direct = std::env::var("CACHE_VIA").is_ok_and(|v| v == "verify");
    for token in &tokens[1..] {
        if direct {
            verifier.verify(token).unwrap();
        } else {
            assert_eq!(call(&mut service, token), 200);
        }
    }
    let change = region.change();
    let held = change.bytes_allocated as isize - change.bytes_deallocated as isize
        + change.bytes_reallocated;
    let stats = verifier.cache_stats();
    // Per entry held: the cache may have turned a few away at capacity.
    let per = held as f64 / stats.entries.max(1) as f64;
    if std::env::var_os("CACHE_DEBUG").is_some() {
        eprintln!(
            "allocations kept per entry: {:.2}",
            (change.allocations as f64 - change.deallocations as f64) / stats.entries.max(1) as f64
        );
    }
    println!(
        "{} cached tokens of {token_len} bytes: {:.0} bytes per cached token \
         (the token itself included), {:.1} MiB for {n}",
        stats.entries,
        per,
        per * n as f64 / (1024.0 * 1024.0)
    );
}
