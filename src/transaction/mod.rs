//! Transaction Tokens (draft-ietf-oauth-transaction-tokens-10): a short-lived,
//! signed, immutable token that names the user, the purpose (`scope`) and
//! the context of one transaction inside a trust domain. The edge exchanges
//! the external access token for one; every internal hop forwards it
//! unmodified (the `Txn-Token` header) beside its own workload identity.
//!
//! # Receiving
//!
//! [`TransactionSlot`] is a third slot of the layer
//! ([`MandateBuilder::transaction`](crate::server::MandateBuilder::transaction)):
//! exactly one `Txn-Token` header (two are a 400; `Authorization` is never
//! read for it, §12), verified as draft §9 and §12.2 ask:
//!
//! | check | here |
//! |---|---|
//! | `typ` | `txntoken+jwt` (§9.1), nothing else |
//! | signature | the Transaction Token Service's keys ([`TransactionSlot::with_keys`], [`with_jwks`](TransactionSlot::with_jwks)); asymmetric algorithms |
//! | `aud` | the configured trust domain (§9.2: never accepted outside it) |
//! | `iss` | optional in the draft: absent, unless [`with_issuer`](TransactionSlot::with_issuer) names the one the service sets |
//! | `exp`, `iat` | required; the slot's leeway (default 60 s) |
//! | `txn`, `sub`, `scope`, `req_wl` | required (§9.2); `tctx` and `rctx` read as objects when present |
//!
//! # Deciding
//!
//! The transaction is a principal of the request like the user and the
//! calling service: [`Require<P>`](crate::Require) holds when P is within
//! the transaction's `scope` **and** the calling service (its own token)
//! holds P — the intersection the crate makes for every principal.
//! Ownership checks use the transaction's `sub` when no user token came
//! (its [`PrincipalId`](crate::PrincipalId) is the trust domain and the
//! `sub`). Handlers read the transaction with
//! [`Caller::transaction`](crate::Caller::transaction); audit events carry
//! `txn`.
//!
//! # Propagating
//!
//! `PropagateLayer` and `PropagateMiddleware` forward the request's
//! `Txn-Token` unmodified (§12.2) to every listed destination, beside the
//! destination's service token; [`Destination::drop_transaction`](crate::propagate::Destination::drop_transaction)
//! keeps it from one.

use std::fmt;
use std::time::Duration;

#[cfg(feature = "oauth")]
mod exchange;
#[cfg(all(feature = "axum", feature = "_aws-lc"))]
mod service;

use serde_json::{Map, Value};

pub use crate::caller::Transaction;
use crate::keys::{Algorithm, KeySet};
use crate::token::TokenSource;
use crate::{ConfigError, Issuer, Verifier};
#[cfg(feature = "oauth")]
pub use exchange::TransactionExchange;
#[cfg(all(feature = "axum", feature = "_aws-lc"))]
pub use service::{TokenService, TokenServiceBuilder};

/// The draft revision this module follows.
pub const DRAFT: &str = "draft-ietf-oauth-transaction-tokens-10";

/// The `typ` of a Transaction Token (draft §9.1).
pub const TYP: &str = "txntoken+jwt";

/// `requested_token_type` and `issued_token_type` of a Transaction Token
/// (draft §11.1, §11.4).
pub const TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:txn_token";

/// The request header that carries a Transaction Token (draft §12.1).
pub const HEADER: http::HeaderName = http::HeaderName::from_static("txn-token");

/// The claims a Transaction Token must have besides `aud`, `exp` and the
/// signature (draft §9.2).
const REQUIRED: [&str; 5] = ["iat", "txn", "sub", "scope", "req_wl"];

/// The layer's Transaction Token slot: see the [module docs](self).
///
/// ```
/// use tower_mandate::transaction::TransactionSlot;
/// use tower_mandate::{MandateLayer, Slot, Verifier, Issuer};
/// # let tts = tower_mandate::testing::TestIssuer::es256("https://tts.images.example");
/// # let services = tower_mandate::testing::TestIssuer::es256("https://mesh.example");
/// let layer = MandateLayer::builder()
///     .service(Slot::required(Verifier::new([
///         Issuer::new("https://mesh.example", "image-store").with_keys(services.key_set()),
///     ])?))
///     .transaction(TransactionSlot::required("images.example").with_keys(tts.key_set()))
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), tower_mandate::ConfigError>(())
/// ```
#[must_use]
pub struct TransactionSlot {
    required: bool,
    trust_domain: String,
    issuer: Option<String>,
    keys: Keys,
    algorithms: Option<Vec<Algorithm>>,
    leeway: Option<Duration>,
    source: Option<TokenSource>,
}

