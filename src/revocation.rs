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
//! reached, requests are refused with 503 by default ([`OnStoreError::FailClosed`]).
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

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::verify::unix_now;
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

/// The store could not answer.
#[derive(Debug, Clone)]
pub struct StoreError(pub String);

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "revocation store: {}", self.0)
    }
}

impl std::error::Error for StoreError {}

/// The future a [`TokenStore`] returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// What the layer asks of a token, with the token's facts.
#[derive(Debug, Clone)]
pub struct TokenFacts {
    /// `iss`.
    pub issuer: String,
    /// `sub`.
    pub subject: String,
    /// `jti`, when present.
    pub jti: Option<String>,
    /// `iat`, when present (unix seconds).
    pub issued_at: Option<u64>,
    /// `exp` (unix seconds): how long a replay record must live.
    pub expires_at: u64,
}

impl TokenFacts {
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
        }
    }
}

/// A revocation list and replay record.
pub trait TokenStore: Send + Sync + 'static {
    /// Check `token`; with `guard_replay`, also record its `jti` as seen.
    fn check<'a>(&'a self, token: &'a TokenFacts, guard_replay: bool) -> StoreFuture<'a, Verdict>;
}

/// What the layer does when the store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnStoreError {
    /// Refuse the request with 503 (the default).
    #[default]
    FailClosed,
    /// Let the request through, with a warning.
    ///
    /// # Security
    ///
    /// While the store is down, revoked and replayed tokens are accepted.
    InsecureFailOpen,
}

/// The layer's revocation settings: see [`MandateBuilder::with_revocation`](crate::MandateBuilder::with_revocation).
#[derive(Clone)]
pub struct Revocation {
    store: Arc<dyn TokenStore>,
    guard_replay: bool,
    on_error: OnStoreError,
}

impl Revocation {
    /// Check every verified token against `store`'s revocation list.
    pub fn new(store: impl TokenStore) -> Self {
        Revocation {
            store: Arc::new(store),
            guard_replay: false,
            on_error: OnStoreError::FailClosed,
        }
    }

    /// Also refuse a `jti` presented twice, and tokens without `jti`.
    pub fn guard_replay(mut self) -> Self {
        self.guard_replay = true;
        self
    }

    /// Let requests through when the store cannot answer.
    ///
    /// # Security
    ///
    /// See [`OnStoreError::InsecureFailOpen`].
    pub fn insecure_fail_open(mut self) -> Self {
        self.on_error = OnStoreError::InsecureFailOpen;
        self
    }

    /// Check every principal of `caller`.
    pub(crate) async fn check(&self, caller: &Caller) -> Result<(), AuthError> {
        for principal in caller.principals() {
            let facts = TokenFacts::of(principal);
            if self.guard_replay && facts.jti.is_none() {
                return Err(AuthError::invalid_token("token without jti"));
            }
            match self.store.check(&facts, self.guard_replay).await {
                Ok(Verdict::Fresh) => {}
                Ok(Verdict::Revoked) => return Err(AuthError::invalid_token("token revoked")),
                Ok(Verdict::Replayed) => return Err(AuthError::invalid_token("token replayed")),
                Err(e) => match self.on_error {
                    OnStoreError::FailClosed => {
                        tracing::warn!(target: "tower_mandate::revocation", error = %e, "refusing: store unavailable");
                        return Err(AuthError::keys_unavailable(
                            "revocation store unavailable",
                            1,
                        ));
                    }
                    OnStoreError::InsecureFailOpen => {
                        tracing::warn!(target: "tower_mandate::revocation", error = %e, "accepting without a revocation check");
                    }
                },
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Revocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Revocation")
            .field("guard_replay", &self.guard_replay)
            .field("on_error", &self.on_error)
            .finish_non_exhaustive()
    }
}

const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
struct Lists {
    /// (iss, jti) → keep until (unix seconds).
    seen: HashMap<(String, String), u64>,
    revoked_tokens: HashMap<(String, String), u64>,
    /// (iss, sub) → tokens issued before this are revoked.
    revoked_subjects: HashMap<(String, String), u64>,
}

impl Lists {
    fn prune(&mut self, now: u64) {
        if self.seen.len() >= MAX_ENTRIES {
            self.seen.retain(|_, until| *until > now);
        }
        if self.revoked_tokens.len() >= MAX_ENTRIES {
            self.revoked_tokens.retain(|_, until| *until > now);
        }
    }
}

/// The in-process store. Cheap to clone; clones share the lists. Bounded:
/// expired records are dropped when the lists grow.
#[derive(Clone, Default)]
pub struct MemoryStore(Arc<Mutex<Lists>>);

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Revoke the token `jti` of `issuer` until `until` (its `exp`).
    pub fn revoke_token(&self, issuer: &str, jti: &str, until: u64) {
        let mut lists = self.0.lock().expect("revocation lock");
        lists.prune(unix_now());
        lists
            .revoked_tokens
            .insert((issuer.to_owned(), jti.to_owned()), until);
    }

    /// Revoke every token of `subject` issued by `issuer` before `issued_before`.
    pub fn revoke_subject(&self, issuer: &str, subject: &str, issued_before: u64) {
        self.0
            .lock()
            .expect("revocation lock")
            .revoked_subjects
            .insert((issuer.to_owned(), subject.to_owned()), issued_before);
    }
}

impl TokenStore for MemoryStore {
    fn check<'a>(&'a self, token: &'a TokenFacts, guard_replay: bool) -> StoreFuture<'a, Verdict> {
        let mut lists = self.0.lock().expect("revocation lock");
        let verdict = verdict(&mut lists, token, guard_replay);
        Box::pin(std::future::ready(Ok(verdict)))
    }
}

fn verdict(lists: &mut Lists, token: &TokenFacts, guard_replay: bool) -> Verdict {
    let now = unix_now();
    if let Some(jti) = &token.jti
        && lists
            .revoked_tokens
            .get(&(token.issuer.clone(), jti.clone()))
            .is_some_and(|until| *until > now)
    {
        return Verdict::Revoked;
    }
    if let Some(before) = lists
        .revoked_subjects
        .get(&(token.issuer.clone(), token.subject.clone()))
        && token.issued_at.is_none_or(|iat| iat < *before)
    {
        return Verdict::Revoked;
    }
    if guard_replay && let Some(jti) = &token.jti {
        lists.prune(now);
        let key = (token.issuer.clone(), jti.clone());
        if lists.seen.get(&key).is_some_and(|until| *until > now) {
            return Verdict::Replayed;
        }
        lists.seen.insert(key, token.expires_at.max(now + 1));
    }
    Verdict::Fresh
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
        }
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
        store.revoke_token("https://id", "j2", now + 60);
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
