//! Token verification: per-issuer rules ([`Issuer`]) grouped into a
//! per-slot [`Verifier`].
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
//!    [requires another](Issuer::require_typ): tokens of other kinds
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
mod jws;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::caller::{Actor, PrincipalParts};
use crate::keys::{AlgSet, Algorithm, KeyMiss, KeySet, VerifyingKey};
#[cfg(feature = "jwks")]
use crate::keys::{JwksSource, Lookup};
use crate::{AuthError, ConfigError, PermissionMapping, Principal};

use cache::TokenCache;
pub use cache::{CacheStats, DEFAULT_CACHE_CAPACITY};

/// Where an issuer's keys come from.
#[derive(Clone, Debug)]
enum Keys {
    Static(KeySet),
    #[cfg(feature = "jwks")]
    Jwks(JwksSource),
}

impl Keys {
    fn contains_key_id(&self, id: u64) -> bool {
        match self {
            Keys::Static(keys) => keys.contains_key_id(id),
            #[cfg(feature = "jwks")]
            Keys::Jwks(source) => source.contains_key_id(id),
        }
    }
}

/// Why verification stopped before a result.
pub(crate) enum Step {
    Refused(AuthError),
    /// The key may arrive with a fetch: wait for it, then verify again.
    #[cfg(feature = "jwks")]
    Fetch(JwksSource, Option<String>),
}

impl From<AuthError> for Step {
    fn from(e: AuthError) -> Self {
        Step::Refused(e)
    }
}

/// Default maximum token length: 8 KiB.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;
/// Default clock leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Default maximum depth of a nested `act` chain.
pub const DEFAULT_MAX_ACTOR_DEPTH: usize = 5;
/// Numeric dates above this (9999-12-31T23:59:59Z) are refused as nonsense.
const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// The rules for tokens of one trusted issuer.
///
/// Secure by default: the audience is required, the algorithm allow-list is
/// the asymmetric set, `exp` is required, leeway is 60 s.
#[derive(Clone)]
pub struct Issuer {
    name: Arc<str>,
    audiences: Vec<String>,
    algorithms: AlgSet,
    leeway: u64,
    typ: Option<String>,
    required_claims: Vec<String>,
    keys: Keys,
    permissions: PermissionMapping,
    max_actor_depth: usize,
    check_may_act: bool,
}

