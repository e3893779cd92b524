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

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
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

/// A DPoP request on a cached RS256 token: the proof's ES256 signature and
/// its `jti` recorded in the memory store, over the bearer request through
/// the same layer. Each iteration gets a fresh proof, signed outside the
/// timing.
fn dpop(c: &mut Criterion) {
    use tower_mandate::Slot;
    use tower_mandate::binding::{Dpop, DpopKey};
    let users = TestIssuer::rs256("https://users.example").with_audience("a");
    let verifier =
        Verifier::new([Issuer::new("https://users.example", "a").with_keys(users.key_set())])
            .unwrap();
    let key = DpopKey::generate();
    let bound = users
        .token("alice")
        .scope("images:read")
        .claim("cnf", serde_json::json!({"jkt": key.thumbprint()}))
        .sign();
    let plain = format!("Bearer {}", users.token("bob").scope("images:read").sign());
    let scheme = format!("DPoP {bound}");
    let mut guarded = MandateLayer::builder()
        .user(Slot::required(verifier).with_dpop(Dpop::allowed().with_origin("http://bench.local")))
        .build()
        .unwrap()
        .layer(inner());
    let uri: http::Uri = "http://bench.local/hello".parse().unwrap();
    let proof = || {
        key.proof(&http::Method::GET, &uri, Some(&bound), None)
            .unwrap()
    };
    let first = proof();
    assert_eq!(
        call(
            &mut guarded,
            &[("authorization", &scheme), ("dpop", &first)]
        ),
        200
    );
    assert_eq!(
        call(
            &mut guarded,
            &[("authorization", &scheme), ("dpop", &first)]
        ),
        401
    );
    assert_eq!(call(&mut guarded, &[("authorization", &plain)]), 200);
    let mut group = c.benchmark_group("layer");
    group.bench_function("dpop_layer_bearer_rs256_cached", |b| {
        b.iter(|| call(&mut guarded, &[("authorization", &plain)]))
    });
    // The floor: one ES256 signature check by aws-lc-rs, key parsed once.
    {
        use aws_lc_rs::signature::{self as sig, KeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pair = sig::EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let public =
            sig::ParsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref())
                .unwrap();
        let message = first.as_bytes()[..first.rfind('.').unwrap()].to_vec();
        let signature = pair.sign(&rng, &message).unwrap();
        group.bench_function("es256_signature_check_alone", |b| {
            b.iter(|| public.verify_sig(&message, signature.as_ref()).is_ok())
        });
    }
    group.bench_function("dpop_layer_dpop_es256_proof_rs256_cached", |b| {
        b.iter_batched(
            proof,
            |p| call(&mut guarded, &[("authorization", &scheme), ("dpop", &p)]),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, layer, dpop);
criterion_main!(benches);
