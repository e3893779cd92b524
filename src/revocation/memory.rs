//! The in-process store: expiring lists in expiry order, bounded.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use super::{
    REVOCATION_MARGIN_SECS, StoreError, StoreErrorKind, StoreFuture, TokenFacts, TokenStore,
    Verdict, key,
};
use crate::clock::unix_now;

/// Default capacity of each of [`MemoryStore`]'s expiring lists.
pub const DEFAULT_MEMORY_CAPACITY: usize = 1_000_000;

/// Records that expire, ordered by expiry: a look-up is a hash probe, an
/// insert a heap push, and expired records are dropped from the front of
/// the heap — the cost per request does not grow with the number of live
/// records, and nothing ever scans them all.
struct Expiring {
    until: HashMap<Arc<str>, u64>,
    by_expiry: BinaryHeap<Reverse<(u64, Arc<str>)>>,
}

/// The store holds as many live records as it may: refuse rather than grow.
struct Full;

impl Expiring {
    fn new() -> Self {
        Expiring {
            until: HashMap::new(),
            by_expiry: BinaryHeap::new(),
        }
    }

    fn live(&self, key: &str, now: u64) -> bool {
        self.until.get(key).is_some_and(|until| *until > now)
    }

    fn prune(&mut self, now: u64) {
        while let Some(Reverse((until, _))) = self.by_expiry.peek() {
            if *until > now {
                break;
            }
            let Some(Reverse((until, key))) = self.by_expiry.pop() else {
                break;
            };
            // A record extended later has a newer heap entry; keep it.
            if self.until.get(&key) == Some(&until) {
                self.until.remove(&key);
            }
        }
    }

    /// Keep `key` until `until` (the later of an existing record's and this).
    fn insert(&mut self, key: String, until: u64, now: u64, capacity: usize) -> Result<(), Full> {
        self.prune(now);
        let key: Arc<str> = key.into();
        match self.until.get_mut(&key) {
            Some(existing) if *existing >= until => return Ok(()),
            Some(existing) => *existing = until,
            None => {
                if self.until.len() >= capacity
                    || self.by_expiry.len() >= capacity.saturating_mul(2)
                {
                    return Err(Full);
                }
                self.until.insert(key.clone(), until);
            }
        }
        self.by_expiry.push(Reverse((until, key)));
        Ok(())
    }

    fn len(&self) -> usize {
        self.until.len()
    }
}

pub(super) struct Lists {
    capacity: usize,
    /// Replay records, keyed by (iss, jti).
    seen: Expiring,
    /// Revoked tokens, keyed by (iss, jti), until their `exp`.
    revoked_tokens: Expiring,
    /// (iss, sub) → tokens issued before this are revoked. Written by the
    /// operator only, never by a request, so not bounded here.
    revoked_subjects: HashMap<String, u64>,
}

/// The in-process store. Cheap to clone; clones share the lists.
///
/// Bounded: the replay records and the revoked tokens are each held in
/// expiry order, dropped as they expire, and capped
/// ([`DEFAULT_MEMORY_CAPACITY`] live records each, about 150 bytes per
/// record). When the replay list is full, a request that needs a new record
/// is refused with 503 (the store cannot answer, and the layer fails closed)
/// instead of the list growing without bound.
#[derive(Clone)]
pub struct MemoryStore(Arc<Mutex<Lists>>);

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_MEMORY_CAPACITY)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store holding at most `capacity` live replay records and as
    /// many revoked tokens.
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryStore(Arc::new(Mutex::new(Lists {
            capacity,
            seen: Expiring::new(),
            revoked_tokens: Expiring::new(),
            revoked_subjects: HashMap::new(),
        })))
    }

    pub(super) fn lists(&self) -> std::sync::MutexGuard<'_, Lists> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Revoke the token `jti` of `issuer`; `until` is its `exp`. The record
    /// is kept [`REVOCATION_MARGIN_SECS`] longer, while a verifier's leeway
    /// could still accept the token.
    ///
    /// # Errors
    ///
    /// When the store already holds its capacity of live revoked tokens.
    pub fn revoke_token(&self, issuer: &str, jti: &str, until: u64) -> Result<(), StoreError> {
        let mut lists = self.lists();
        let capacity = lists.capacity;
        let until = until.saturating_add(REVOCATION_MARGIN_SECS);
        lists
            .revoked_tokens
            .insert(key(issuer, jti), until, unix_now(), capacity)
            .map_err(|Full| StoreError::new(StoreErrorKind::Full, "the revoked-token list is full"))
    }

    /// Revoke every token of `subject` issued by `issuer` before `issued_before`.
    pub fn revoke_subject(&self, issuer: &str, subject: &str, issued_before: u64) {
        self.lists()
            .revoked_subjects
            .insert(key(issuer, subject), issued_before);
    }

    /// The number of live replay records.
    pub fn replay_records(&self) -> usize {
        self.lists().seen.len()
    }
}

impl TokenStore for MemoryStore {
    fn check<'a>(&'a self, token: &'a TokenFacts, guard_replay: bool) -> StoreFuture<'a, Verdict> {
        let verdict = verdict(&mut self.lists(), token, guard_replay);
        Box::pin(std::future::ready(verdict))
    }
}