impl Issuer {
    /// Trust tokens whose `iss` is exactly `issuer` and whose `aud` holds `audience`.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Issuer {
            name: Arc::from(issuer.into()),
            audiences: vec![audience.into()],
            algorithms: AlgSet::of(Algorithm::ASYMMETRIC),
            leeway: DEFAULT_LEEWAY.as_secs(),
            typ: None,
            required_claims: Vec::new(),
            keys: Keys::Static(KeySet::new()),
            permissions: PermissionMapping::default(),
            max_actor_depth: DEFAULT_MAX_ACTOR_DEPTH,
            check_may_act: false,
        }
    }

    /// The issuer identifier.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Also accept `audience`.
    pub fn add_audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Replace the algorithm allow-list. HMAC algorithms are accepted only
    /// when the key set holds a secret long enough for them.
    pub fn with_algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = AlgSet::of(algorithms);
        self
    }

    /// Clock leeway for `exp`, `nbf` and `iat` (whole seconds).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.as_secs();
        self
    }

    /// Require the header `typ` (e.g. `at+jwt`, RFC 9068 §4). Compared
    /// case-insensitively, with or without the `application/` prefix.
    /// Without it, a token without `typ` or typed `JWT` or `at+jwt` is
    /// accepted, and one typed as any other kind is refused.
    pub fn require_typ(mut self, typ: &str) -> Self {
        self.typ = Some(normalize_typ(typ));
        self
    }

    /// Require a claim to be present (e.g. `jti`).
    pub fn require_claim(mut self, claim: impl Into<String>) -> Self {
        self.required_claims.push(claim.into());
        self
    }

    /// The keys that sign this issuer's tokens, fixed.
    pub fn with_keys(mut self, keys: KeySet) -> Self {
        self.keys = Keys::Static(keys);
        self
    }

    /// Keys fetched from a JWKS endpoint or OIDC discovery, refreshed as
    /// they rotate (feature `jwks`). The key must come from this source: a
    /// token is never checked against another issuer's keys (RFC 8725 §3.8).
    #[cfg(feature = "jwks")]
    pub fn with_jwks(mut self, source: JwksSource) -> Self {
        self.keys = Keys::Jwks(source);
        self
    }

    /// How claims and roles become permissions.
    pub fn with_permissions(mut self, mapping: PermissionMapping) -> Self {
        self.permissions = mapping;
        self
    }

    /// Refuse tokens whose `act` chain is deeper than `depth` (default 5).
    pub fn with_max_actor_depth(mut self, depth: usize) -> Self {
        self.max_actor_depth = depth;
        self
    }

    /// Refuse a delegated token (one with `act`) unless its `may_act` claim
    /// (RFC 8693 §4.4) names the current actor: the same `sub` of the same
    /// issuer, where an `act` or `may_act` without `iss` means the token's
    /// own issuer.
    pub fn require_may_act(mut self) -> Self {
        self.check_may_act = true;
        self
    }

    pub(crate) fn audiences(&self) -> &[String] {
        &self.audiences
    }

    pub(crate) fn typ(&self) -> Option<&str> {
        self.typ.as_deref()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let rule = |reason: &str| ConfigError::InvalidRule {
            issuer: self.name.to_string(),
            reason: reason.to_owned(),
        };
        if self.name.is_empty() {
            return Err(rule("the issuer is empty"));
        }
        // Identities are written `<issuer>#<subject>` (Cedar ids, audit):
        // an issuer identifier has no fragment (RFC 8414 §2).
        if self.name.contains('#') {
            return Err(rule("an issuer identifier has no fragment ('#')"));
        }
        if self.audiences.iter().any(String::is_empty) {
            return Err(rule("an audience is empty"));
        }
        if self.algorithms.is_empty() {
            return Err(rule("no algorithm is allowed"));
        }
        match &self.keys {
            Keys::Static(keys) => {
                if keys.is_empty() {
                    return Err(rule("no keys are configured"));
                }
                let usable = keys.algorithms().intersect(self.algorithms);
                if usable.is_empty() {
                    return Err(rule("no key can verify any allowed algorithm"));
                }
                for alg in self.algorithms.iter().filter(|a| a.is_hmac()) {
                    if !usable.contains(alg) {
                        return Err(rule(&format!(
                            "{alg} is allowed but no secret of sufficient length is configured"
                        )));
                    }
                }
            }
            #[cfg(feature = "jwks")]
            Keys::Jwks(_) => {
                if let Some(alg) = self.algorithms.iter().find(|a| a.is_hmac()) {
                    return Err(rule(&format!(
                        "{alg} needs a shared secret, which a JWKS endpoint must not publish"
                    )));
                }
            }
        }
        Ok(())
    }

    /// The top-level claims this issuer needs as JSON values.
    fn captured_claims(&self) -> impl Iterator<Item = &str> {
        ["aud", "act", "may_act"]
            .into_iter()
            .chain(self.permissions.top_level_claims())
            .chain(self.required_claims.iter().map(String::as_str))
    }

    /// Check the claims of a token whose signature verified.
    fn check_claims(
        &self,
        header: &jws::Header<'_>,
        claims: &jws::Claims<'_>,
        now: u64,
    ) -> Result<Checked, AuthError> {
        let invalid = AuthError::invalid_token;
        match (&self.typ, &header.typ) {
            (Some(want), Some(typ)) if normalize_typ(typ) == *want => {}
            (Some(_), _) => return Err(invalid("wrong token type")),
            // RFC 8725 §3.11-3.12: a token typed as another kind of JWT (a
            // security event, a logout token, a DPoP proof, a transaction
            // token, …) is never an access token here, signed by a trusted
            // issuer or not.
            (None, Some(typ)) if !is_access_token_typ(typ) => {
                return Err(invalid("token of another kind"));
            }
            (None, _) => {}
        }
        let exp = numeric_date(claims.exp)?.ok_or_else(|| invalid("missing exp"))?;
        if now >= (exp.floor() as u64).saturating_add(self.leeway) {
            return Err(invalid("token expired"));
        }
        let nbf = numeric_date(claims.nbf)?.map(|v| v.ceil() as u64);
        if let Some(nbf) = nbf
            && nbf > now.saturating_add(self.leeway)
        {
            return Err(invalid("token not yet valid"));
        }
        if let Some(iat) = numeric_date(claims.iat)?
            && iat.ceil() as u64 > now.saturating_add(self.leeway)
        {
            return Err(invalid("token issued in the future"));
        }
        let captured = &claims.captured;
        match captured.get("aud") {
            None => return Err(invalid("missing aud")),
            Some(Value::String(aud)) => {
                if !self.audiences.iter().any(|a| a == aud) {
                    return Err(invalid("audience mismatch"));
                }
            }
            Some(Value::Array(auds)) => {
                let mut found = false;
                for aud in auds {
                    let aud = aud.as_str().ok_or_else(|| invalid("claim of wrong type"))?;
                    found |= self.audiences.iter().any(|a| a == aud);
                }
                if !found {
                    return Err(invalid("audience mismatch"));
                }
            }
            Some(_) => return Err(invalid("claim of wrong type")),
        }
        let subject = match &claims.sub {
            Some(s) if !s.is_empty() => s.clone().into_owned(),
            _ => return Err(invalid("missing sub")),
        };
        for name in &self.required_claims {
            let present = match name.as_str() {
                "iss" => claims.iss.is_some(),
                "sub" => claims.sub.is_some(),
                "exp" => claims.exp.is_some(),
                "nbf" => claims.nbf.is_some(),
                "iat" => claims.iat.is_some(),
                other => captured.get(other).is_some_and(|v| !v.is_null()),
            };
            if !present {
                return Err(invalid("missing required claim"));
            }
            if matches!(name.as_str(), "jti" | "client_id" | "azp")
                && captured.get(name.as_str()).is_some_and(|v| !v.is_string())
            {
                return Err(invalid("claim of wrong type"));
            }
        }
        let actors = actor_chain(captured, self.max_actor_depth)?;
        if self.check_may_act
            && let Some(actor) = actors.first()
            && !may_act_allows(captured.get("may_act"), actor, &self.name)
        {
            return Err(invalid("actor not allowed by may_act"));
        }
        let (permissions, roles) = self
            .permissions
            .extract(captured)
            .map_err(|_| invalid("claim of wrong type"))?;
        let exp = exp.floor() as u64;
        Ok(Checked {
            subject,
            exp,
            accepted_until: exp.saturating_add(self.leeway),
            nbf,
            actors,
            permissions,
            roles,
        })
    }
}

