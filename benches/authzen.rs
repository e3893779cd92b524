//! The AuthZEN backend's own cost: one decision for a user, a calling
//! service and its actor (three subjects in one batch), against an
//! in-process decision point on 127.0.0.1 that answers at once — building
//! the request, the HTTP round trip and parsing the answer — and the same
//! decision from the decision cache (building the request, which is the
//! cache key, and the look-up). `benches/load.sh` runs it through a real
//! Cerbos.
//!
//! ```text
//! cargo bench --bench authzen
//! ```

use std::hint::black_box;
use std::time::Duration;

use axum::routing::post;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use tower_mandate::policy::{AuthZen, Resource};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{Caller, Issuer, PrincipalId, Verifier};

const ANSWER: &str = r#"{"evaluations":[{"decision":true},{"decision":true},{"decision":true}]}"#;

fn authzen(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/access/v1/evaluations",
        post(|| async { ([("content-type", "application/json")], ANSWER) }),
    );
    rt.spawn(async move { axum::serve(listener, app).await });

    let users = TestIssuer::es256("https://users").with_audience("a");
    let services = TestIssuer::es256("https://services").with_audience("a");
    let uv = Verifier::new([Issuer::new("https://users", "a").with_keys(users.key_set())]).unwrap();
    let sv = Verifier::new([Issuer::new("https://services", "a").with_keys(services.key_set())])
        .unwrap();
    let user = users
        .token("alice")
        .scope("images:read images:write images:delete tags:write")
        .claim("act", json!({"sub": "gateway", "iss": "https://services"}))
        .sign();
    let service = services.token("tagger").scope("tags:write").sign();
    let caller = Caller::new(
        Some(uv.verify(&user).unwrap()),
        Some(sv.verify(&service).unwrap()),
    );
    let image = Resource::new("Image", "img-1")
        .with_owner(&PrincipalId::new("https://users", "alice"))
        .with_attr("tags", json!(["cat", "beach"]));
    let asked = AuthZen::builder(&url)
        .insecure_allow_http()
        .build()
        .unwrap();
    let cached = AuthZen::builder(&url)
        .insecure_allow_http()
        .with_cache(Duration::from_secs(3600), 1_000)
        .build()
        .unwrap();
    let d = rt.block_on(asked.authorize(&caller, "tags:write", &image));
    assert!(d.is_allowed(), "{d:?}");
    assert_eq!(d.subjects().len(), 3);
    assert!(
        rt.block_on(cached.authorize(&caller, "tags:write", &image))
            .is_allowed()
    );

    let mut group = c.benchmark_group("authzen");
    group.bench_function("three_subjects_loopback_round_trip", |b| {
        b.iter(|| rt.block_on(asked.authorize(black_box(&caller), "tags:write", black_box(&image))))
    });
    group.bench_function("three_subjects_cache_hit", |b| {
        b.iter(|| {
            rt.block_on(cached.authorize(black_box(&caller), "tags:write", black_box(&image)))
        })
    });
    group.finish();
}

criterion_group!(benches, authzen);
criterion_main!(benches);
