//! Token providers: where a service gets the tokens it sends downstream.
//!
//! Every provider caches its tokens and refreshes them before they expire
//! (by the smaller of 30 s and a tenth of their lifetime), fetches **once**
//! for any number of concurrent callers asking for the same token (single
//! flight), and retries transient failures with backoff.
//!
//! - [`SelfSigned`]: the service signs short-lived tokens with its own key
//!   (`iss` = `sub` = the service, `aud` = the destination) and publishes its
//!   JWKS for its peers.
//! - [`ClientCredentials`] (feature `oauth`): RFC 6749 §4.4 with
//!   `client_secret_basic`, `client_secret_post` or `private_key_jwt`
//!   (RFC 7523) client authentication.
//! - [`TokenExchange`] (feature `oauth`): RFC 8693; the user's token as
//!   `subject_token`, optionally this service's own token as `actor_token`.

//!
//! Work done later on a user's behalf, with a durable handle: [`job`](crate::job).

// With no provider compiled in (no `oauth`, no signing backend) the shared
// cache has no user.
#![cfg_attr(not(any(feature = "oauth", feature = "_aws-lc")), allow(dead_code))]

mod cache;
mod job;
#[cfg(feature = "oauth")]
mod oauth;
#[cfg(feature = "_aws-lc")]
mod self_signed;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[cfg(any(feature = "oauth", feature = "_aws-lc"))]
pub(crate) use cache::ProviderCache;
pub use job::{AsService, OnBehalfOf};

#[cfg(all(feature = "oauth", feature = "_aws-lc"))]
pub(crate) use oauth::Endpoint;
#[cfg(all(feature = "oauth", feature = "fuzzing"))]
pub(crate) use oauth::parse_token_response;
#[cfg(feature = "oauth")]
pub(crate) use oauth::rejected;
#[cfg(feature = "oauth")]
pub use oauth::{
    ClientAuth, ClientCredentials, ClientCredentialsBuilder, TokenExchange, TokenExchangeBuilder,
};
#[cfg(feature = "_aws-lc")]
pub use self_signed::{SelfSigned, SelfSignedBuilder};

/// A bearer token and when it stops being usable. `Debug` never prints it.
#[derive(Clone)]
pub struct AccessToken {
    value: Arc<str>,
    obtained_at: Instant,
    expires_at: Instant,
    /// The key a DPoP-bound token is bound to (RFC 9449).
    #[cfg(feature = "_aws-lc")]
    dpop: Option<crate::binding::DpopKey>,
}

impl AccessToken {
    /// A token valid for `lifetime` from now.
    pub fn new(value: impl Into<Arc<str>>, lifetime: Duration) -> Self {
        let now = Instant::now();
        AccessToken {
            value: value.into(),
            obtained_at: now,
            // A lifetime too long for `Instant` (a provider's "never") saturates.
            expires_at: crate::clock::later(now, lifetime),
            #[cfg(feature = "_aws-lc")]
            dpop: None,
        }
    }

    /// The same token, bound to `key` (`token_type` `DPoP`): sent with a
    /// proof of `key` on every request.
    #[cfg(feature = "_aws-lc")]
    pub fn with_dpop(mut self, key: crate::binding::DpopKey) -> Self {
        self.dpop = Some(key);
        self
    }

    /// The key of a DPoP-bound token.
    #[cfg(feature = "_aws-lc")]
    pub fn dpop_key(&self) -> Option<&crate::binding::DpopKey> {
        self.dpop.as_ref()
    }

    /// The token text.
    ///
    /// # Security
    ///
    /// A bearer credential: never log it.
    pub fn secret(&self) -> &str {
        &self.value
    }

    /// When the token expires.
    pub fn expires_at(&self) -> Instant {
        self.expires_at
    }

    /// When a cached copy should be replaced: before expiry by the smaller of
    /// 30 s and a tenth of the lifetime.
    fn refresh_at(&self) -> Instant {
        let lifetime = self.expires_at.saturating_duration_since(self.obtained_at);
        self.expires_at - (lifetime / 10).min(Duration::from_secs(30))
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// What a token is asked for.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TokenRequest {
    /// The audience (`aud`) the token is for.
    pub audience: Option<String>,
    /// The `resource` indicator (RFC 8707).
    pub resource: Option<String>,
    /// The scopes, space-delimited.
    pub scope: Option<String>,
    /// For token exchange: the token being exchanged (the user's).
    pub subject_token: Option<Arc<str>>,
}

impl TokenRequest {
    /// A request for a token whose audience is `audience`.
    pub fn for_audience(audience: impl Into<String>) -> Self {
        TokenRequest {
            audience: Some(audience.into()),
            ..Self::default()
        }
    }

