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

use criterion::{BatchSize, Criterion, criterion_group};
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

/// `LAYER_PROFILE=<case>:<n>` runs `n` requests of one case and nothing
/// else, for `valgrind --tool=callgrind` (instructions counted, repeatable
/// on a noisy machine): `plain`, `cached`, `two_cached`, `refused`.
fn profile(spec: &str) {
    let (case, n) = spec.split_once(':').expect("<case>:<n>");
    let n: usize = n.parse().expect("a count");
    // ES256: its key generation costs the same instructions every run (an
    // RSA key's does not), so that runs of different `n` subtract.
    let users = TestIssuer::es256("https://users.example").with_audience("a");
    let services = TestIssuer::es256("https://mesh.example").with_audience("a");
    let verifier = |i: &TestIssuer| {
        Verifier::new([Issuer::new(i.issuer(), "a").with_keys(i.key_set())]).unwrap()
    };
    let bearer = format!(
        "Bearer {}",
        users.token("alice").scope("images:read").sign()
    );
    let service = format!(
        "Bearer {}",
        services.token("relay").scope("images:read").sign()
    );
    let one = MandateLayer::new(verifier(&users));
    let two = MandateLayer::builder()
        .user(tower_mandate::Slot::optional(verifier(&users)))
        .service(tower_mandate::Slot::optional(verifier(&services)))
        .build()
        .unwrap();
    let uncached = MandateLayer::new(
        Verifier::builder([Issuer::new(users.issuer(), "a").with_keys(users.key_set())])
            .without_cache()
            .build()
            .unwrap(),
    );
    let mut uncached = uncached.layer(inner());
    // The raw ES256 check of the same token, to subtract from `uncached`.
    let raw = {
        use aws_lc_rs::signature::{self as sig};
        use base64::Engine as _;
        let token = bearer.trim_start_matches("Bearer ");
        let (input, signature) = token.rsplit_once('.').unwrap();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let jwk = users.current_key().jwk().unwrap();
        let mut point = vec![4u8];
        point.extend(b64.decode(jwk["x"].as_str().unwrap()).unwrap());
        point.extend(b64.decode(jwk["y"].as_str().unwrap()).unwrap());
        let public = sig::ParsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point).unwrap();
        (
            public,
            input.as_bytes().to_vec(),
            b64.decode(signature).unwrap(),
        )
    };
    let (mut plain, mut one, mut two) = (inner(), one.layer(inner()), two.layer(inner()));
    let user_h = [("authorization", bearer.as_str())];
    let both_h = [
        ("authorization", bearer.as_str()),
        ("service-authorization", service.as_str()),
    ];
    if std::env::var_os("LAYER_SIZES").is_some() {
        let f = one.call(Request::get("/").body(String::new()).unwrap());
        eprintln!("response future: {} bytes", std::mem::size_of_val(&f));
    }
    // DPoP: a cached RS256-shaped (here ES256) token bound to a key, a fresh
    // proof per request, made before the loop.
    let dpop_key = tower_mandate::binding::DpopKey::generate();
    let bound_token = users
        .token("alice")
        .scope("images:read")
        .claim("cnf", serde_json::json!({"jkt": dpop_key.thumbprint()}))
        .sign();
    let dpop_scheme = format!("DPoP {bound_token}");
    let uri: http::Uri = "http://bench.local/hello".parse().unwrap();
    let proofs: Vec<String> = if case.starts_with("dpop") {
        (0..n + 1)
            .map(|_| {
                dpop_key
                    .proof(&http::Method::GET, &uri, Some(&bound_token), None)
                    .unwrap()
            })
            .collect()
    } else {
        Vec::new()
    };
    let mut dpop =
        MandateLayer::builder()
            .user(tower_mandate::Slot::required(verifier(&users)).with_dpop(
                tower_mandate::binding::Dpop::allowed().with_origin("http://bench.local"),
            ))
            .build()
            .unwrap()
            .layer(inner());
    if case.starts_with("dpop") {
        // The token verified (and cached) once, with the first proof.
        assert_eq!(
            call(
                &mut dpop,
                &[("authorization", &dpop_scheme), ("dpop", &proofs[n])]
            ),
            200
        );
    }
    let mut sum = 0usize;
    for i in 0..n {
        if case == "dpop" {
            sum += usize::from(call(
                &mut dpop,
                &[
                    ("authorization", &dpop_scheme),
                    ("dpop", proofs.get(i).map_or("", String::as_str)),
                ],
            ));
            continue;
        }
        if case == "dpop_bearer" {
            sum += usize::from(call(&mut dpop, &user_h));
            continue;
        }
        sum += usize::from(match case {
            "plain" => call(&mut plain, &user_h),
            "plain_two" => call(&mut plain, &both_h),
            "cached" => call(&mut one, &user_h),
            "two_cached" => call(&mut two, &both_h),
            "refused" => call(&mut one, &[]),
            "uncached" => call(&mut uncached, &user_h),
            "raw_es256" => 200 * u16::from(raw.0.verify_sig(&raw.1, &raw.2).is_ok()),
            other => panic!("unknown case {other}"),
        });
    }
    println!("{case}: {n} requests, status sum {sum}");
}

fn main() {
    if let Ok(spec) = std::env::var("LAYER_PROFILE") {
        return profile(&spec);
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