struct Checked {
    subject: String,
    exp: u64,
    accepted_until: u64,
    nbf: Option<u64>,
    actors: Vec<Actor>,
    permissions: crate::Permissions,
    roles: Vec<Box<str>>,
}

/// Whether an explicit `typ` names a plain JWT or an access token
/// (`JWT`, `at+jwt`, RFC 9068 §2.1), compared case-insensitively with or
/// without `application/`. Every other kind needs [`Issuer::require_typ`].
fn is_access_token_typ(typ: &str) -> bool {
    let typ = typ
        .get(..12)
        .filter(|p| p.eq_ignore_ascii_case("application/"))
        .map_or(typ, |_| &typ[12..]);
    typ.eq_ignore_ascii_case("jwt") || typ.eq_ignore_ascii_case("at+jwt")
}

fn normalize_typ(typ: &str) -> String {
    let lower = typ.to_ascii_lowercase();
    match lower.strip_prefix("application/") {
        Some(rest) => rest.to_owned(),
        None => lower,
    }
}

/// A NumericDate (RFC 7519 §2): a JSON number (its type was checked when
/// parsing), integer or not, finite, between 0 and year 9999.
fn numeric_date(value: Option<f64>) -> Result<Option<f64>, AuthError> {
    match value {
        None => Ok(None),
        Some(v) if v.is_finite() && (0.0..=MAX_NUMERIC_DATE).contains(&v) => Ok(Some(v)),
        Some(_) => Err(AuthError::invalid_token("date claim out of range")),
    }
}

