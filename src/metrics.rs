//! Metrics through the `metrics` facade (feature `metrics`); the
//! application installs the exporter (Prometheus, StatsD, OpenTelemetry…).
//! Without the feature every function here is empty.
//!
//! Every label value is bounded: outcomes and results are fixed words,
//! slots are `user` or `service`, issuers and provider kinds come from the
//! configuration and permission names from the code — never from a token.
//! The README's "Running in production" has the table.

use crate::AuthErrorKind;

/// One request's answer as far as the crate decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Allowed,
    Unauthenticated,
    InvalidToken,
    BadRequest,
    Forbidden,
    Unavailable,
}

impl Outcome {
    pub(crate) fn of(kind: AuthErrorKind) -> Self {
        match kind {
            AuthErrorKind::MissingCredentials => Outcome::Unauthenticated,
            AuthErrorKind::InvalidToken | AuthErrorKind::InvalidDpopProof => Outcome::InvalidToken,
            AuthErrorKind::UseDpopNonce | AuthErrorKind::InsufficientUserAuthentication => {
                Outcome::Unauthenticated
            }
            AuthErrorKind::InvalidRequest => Outcome::BadRequest,
            AuthErrorKind::InsufficientScope => Outcome::Forbidden,
            AuthErrorKind::KeysUnavailable | AuthErrorKind::PolicyUnavailable => {
                Outcome::Unavailable
            }
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::InvalidToken => "invalid_token",
            Outcome::BadRequest => "bad_request",
            Outcome::Forbidden => "forbidden",
            Outcome::Unavailable => "unavailable",
        }
    }
}

/// How a token of a slot fared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verification {
    Valid,
    Cached,
    Invalid,
    KeysUnavailable,
}

/// The two metrics of every request, with static keys: the `counter!`
/// macro builds a key (and allocates its labels) on every call, which on
/// the cached path cost more than the rest of the layer's work.
#[cfg(feature = "metrics")]
mod hot {
    use metrics::{Key, Label, Level, Metadata};

    static META: Metadata<'static> =
        Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

    macro_rules! key {
        ($name:literal $(, $k:literal = $v:literal)*) => {{
            static LABELS: &[Label] = &[$(Label::from_static_parts($k, $v)),*];
            Key::from_static_parts($name, LABELS)
        }};
    }

    /// By `Outcome as usize`.
    pub(super) static REQUESTS: [Key; 6] = [
        key!("mandate_requests_total", "outcome" = "allowed"),
        key!("mandate_requests_total", "outcome" = "unauthenticated"),
        key!("mandate_requests_total", "outcome" = "invalid_token"),
        key!("mandate_requests_total", "outcome" = "bad_request"),
        key!("mandate_requests_total", "outcome" = "forbidden"),
        key!("mandate_requests_total", "outcome" = "unavailable"),
    ];

    macro_rules! results {
        ($slot:literal) => {
            [
                key!(
                    "mandate_verifications_total",
                    "slot" = $slot,
                    "result" = "valid"
                ),
                key!(
                    "mandate_verifications_total",
                    "slot" = $slot,
                    "result" = "cached"
                ),
                key!(
                    "mandate_verifications_total",
                    "slot" = $slot,
                    "result" = "invalid"
                ),
                key!(
                    "mandate_verifications_total",
                    "slot" = $slot,
                    "result" = "keys_unavailable"
                ),
            ]
        };
    }

    /// By slot (`user`, `service`, `none`), then `Verification as usize`.
    pub(super) static VERIFICATIONS: [[Key; 4]; 3] =
        [results!("user"), results!("service"), results!("none")];

    #[inline]
    pub(super) fn count(key: &'static Key) {
        metrics::with_recorder(|r| r.register_counter(key, &META)).increment(1);
    }
}

