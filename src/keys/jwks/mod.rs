//! Keys fetched from a JWKS endpoint or found through OIDC discovery.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

mod builder;
mod fetch;
mod flight;

pub use builder::JwksBuilder;
#[cfg(test)]
use fetch::max_age;
use flight::InFlight;
pub(crate) use flight::KeyWait;

use super::{KeyMiss, KeySet, VerifyingKey};
use crate::ConfigError;
use crate::bounded::Bounded;
use crate::keys::Algorithm;

const NEGATIVE_CACHE_CAP: usize = 1024;

/// Where the keys come from.
#[derive(Debug, Clone)]
enum Location {
    Jwks(String),
    Discovery { issuer: String },
}

#[derive(Debug, Clone)]
struct Settings {
    cooldown: Duration,
    min_ttl: Duration,
    max_ttl: Duration,
    default_ttl: Duration,
    max_staleness: Duration,
    max_wait: Duration,
    connect_timeout: Duration,
    timeout: Duration,
    max_size: usize,
    allow_http: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            cooldown: Duration::from_secs(10),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            default_ttl: Duration::from_secs(600),
            max_staleness: Duration::from_secs(12 * 3600),
            max_wait: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            max_size: 256 * 1024,
            allow_http: false,
        }
    }
}

/// One snapshot of what the source knows; replaced whole, read lock-free.
struct State {
    keys: KeySet,
    refresh_at: Option<Instant>,
    expires_at: Option<Instant>,
    etag: Option<String>,
    jwks_uri: Option<String>,
    /// The last fetch failed.
    failing: bool,
    /// Fetches that failed in a row (0 after a good one): sets the backoff.
    failures: u32,
    last_attempt: Option<Instant>,
}

/// The first retry after a failed fetch; each further failure doubles it,
/// up to the cooldown.
const FIRST_RETRY: Duration = Duration::from_millis(250);

/// The longest wait between fetches while the source has no usable key.
const UNUSABLE_RETRY: Duration = Duration::from_millis(900);

/// How long to wait after the last of `failures` failed fetches in a row:
/// 250 ms, doubled for each further failure, at most the cooldown.
fn backoff(settings: &Settings, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY
        .saturating_mul(1 << doublings)
        .min(settings.cooldown)
}

use crate::clock::later as after;

/// Counters of a [`JwksSource`], for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JwksStats {
    /// HTTP fetches of the JWKS document started (including discovery-driven ones).
    pub fetches: u64,
    /// Fetches that failed (network, status, size, parse, no usable key).
    pub failures: u64,
    /// Fetches answered `304 Not Modified`.
    pub not_modified: u64,
    /// Lookups that found the key.
    pub key_hits: u64,
    /// Lookups whose `kid` was not in the set.
    pub key_misses: u64,
    /// Refetches caused by an unknown `kid`.
    pub refetches_on_miss: u64,
}

#[derive(Default)]
struct Counters {
    fetches: AtomicU64,
    failures: AtomicU64,
    not_modified: AtomicU64,
    key_hits: AtomicU64,
    key_misses: AtomicU64,
    refetches_on_miss: AtomicU64,
}

struct Shared {
    location: Location,
    settings: Settings,
    /// Built on first fetch, so that setting options costs nothing and a
    /// TLS set-up failure is a failed fetch, not a panic.
    client: std::sync::OnceLock<Result<reqwest::Client, String>>,
    state: ArcSwap<State>,
    flight: Mutex<Option<InFlight>>,
    last_miss_fetch: Mutex<Option<Instant>>,
    /// Kids a refetch did not bring, and when.
    negative: Bounded<String, Instant>,
    counters: Counters,
    /// The metrics label: the issuer (discovery) or the JWKS URL.
    label: Box<str>,
    /// When the source was made: the epoch of the two fields below.
    born: Instant,
    /// Milliseconds from `born` to the last good fetch, plus one (0: none yet).
    last_good_ms: AtomicU64,
    /// Milliseconds from `born` to the last age report (metrics only).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    age_reported_ms: AtomicU64,
}