/// Read a nested `act` claim (RFC 8693 §4.1): current actor first.
fn actor_chain(claims: &Map<String, Value>, max_depth: usize) -> Result<Vec<Actor>, AuthError> {
    let mut actors = Vec::new();
    let mut current = claims.get("act");
    while let Some(value) = current {
        let act = value
            .as_object()
            .ok_or_else(|| AuthError::invalid_token("claim of wrong type"))?;
        if actors.len() == max_depth {
            return Err(AuthError::invalid_token("actor chain too deep"));
        }
        let sub = match act.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(AuthError::invalid_token("claim of wrong type")),
        };
        // An issuer identifier has no fragment: identities are written
        // `<issuer>#<subject>`.
        let iss = match act.get("iss") {
            None => None,
            Some(Value::String(s)) if !s.is_empty() && !s.contains('#') => Some(s.clone()),
            Some(_) => return Err(AuthError::invalid_token("claim of wrong type")),
        };
        actors.push(Actor::new(sub, iss));
        current = act.get("act");
    }
    Ok(actors)
}

/// Whether `may_act` names `actor`: the same subject of the same issuer,
/// either side's issuer being the token's own when it names none.
fn may_act_allows(may_act: Option<&Value>, actor: &Actor, token_issuer: &str) -> bool {
    let Some(Value::Object(may)) = may_act else {
        return false;
    };
    let Some(sub) = may.get("sub").and_then(Value::as_str) else {
        return false;
    };
    let iss = match may.get("iss") {
        None => token_issuer,
        Some(Value::String(iss)) => iss.as_str(),
        Some(_) => return false,
    };
    actor.id(token_issuer) == crate::PrincipalId::new(iss, sub)
}

use crate::clock::unix_now;

/// Verifies the tokens of one slot against one or more trusted issuers.
///
/// Built once (keys parsed, rules checked), then shared: cloning is cheap.
/// Tokens that verified are kept in a bounded cache (on by default, see
/// [`Verifier::with_cache`]); a cached token is still checked for `exp`,
/// `nbf` and whether its key is still in the key set on every use.
#[derive(Clone)]
pub struct Verifier(Arc<VerifierInner>);

struct VerifierInner {
    issuers: Vec<Issuer>,
    /// Top-level claims any issuer needs as JSON values.
    captured: Captured,
    max_token_len: usize,
    cache: Option<TokenCache>,
}

/// The top-level claim names to keep as JSON values, with a bit mask of
/// their lengths so that most other names are passed over without a compare.
#[derive(Clone)]
struct Captured {
    names: Vec<String>,
    lengths: u64,
}

impl Captured {
    fn new(issuers: &[Issuer]) -> Self {
        let mut names: Vec<String> = issuers
            .iter()
            .flat_map(Issuer::captured_claims)
            .map(str::to_owned)
            .collect();
        names.sort_unstable();
        names.dedup();
        let lengths = names
            .iter()
            .fold(0u64, |m, n| m | (1u64 << n.len().min(63)));
        Captured { names, lengths }
    }

    #[inline]
    fn contains(&self, name: &str) -> bool {
        self.lengths & (1u64 << name.len().min(63)) != 0 && self.names.iter().any(|n| n == name)
    }
}

impl Verifier {
    /// A verifier trusting these issuers.
    ///
    /// # Errors
    ///
    /// When no issuer is given, an issuer is listed twice, or an issuer's
    /// rules are unusable (no keys, no algorithm, an HMAC algorithm without
    /// a long enough secret, an empty audience).
    pub fn new(issuers: impl IntoIterator<Item = Issuer>) -> Result<Self, ConfigError> {
        let issuers: Vec<Issuer> = issuers.into_iter().collect();
        if issuers.is_empty() {
            return Err(ConfigError::InvalidRule {
                issuer: String::new(),
                reason: "no trusted issuer".into(),
            });
        }
        for (i, issuer) in issuers.iter().enumerate() {
            issuer.validate()?;
            if issuers[..i].iter().any(|o| o.name == issuer.name) {
                return Err(ConfigError::InvalidRule {
                    issuer: issuer.name.to_string(),
                    reason: "listed twice".into(),
                });
            }
        }
        Ok(Verifier(Arc::new(VerifierInner {
            captured: Captured::new(&issuers),
            issuers,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            cache: Some(TokenCache::new(DEFAULT_CACHE_CAPACITY)),
        })))
    }

