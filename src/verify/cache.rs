//! The verified-token cache: a shared, sharded, bounded map from a token to
//! the principal it verified to.
//!
//! An entry is found by a keyed hash of the token's last bytes and used only
//! if the stored token is byte-for-byte the presented one, so no other token
//! can hit it. Callers re-check `exp`, `nbf` and the key on every hit.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::Principal;

const SHARDS: usize = 16;
/// Bytes of the token's end that are hashed: inside the signature, which is
/// what differs between tokens.
const HASHED_TAIL: usize = 48;

/// Default number of cached tokens per verifier.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

struct Entry {
    principal: Principal,
    issuer: usize,
}

#[derive(Default)]
struct Shard {
    map: HashMap<u64, Entry>,
    order: VecDeque<u64>,
}

pub(crate) struct TokenCache {
    #[cfg_attr(not(test), allow(dead_code))]
    capacity: usize,
    shards: Box<[RwLock<Shard>]>,
    per_shard: usize,
    hasher: RandomState,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// Counters of a verifier's verified-token cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Tokens answered from the cache.
    pub hits: u64,
    /// Tokens verified in full.
    pub misses: u64,
    /// Entries held now.
    pub entries: usize,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        TokenCache {
            capacity,
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn slot(&self, token: &str) -> (&RwLock<Shard>, u64) {
        let tail = &token.as_bytes()[token.len().saturating_sub(HASHED_TAIL)..];
        let hash = self.hasher.hash_one(tail);
        (&self.shards[(hash as usize) % SHARDS], hash)
    }

    /// The capacity asked for.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn get(&self, token: &str) -> Option<(Principal, usize)> {
        let (shard, hash) = self.slot(token);
        shard
            .read()
            .ok()?
            .map
            .get(&hash)
            .filter(|e| e.principal.token() == token)
            .map(|e| (e.principal.clone(), e.issuer))
    }

    pub(crate) fn insert(&self, principal: &Principal, issuer: usize) {
        let (shard, hash) = self.slot(principal.token());
        let Ok(mut shard) = shard.write() else {
            return;
        };
        while shard.map.len() >= self.per_shard {
            match shard.order.pop_front() {
                Some(old) => {
                    shard.map.remove(&old);
                }
                None => break,
            }
        }
        let entry = Entry {
            principal: principal.clone(),
            issuer,
        };
        if shard.map.insert(hash, entry).is_none() {
            shard.order.push_back(hash);
        }
    }

    pub(crate) fn remove(&self, token: &str) {
        let (shard, hash) = self.slot(token);
        if let Ok(mut shard) = shard.write() {
            shard.map.remove(&hash);
            // The stale position in `order` is skipped when it comes up.
            if shard.order.len() > 2 * self.per_shard {
                let Shard { map, order } = &mut *shard;
                order.retain(|h| map.contains_key(h));
            }
        }
    }

    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self
                .shards
                .iter()
                .map(|s| s.read().map_or(0, |s| s.map.len()))
                .sum(),
        }
    }
}
