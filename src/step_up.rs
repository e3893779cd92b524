//! Step-up authentication (RFC 9470): a route that needs a stronger or a
//! more recent login than the user's token shows answers 401
//! `insufficient_user_authentication` with the `acr_values` and `max_age`
//! to log in with, and the client sends the user back to the
//! authorization server with them.
//!
//! A requirement is a type naming the acceptable `acr` values (in order of
//! preference) and the maximum age, in seconds, of the `auth_time` claim:
//!
//! ```
//! use tower_mandate::step_up::AuthenticationLevel;
//!
//! /// Multi-factor, within the last five minutes.
//! struct RecentMfa;
//! impl AuthenticationLevel for RecentMfa {
//!     const ACR_VALUES: &'static [&'static str] = &["urn:example:mfa", "phrh"];
//!     const MAX_AGE: Option<u64> = Some(300);
//! }
//! // axum: `async fn pay(_: RequireAuthentication<RecentMfa>, caller: Require<Pay>)`;
//! // tonic: `request.require_authentication::<RecentMfa>()?`.
//! ```
//!
//! | the user's token | answer |
//! |---|---|
//! | `acr` one of `ACR_VALUES` (any when empty), `auth_time` within `MAX_AGE` (any when `None`) | allowed |
//! | `acr` missing or another value | 401 `Bearer error="insufficient_user_authentication", acr_values="…"` |
//! | `auth_time` missing or older than `MAX_AGE` | 401 `…, max_age=…` |
//! | no user token (a service alone) | 401 `insufficient_user_authentication` |
//!
//! gRPC answers UNAUTHENTICATED with the same challenge in the
//! `www-authenticate` metadata. Each check is an audit event (`permission`
//! `step-up`).

use std::borrow::Cow;

use serde_json::Value;

use crate::clock::unix_now;
use crate::{AuthError, Caller};

/// An authentication requirement (RFC 9470 §3): see the [module docs](self).
pub trait AuthenticationLevel: Send + Sync + 'static {
    /// The acceptable `acr` values, in order of preference; empty: any.
    const ACR_VALUES: &'static [&'static str];
    /// The longest time since the user authenticated (`auth_time`), in
    /// seconds; `None`: any.
    const MAX_AGE: Option<u64>;
}

impl Caller {
    /// Require that the user authenticated as `A` asks (RFC 9470).
    ///
    /// # Errors
    ///
    /// 401 [`InsufficientUserAuthentication`](crate::AuthErrorKind::InsufficientUserAuthentication)
    /// with `A`'s `acr_values` and `max_age`.
    pub fn require_authentication<A: AuthenticationLevel>(&self) -> Result<(), AuthError> {
        self.require_authentication_with(A::ACR_VALUES, A::MAX_AGE)
    }

    /// [`require_authentication`](Self::require_authentication) with
    /// values known at run time (a per-tenant policy, say).
    ///
    /// # Errors
    ///
    /// As [`require_authentication`](Self::require_authentication).
    pub fn require_authentication_with(
        &self,
        acr_values: &[&str],
        max_age: Option<u64>,
    ) -> Result<(), AuthError> {
        let verdict = match self.user() {
            None => Err("no user authentication"),
            Some(user) => {
                let acr = user.claim("acr").and_then(Value::as_str);
                let auth_time = user.claim("auth_time").and_then(Value::as_f64);
                if !acr_values.is_empty() && !acr.is_some_and(|a| acr_values.contains(&a)) {
                    Err("authentication too weak")
                } else {
                    match (max_age, auth_time.filter(|t| t.is_finite() && *t >= 0.0)) {
                        (None, _) => Ok(()),
                        (Some(_), None) => Err("authentication time unknown"),
                        (Some(age), Some(t)) if (t as u64).saturating_add(age) < unix_now() => {
                            Err("authentication too old")
                        }
                        (Some(_), Some(_)) => Ok(()),
                    }
                }
            }
        };
        match verdict {
            Ok(()) => {
                self.audit(
                    true,
                    "authentication strong and recent enough",
                    "step-up",
                    None,
                );
                Ok(())
            }
            Err(reason) => {
                self.audit(false, reason, "step-up", None);
                Err(AuthError::insufficient_user_authentication(
                    reason,
                    Cow::Owned(acr_values.join(" ")),
                    max_age,
                ))
            }
        }
    }
}