enum Keys {
    None,
    Static(KeySet),
    #[cfg(feature = "jwks")]
    Jwks(crate::keys::JwksSource),
}

impl TransactionSlot {
    fn new(required: bool, trust_domain: impl Into<String>) -> Self {
        TransactionSlot {
            required,
            trust_domain: trust_domain.into(),
            issuer: None,
            keys: Keys::None,
            algorithms: None,
            leeway: None,
            source: None,
        }
    }

    /// Every request must carry a valid Transaction Token for `trust_domain`.
    pub fn required(trust_domain: impl Into<String>) -> Self {
        Self::new(true, trust_domain)
    }

    /// A Transaction Token is verified when present.
    pub fn optional(trust_domain: impl Into<String>) -> Self {
        Self::new(false, trust_domain)
    }

    /// The Transaction Token Service's keys, fixed.
    pub fn with_keys(mut self, keys: KeySet) -> Self {
        self.keys = Keys::Static(keys);
        self
    }

    /// The Transaction Token Service's keys, from its JWKS endpoint.
    #[cfg(feature = "jwks")]
    pub fn with_jwks(mut self, source: crate::keys::JwksSource) -> Self {
        self.keys = Keys::Jwks(source);
        self
    }

    /// The `iss` the service sets; without it, tokens must have no `iss`.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The signature algorithms taken (default: every asymmetric one).
    pub fn with_algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Clock leeway for `exp` and `iat` (default 60 s).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = Some(leeway);
        self
    }

    /// Read the token from `source` instead of the `Txn-Token` header.
    pub fn with_source(mut self, source: TokenSource) -> Self {
        self.source = Some(source);
        self
    }

    /// The trust domain (`aud`).
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// What the layer's slot is made of: the verifier, whether a token is
    /// required, and where it is read.
    pub(crate) fn into_parts(self) -> Result<(Verifier, bool, TokenSource), ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidRule {
            issuer: self.trust_domain.clone(),
            reason: reason.to_owned(),
        };
        if self.trust_domain.is_empty() {
            return Err(invalid("a Transaction Token slot needs its trust domain"));
        }
        let mut issuer = match &self.issuer {
            Some(iss) => Issuer::new(iss.clone(), self.trust_domain.clone()),
            None => {
                let mut issuer = Issuer::new(
                    format!("urn:txn-token-service:{}", self.trust_domain),
                    self.trust_domain.clone(),
                );
                issuer.without_iss = true;
                issuer
            }
        }
        .require_typ(TYP)
        .with_claims_check(check_types)
        // The transaction's permissions are its `scope`, nothing else.
        .with_permissions(
            crate::permission::PermissionMapping::new()
                .with_permission_claims(["scope"])
                .with_role_claims(Vec::<&str>::new()),
        );
        for claim in REQUIRED {
            issuer = issuer.require_claim(claim);
        }
        issuer = match self.keys {
            Keys::None => return Err(invalid("a Transaction Token slot needs the service's keys")),
            Keys::Static(keys) => issuer.with_keys(keys),
            #[cfg(feature = "jwks")]
            Keys::Jwks(source) => issuer.with_jwks(source),
        };
        if let Some(algs) = self.algorithms {
            issuer = issuer.with_algorithms(algs);
        }
        if let Some(leeway) = self.leeway {
            issuer = issuer.with_leeway(leeway);
        }
        let verifier = Verifier::new([issuer])?;
        let source = self
            .source
            .unwrap_or_else(|| TokenSource::raw_header(HEADER));
        Ok((verifier, self.required, source))
    }
}

/// The members' JSON types (draft §9.2): `txn`, `scope` and `req_wl`
/// strings (`txn` and `req_wl` not empty), `tctx` and `rctx` objects.
fn check_types(claims: &Map<String, Value>) -> Result<(), &'static str> {
    for name in ["txn", "req_wl"] {
        if claims
            .get(name)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err("transaction claim of wrong type");
        }
    }
    if !claims.get("scope").is_some_and(Value::is_string) {
        return Err("transaction claim of wrong type");
    }
    for name in ["tctx", "rctx"] {
        if claims.get(name).is_some_and(|v| !v.is_object()) {
            return Err("transaction claim of wrong type");
        }
    }
    Ok(())
}

impl fmt::Debug for TransactionSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionSlot")
            .field("required", &self.required)
            .field("trust_domain", &self.trust_domain)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}
