//! One Cedar evaluation for the demo policy set (examples/policies/images.cedar):
//! the owner reading her image, a denied reader, and the archiver.
//!
//! ```text
//! cargo bench --bench cedar --features cedar
//! ```

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tower_mandate::policy::{CedarPolicy, Resource};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{Caller, Issuer, Verifier};

fn cedar(c: &mut Criterion) {
    let policy = CedarPolicy::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/policies/images.cedar"
    ))
    .unwrap();
    let users = TestIssuer::es256("https://users").with_audience("a");
    let services = TestIssuer::es256("https://services").with_audience("a");
    let uv = Verifier::new([Issuer::new("https://users", "a").with_keys(users.key_set())]).unwrap();
    let sv = Verifier::new([Issuer::new("https://services", "a").with_keys(services.key_set())])
        .unwrap();
    let all = "images:read images:write images:delete tags:write";
    let alice = Caller::new(
        Some(uv.verify(&users.token("alice").scope(all).sign()).unwrap()),
        None,
    );
    let bob = Caller::new(
        Some(uv.verify(&users.token("bob").scope(all).sign()).unwrap()),
        None,
    );
    let archiver = Caller::new(
        None,
        Some(
            sv.verify(&services.token("archiver").scope("images:read").sign())
                .unwrap(),
        ),
    );
    let image = Resource::new("Image", "img-1")
        .with_owner(&tower_mandate::PrincipalId::new("https://users", "alice"));
    assert!(policy.authorize(&alice, "images:read", &image).is_allowed());
    assert!(!policy.authorize(&bob, "images:read", &image).is_allowed());
    let mut group = c.benchmark_group("cedar");
    group.bench_function("owner_reads_allowed", |b| {
        b.iter(|| policy.authorize(black_box(&alice), "images:read", black_box(&image)))
    });
    group.bench_function("other_user_denied", |b| {
        b.iter(|| policy.authorize(black_box(&bob), "images:read", black_box(&image)))
    });
    group.bench_function("archiver_delete_forbidden", |b| {
        b.iter(|| policy.authorize(black_box(&archiver), "images:delete", black_box(&image)))
    });
    group.finish();
}

criterion_group!(benches, cedar);
criterion_main!(benches);
