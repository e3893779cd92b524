//! Revocation list and `jti` replay guard, checked by the layer on every
//! request (after the signature, and also for tokens from the
//! verified-token cache, so a revocation applies at once).
//!
//! - **Revocation** by token (`iss` + `jti`) or by subject (`iss` + `sub`,
//!   every token issued before a time).
//! - **Replay guard** (optional): a `jti` may be presented once; tokens
//!   without `jti` are refused while it is on. Meant for one-time tokens
//!   (e.g. service tokens minted per call), not for access tokens a client
//!   reuses until they expire.
//!
//! [`MemoryStore`] keeps the lists in this process; `RedisStore` (feature
//! `redis`) shares them across a fleet of replicas. When the store cannot be
//! reached, requests are refused with 503 unless
//! [`Revocation::insecure_fail_open`].
//!
//! ```
//! use tower_mandate::revocation::{MemoryStore, Revocation};
//!
//! let store = MemoryStore::new();
//! let revocation = Revocation::new(store.clone());
//! // MandateLayer::builder().user(..).with_revocation(revocation).build()?;
//! store.revoke_subject("https://id.example", "mallory", 1_800_000_000);
//! # let _ = revocation;
//! ```

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::clock::unix_now;
use crate::{AuthError, Caller, Principal};

/// What the store says about a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Neither revoked nor replayed.
    Fresh,
    /// Its `jti` or its subject was revoked.
    Revoked,
    /// Its `jti` was seen before (replay guard on).
    Replayed,
}

/// The class of a [`StoreError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store could not be reached or did not answer in time.
    Unavailable,
    /// The store holds as many records as it may (a bounded [`MemoryStore`]).
    Full,
}

/// The store could not answer. Opaque: match on [`StoreError::kind`].
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// An error of `kind`, described by `message` (never token text); for
    /// implementations of [`TokenStore`].
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same, caused by `source`.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The class of the error.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "revocation store: {}", self.message)
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The future a [`TokenStore`] returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What the layer asks of a token, with the token's facts.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TokenFacts {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `jti`, when present.
    pub jti: Option<String>,
    /// `iat`, when present (unix seconds).
    pub issued_at: Option<u64>,
    /// `exp` (unix seconds).
    pub expires_at: u64,
    /// Until when (unix seconds) the verifier still accepts the token: `exp`
    /// plus the issuer's leeway. A replay record must live at least this long.
    pub accepted_until: u64,
}

/// How long a replay record outlives [`TokenFacts::accepted_until`]: room
/// for clocks that differ between replicas and the store.
pub const REPLAY_MARGIN_SECS: u64 = 30;

/// How long a revoked token's record outlives the `until` it was revoked
/// with (its `exp`): a verifier still accepts a token for its leeway after
/// `exp`, so the record must too. Covers any leeway up to 10 minutes.
pub const REVOCATION_MARGIN_SECS: u64 = 600;

impl TokenFacts {
    /// The facts of a token of `issuer` for `subject` expiring at `expires_at`
    /// and accepted until `accepted_until` (unix seconds), without `jti` or
    /// `iat` (for tests and tools that drive a [`TokenStore`]).
    pub fn new(
        issuer: impl Into<String>,
        subject: impl Into<String>,
        expires_at: u64,
        accepted_until: u64,
    ) -> Self {
        TokenFacts {
            issuer: issuer.into(),
            subject: subject.into(),
            jti: None,
            issued_at: None,
            expires_at,
            accepted_until,
        }
    }

    /// With this `jti`.
    pub fn with_jti(mut self, jti: impl Into<String>) -> Self {
        self.jti = Some(jti.into());
        self
    }

    /// With this `iat` (unix seconds).
    pub fn with_issued_at(mut self, issued_at: u64) -> Self {
        self.issued_at = Some(issued_at);
        self
    }

    fn of(p: &Principal) -> Self {
        TokenFacts {
            issuer: p.issuer().to_owned(),
            subject: p.subject().to_owned(),
            jti: p.token_id().map(str::to_owned),
            issued_at: p
                .claim("iat")
                .and_then(serde_json::Value::as_f64)
                .map(|v| v as u64),
            expires_at: p.exp(),
            accepted_until: p.accepted_until(),
        }
    }

    /// Until when (unix seconds) a replay record of this token must be kept:
    /// past the last second the verifier accepts it, plus a margin.
    pub fn replay_record_until(&self) -> u64 {
        self.accepted_until
            .max(self.expires_at)
            .saturating_add(REPLAY_MARGIN_SECS)
    }
}

