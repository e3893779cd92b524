//! One bounded cache for the crate's caches: verified tokens (`verify`),
//! unknown key ids (`keys::jwks`), tokens obtained by providers
//! (`provider`), parsed Cedar resource types (`policy`) and DPoP proof
//! keys (`binding`).
//!
//! It is `quick_cache`'s sharded cache: a hit takes a shard's read lock and
//! sets a bit; a full cache evicts its coldest entries one at a time (CLOCK
//! with a ghost list), so a flood of one-off keys — random `kid`s, junk
//! tokens that verify once — cannot flush the entries in use, which the
//! hand-written caches it replaced did by emptying themselves when full.
//! Its hasher is randomly seeded per process (keys come from the network).
//! BENCHMARKS.md has the verified-token hit before and after.

use std::fmt;
use std::hash::Hash;

use quick_cache::Equivalent;
use quick_cache::sync::Cache;

/// A concurrent map of at most about `capacity` entries.
pub(crate) struct Bounded<K, V>(Cache<K, V>);

impl<K: Eq + Hash, V: Clone> Bounded<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Bounded(Cache::new(capacity.max(1)))
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.0.get(key)
    }

    /// Insert or replace; evicts a cold entry when full.
    pub(crate) fn insert(&self, key: K, value: V) {
        self.0.insert(key, value);
    }

    pub(crate) fn remove<Q>(&self, key: &Q)
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.0.remove(key);
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    pub(crate) fn clear(&self) {
        self.0.clear();
    }
}

impl<K, V> fmt::Debug for Bounded<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bounded").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::Bounded;

    #[test]
    fn a_flood_of_new_keys_keeps_the_hot_entry() {
        let cache = Bounded::new(100);
        cache.insert("hot".to_owned(), 1);
        for i in 0..10_000 {
            // The hot entry is used between every two one-off keys.
            assert_eq!(cache.get("hot"), Some(1), "evicted after {i} one-off keys");
            cache.insert(format!("junk-{i}"), 0);
        }
        assert!(cache.len() <= 110, "{} entries", cache.len());
    }

    #[test]
    fn get_remove_clear() {
        let cache = Bounded::new(10);
        cache.insert("a".to_owned(), 1);
        assert_eq!(cache.get("a"), Some(1));
        assert_eq!(cache.get("b"), None);
        cache.remove("a");
        assert_eq!(cache.get("a"), None);
        cache.insert("c".to_owned(), 3);
        cache.clear();
        assert_eq!(cache.len(), 0);
    }
}