    fn rebuild(self, max_token_len: usize, cache: Option<usize>) -> Self {
        Verifier(Arc::new(VerifierInner {
            issuers: self.0.issuers.clone(),
            captured: self.0.captured.clone(),
            max_token_len,
            cache: cache.map(TokenCache::new),
        }))
    }

    fn cache_capacity(&self) -> Option<usize> {
        self.0.cache.as_ref().map(TokenCache::capacity)
    }

    /// Refuse tokens longer than `len` bytes before decoding them (default 8 KiB).
    pub fn with_max_token_len(self, len: usize) -> Self {
        let cache = self.cache_capacity();
        self.rebuild(len, cache)
    }

    /// Keep up to `capacity` verified tokens (default 10 000; memory is
    /// about one principal, with its token, per entry).
    pub fn with_cache(self, capacity: usize) -> Self {
        let len = self.0.max_token_len;
        self.rebuild(len, Some(capacity))
    }

    /// Verify every token in full, every time.
    pub fn without_cache(self) -> Self {
        let len = self.0.max_token_len;
        self.rebuild(len, None)
    }

    /// Counters of the verified-token cache (zero when it is off).
    pub fn cache_stats(&self) -> CacheStats {
        self.0
            .cache
            .as_ref()
            .map(TokenCache::stats)
            .unwrap_or_default()
    }

    pub(crate) fn issuers(&self) -> &[Issuer] {
        &self.0.issuers
    }

    /// Verify a compact JWS with the keys at hand and return its principal.
    /// Never waits: a key that would need a fetch counts as unknown (use
    /// [`Verifier::verify_async`] to fetch).
    ///
    /// # Errors
    ///
    /// An [`AuthError`] of kind `InvalidToken` naming the first rule the
    /// token broke, or `KeysUnavailable` when the key source is failing.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        match self.verify_step(token, unix_now(), false) {
            Ok(p) => Ok(p),
            Err(Step::Refused(e)) => Err(e),
            #[cfg(feature = "jwks")]
            Err(Step::Fetch(..)) => Err(AuthError::keys_unavailable("keys unavailable", 1)),
        }
    }

    /// Verify, fetching keys first when the token's key is not known yet
    /// (bounded by the key source's wait).
    ///
    /// # Errors
    ///
    /// As [`Verifier::verify`].
    pub async fn verify_async(&self, token: &str) -> Result<Principal, AuthError> {
        match self.verify_step(token, unix_now(), true) {
            Ok(p) => Ok(p),
            Err(Step::Refused(e)) => Err(e),
            #[cfg(feature = "jwks")]
            Err(Step::Fetch(source, kid)) => {
                source.fetch_and_wait().await;
                self.after_fetch(token, &source, kid.as_deref())
            }
        }
    }

    #[cfg(feature = "jwks")]
    pub(crate) fn after_fetch(
        &self,
        token: &str,
        source: &JwksSource,
        kid: Option<&str>,
    ) -> Result<Principal, AuthError> {
        match self.verify_step(token, unix_now(), false) {
            Ok(p) => Ok(p),
            Err(Step::Refused(e)) => {
                if let Some(kid) = kid
                    && e.reason() == UNKNOWN_KEY
                {
                    source.remember_unknown(kid);
                }
                Err(e)
            }
            Err(Step::Fetch(..)) => Err(AuthError::keys_unavailable("keys unavailable", 1)),
        }
    }

    pub(crate) fn verify_step(
        &self,
        token: &str,
        now: u64,
        fetch: bool,
    ) -> Result<Principal, Step> {
        let invalid = AuthError::invalid_token;
        if token.len() > self.0.max_token_len {
            return Err(invalid("token too large").into());
        }
        if let Some(cache) = &self.0.cache {
            if let Some((principal, index)) = cache.get(token) {
                let issuer = &self.0.issuers[index];
                let leeway = issuer.leeway;
                if now < principal.exp().saturating_add(leeway)
                    && principal
                        .nbf()
                        .is_none_or(|nbf| nbf <= now.saturating_add(leeway))
                    && issuer.keys.contains_key_id(principal.key_id())
                {
                    cache.hit();
                    return Ok(principal);
                }
                cache.remove(token);
            }
            cache.miss();
        }
        let (principal, index) = self.verify_full(token, now, fetch)?;
        if let Some(cache) = &self.0.cache {
            cache.insert(&principal, index);
        }
        Ok(principal)
    }

    fn verify_full(&self, token: &str, now: u64, fetch: bool) -> Result<(Principal, usize), Step> {
        let invalid = AuthError::invalid_token;
        let compact = jws::split(token)?;
        let header_json = jws::header_json(compact.header)?;
        let header = jws::header(&header_json)?;
        let json = jws::payload(compact.payload)?;
        let captured = &self.0.captured;
        let claims = jws::claims(&json, &|name| captured.contains(name))?;
        // RFC 8725 §3.8: the issuer picks the rules and keys, before the signature.
        let iss = claims
            .iss
            .as_deref()
            .ok_or_else(|| invalid("missing iss"))?;
        let (index, issuer) = self
            .0
            .issuers
            .iter()
            .enumerate()
            .find(|(_, i)| *i.name == *iss)
            .ok_or_else(|| invalid("untrusted issuer"))?;
        if !issuer.algorithms.contains(header.alg) {
            return Err(invalid("algorithm not allowed").into());
        }
        let key = select_key(issuer, &header, fetch)?;
        if !key.verify(
            header.alg,
            compact.signing_input.as_bytes(),
            compact.signature,
        ) {
            return Err(invalid("bad signature").into());
        }
        let checked = issuer.check_claims(&header, &claims, now)?;
        drop(claims);
        let principal = Principal::from_parts(PrincipalParts {
            subject: checked.subject,
            issuer: issuer.name.clone(),
            permissions: checked.permissions,
            roles: checked.roles,
            payload: json,
            token: token.into(),
            expires_at: checked.exp,
            accepted_until: checked.accepted_until,
            not_before: checked.nbf,
            actors: checked.actors,
            key_id: key.id,
        });
        Ok((principal, index))
    }
}