impl Shared {
    /// A good fetch (keys, or not modified) landed at `now`.
    pub(super) fn fetched_well(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.born).as_millis() as u64;
        self.last_good_ms
            .store(ms.saturating_add(1), Ordering::Relaxed);
    }

    /// Time since the last good fetch, if there was one.
    pub(super) fn age(&self, now: Instant) -> Option<Duration> {
        match self.last_good_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(now.saturating_duration_since(self.born + Duration::from_millis(ms - 1))),
        }
    }

    /// Report `mandate_jwks_age_seconds`: after every fetch, and on look-ups
    /// at most once a second.
    pub(super) fn report_age(&self, now: Instant, force: bool) {
        #[cfg(feature = "metrics")]
        {
            let ms = now.saturating_duration_since(self.born).as_millis() as u64;
            let last = self.age_reported_ms.load(Ordering::Relaxed);
            if !force && ms.saturating_sub(last) < 1000 {
                return;
            }
            self.age_reported_ms.store(ms, Ordering::Relaxed);
            if let Some(age) = self.age(now) {
                crate::metrics::jwks_age(&self.label, age);
            }
        }
        #[cfg(not(feature = "metrics"))]
        let _ = (now, force);
    }
}

/// Keys from a JWKS URL or OIDC discovery (feature `jwks`), for
/// [`Issuer::with_jwks`](crate::Issuer::with_jwks).
///
///
/// What a [`JwksSource`] guarantees:
///
/// - **Startup never fails** because the identity provider is down: keys are
///   fetched on first need (or with [`JwksSource::prefetch`]); a request that
///   needs them waits at most [`with_max_wait`](JwksBuilder::with_max_wait).
/// - **Lock-free reads**: the request path loads the current key set from an
///   `ArcSwap`; no lock is ever held across a fetch.
/// - **Refresh ahead** of expiry, from `Cache-Control: max-age` clamped to
///   configured bounds, with `ETag` / `If-None-Match`.
/// - **Unknown `kid`**: one refetch shared by every concurrent request
///   (single flight), at most once per cooldown; kids that stayed unknown are
///   remembered for a cooldown (bounded negative cache). A flood of random
///   kids costs at most one fetch per cooldown.
/// - **Stale-if-error**: while fetches fail, the last good keys keep serving
///   for up to [`with_max_staleness`](JwksBuilder::with_max_staleness).
///   Meanwhile a token whose key is unknown is answered 503 with
///   `Retry-After`, not 401.
/// - **Strict, bounded fetches**: connect and read timeouts, a response size
///   limit, `https` only unless [`insecure_allow_http`](JwksBuilder::insecure_allow_http);
///   keys that break the rules (short RSA, `use: enc`, secrets) are skipped
///   with a warning.
///
/// ```no_run
/// use std::time::Duration;
/// use tower_mandate::{keys::JwksSource, Issuer, Verifier};
///
/// let keys = JwksSource::discovery("https://id.example.com/realms/main")
///     .with_cooldown(Duration::from_secs(10))
///     .build()?;
/// let verifier = Verifier::new([
///     Issuer::new("https://id.example.com/realms/main", "image-store").with_jwks(keys),
/// ])?;
/// # Ok::<(), tower_mandate::ConfigError>(())
/// ```
///
/// Cheap to clone: clones share the keys, the HTTP client and the counters.
#[derive(Clone)]
pub struct JwksSource(Arc<Shared>);

/// What a lookup found.
pub(crate) enum Lookup {
    Found(Arc<VerifyingKey>),
    /// A key with that kid exists but may not verify the algorithm, or no
    /// unique key fits a token without kid.
    Invalid(KeyMiss),
    /// Unknown and no refetch allowed now: 401 when healthy, 503 when failing.
    Unknown {
        failing: bool,
        retry_after: u64,
    },
    /// A fetch may bring the key: wait for it, then look again.
    Fetch,
}

