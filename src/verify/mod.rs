//! Token verification: per-issuer rules ([`Issuer`](crate::Issuer)) grouped into a
//! per-slot [`Verifier`](crate::Verifier).
//!
//! What a token must pass, in order (RFC 7519, RFC 8725, RFC 9068):
//!
//! 1. at most `max_token_len` bytes (default 8 KiB), checked before decoding;
//! 2. three unpadded base64url segments; a header with a known `alg` and no
//!    `crit`, `jku`, `jwk`, `x5u`, `x5c`, `zip` or nested `cty`;
//! 3. claims: a JSON object without duplicate members, whose `iss` is one of
//!    the trusted issuers (exact match) — that issuer's rules and keys apply;
//! 4. the `alg` is on the issuer's allow-list; the key is chosen by `kid`
//!    (without `kid`, only when exactly one key fits) and must allow the `alg`;
//! 5. the signature;
//! 6. `exp` (required), `nbf` and `iat` as numbers within the leeway; `aud`
//!    holds an accepted audience; `sub` is a string; `typ` and required
//!    claims when configured; registered claims of the wrong JSON type refuse
//!    the token; the `act` chain is no deeper than allowed;
//! 7. a `typ` header, when present, is `JWT` or `at+jwt` unless the issuer
//!    [requires another](crate::Issuer::require_typ): tokens of other kinds
//!    (`secevent+jwt`, `logout+jwt`, `dpop+jwt`, `txntoken+jwt`, …) are
//!    refused (RFC 8725 §3.11-3.12).
//!
//! ```
//! use tower_mandate::{Issuer, Verifier};
//! use tower_mandate::testing::TestIssuer;
//!
//! let idp = TestIssuer::rs256("https://id.example");
//! let verifier = Verifier::new([
//!     Issuer::new("https://id.example", "image-store").with_keys(idp.key_set()),
//! ])?;
//! let token = idp.token("alice").audience("image-store").scope("images:read").sign();
//! let principal = verifier.verify(&token)?;
//! assert_eq!(principal.subject(), "alice");
//! assert!(verifier.verify("not.a.token").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cache;
mod future;
pub(crate) mod issuer;
mod jws;
mod presets;
pub(crate) mod rules;
pub(crate) mod verifier;

pub use cache::{CacheStats, DEFAULT_CACHE_CAPACITY};
#[cfg(feature = "jwks")]
pub(crate) use future::Pending;
pub use future::Verify;
pub use issuer::{DEFAULT_LEEWAY, DEFAULT_MAX_ACTOR_DEPTH, DEFAULT_MAX_TOKEN_LEN};
#[cfg(feature = "config")]
pub(crate) use rules::TENANT as TENANT_PLACEHOLDER;
pub use verifier::VerifierBuilder;

use crate::AuthError;
#[cfg(all(test, feature = "test-util"))]
use crate::{Issuer, Verifier};

/// Why verification stopped before a result.
///
/// The `Fetch` variant carries the parsed token (a few hundred bytes) by
/// value: it is the rare path, and moving it costs less than allocating it.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Step {
    Refused(AuthError),
    /// The key may arrive with a fetch: the token, parsed, waits for it.
    #[cfg(feature = "jwks")]
    Fetch(Pending),
}

impl From<AuthError> for Step {
    fn from(e: AuthError) -> Self {
        Step::Refused(e)
    }
}

#[cfg(all(test, feature = "test-util"))]
mod tests;