    /// Ask for these scopes.
    pub fn with_scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Ask with this resource indicator.
    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Exchange this token (RFC 8693 `subject_token`).
    pub fn with_subject_token(mut self, token: impl Into<Arc<str>>) -> Self {
        self.subject_token = Some(token.into());
        self
    }
}

impl fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRequest")
            .field("audience", &self.audience)
            .field("resource", &self.resource)
            .field("scope", &self.scope)
            .field(
                "subject_token",
                &self.subject_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The class of a [`ProviderError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderErrorKind {
    /// The token endpoint could not be reached or timed out (retried).
    Network,
    /// The token endpoint answered 5xx (retried).
    Unavailable,
    /// The token endpoint refused the request (4xx, an OAuth error).
    Rejected,
    /// The answer was not a usable token response.
    InvalidResponse,
    /// The request cannot be made (e.g. a token exchange without a subject token).
    InvalidRequest,
}

/// Why a token could not be obtained. Never contains token text. Opaque:
/// match on [`ProviderError::kind`]; [`source`](std::error::Error::source)
/// gives the transport error, when there is one.
#[derive(Debug, Clone)]
pub struct ProviderError {
    kind: ProviderErrorKind,
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl ProviderError {
    /// An error of `kind`, described by `message` (never token text); for
    /// implementations of [`TokenProvider`].
    pub fn new(kind: ProviderErrorKind, message: impl Into<String>) -> Self {
        ProviderError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same, caused by `source`.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The class of the error.
    pub fn kind(&self) -> ProviderErrorKind {
        self.kind
    }

    fn is_transient(&self) -> bool {
        matches!(
            self.kind,
            ProviderErrorKind::Network | ProviderErrorKind::Unavailable
        )
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot obtain a token: {}", self.message)
    }
}

impl std::error::Error for ProviderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// The future a [`TokenProvider`] returns. It owns what it needs (the
/// providers here are cheap clones of an `Arc`), so an outgoing request can
/// hold it while the token is fetched.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<AccessToken, ProviderError>> + Send>>;

/// Supplies tokens for outgoing calls.
pub trait TokenProvider: Send + Sync + 'static {
    /// A token for `request`, from the cache when a fresh one is there.
    fn token(&self, request: TokenRequest) -> TokenFuture;

    /// A fresh token for `request` from the cache, without waiting, when
    /// one is there (outgoing requests then need no future); `None` by
    /// default.
    fn cached(&self, request: &TokenRequest) -> Option<AccessToken> {
        let _ = request;
        None
    }
}

impl<P: TokenProvider + ?Sized> TokenProvider for Arc<P> {
    fn token(&self, request: TokenRequest) -> TokenFuture {
        (**self).token(request)
    }

    fn cached(&self, request: &TokenRequest) -> Option<AccessToken> {
        (**self).cached(request)
    }
}

#[cfg(test)]
mod tests {
    use super::cache::ATTEMPTS;
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn refresh_skew() {
        let long = AccessToken::new("t", Duration::from_secs(3600));
        assert_eq!(long.expires_at - long.refresh_at(), Duration::from_secs(30));
        let short = AccessToken::new("t", Duration::from_secs(60));
        assert_eq!(
            short.expires_at - short.refresh_at(),
            Duration::from_secs(6)
        );
        assert!(!format!("{long:?}").contains("\"t\""));
    }

    #[tokio::test]
    async fn single_flight_and_retries() {
        let cache = Arc::new(ProviderCache::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(TokenRequest::for_audience("b"), || {
                        let calls = calls.clone();
                        async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok(AccessToken::new("tok", Duration::from_secs(300)))
                        }
                    })
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().secret(), "tok");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let fails = Arc::new(AtomicUsize::new(0));
        let got = cache
            .get(TokenRequest::for_audience("c"), || {
                let fails = fails.clone();
                async move {
                    if fails.fetch_add(1, Ordering::SeqCst) < 2 {
                        Err(ProviderError::new(ProviderErrorKind::Network, "down"))
                    } else {
                        Ok(AccessToken::new("late", Duration::from_secs(300)))
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(got.secret(), "late");
        let rejected = cache
            .get(TokenRequest::for_audience("d"), || async {
                Err(ProviderError::new(
                    ProviderErrorKind::Rejected,
                    "invalid_client",
                ))
            })
            .await
            .unwrap_err();
        assert_eq!(rejected.kind(), ProviderErrorKind::Rejected);
    }

    #[tokio::test]
    async fn waiters_share_one_failing_fetch() {
        // An identity-provider outage: every attempt fails. 50 concurrent
        // callers wait for one fetch and its retries, and all get its failure.
        let cache = Arc::new(ProviderCache::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(TokenRequest::for_audience("down"), || {
                        let calls = calls.clone();
                        async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Err::<AccessToken, _>(ProviderError::new(
                                ProviderErrorKind::Unavailable,
                                "503",
                            ))
                        }
                    })
                    .await
            }));
        }
        for t in tasks {
            let e = t.await.unwrap().unwrap_err();
            assert_eq!(e.kind(), ProviderErrorKind::Unavailable);
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            ATTEMPTS as usize,
            "one fetch's attempts"
        );
        // One fetch (3 attempts of 50 ms, backoffs of 200 and 400 ms), not
        // 50 in a row (about 37 s): a bound far from both.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        // The next call, after the outage, fetches anew.
        let got = cache
            .get(TokenRequest::for_audience("down"), || async {
                Ok(AccessToken::new("back", Duration::from_secs(300)))
            })
            .await
            .unwrap();
        assert_eq!(got.secret(), "back");
    }

    #[tokio::test]
    async fn a_leader_that_goes_away_hands_over() {
        let cache = Arc::new(ProviderCache::default());
        let request = TokenRequest::for_audience("x");
        let leader = {
            let (cache, request) = (cache.clone(), request.clone());
            tokio::spawn(async move {
                cache
                    .get(request, || async {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        Ok(AccessToken::new("never", Duration::from_secs(300)))
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let waiter = {
            let (cache, request) = (cache.clone(), request.clone());
            tokio::spawn(async move {
                cache
                    .get(request, || async {
                        Ok(AccessToken::new("second", Duration::from_secs(300)))
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        leader.abort();
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("the waiter takes over")
            .unwrap()
            .unwrap();
        assert_eq!(got.secret(), "second");
    }
}
