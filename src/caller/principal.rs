//! A verified token's identity: [`Principal`], [`PrincipalId`] and the
//! [`Actor`]s of a delegation chain.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::Confirmation;
use crate::permission::{PermissionCheck, Permissions};

/// Who a principal is: its issuer and its subject.
///
/// A `sub` is unique only within its issuer (RFC 7519 §4.1.2): two issuers
/// trusted by one slot may both have an `alice`. Store resource owners as a
/// `PrincipalId` and compare with it, never with a bare subject.
///
/// ```
/// use tower_mandate::PrincipalId;
///
/// let a = PrincipalId::new("https://id.a.example", "alice");
/// let b = PrincipalId::new("https://id.b.example", "alice");
/// assert_ne!(a, b);
/// assert_eq!(a.subject(), b.subject());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrincipalId {
    issuer: Arc<str>,
    subject: Arc<str>,
}

impl PrincipalId {
    /// The identity `subject` of `issuer`.
    pub fn new(issuer: impl Into<Arc<str>>, subject: impl Into<Arc<str>>) -> Self {
        PrincipalId {
            issuer: issuer.into(),
            subject: subject.into(),
        }
    }

    /// The issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The subject, unique within its issuer.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    fn is(&self, issuer: &str, subject: &str) -> bool {
        *self.issuer == *issuer && *self.subject == *subject
    }
}

/// One verified token's identity: subject, issuer, permissions and claims.
///
/// Cheap to clone. `Debug` never prints the token.
#[derive(Clone)]
pub struct Principal(Arc<Inner>);

struct Inner {
    subject: String,
    issuer: Arc<str>,
    permissions: Permissions,
    /// The roles read through the issuer's permission mapping.
    roles: Vec<Box<str>>,
    /// The verified payload as JSON text, when it is not the token's own
    /// (a verified token's is decoded from `token` when asked for: not
    /// kept twice in every cached principal).
    payload: Option<Box<str>>,
    claims: OnceLock<Map<String, Value>>,
    token: Box<str>,
    /// `jti` and `iat`, read while verifying (without parsing the claims
    /// again for the revocation store or the audit trail).
    jti: Option<Box<str>>,
    issued_at: Option<u64>,
    expires_at: u64,
    /// The last second at which the verifier still accepts the token:
    /// `exp` plus the issuer's leeway.
    accepted_until: u64,
    not_before: Option<u64>,
    actors: Vec<Actor>,
    key_id: u64,
    /// `cnf`: what the token is bound to.
    confirmation: Option<Confirmation>,
}

pub(crate) struct PrincipalParts {
    pub(crate) subject: String,
    pub(crate) issuer: Arc<str>,
    pub(crate) permissions: Permissions,
    pub(crate) roles: Vec<Box<str>>,
    pub(crate) payload: Option<Box<str>>,
    pub(crate) token: Box<str>,
    pub(crate) jti: Option<Box<str>>,
    pub(crate) issued_at: Option<u64>,
    pub(crate) expires_at: u64,
    pub(crate) accepted_until: u64,
    pub(crate) not_before: Option<u64>,
    pub(crate) actors: Vec<Actor>,
    pub(crate) key_id: u64,
    pub(crate) confirmation: Option<Confirmation>,
}

impl Principal {
    pub(crate) fn from_parts(p: PrincipalParts) -> Self {
        Principal(Arc::new(Inner {
            subject: p.subject,
            issuer: p.issuer,
            permissions: p.permissions,
            roles: p.roles,
            payload: p.payload,
            claims: OnceLock::new(),
            token: p.token,
            jti: p.jti,
            issued_at: p.issued_at,
            expires_at: p.expires_at,
            accepted_until: p.accepted_until,
            not_before: p.not_before,
            actors: p.actors,
            key_id: p.key_id,
            confirmation: p.confirmation,
        }))
    }

    /// This principal with `extra` permissions too (the application's
    /// enrichment); everything else the same.
    pub(crate) fn with_permissions_added(&self, extra: Vec<String>) -> Principal {
        let inner = &self.0;
        let permissions = inner
            .permissions
            .iter()
            .map(str::to_owned)
            .chain(extra)
            .collect();
        Principal(Arc::new(Inner {
            subject: inner.subject.clone(),
            issuer: inner.issuer.clone(),
            permissions,
            roles: inner.roles.clone(),
            payload: inner.payload.clone(),
            claims: inner.claims.clone(),
            token: inner.token.clone(),
            jti: inner.jti.clone(),
            issued_at: inner.issued_at,
            expires_at: inner.expires_at,
            accepted_until: inner.accepted_until,
            not_before: inner.not_before,
            actors: inner.actors.clone(),
            key_id: inner.key_id,
            confirmation: inner.confirmation.clone(),
        }))
    }

    /// The `sub` claim.
    pub fn subject(&self) -> &str {
        &self.0.subject
    }