pub(super) fn verdict(
    lists: &mut Lists,
    token: &TokenFacts,
    guard_replay: bool,
) -> Result<Verdict, StoreError> {
    let now = unix_now();
    let jti_key = token.jti.as_deref().map(|jti| key(&token.issuer, jti));
    if let Some(k) = &jti_key
        && lists.revoked_tokens.live(k, now)
    {
        return Ok(Verdict::Revoked);
    }
    if let Some(before) = lists
        .revoked_subjects
        .get(&key(&token.issuer, &token.subject))
        && token.issued_at.is_none_or(|iat| iat < *before)
    {
        return Ok(Verdict::Revoked);
    }
    if guard_replay && let Some(k) = jti_key {
        if lists.seen.live(&k, now) {
            return Ok(Verdict::Replayed);
        }
        let capacity = lists.capacity;
        lists
            .seen
            .insert(k, token.replay_record_until(), now, capacity)
            .map_err(|Full| StoreError::new(StoreErrorKind::Full, "the replay list is full"))?;
    }
    Ok(Verdict::Fresh)
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::*;

    fn facts(sub: &str, jti: Option<&str>, iat: u64) -> TokenFacts {
        TokenFacts {
            issuer: "https://id".into(),
            subject: sub.into(),
            jti: jti.map(str::to_owned),
            issued_at: Some(iat),
            expires_at: unix_now() + 60,
            accepted_until: unix_now() + 120,
        }
    }

    #[test]
    fn keys_are_unambiguous() {
        assert_ne!(key("a:b", "c"), key("a", "b:c"));
        assert_ne!(key("https://id", "x:y"), key("https://id:x", "y"));
        assert_eq!(key("a", "b"), key("a", "b"));
    }

    #[tokio::test]
    async fn replay_records_outlive_the_leeway() {
        let store = MemoryStore::new();
        let now = unix_now();
        // Expired a second ago, but still inside the verifier's leeway.
        let mut t = facts("alice", Some("once"), now);
        t.expires_at = now - 1;
        t.accepted_until = now + 59;
        assert_eq!(store.check(&t, true).await.unwrap(), Verdict::Fresh);
        assert_eq!(store.check(&t, true).await.unwrap(), Verdict::Replayed);
        assert!(t.replay_record_until() >= t.accepted_until + REPLAY_MARGIN_SECS);
    }

    #[tokio::test]
    async fn a_full_store_refuses_instead_of_growing() {
        let store = MemoryStore::with_capacity(3);
        for i in 0..3 {
            let t = facts("alice", Some(&format!("j{i}")), unix_now());
            assert_eq!(store.check(&t, true).await.unwrap(), Verdict::Fresh);
        }
        assert_eq!(store.replay_records(), 3);
        let fourth = facts("alice", Some("j3"), unix_now());
        assert!(
            store.check(&fourth, true).await.is_err(),
            "full: the layer answers 503"
        );
        // Seen ones are still recognised, and checks without the guard pass.
        let first = facts("alice", Some("j0"), unix_now());
        assert_eq!(store.check(&first, true).await.unwrap(), Verdict::Replayed);
        assert_eq!(store.check(&fourth, false).await.unwrap(), Verdict::Fresh);
        assert!(
            store
                .revoke_token("https://id", "a", unix_now() + 60)
                .is_ok()
        );
    }

    #[test]
    fn expired_records_leave_in_expiry_order() {
        let mut list = Expiring::new();
        let now = 1_000;
        list.insert("late".into(), now + 100, now, 10).ok().unwrap();
        list.insert("soon".into(), now + 1, now, 10).ok().unwrap();
        list.insert("soon".into(), now + 50, now, 10).ok().unwrap();
        assert_eq!(list.len(), 2);
        list.prune(now + 10);
        assert!(list.live("soon", now + 10), "extended, so kept");
        list.prune(now + 60);
        assert!(!list.live("soon", now + 60));
        assert_eq!(list.len(), 1);
        assert!(list.live("late", now + 60));
        list.prune(now + 100);
        assert_eq!(list.len(), 0);
        assert!(list.by_expiry.is_empty());
    }

    #[tokio::test]
    async fn memory_store_rules() {
        let store = MemoryStore::new();
        let now = unix_now();
        let t = facts("alice", Some("j1"), now);
        assert_eq!(store.check(&t, false).await.unwrap(), Verdict::Fresh);
        assert_eq!(
            store.check(&t, false).await.unwrap(),
            Verdict::Fresh,
            "reuse without the guard"
        );
        assert_eq!(store.check(&t, true).await.unwrap(), Verdict::Fresh);
        assert_eq!(store.check(&t, true).await.unwrap(), Verdict::Replayed);
        store.revoke_token("https://id", "j2", now + 60).unwrap();
        assert_eq!(
            store
                .check(&facts("bob", Some("j2"), now), false)
                .await
                .unwrap(),
            Verdict::Revoked
        );
        store.revoke_subject("https://id", "carol", now);
        assert_eq!(
            store
                .check(&facts("carol", Some("j3"), now - 10), false)
                .await
                .unwrap(),
            Verdict::Revoked
        );
        assert_eq!(
            store
                .check(&facts("carol", Some("j4"), now + 1), false)
                .await
                .unwrap(),
            Verdict::Fresh
        );
        // Another issuer's subject of the same name is not touched.
        let mut other = facts("carol", Some("j5"), now - 10);
        other.issuer = "https://other".into();
        assert_eq!(store.check(&other, false).await.unwrap(), Verdict::Fresh);
    }
}
