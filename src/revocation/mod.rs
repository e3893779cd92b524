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

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{AuthError, Caller, Principal};

pub use memory::{DEFAULT_MEMORY_CAPACITY, MemoryStore};
#[cfg(feature = "redis")]
pub use redis::RedisStore;

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
            issued_at: p.issued_at(),
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

    /// Check every token of one request (the user's and the service's), a
    /// verdict for each, in order. The default asks [`check`](Self::check)
    /// for each in turn; a store that can answer them in one round trip
    /// (the Redis store pipelines them) overrides it.
    fn check_all<'a>(
        &'a self,
        tokens: &'a [TokenFacts],
        guard_replay: bool,
    ) -> StoreFuture<'a, Vec<Verdict>> {
        Box::pin(async move {
            let mut verdicts = Vec::with_capacity(tokens.len());
            for token in tokens {
                verdicts.push(self.check(token, guard_replay).await?);
            }
            Ok(verdicts)
        })
    }
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
        // Every token; the replay guard for the user's and the service's
        // only: a Transaction Token is forwarded along a call chain, so a
        // hop may see it more than once, but a revoked subject's
        // transaction is refused like its tokens.
        let mut facts: Vec<TokenFacts> = caller
            .user()
            .into_iter()
            .chain(caller.service())
            .map(TokenFacts::of)
            .collect();
        let guarded = facts.len();
        facts.extend(caller.transaction().map(|t| TokenFacts::of(t.principal())));
        if self.guard_replay && facts[..guarded].iter().any(|f| f.jti.is_none()) {
            return RevocationCheck::Ready(Some(Err(AuthError::invalid_token(
                "token without jti",
            ))));
        }
        if let Some(memory) = &self.memory {
            let mut lists = memory.lists();
            let result = facts.iter().enumerate().try_for_each(|(i, f)| {
                self.judge(memory::verdict(
                    &mut lists,
                    f,
                    self.guard_replay && i < guarded,
                ))
            });
            return RevocationCheck::Ready(Some(result));
        }
        let this = self.clone();
        RevocationCheck::Asking(Box::pin(async move {
            let transaction = facts.split_off(guarded);
            match this.store.check_all(&facts, this.guard_replay).await {
                Ok(verdicts) => verdicts.into_iter().try_for_each(|v| this.judge(Ok(v)))?,
                Err(e) => this.judge(Err(e))?,
            }
            for fact in &transaction {
                this.judge(this.store.check(fact, false).await)?;
            }
            Ok(())
        }))
    }

    /// The store, and the same store when it is a [`MemoryStore`].
    #[cfg_attr(not(feature = "_aws-lc"), allow(dead_code))]
    pub(crate) fn store(&self) -> (Arc<dyn TokenStore>, Option<MemoryStore>) {
        (self.store.clone(), self.memory.clone())
    }

    /// What the layer answers to a store's verdict.
    fn judge(&self, verdict: Result<Verdict, StoreError>) -> Result<(), AuthError> {
        let outcome = match &verdict {
            Ok(Verdict::Fresh) => "fresh",
            Ok(Verdict::Revoked) => "revoked",
            Ok(Verdict::Replayed) => "replayed",
            Err(_) if self.fail_open => "failed_open",
            Err(_) => "unavailable",
        };
        crate::metrics::revocation_check(outcome);
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

impl RevocationCheck {
    /// This check, then `next`: both must pass; the first refusal is the
    /// answer.
    pub(crate) fn then(self, next: RevocationCheck) -> RevocationCheck {
        match (self, next) {
            (RevocationCheck::Ready(Some(Err(e))), _) => RevocationCheck::Ready(Some(Err(e))),
            (RevocationCheck::Ready(Some(Ok(()))), next) => next,
            (first, next) => RevocationCheck::Asking(Box::pin(async move {
                first.await?;
                next.await
            })),
        }
    }
}

/// Record `facts`' `jti` once in `store` (a DPoP proof): a `jti` seen
/// before is refused with `replayed`; a store that cannot answer refuses
/// with 503 (never open: a replayed proof is a stolen one).
pub(crate) fn check_once(
    store: &Arc<dyn TokenStore>,
    memory: Option<&MemoryStore>,
    facts: TokenFacts,
    replayed: AuthError,
) -> RevocationCheck {
    let judge = move |verdict: Result<Verdict, StoreError>| match verdict {
        Ok(Verdict::Fresh) => Ok(()),
        Ok(_) => Err(replayed),
        Err(e) => {
            tracing::warn!(target: "tower_mandate::revocation", error = %e, "refusing: replay store unavailable");
            Err(AuthError::keys_unavailable("replay store unavailable", 1))
        }
    };
    if let Some(memory) = memory {
        let mut lists = memory.lists();
        return RevocationCheck::Ready(Some(judge(memory::verdict(&mut lists, &facts, true))));
    }
    let store = store.clone();
    RevocationCheck::Asking(Box::pin(
        async move { judge(store.check(&facts, true).await) },
    ))
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
