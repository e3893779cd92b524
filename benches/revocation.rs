//! The replay guard's cost per request with 1,000 and with 100,000 live
//! records in `MemoryStore`: it must not grow with the number of records
//! (a hash look-up and a heap push; expired records leave from the front).
//!
//! ```text
//! cargo bench --bench revocation --features redis,test-util
//! ```

use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use tower_mandate::revocation::{MemoryStore, TokenFacts, TokenStore, Verdict};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn facts(jti: String) -> TokenFacts {
    let now = now();
    TokenFacts::new("https://id.example", "svc", now + 300, now + 360)
        .with_jti(jti)
        .with_issued_at(now)
}

fn revocation(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("replay_guard");
    for live in [1_000usize, 100_000] {
        let store = MemoryStore::with_capacity(10_000_000);
        for i in 0..live {
            let verdict = rt.block_on(store.check(&facts(format!("live-{i}")), true));
            assert_eq!(verdict.unwrap(), Verdict::Fresh);
        }
        assert_eq!(store.replay_records(), live);
        let mut n = 0u64;
        group.bench_function(format!("fresh_jti_{live}_live"), |b| {
            b.iter_batched(
                || {
                    n += 1;
                    facts(format!("new-{n}"))
                },
                |f| rt.block_on(store.check(black_box(&f), true)).unwrap(),
                BatchSize::SmallInput,
            )
        });
        let seen = facts("live-0".into());
        group.bench_function(format!("replayed_jti_{live}_live"), |b| {
            b.iter(|| rt.block_on(store.check(black_box(&seen), true)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, revocation);
criterion_main!(benches);