/// One store key from an issuer and an id (`jti` or `sub`), unambiguous
/// whatever either holds: the issuer is length-prefixed, so `("a:b", "c")`
/// and `("a", "b:c")` differ.
pub(crate) fn key(issuer: &str, id: &str) -> String {
    format!("{}:{issuer}:{id}", issuer.len())
}

/// A revocation list and replay record.
pub trait TokenStore: Send + Sync + 'static {
    /// Check `token`; with `guard_replay`, also record its `jti` as seen.
    fn check<'a>(&'a self, token: &'a TokenFacts, guard_replay: bool) -> StoreFuture<'a, Verdict>;
}

/// The layer's revocation settings: see [`MandateBuilder::with_revocation`](crate::server::MandateBuilder::with_revocation).
#[derive(Clone)]
pub struct Revocation {
    store: Arc<dyn TokenStore>,
    /// The same store when it is a [`MemoryStore`]: answered in place,
    /// without a future.
    memory: Option<MemoryStore>,
    guard_replay: bool,
    /// Let requests through when the store cannot answer.
    fail_open: bool,
}

impl Revocation {
    /// Check every verified token against `store`'s revocation list.
    pub fn new(store: impl TokenStore) -> Self {
        let memory = (&store as &dyn std::any::Any)
            .downcast_ref::<MemoryStore>()
            .cloned();
        Revocation {
            store: Arc::new(store),
            memory,
            guard_replay: false,
            fail_open: false,
        }
    }

    /// Also refuse a `jti` presented twice, and tokens without `jti`.
    pub fn guard_replay(mut self) -> Self {
        self.guard_replay = true;
        self
    }

    /// Let requests through, with a warning, when the store cannot answer
    /// (by default they are refused with 503).
    ///
    /// # Security
    ///
    /// While the store is down, revoked and replayed tokens are accepted.
    pub fn insecure_fail_open(mut self) -> Self {
        self.fail_open = true;
        self
    }

    /// Check every principal of `caller`: answered in place by a
    /// [`MemoryStore`], else a future asking the store.
    pub(crate) fn check(&self, caller: &Caller) -> RevocationCheck {
        let facts: Vec<TokenFacts> = caller.principals().map(TokenFacts::of).collect();
        if self.guard_replay && facts.iter().any(|f| f.jti.is_none()) {
            return RevocationCheck::Ready(Some(Err(AuthError::invalid_token(
                "token without jti",
            ))));
        }
        if let Some(memory) = &self.memory {
            let mut lists = memory.lists();
            let result = facts
                .iter()
                .try_for_each(|f| self.judge(verdict(&mut lists, f, self.guard_replay)));
            return RevocationCheck::Ready(Some(result));
        }
        let this = self.clone();
        RevocationCheck::Asking(Box::pin(async move {
            for f in &facts {
                this.judge(this.store.check(f, this.guard_replay).await)?;
            }
            Ok(())
        }))
    }

    /// What the layer answers to a store's verdict.
    fn judge(&self, verdict: Result<Verdict, StoreError>) -> Result<(), AuthError> {
        match verdict {
            Ok(Verdict::Fresh) => Ok(()),
            Ok(Verdict::Revoked) => Err(AuthError::invalid_token("token revoked")),
            Ok(Verdict::Replayed) => Err(AuthError::invalid_token("token replayed")),
            Err(e) if self.fail_open => {
                tracing::warn!(target: "tower_mandate::revocation", error = %e, "accepting without a revocation check");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(target: "tower_mandate::revocation", error = %e, "refusing: store unavailable");
                Err(AuthError::keys_unavailable(
                    "revocation store unavailable",
                    1,
                ))
            }
        }
    }
}

/// The revocation check of one request: answered in place (the memory
/// store), or a future asking a shared store.
pub(crate) enum RevocationCheck {
    Ready(Option<Result<(), AuthError>>),
    Asking(Pin<Box<dyn Future<Output = Result<(), AuthError>> + Send>>),
}

impl Future for RevocationCheck {
    type Output = Result<(), AuthError>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match &mut *self {
            RevocationCheck::Ready(result) => {
                std::task::Poll::Ready(result.take().expect("polled after completion"))
            }
            RevocationCheck::Asking(future) => future.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocation")
            .field("guard_replay", &self.guard_replay)
            .field("fail_open", &self.fail_open)
            .finish_non_exhaustive()
    }
}

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

struct Lists {
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

    fn lists(&self) -> std::sync::MutexGuard<'_, Lists> {
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

fn verdict(
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

#[cfg(feature = "redis")]
mod redis_store;
#[cfg(feature = "redis")]
pub use redis_store::RedisStore;

#[cfg(test)]
mod tests {
    use super::*;

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