const UNKNOWN_KEY: &str = "unknown key";

fn key_miss(miss: KeyMiss) -> AuthError {
    AuthError::invalid_token(match miss {
        KeyMiss::UnknownKid => UNKNOWN_KEY,
        KeyMiss::WrongAlgorithm => "key does not allow algorithm",
        KeyMiss::Ambiguous => "no unique key for token without kid",
    })
}

#[cfg_attr(not(feature = "jwks"), allow(unused_variables))]
fn select_key(
    issuer: &Issuer,
    header: &jws::Header<'_>,
    fetch: bool,
) -> Result<Arc<VerifyingKey>, Step> {
    let kid = header.kid.as_deref();
    match &issuer.keys {
        Keys::Static(keys) => keys
            .select(kid, header.alg)
            .cloned()
            .map_err(|miss| key_miss(miss).into()),
        #[cfg(feature = "jwks")]
        Keys::Jwks(source) => match source.lookup(kid, header.alg, fetch) {
            Lookup::Found(key) => Ok(key),
            Lookup::Invalid(miss) => Err(key_miss(miss).into()),
            Lookup::Fetch => Err(Step::Fetch(source.clone(), kid.map(str::to_owned))),
            Lookup::Unknown {
                failing: true,
                retry_after,
            } => Err(AuthError::keys_unavailable("keys unavailable", retry_after).into()),
            Lookup::Unknown { failing: false, .. } => Err(key_miss(KeyMiss::UnknownKid).into()),
        },
    }
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("name", &self.name)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field("leeway", &self.leeway)
            .field("typ", &self.typ)
            .field("required_claims", &self.required_claims)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("issuers", &self.0.issuers)
            .field("max_token_len", &self.0.max_token_len)
            .field("cache", &self.0.cache.as_ref().map(TokenCache::stats))
            .finish()
    }
}

#[cfg(all(test, feature = "test-util"))]
mod tests;
