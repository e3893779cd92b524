//! Decode + verify per algorithm, through the crate's verifier and through
//! plain `jsonwebtoken::decode` with the same validation, side by side; and
//! the cost of a `Require<P>` check on a caller holding 20 permissions.
//!
//! ```text
//! cargo bench --bench verify
//! ```

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;
use tower_mandate::mint::SigningKey;
use tower_mandate::testing::TestIssuer;
use tower_mandate::{Caller, Issuer, Verifier, keys::Algorithm, permission};

const ISS: &str = "https://id.example";
const AUD: &str = "image-store";

permission! {
    Wanted = "perm:17";
}

fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    alg.as_str().parse().expect("same names")
}

fn decode_verify(c: &mut Criterion) {
    let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER,
    );
    let mut group = c.benchmark_group("decode_verify");
    for alg in [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
        Algorithm::HS256,
    ] {
        // HMAC secrets are never published in a JWK: the bench knows this one.
        const SECRET: [u8; 32] = [0x5a; 32];
        let signing = if alg.is_hmac() {
            SigningKey::hmac(alg, "k1", &SECRET)
        } else {
            SigningKey::generate(alg, "k1")
        };
        let idp = TestIssuer::new(ISS, signing).with_audience(AUD);
        let token = idp.token("alice").scope("images:read images:write").sign();

        let ours = Verifier::builder([Issuer::new(ISS, AUD)
            .with_keys(idp.key_set())
            .with_algorithms([alg])])
        .without_cache()
        .build()
        .unwrap();
        assert!(ours.verify(&token).is_ok());

        let key = match idp.current_key().jwk() {
            Some(jwk) => {
                DecodingKey::from_jwk(&serde_json::from_value::<Jwk>(jwk).unwrap()).unwrap()
            }
            None => DecodingKey::from_secret(&SECRET).unwrap(),
        };
        let mut validation = Validation::new(jwt_alg(alg));
        validation.set_issuer(&[ISS]);
        validation.set_audience(&[AUD]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 60;
        assert!(jsonwebtoken::decode::<Value>(&token, &key, &validation).is_ok());

        group.bench_function(format!("tower_mandate/{alg}"), |b| {
            b.iter(|| ours.verify(black_box(&token)).unwrap())
        });
        group.bench_function(format!("jsonwebtoken/{alg}"), |b| {
            b.iter(|| jsonwebtoken::decode::<Value>(black_box(&token), &key, &validation).unwrap())
        });
    }
    group.finish();
}

/// The floor of an uncached RS256 request: aws-lc-rs's RSA-2048 PKCS#1
/// SHA-256 check alone, on a key parsed once, over a message of a token's
/// length (what `benches/load.sh` compares the uncached route with).
fn raw_rsa(c: &mut Criterion) {
    use aws_lc_rs::signature::{self as sig, KeyPair};
    let pair = sig::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let public =
        sig::ParsedPublicKey::new(&sig::RSA_PKCS1_2048_8192_SHA256, pair.public_key().as_ref())
            .unwrap();
    let message = vec![b'e'; 600];
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &sig::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        &message,
        &mut signature,
    )
    .unwrap();
    assert!(public.verify_sig(&message, &signature).is_ok());
    c.bench_function("aws_lc_raw/RS256_verify", |b| {
        b.iter(|| {
            public
                .verify_sig(black_box(&message), black_box(&signature))
                .is_ok()
        })
    });
}

fn cache_hit(c: &mut Criterion) {
    let idp = TestIssuer::rs256(ISS).with_audience(AUD);
    let token = idp.token("alice").scope("images:read images:write").sign();
    let cached = Verifier::new([Issuer::new(ISS, AUD).with_keys(idp.key_set())]).unwrap();
    cached.verify(&token).unwrap();
    c.bench_function("verified_token_cache/hit_RS256", |b| {
        b.iter(|| cached.verify(black_box(&token)).unwrap())
    });
    assert!(cached.cache_stats().hits > 0);
}

fn permission_check(c: &mut Criterion) {
    let users = TestIssuer::es256(ISS).with_audience(AUD);
    let services = TestIssuer::es256("https://services.example").with_audience(AUD);
    let perms: Vec<String> = (0..20).map(|i| format!("perm:{i}")).collect();
    let verify = |idp: &TestIssuer, sub: &str| {
        Verifier::new([Issuer::new(idp.issuer(), AUD).with_keys(idp.key_set())])
            .unwrap()
            .verify(&idp.token(sub).permissions(&perms).sign())
            .unwrap()
    };
    let user_only = Caller::new(Some(verify(&users, "alice")), None);
    let both = Caller::new(
        Some(verify(&users, "alice")),
        Some(verify(&services, "svc")),
    );
    assert!(user_only.require::<Wanted>().is_ok());
    let mut group = c.benchmark_group("require");
    group.bench_function("user_20_permissions", |b| {
        b.iter(|| black_box(&user_only).require::<Wanted>().is_ok())
    });
    group.bench_function("user_and_service_20_permissions", |b| {
        b.iter(|| black_box(&both).require::<Wanted>().is_ok())
    });
    group.finish();
}

criterion_group!(benches, raw_rsa, decode_verify, cache_hit, permission_check);
criterion_main!(benches);