    /// The `iss` claim (one of the trusted issuers).
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    /// Who this is: issuer and subject together, the only identity to
    /// compare (a `sub` is unique only within its issuer).
    pub fn id(&self) -> PrincipalId {
        PrincipalId::new(self.0.issuer.clone(), self.0.subject.as_str())
    }

    /// Whether this principal is `id` (same issuer, same subject).
    pub fn is(&self, id: &PrincipalId) -> bool {
        id.is(&self.0.issuer, &self.0.subject)
    }

    /// The permissions granted by the token's claims and roles.
    pub fn permissions(&self) -> &Permissions {
        &self.0.permissions
    }

    /// The roles the token carries, read from the role claims of its
    /// issuer's [`PermissionMapping`](crate::permission::PermissionMapping) (default:
    /// `roles`), whether or not the mapping grants them permissions.
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.0.roles.iter().map(|r| &**r)
    }

    /// Whether this principal satisfies `P`.
    #[inline]
    pub fn holds<P: PermissionCheck>(&self) -> bool {
        P::holds(&self.0.permissions)
    }

    /// The verified claims, deserialised into the application's own type.
    ///
    /// # Errors
    ///
    /// When the claims do not fit `T`.
    ///
    /// ```
    /// # use tower_mandate::Principal;
    /// #[derive(serde::Deserialize)]
    /// struct MyClaims { tenant: String }
    /// # fn f(p: &Principal) -> Result<(), serde_json::Error> {
    /// let tenant = p.claims::<MyClaims>()?.tenant;
    /// # Ok(()) }
    /// ```
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        match &self.0.payload {
            Some(text) => serde_json::from_str(text),
            None => serde_json::from_slice(&self.decoded_payload()),
        }
    }

    /// The JSON text of the token's payload segment (a verified token is a
    /// compact JWS: the segment decodes).
    fn decoded_payload(&self) -> Vec<u8> {
        use base64::Engine as _;
        let segment = self.0.token.split('.').nth(1).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(segment)
            .unwrap_or_default()
    }

    /// One verified claim.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims_map().get(name)
    }

    /// All verified claims.
    pub fn claims_map(&self) -> &Map<String, Value> {
        self.0
            .claims
            .get_or_init(|| self.claims().unwrap_or_default())
    }

    /// The `jti` claim, when present.
    pub fn token_id(&self) -> Option<&str> {
        match &self.0.payload {
            None => self.0.jti.as_deref(),
            Some(_) => self.claim("jti").and_then(Value::as_str),
        }
    }

    /// `iat` (unix seconds), when present.
    pub(crate) fn issued_at(&self) -> Option<u64> {
        match &self.0.payload {
            None => self.0.issued_at,
            Some(_) => self.claim("iat").and_then(Value::as_f64).map(|v| v as u64),
        }
    }

    /// When the token expires (`exp`).
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0.expires_at)
    }

    pub(crate) fn exp(&self) -> u64 {
        self.0.expires_at
    }

    /// `exp` plus the issuer's leeway: until when the token is accepted.
    pub(crate) fn accepted_until(&self) -> u64 {
        self.0.accepted_until
    }

    pub(crate) fn nbf(&self) -> Option<u64> {
        self.0.not_before
    }

    pub(crate) fn key_id(&self) -> u64 {
        self.0.key_id
    }

    /// The actor chain of a delegated token (RFC 8693 §4.1): the current
    /// actor first, then earlier ones. Empty for a token without `act`.
    pub fn actors(&self) -> &[Actor] {
        &self.0.actors
    }

    /// What the token is bound to (its `cnf` claim, RFC 7800): a DPoP key
    /// or a client certificate. The layer admits a bound token only with
    /// its proof, so on a request this is what the caller proved.
    pub fn confirmation(&self) -> Option<&Confirmation> {
        self.0.confirmation.as_ref()
    }

    /// The raw token, as received.
    ///
    /// # Security
    ///
    /// This is a bearer credential: never log it, and send it only to the
    /// destinations it was meant for.
    pub fn token(&self) -> &str {
        &self.0.token
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("subject", &self.0.subject)
            .field("issuer", &self.0.issuer)
            .field("permissions", &self.0.permissions)
            .field("actors", &self.0.actors)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// One entry of a delegation chain (an `act` claim, RFC 8693 §4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    subject: String,
    issuer: Option<String>,
}

impl Actor {
    pub(crate) fn new(subject: String, issuer: Option<String>) -> Self {
        Actor { subject, issuer }
    }

    /// The actor's `sub`.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The actor's `iss`, when the `act` claim names one.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The actor's identity: its `iss`, or the issuer of the token that
    /// names it (`token_issuer`) when the `act` claim gives none.
    pub fn id(&self, token_issuer: &str) -> PrincipalId {
        PrincipalId::new(
            self.issuer.as_deref().unwrap_or(token_issuer),
            self.subject.as_str(),
        )
    }
}