impl JwksSource {
    fn from_parts(location: Location, settings: Settings) -> Self {
        let label = match &location {
            Location::Jwks(url) => url.as_str().into(),
            Location::Discovery { issuer } => issuer.as_str().into(),
        };
        JwksSource(Arc::new(Shared {
            label,
            born: Instant::now(),
            last_good_ms: AtomicU64::new(0),
            age_reported_ms: AtomicU64::new(0),
            location,
            settings,
            client: std::sync::OnceLock::new(),
            state: ArcSwap::from_pointee(State {
                keys: KeySet::new(),
                refresh_at: None,
                expires_at: None,
                etag: None,
                jwks_uri: None,
                failing: false,
                failures: 0,
                last_attempt: None,
            }),
            flight: Mutex::new(None),
            last_miss_fetch: Mutex::new(None),
            negative: Bounded::new(NEGATIVE_CACHE_CAP),
            counters: Counters::default(),
        }))
    }

    /// Start fetching now, in the background (needs a Tokio runtime; without
    /// one, keys are fetched on first need).
    pub fn prefetch(&self) {
        if tokio::runtime::Handle::try_current().is_ok() {
            drop(self.start_fetch());
        }
    }

    /// Fetch now and wait for the result (at most the configured wait).
    ///
    /// # Errors
    ///
    /// When the fetch failed or did not finish in time.
    pub async fn refresh(&self) -> Result<(), ConfigError> {
        let _landed = self.fetch_and_wait().await;
        let state = self.0.state.load();
        if state.failing || state.keys.is_empty() {
            Err(ConfigError::InvalidJwks(
                "the key source could not be fetched".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// Whether usable keys are held now: fetched, and not older than
    /// [`with_max_staleness`](JwksBuilder::with_max_staleness) allows.
    /// Never waits; for readiness probes. Without usable keys it starts a
    /// fetch in the background (within the backoff), so that a service no
    /// traffic reaches until it is ready does become ready.
    pub fn is_ready(&self) -> bool {
        let now = Instant::now();
        self.0.report_age(now, false);
        let state = self.0.state.load();
        let usable = self.usable(&state, now);
        if !usable || state.refresh_at.is_some_and(|r| now >= r) {
            self.refresh_in_background(&state, now);
        }
        usable
    }

    /// Resolves once usable keys are held, fetching them (and retrying
    /// every 250 ms, within the backoff) until then. Awaiting it is
    /// optional: requests that come first wait for keys by themselves.
    pub async fn ready(&self) {
        while !self.is_ready() {
            let _landed = self.fetch_and_wait().await;
            if !self.is_ready() {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }

    /// The time since the last good fetch (`None` before the first).
    pub fn age(&self) -> Option<Duration> {
        self.0.age(Instant::now())
    }

    /// The counters.
    pub fn stats(&self) -> JwksStats {
        let c = &self.0.counters;
        JwksStats {
            fetches: c.fetches.load(Ordering::Relaxed),
            failures: c.failures.load(Ordering::Relaxed),
            not_modified: c.not_modified.load(Ordering::Relaxed),
            key_hits: c.key_hits.load(Ordering::Relaxed),
            key_misses: c.key_misses.load(Ordering::Relaxed),
            refetches_on_miss: c.refetches_on_miss.load(Ordering::Relaxed),
        }
    }

    /// The kids currently held.
    pub fn kids(&self) -> Vec<String> {
        self.0.state.load().keys.kids().map(str::to_owned).collect()
    }

    /// Whether a token verified with key `id` may still be answered from
    /// the verified-token cache: the key is still in the set, and the set is
    /// not staler than [`with_max_staleness`](Self::with_max_staleness)
    /// allows. Starts the refresh ahead of expiry, as a look-up would.
    pub(crate) fn contains_key_id(&self, id: u64) -> bool {
        let now = Instant::now();
        self.0.report_age(now, false);
        let state = self.0.state.load();
        if !self.usable(&state, now) {
            return false;
        }
        if state.refresh_at.is_some_and(|r| now >= r) {
            self.refresh_in_background(&state, now);
        }
        state.keys.contains_key_id(id)
    }

    fn usable(&self, state: &State, now: Instant) -> bool {
        !state.keys.is_empty()
            && state.expires_at.is_some_and(|e| {
                e.checked_add(self.0.settings.max_staleness)
                    .is_none_or(|limit| now <= limit)
            })
    }

    fn backoff(&self, failures: u32) -> Duration {
        backoff(&self.0.settings, failures)
    }

    /// Whether the backoff after a failed fetch still runs. While no key
    /// is usable every request that needs one fails anyway, so the wait is
    /// at most [`UNUSABLE_RETRY`]: keys that appear after a long outage are
    /// used within a second.
    fn backing_off(&self, state: &State, now: Instant) -> bool {
        let mut wait = self.backoff(state.failures);
        if !self.usable(state, now) {
            wait = wait.min(UNUSABLE_RETRY);
        }
        state.failing
            && state
                .last_attempt
                .is_some_and(|a| now.duration_since(a) < wait)
    }

    /// `Retry-After` in whole seconds: the backoff while failing, else the cooldown.
    fn retry_after(&self, state: &State) -> u64 {
        let wait = match (state.failing, self.usable(state, Instant::now())) {
            (true, false) => self.backoff(state.failures).min(UNUSABLE_RETRY),
            (true, true) => self.backoff(state.failures),
            (false, _) => self.0.settings.cooldown,
        };
        wait.as_secs_f64().ceil().max(1.0) as u64
    }

    /// Find the key for a token; never blocks.
    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm, fetch: bool) -> Lookup {
        let now = Instant::now();
        self.0.report_age(now, false);
        let state = self.0.state.load();
        let usable = self.usable(&state, now);
        if usable && state.refresh_at.is_some_and(|r| now >= r) {
            self.refresh_in_background(&state, now);
        }
        if usable {
            match state.keys.select(kid, alg) {
                Ok(key) => {
                    self.0.counters.key_hits.fetch_add(1, Ordering::Relaxed);
                    return Lookup::Found(key.clone());
                }
                Err(KeyMiss::UnknownKid) => {}
                Err(miss) => return Lookup::Invalid(miss),
            }
        }
        self.0.counters.key_misses.fetch_add(1, Ordering::Relaxed);
        let cooldown = self.0.settings.cooldown;
        if kid
            .and_then(|kid| self.0.negative.get(kid))
            .is_some_and(|at| now.duration_since(at) < cooldown)
        {
            return Lookup::Unknown {
                failing: state.failing || !usable,
                retry_after: self.retry_after(&state),
            };
        }
        if fetch && self.may_refetch(&state, usable, now) {
            tracing::info!(
                target: "tower_mandate::keys",
                kid = ?kid.map(shorten),
                have_keys = usable,
                "key not in the set: refetching"
            );
            // Start it now, so that every later lookup joins this flight.
            drop(self.start_fetch());
            Lookup::Fetch
        } else {
            Lookup::Unknown {
                failing: state.failing || !usable,
                retry_after: self.retry_after(&state),
            }
        }
    }

    /// One refetch per cooldown for misses; a fetch in flight is always
    /// joinable; without usable keys (first use, or too stale) only the
    /// failure backoff applies.
    fn may_refetch(&self, state: &State, usable: bool, now: Instant) -> bool {
        if tokio::runtime::Handle::try_current().is_err() {
            return false;
        }
        if self.in_flight() {
            return true;
        }
        let cooldown = self.0.settings.cooldown;
        // After a failure, back off (250 ms, doubling up to the cooldown)
        // whatever caused the fetch.
        if self.backing_off(state, now) {
            return false;
        }
        if !usable {
            return true;
        }
        let mut last = self.0.last_miss_fetch.lock().expect("cooldown lock");
        if last.is_some_and(|l| now.duration_since(l) < cooldown) {
            return false;
        }
        *last = Some(now);
        self.0
            .counters
            .refetches_on_miss
            .fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Remember that a refetch did not bring `kid`.
    pub(crate) fn remember_unknown(&self, kid: &str) {
        self.0.negative.insert(kid.to_owned(), Instant::now());
        tracing::info!(
            target: "tower_mandate::keys",
            kid = ?shorten(kid),
            "kid still unknown after refetch"
        );
    }

    fn refresh_in_background(&self, state: &State, now: Instant) {
        if tokio::runtime::Handle::try_current().is_err()
            || self.in_flight()
            || self.backing_off(state, now)
        {
            return;
        }
        drop(self.start_fetch());
    }
}

/// At most 64 bytes of an attacker-chosen `kid`, cut on a char boundary, for logs.
fn shorten(kid: &str) -> &str {
    let mut end = kid.len().min(64);
    while !kid.is_char_boundary(end) {
        end -= 1;
    }
    &kid[..end]
}

impl fmt::Debug for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.0.state.load();
        f.debug_struct("JwksSource")
            .field("location", &self.0.location)
            .field("keys", &state.keys)
            .field("failing", &state.failing)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control() {
        struct Case {
            name: &'static str,
            value: &'static str,
            want: Option<u64>,
        }
        let cases = [
            Case {
                name: "plain",
                value: "max-age=300",
                want: Some(300),
            },
            Case {
                name: "with others",
                value: "public, max-age=60, must-revalidate",
                want: Some(60),
            },
            Case {
                name: "case",
                value: "Max-Age=7",
                want: Some(7),
            },
            Case {
                name: "garbage",
                value: "max-age=abc",
                want: None,
            },
            Case {
                name: "none",
                value: "no-cache",
                want: None,
            },
        ];
        for c in cases {
            let mut h = reqwest::header::HeaderMap::new();
            h.insert(reqwest::header::CACHE_CONTROL, c.value.parse().unwrap());
            assert_eq!(max_age(&h).map(|d| d.as_secs()), c.want, "{}", c.name);
        }
    }

    #[test]
    fn kids_are_shortened_on_char_boundaries() {
        assert_eq!(shorten("abc"), "abc");
        assert_eq!(shorten(&"a".repeat(100)).len(), 64);
        let multi = format!("{}é", "a".repeat(63));
        assert_eq!(shorten(&multi), "a".repeat(63));
    }

    #[test]
    fn backoff_doubles_up_to_the_cooldown() {
        let settings = Settings::default();
        let ms = |n| backoff(&settings, n).as_millis();
        assert_eq!(
            [ms(1), ms(2), ms(3), ms(4), ms(5)],
            [250, 500, 1000, 2000, 4000]
        );
        assert_eq!(ms(6), 8000);
        assert_eq!(ms(7), 10_000, "capped at the cooldown");
        assert_eq!(ms(u32::MAX), 10_000);
    }

    #[test]
    fn huge_durations_saturate() {
        let now = Instant::now();
        assert!(after(now, Duration::MAX) > now);
        let source = JwksSource::builder("https://id.example/jwks")
            .with_cooldown(Duration::MAX)
            .with_max_staleness(Duration::MAX)
            .with_refresh_bounds(Duration::MAX, Duration::MAX, Duration::MAX)
            .with_max_wait(Duration::MAX)
            .build()
            .unwrap();
        let state = source.0.state.load();
        assert!(!source.usable(&state, now), "no keys yet");
        assert_eq!(source.retry_after(&state), u64::MAX);
        assert!(!source.contains_key_id(1));
    }

    #[tokio::test]
    async fn a_panicking_fetch_does_not_stay_in_flight() {
        let source = JwksSource::new("https://id.example/jwks").unwrap();
        let flight = source.start_flight(async { panic!("a fetch that panics") });
        // The waiters are told, and the next fetch can start.
        tokio::time::timeout(Duration::from_secs(5), flight.unwrap())
            .await
            .expect("the flight lands");
        assert!(!source.in_flight());
        // A new flight starts, and lands in its turn.
        let flight = source.start_flight(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
        });
        assert!(source.in_flight());
        flight.unwrap().await;
        assert!(!source.in_flight());
    }

    #[tokio::test]
    async fn a_flight_nobody_waits_for_still_lands() {
        // A background refresh: started, never awaited. Once its task is
        // over, the source is not in flight, and the next fetch starts.
        let source = JwksSource::new("https://id.example/jwks").unwrap();
        drop(source.start_flight(async {}));
        for _ in 0..100 {
            if !source.in_flight() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!source.in_flight(), "an unwatched flight stays in flight");
    }

    #[test]
    fn urls_are_checked() {
        assert!(JwksSource::new("not a url").is_err());
        assert!(JwksSource::new("ftp://x/jwks").is_err());
        assert!(JwksSource::new("https://id.example/jwks").is_ok());
        assert!(JwksSource::discover("https://id.example").is_ok());
    }
}