/// `mandate_requests_total{outcome}`.
#[inline]
pub(crate) fn request(outcome: Outcome) {
    #[cfg(feature = "metrics")]
    hot::count(&hot::REQUESTS[outcome as usize]);
    #[cfg(not(feature = "metrics"))]
    let _ = outcome;
}

/// `mandate_verifications_total{slot, result}`.
#[inline]
pub(crate) fn verification(slot: &'static str, result: Verification) {
    #[cfg(feature = "metrics")]
    {
        let slot = match slot {
            "user" => 0,
            "service" => 1,
            _ => 2,
        };
        hot::count(&hot::VERIFICATIONS[slot][result as usize]);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (slot, result);
}

/// A clock for `mandate_verify_duration_seconds{slot}`: started before a
/// signature check, recorded after it.
#[derive(Debug)]
pub(crate) struct VerifyTimer {
    #[cfg(feature = "metrics")]
    start: std::time::Instant,
}

impl VerifyTimer {
    #[inline]
    pub(crate) fn start() -> Self {
        VerifyTimer {
            #[cfg(feature = "metrics")]
            start: std::time::Instant::now(),
        }
    }

    #[inline]
    pub(crate) fn record(self, slot: &'static str) {
        #[cfg(feature = "metrics")]
        metrics::histogram!("mandate_verify_duration_seconds", "slot" => slot)
            .record(self.start.elapsed().as_secs_f64());
        #[cfg(not(feature = "metrics"))]
        let _ = slot;
    }
}

/// `mandate_jwks_fetches_total{issuer, outcome}` and, after a good fetch,
/// `mandate_jwks_keys{issuer}`.
#[cfg(feature = "jwks")]
pub(crate) fn jwks_fetch(issuer: &str, outcome: &'static str, keys: Option<usize>) {
    #[cfg(feature = "metrics")]
    {
        let issuer = issuer.to_owned();
        metrics::counter!("mandate_jwks_fetches_total", "issuer" => issuer.clone(), "outcome" => outcome)
            .increment(1);
        if let Some(keys) = keys {
            metrics::gauge!("mandate_jwks_keys", "issuer" => issuer).set(keys as f64);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (issuer, outcome, keys);
}

/// `mandate_jwks_age_seconds{issuer}`: time since the last good fetch.
#[cfg(feature = "jwks")]
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
pub(crate) fn jwks_age(issuer: &str, age: std::time::Duration) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("mandate_jwks_age_seconds", "issuer" => issuer.to_owned())
        .set(age.as_secs_f64());
    #[cfg(not(feature = "metrics"))]
    let _ = (issuer, age);
}

/// `mandate_guard_decisions_total{permission, decision}`.
#[inline]
pub(crate) fn guard(permission: impl FnOnce() -> std::borrow::Cow<'static, str>, allowed: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "mandate_guard_decisions_total",
        "permission" => permission(),
        "decision" => if allowed { "allow" } else { "deny" }
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (permission, allowed);
}

/// `mandate_token_requests_total{provider, outcome}`: one per request to a
/// token endpoint (or signing), retries included.
#[cfg_attr(not(any(feature = "oauth", feature = "_aws-lc")), allow(dead_code))]
pub(crate) fn token_request(provider: &'static str, ok: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "mandate_token_requests_total",
        "provider" => provider,
        "outcome" => if ok { "ok" } else { "error" }
    )
    .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = (provider, ok);
}

/// `mandate_token_cache_total{result}`: `hit`, `miss` (this caller fetches)
/// or `wait` (joins a fetch in flight).
#[cfg_attr(not(any(feature = "oauth", feature = "_aws-lc")), allow(dead_code))]
pub(crate) fn token_cache(result: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("mandate_token_cache_total", "result" => result).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = result;
}

/// `mandate_revocation_checks_total{outcome}`: `fresh`, `revoked`,
/// `replayed`, `unavailable` (refused) or `failed_open` (accepted).
pub(crate) fn revocation_check(outcome: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("mandate_revocation_checks_total", "outcome" => outcome).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = outcome;
}
