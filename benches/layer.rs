//! The layer's own work per request, in process: a request through
//! `MandateLayer` to an inner service that answers at once, the future
//! polled once (no runtime, no network). The load bench measures the same
//! path under wrk; this one is steadier on a shared machine.
//!
//! ```text
//! cargo bench --bench layer
//! ```
//!
//! Written against the API the crate had before and after the
//! restructure, so that both can be measured with the same file.

use std::convert::Infallible;
use std::future::Future;
use std::task::{Context, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use tower::{Layer, Service};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{Issuer, MandateLayer, Verifier};

type Answer = std::future::Ready<Result<Response<String>, Infallible>>;

fn answer(_: Request<String>) -> Answer {
    std::future::ready(Ok(Response::new(String::new())))
}

/// The inner service, a named type (its future is `Send`).
fn inner() -> tower::util::ServiceFn<fn(Request<String>) -> Answer> {
    tower::service_fn(answer as fn(Request<String>) -> Answer)
}

/// One request through `service`, which must answer without waiting.
fn call<S>(service: &mut S, headers: &[(&'static str, &str)]) -> u16
where
    S: Service<Request<String>, Response = Response<String>>,
    S::Error: std::fmt::Debug,
{
    let mut req = Request::get("/hello");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let future = service.call(req.body(String::new()).unwrap());
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(res) => res.unwrap().status().as_u16(),
        Poll::Pending => panic!("the layer waited"),
    }
}

fn layer(c: &mut Criterion) {
    let users = TestIssuer::rs256("https://users.example").with_audience("a");
    let verifier =
        Verifier::new([Issuer::new("https://users.example", "a").with_keys(users.key_set())])
            .unwrap();
    let bearer = format!(
        "Bearer {}",
        users.token("alice").scope("images:read").sign()
    );
    let mut plain = inner();
    let mut guarded = MandateLayer::new(verifier).layer(inner());
    assert_eq!(call(&mut guarded, &[("authorization", &bearer)]), 200);
    assert_eq!(call(&mut guarded, &[]), 401);
    let mut group = c.benchmark_group("layer");
    group.bench_function("no_layer_user_header", |b| {
        b.iter(|| call(&mut plain, &[("authorization", &bearer)]))
    });
    group.bench_function("one_rs256_cached", |b| {
        b.iter(|| call(&mut guarded, &[("authorization", &bearer)]))
    });
    group.bench_function("refused_no_token", |b| b.iter(|| call(&mut guarded, &[])));
    group.finish();
}

criterion_group!(benches, layer);
criterion_main!(benches);
