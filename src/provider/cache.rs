//! The providers' shared part: a bounded cache of the tokens obtained, one
//! fetch in flight per request (its outcome, token or failure, handed to
//! every caller that waited), and retries with backoff.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{AccessToken, ProviderError, TokenRequest};
use crate::bounded::Bounded;
use crate::metrics;

const MAX_CACHED: usize = 10_000;
pub(super) const ATTEMPTS: u32 = 3;

/// What the callers waiting for one fetch get: set once, when it ends.
type Outcome = Option<Result<AccessToken, ProviderError>>;

/// Cache, single flight and retries, shared by the providers.
pub(crate) struct ProviderCache {
    /// Tokens obtained, by request; a full cache evicts the coldest.
    tokens: Bounded<TokenRequest, AccessToken>,
    /// The fetch in flight for a request, if any: its outcome is handed to
    /// every caller that joined it. An entry lives as long as its fetch, so
    /// this map is bounded by the fetches running at once.
    flights: Mutex<HashMap<TokenRequest, watch::Receiver<Outcome>>>,
    /// The provider's kind, the metrics label.
    kind: &'static str,
}

impl Default for ProviderCache {
    fn default() -> Self {
        ProviderCache::new("custom")
    }
}

/// Ends a flight: stores the token, hands the outcome to the waiters.
/// Dropped without an outcome (the leading caller went away), it ends the
/// flight with none, and the waiters start over: one of them leads the next.
struct Leader<'c> {
    cache: &'c ProviderCache,
    request: &'c TokenRequest,
    tx: watch::Sender<Outcome>,
}

impl Leader<'_> {
    fn land(self, outcome: &Result<AccessToken, ProviderError>) {
        if let Ok(token) = outcome {
            // Stored before the flight ends: a caller that finds no flight
            // finds the token.
            self.cache
                .tokens
                .insert(self.request.clone(), token.clone());
        }
        self.cache.flights().remove(self.request);
        self.tx.send_replace(Some(outcome.clone()));
        // Drop sees an outcome and leaves the flights alone.
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        if self.tx.borrow().is_none() {
            self.cache.flights().remove(self.request);
        }
    }
}

enum Turn<'c> {
    Cached(AccessToken),
    Lead(Leader<'c>),
    Join(watch::Receiver<Outcome>),
}

impl ProviderCache {
    /// The cache of a provider of `kind` (`client_credentials`, …).
    pub(crate) fn new(kind: &'static str) -> Self {
        ProviderCache {
            tokens: Bounded::new(MAX_CACHED),
            flights: Mutex::default(),
            kind,
        }
    }

    /// A cached token for `request` that needs no refresh yet (counted as a
    /// hit when there is one; a miss goes on to [`get`](Self::get)).
    pub(crate) fn fresh(&self, request: &TokenRequest) -> Option<AccessToken> {
        let token = self.lookup(request);
        if token.is_some() {
            metrics::token_cache("hit");
        }
        token
    }

    fn lookup(&self, request: &TokenRequest) -> Option<AccessToken> {
        self.tokens
            .get(request)
            .filter(|t| Instant::now() < t.refresh_at())
    }

    fn flights(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<TokenRequest, watch::Receiver<Outcome>>> {
        self.flights.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A fresh cached token, the flight to join, or the lead of a new one.
    fn turn<'c>(&'c self, request: &'c TokenRequest) -> Turn<'c> {
        if let Some(token) = self.fresh(request) {
            return Turn::Cached(token);
        }
        let mut flights = self.flights();
        if let Some(rx) = flights.get(request) {
            metrics::token_cache("wait");
            return Turn::Join(rx.clone());
        }
        // A flight may have landed since the look-up above.
        if let Some(token) = self.fresh(request) {
            return Turn::Cached(token);
        }
        metrics::token_cache("miss");
        let (tx, rx) = watch::channel(None);
        flights.insert(request.clone(), rx);
        Turn::Lead(Leader {
            cache: self,
            request,
            tx,
        })
    }

    /// The cached token, or one fetched by exactly one of the concurrent
    /// callers asking for it; the others wait for that fetch (retries
    /// included) and get its outcome, a failure as much as a token.
    pub(crate) async fn get<F, Fut>(
        &self,
        request: TokenRequest,
        fetch: F,
    ) -> Result<AccessToken, ProviderError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<AccessToken, ProviderError>>,
    {
        loop {
            match self.turn(&request) {
                Turn::Cached(token) => return Ok(token),
                Turn::Lead(leader) => {
                    let outcome = with_retries(&fetch, self.kind).await;
                    leader.land(&outcome);
                    return outcome;
                }
                Turn::Join(mut rx) => {
                    if let Ok(outcome) = rx.wait_for(Option::is_some).await
                        && let Some(outcome) = outcome.clone()
                    {
                        return outcome;
                    }
                    // The leader went away without an outcome: start over.
                }
            }
        }
    }
}

/// `fetch`, retried on transient failures (network, 5xx): up to three
/// attempts in all, exponential backoff from 200 ms with jitter (so that
/// replicas that failed together do not retry together).
async fn with_retries<F, Fut>(fetch: &F, kind: &'static str) -> Result<AccessToken, ProviderError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<AccessToken, ProviderError>>,
{
    let fetch = || {
        let attempt = fetch();
        async move {
            let result = attempt.await;
            metrics::token_request(kind, result.is_ok());
            result
        }
    };
    use backon::Retryable as _;
    let backoff = backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(2))
        .with_max_times(ATTEMPTS as usize - 1)
        .with_jitter();
    fetch
        .retry(backoff)
        .sleep(tokio::time::sleep)
        .when(ProviderError::is_transient)
        .notify(|e, delay| {
            tracing::warn!(target: "tower_mandate::provider", error = %e, ?delay, "retrying token request");
        })
        .await
}
