//! The verified-token cache: a shared, bounded map from a token to the
//! principal it verified to ([`Bounded`], which evicts cold entries).
//!
//! An entry is found by a hash of the token's last bytes and used only if
//! the stored token is byte-for-byte the presented one, so no other token
//! can hit it. Callers re-check `exp`, `nbf` and the key on every hit.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::Equivalent;

use crate::Principal;
use crate::bounded::Bounded;

/// Bytes of the token's end that are hashed: inside the signature, which is
/// what differs between tokens.
const HASHED_TAIL: usize = 48;

/// Default number of cached tokens per verifier.
pub const DEFAULT_CACHE_CAPACITY: usize = 10_000;

fn tail(token: &[u8]) -> &[u8] {
    &token[token.len().saturating_sub(HASHED_TAIL)..]
}

/// A cached principal, keyed by its token (compared in full).
#[derive(Clone)]
struct Cached(Principal);

impl Hash for Cached {
    fn hash<H: Hasher>(&self, state: &mut H) {
        tail(self.0.token().as_bytes()).hash(state);
    }
}

impl PartialEq for Cached {
    fn eq(&self, other: &Self) -> bool {
        self.0.token() == other.0.token()
    }
}

impl Eq for Cached {}

/// A presented token, looked up without copying it: its bytes as they
/// came, before any check (only checked tokens are in the cache, and a hit
/// is byte-for-byte one of them).
struct Presented<'a>(&'a [u8]);

impl Hash for Presented<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        tail(self.0).hash(state);
    }
}

impl Equivalent<Cached> for Presented<'_> {
    fn equivalent(&self, key: &Cached) -> bool {
        self.0 == key.0.token().as_bytes()
    }
}

pub(crate) struct TokenCache {
    #[cfg_attr(not(test), allow(dead_code))]
    capacity: usize,
    /// The principal (again, as the value) and the index of its issuer.
    entries: Bounded<Cached, (Principal, usize)>,
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
            entries: Bounded::new(capacity),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The capacity asked for.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    pub(crate) fn get(&self, token: &[u8]) -> Option<(Principal, usize)> {
        self.entries.get(&Presented(token))
    }

    pub(crate) fn insert(&self, principal: &Principal, issuer: usize) {
        self.entries
            .insert(Cached(principal.clone()), (principal.clone(), issuer));
    }

    pub(crate) fn remove(&self, token: &[u8]) {
        self.entries.remove(&Presented(token));
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
            entries: self.entries.len(),
        }
    }
}
