//! The rules for the tokens of one trusted issuer, and how its key is chosen.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use super::jws;
use super::rules::{ClaimRule, ClaimsCheck, TenantTemplate};
use crate::caller::Actor;
use crate::keys::{AlgSet, Algorithm, KeyMiss, KeySet, VerifyingKey};
#[cfg(feature = "jwks")]
use crate::keys::{JwksSource, Lookup};
use crate::{AuthError, ConfigError, permission::PermissionMapping};

/// Where an issuer's keys come from.
#[derive(Clone, Debug)]
pub(super) enum Keys {
    Static(KeySet),
    #[cfg(feature = "jwks")]
    Jwks(JwksSource),
}

impl Keys {
    /// Keys are held: a static set that is not empty, or a key source with
    /// usable keys.
    pub(super) fn is_ready(&self) -> bool {
        match self {
            Keys::Static(keys) => !keys.is_empty(),
            #[cfg(feature = "jwks")]
            Keys::Jwks(source) => source.is_ready(),
        }
    }

    /// Resolves once [`is_ready`](Self::is_ready) (at once for static keys).
    pub(super) async fn ready(&self) {
        #[cfg(feature = "jwks")]
        if let Keys::Jwks(source) = self {
            source.ready().await;
        }
    }

    pub(super) fn contains_key_id(&self, id: u64) -> bool {
        match self {
            Keys::Static(keys) => keys.contains_key_id(id),
            #[cfg(feature = "jwks")]
            Keys::Jwks(source) => source.contains_key_id(id),
        }
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
    pub(super) name: Arc<str>,
    pub(super) audiences: Vec<String>,
    pub(super) algorithms: AlgSet,
    pub(super) leeway: u64,
    pub(super) typ: Option<String>,
    pub(super) required_claims: Vec<String>,
    pub(super) keys: Keys,
    pub(super) permissions: PermissionMapping,
    pub(super) max_actor_depth: usize,
    pub(super) check_may_act: bool,
    /// Where the audience is read (`aud` when `None`).
    pub(super) audience_claim: Option<String>,
    pub(super) claim_rules: Vec<ClaimRule>,
    pub(super) claims_check: Option<ClaimsCheck>,
    /// Set for [`Issuer::for_tenants`]: `name` is then the template.
    pub(super) template: Option<TenantTemplate>,
    /// The tenants a template accepts (`None`: any).
    pub(super) tenants: Option<Vec<String>>,
    /// Entra ID of every tenant: only a client id (a GUID) identifies the
    /// application across tenants.
    pub(super) audiences_must_be_guids: bool,
    /// Tokens without `iss` are this issuer's (a Transaction Token Service,
    /// whose tokens are bound to a trust domain by `aud`, not by `iss`).
    pub(crate) without_iss: bool,
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
            audience_claim: None,
            claim_rules: Vec::new(),
            claims_check: None,
            template: None,
            tenants: None,
            audiences_must_be_guids: false,
            without_iss: false,
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

    /// The same rules for another issuer identifier.
    #[cfg(feature = "config")]
    pub(crate) fn with_name(mut self, name: &str) -> Self {
        self.name = Arc::from(name);
        self
    }

    /// Whether an `aud`-shaped value holds an accepted audience.
    fn audience_matches(&self, value: Option<&Value>) -> Result<bool, AuthError> {
        let invalid = || AuthError::invalid_token("claim of wrong type");
        Ok(match value {
            Some(Value::String(aud)) => self.audiences.iter().any(|a| a == aud),
            Some(Value::Array(auds)) => {
                let mut found = false;
                for aud in auds {
                    let aud = aud.as_str().ok_or_else(invalid)?;
                    found |= self.audiences.iter().any(|a| a == aud);
                }
                found
            }
            _ => return Err(invalid()),
        })
    }

    /// Whether a token could be trusted by both issuers: the same
    /// identifier, or a tenant template the other's identifier fits.
    pub(crate) fn may_overlap(&self, other: &Issuer) -> bool {
        match (&self.template, &other.template) {
            (None, None) | (Some(_), Some(_)) => self.name == other.name,
            (Some(t), None) => t.fits(&other.name),
            (None, Some(t)) => t.fits(&self.name),
        }
    }

    /// How this issuer's claims become permissions.
    #[cfg(feature = "config")]
    pub(crate) fn mapping(&self) -> &PermissionMapping {
        &self.permissions
    }

    pub(crate) fn audiences(&self) -> &[String] {
        &self.audiences
    }

    pub(crate) fn typ(&self) -> Option<&str> {
        self.typ.as_deref()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
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
        match (&self.template, self.name.contains('{')) {
            (None, true) => {
                return Err(rule(
                    "an issuer with a placeholder is made with Issuer::for_tenants, whose \
                     template holds exactly one {tid}",
                ));
            }
            (None, false) if self.tenants.is_some() => {
                return Err(rule(
                    "tenants apply to an Issuer::for_tenants template only",
                ));
            }
            _ => {}
        }
        if self.tenants.as_ref().is_some_and(Vec::is_empty) {
            return Err(rule("the tenant list is empty"));
        }
        if self.audiences_must_be_guids && !self.audiences.iter().all(|a| is_guid(a)) {
            return Err(rule(
                "every tenant may make an application with any application ID URI: \
                 accepting every tenant needs the client id (a GUID) as the audience",
            ));
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
    pub(super) fn captured_claims(&self) -> impl Iterator<Item = &str> {
        ["aud", "act", "may_act"]
            .into_iter()
            .chain(self.template.as_ref().map(|_| "tid"))
            .chain(self.audience_claim.as_deref())
            .chain(self.claim_rules.iter().map(|r| r.claim.as_str()))
            .chain(self.permissions.top_level_claims())
            .chain(self.required_claims.iter().map(String::as_str))
    }

    /// Whether this issuer trusts tokens whose `iss` is `iss`: the exact
    /// identifier, or the tenant template filled with the token's `tid`.
    pub(super) fn trusts(&self, iss: &str, captured: &Map<String, Value>) -> bool {
        match &self.template {
            None => *self.name == *iss,
            Some(template) => template.matches(iss, captured.get("tid"), self.tenants.as_deref()),
        }
    }

    /// Check the claims of a token whose signature verified.
    pub(super) fn check_claims(
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
        // With another audience claim, an `aud` that is there must match
        // too: a token for another API is not ours because its client is.
        if self.audience_claim.is_some()
            && captured.get("aud").is_some_and(|aud| !aud.is_null())
            && !self.audience_matches(captured.get("aud"))?
        {
            return Err(invalid("audience mismatch"));
        }
        match captured.get(self.audience_claim.as_deref().unwrap_or("aud")) {
            None | Some(Value::Null) => return Err(invalid("missing aud")),
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
        for rule in &self.claim_rules {
            rule.check(captured)?;
        }
        let actors = actor_chain(captured, self.max_actor_depth)?;
        if self.check_may_act
            && let Some(actor) = actors.first()
            && !may_act_allows(
                captured.get("may_act"),
                actor,
                claims.iss.as_deref().unwrap_or(&self.name),
            )
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

pub(super) struct Checked {
    pub(super) subject: String,
    pub(super) exp: u64,
    pub(super) accepted_until: u64,
    pub(super) nbf: Option<u64>,
    pub(super) actors: Vec<Actor>,
    pub(super) permissions: crate::permission::Permissions,
    pub(super) roles: Vec<Box<str>>,
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hex digits.
fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
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

pub(super) fn key_miss(miss: KeyMiss) -> AuthError {
    AuthError::invalid_token(match miss {
        KeyMiss::UnknownKid => "unknown key",
        KeyMiss::WrongAlgorithm => "key does not allow algorithm",
        KeyMiss::Ambiguous => "no unique key for token without kid",
    })
}

/// What choosing the key for a token found.
pub(super) enum KeyLookup {
    Found(Arc<VerifyingKey>),
    /// No key fits; a typed miss, so that an unknown `kid` can be remembered.
    Miss(KeyMiss),
    /// Unknown while the key source fails: 503, retry after this many seconds.
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    Unavailable(u64),
    /// A fetch from this source may bring the key.
    #[cfg(feature = "jwks")]
    Fetch(JwksSource),
}

/// The key for a token of `issuer`: by `kid`, and allowing the `alg`.
#[cfg_attr(not(feature = "jwks"), allow(unused_variables))]
pub(super) fn select_key(issuer: &Issuer, header: &jws::Header<'_>, fetch: bool) -> KeyLookup {
    let kid = header.kid.as_deref();
    match &issuer.keys {
        Keys::Static(keys) => match keys.select(kid, header.alg) {
            Ok(key) => KeyLookup::Found(key.clone()),
            Err(miss) => KeyLookup::Miss(miss),
        },
        #[cfg(feature = "jwks")]
        Keys::Jwks(source) => match source.lookup(kid, header.alg, fetch) {
            Lookup::Found(key) => KeyLookup::Found(key),
            Lookup::Invalid(miss) => KeyLookup::Miss(miss),
            Lookup::Fetch => KeyLookup::Fetch(source.clone()),
            Lookup::Unknown {
                failing: true,
                retry_after,
            } => KeyLookup::Unavailable(retry_after),
            Lookup::Unknown { failing: false, .. } => KeyLookup::Miss(KeyMiss::UnknownKid),
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
