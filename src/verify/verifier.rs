//! The verifier of one slot: the issuers it trusts, the verified-token
//! cache, and the steps from token text to [`Principal`].

use std::fmt;
use std::sync::Arc;

#[cfg(feature = "jwks")]
use super::Pending;
use super::cache::{CacheStats, DEFAULT_CACHE_CAPACITY, TokenCache};
use super::issuer::{DEFAULT_MAX_TOKEN_LEN, KeyLookup, key_miss, select_key};
use super::jws;
use super::{Step, Verify};
use crate::caller::PrincipalParts;
use crate::clock::unix_now;
#[cfg(feature = "jwks")]
use crate::keys::KeyMiss;
use crate::keys::VerifyingKey;
use crate::metrics::{self, Verification, VerifyTimer};
use crate::{AuthError, ConfigError, Issuer, Principal};

/// The slot label of verifications made outside the layer.
const NO_SLOT: &str = "none";

/// The metrics result of a refusal.
fn refused(e: &AuthError) -> Verification {
    if e.kind() == crate::AuthErrorKind::KeysUnavailable {
        Verification::KeysUnavailable
    } else {
        Verification::Invalid
    }
}

///
/// Built once (keys parsed, rules checked), then shared: cloning is cheap.
/// Tokens that verified are kept in a bounded cache (on by default, see
/// [`VerifierBuilder::with_cache`]); a cached token is still checked for `exp`,
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

/// Builds a [`Verifier`]: everything is set before it is shared, and
/// [`build`](VerifierBuilder::build) checks the rules once.
///
/// ```
/// use tower_mandate::{Issuer, Verifier};
/// # use tower_mandate::testing::TestIssuer;
/// # let idp = TestIssuer::es256("https://id.example").with_audience("a");
/// let verifier = Verifier::builder([Issuer::new("https://id.example", "a").with_keys(idp.key_set())])
///     .with_max_token_len(4096)
///     .without_cache()
///     .build()?;
/// assert_eq!(verifier.cache_stats().entries, 0);
/// # Ok::<(), tower_mandate::ConfigError>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct VerifierBuilder {
    issuers: Vec<Issuer>,
    max_token_len: usize,
    cache: Option<usize>,
}

impl VerifierBuilder {
    /// Refuse tokens longer than `len` bytes before decoding them (default 8 KiB).
    pub fn with_max_token_len(mut self, len: usize) -> Self {
        self.max_token_len = len;
        self
    }

    /// Keep up to `capacity` verified tokens (default 10 000; memory is
    /// about one principal, with its token, per entry).
    pub fn with_cache(mut self, capacity: usize) -> Self {
        self.cache = Some(capacity);
        self
    }

    /// Verify every token in full, every time.
    pub fn without_cache(mut self) -> Self {
        self.cache = None;
        self
    }

    /// The verifier.
    ///
    /// # Errors
    ///
    /// When no issuer is given ([`ConfigError::NoIssuer`]), an issuer is
    /// listed twice, or an issuer's rules are unusable (no keys, no
    /// algorithm, an HMAC algorithm without a long enough secret, an empty
    /// audience, a `#` in the issuer).
    pub fn build(self) -> Result<Verifier, ConfigError> {
        let issuers = self.issuers;
        if issuers.is_empty() {
            return Err(ConfigError::NoIssuer);
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
            max_token_len: self.max_token_len,
            cache: self.cache.map(TokenCache::new),
        })))
    }
}

impl Verifier {
    /// A verifier trusting these issuers, with the defaults (8 KiB tokens,
    /// the verified-token cache on); [`Verifier::builder`] to change them.
    ///
    /// # Errors
    ///
    /// As [`VerifierBuilder::build`].
    pub fn new(issuers: impl IntoIterator<Item = Issuer>) -> Result<Self, ConfigError> {
        Self::builder(issuers).build()
    }

    /// Start a verifier trusting these issuers.
    pub fn builder(issuers: impl IntoIterator<Item = Issuer>) -> VerifierBuilder {
        VerifierBuilder {
            issuers: issuers.into_iter().collect(),
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
            cache: Some(DEFAULT_CACHE_CAPACITY),
        }
    }

    #[cfg(test)]
    pub(super) fn cache_capacity(&self) -> Option<usize> {
        self.0.cache.as_ref().map(TokenCache::capacity)
    }

    /// Counters of the verified-token cache (zero when it is off).
    pub fn cache_stats(&self) -> CacheStats {
        self.0
            .cache
            .as_ref()
            .map(TokenCache::stats)
            .unwrap_or_default()
    }

    /// Whether every trusted issuer has usable keys now (fetched, and not
    /// past their maximum staleness). Never waits; for readiness probes.
    pub fn is_ready(&self) -> bool {
        self.0.issuers.iter().all(|i| i.keys.is_ready())
    }

    /// Resolves once every trusted issuer has usable keys, fetching them
    /// meanwhile. Start-up need not wait for it: requests that come first
    /// wait for keys by themselves (up to the key source's wait).
    pub async fn ready(&self) {
        for issuer in &self.0.issuers {
            issuer.keys.ready().await;
        }
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
    ///
    /// A token bound to a key or a certificate (a `cnf` claim: DPoP,
    /// RFC 8705) is refused: without its proof it is a stolen token. Use
    /// [`verify_bound`](Self::verify_bound) to check the binding yourself,
    /// or the layer, which checks it.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        super::future::unbound(self.verify_bound(token))
    }

    /// As [`verify`](Self::verify), but a bound token is returned too: the
    /// caller must check its proof against
    /// [`Principal::confirmation`](crate::Principal::confirmation) before
    /// trusting it.
    ///
    /// # Errors
    ///
    /// As [`Verifier::verify`], bound tokens aside.
    pub fn verify_bound(&self, token: &str) -> Result<Principal, AuthError> {
        match self.verify_step(token, unix_now(), false, NO_SLOT) {
            Ok(p) => Ok(p),
            Err(Step::Refused(e)) => Err(e),
            #[cfg(feature = "jwks")]
            Err(Step::Fetch(..)) => Err(AuthError::keys_unavailable("keys unavailable", 1)),
        }
    }

    /// Verify, fetching keys first when the token's key is not known yet
    /// (bounded by the key source's wait). The future is ready at once
    /// unless a fetch is needed; then it waits for the fetch and resumes
    /// from the token as already parsed.
    ///
    /// # Errors
    ///
    /// As [`Verifier::verify`]: a bound token is refused.
    pub fn verify_async(&self, token: &str) -> Verify {
        Verify::new(self, self.verify_step(token, unix_now(), true, NO_SLOT)).bearer_only()
    }

    /// Verify from the cache, or in full; `fetch`: a key that may arrive
    /// with a fetch is a [`Step::Fetch`] rather than unknown. `slot` labels
    /// the metrics.
    #[allow(clippy::result_large_err)]
    pub(crate) fn verify_step(
        &self,
        token: &str,
        now: u64,
        fetch: bool,
        slot: &'static str,
    ) -> Result<Principal, Step> {
        match self.cached_principal(token.as_bytes(), now, slot) {
            Some(principal) => Ok(principal),
            None => self.verify_uncached(token, now, fetch, slot),
        }
    }

    /// The principal `token` verified to before, when it is still valid
    /// (`exp`, `nbf` with the issuer's leeway, its key still trusted).
    /// `token` may be unchecked bytes: a hit is byte-for-byte a token that
    /// verified.
    pub(crate) fn cached_principal(
        &self,
        token: &[u8],
        now: u64,
        slot: &'static str,
    ) -> Option<Principal> {
        let cache = self.0.cache.as_ref()?;
        let (principal, index) = cache.get(token)?;
        // What makes asking with unchecked bytes sound: a hit is a token
        // that verified, which the b64token check passes.
        debug_assert!(crate::token::checked(token).is_ok());
        let issuer = &self.0.issuers[index];
        let leeway = issuer.leeway;
        if now < principal.exp().saturating_add(leeway)
            && principal
                .nbf()
                .is_none_or(|nbf| nbf <= now.saturating_add(leeway))
            && issuer.keys.contains_key_id(principal.key_id())
        {
            cache.hit();
            metrics::verification(slot, Verification::Cached);
            return Some(principal);
        }
        cache.remove(token);
        None
    }

    /// [`Verifier::verify_step`] without the cache look-up (the caller
    /// made it): the full verification, whose result is cached.
    #[allow(clippy::result_large_err)]
    pub(crate) fn verify_uncached(
        &self,
        token: &str,
        now: u64,
        fetch: bool,
        slot: &'static str,
    ) -> Result<Principal, Step> {
        if token.len() > self.0.max_token_len {
            return Err(AuthError::invalid_token("token too large").into());
        }
        if let Some(cache) = &self.0.cache {
            cache.miss();
        }
        let timer = VerifyTimer::start();
        let verified = self.verify_full(token, now, fetch, slot);
        match &verified {
            Ok(_) => {
                timer.record(slot);
                metrics::verification(slot, Verification::Valid);
            }
            Err(Step::Refused(e)) => metrics::verification(slot, refused(e)),
            // Counted when verification resumes.
            #[cfg(feature = "jwks")]
            Err(Step::Fetch(_)) => {}
        }
        verified
    }

    #[allow(clippy::result_large_err)]
    fn verify_full(
        &self,
        token: &str,
        now: u64,
        fetch: bool,
        #[cfg_attr(not(feature = "jwks"), allow(unused_variables))] slot: &'static str,
    ) -> Result<Principal, Step> {
        let invalid = AuthError::invalid_token;
        let compact = jws::split(token)?;
        let header_json = jws::header_json(compact.header)?;
        let header = jws::header(&header_json)?;
        let json = jws::payload(compact.payload)?;
        let captured = &self.0.captured;
        let claims = jws::claims(&json, &|name| captured.contains(name))?;
        // RFC 8725 §3.8: the issuer picks the rules and keys, before the signature.
        let index = match claims.iss.as_deref() {
            Some(iss) => self
                .0
                .issuers
                .iter()
                .position(|i| !i.without_iss && i.trusts(iss, &claims.captured))
                .ok_or_else(|| invalid("untrusted issuer"))?,
            // Only an issuer configured for it takes tokens without `iss`.
            None => self
                .0
                .issuers
                .iter()
                .position(|i| i.without_iss)
                .ok_or_else(|| invalid("missing iss"))?,
        };
        let issuer = &self.0.issuers[index];
        if !issuer.algorithms.contains(header.alg) {
            return Err(invalid("algorithm not allowed").into());
        }
        let key = match select_key(issuer, &header, fetch) {
            KeyLookup::Found(key) => key,
            KeyLookup::Miss(miss) => return Err(key_miss(miss).into()),
            KeyLookup::Unavailable(retry_after) => {
                return Err(AuthError::keys_unavailable("keys unavailable", retry_after).into());
            }
            #[cfg(feature = "jwks")]
            KeyLookup::Fetch(source) => {
                // Keep what was parsed, so that verification resumes from it.
                return Err(Step::Fetch(Pending {
                    source,
                    token: token.into(),
                    signing_len: compact.signing_input.len(),
                    header: header.into_owned(),
                    claims: claims.into_owned(),
                    json,
                    issuer: index,
                    slot,
                }));
            }
        };
        let parts = Self::finish(
            issuer,
            &key,
            &header,
            &claims,
            token,
            (compact.signing_input, compact.signature),
            now,
        );
        drop(claims);
        drop(json);
        Ok(self.cached(parts?, index)?)
    }

    /// Resume a verification that waited for keys, from the parsed token.
    #[cfg(feature = "jwks")]
    ///
    /// `landed`: the fetch ended. When the wait ran out first, a key still
    /// missing is not known to be unknown: 503, and the `kid` is not
    /// remembered as unknown.
    pub(crate) fn resume(&self, pending: Pending, landed: bool) -> Result<Principal, AuthError> {
        let slot = pending.slot;
        let timer = VerifyTimer::start();
        let resumed = self.resume_verified(pending, landed);
        match &resumed {
            Ok(_) => {
                timer.record(slot);
                metrics::verification(slot, Verification::Valid);
            }
            Err(e) => metrics::verification(slot, refused(e)),
        }
        resumed
    }

    #[cfg(feature = "jwks")]
    fn resume_verified(&self, pending: Pending, landed: bool) -> Result<Principal, AuthError> {
        let Pending {
            source,
            token,
            signing_len,
            header,
            claims,
            json,
            issuer: index,
            slot: _,
        } = pending;
        let issuer = &self.0.issuers[index];
        let key = match select_key(issuer, &header, false) {
            KeyLookup::Found(key) => key,
            KeyLookup::Miss(KeyMiss::UnknownKid) if !landed => {
                return Err(AuthError::keys_unavailable("keys unavailable", 1));
            }
            KeyLookup::Miss(miss) => {
                // The fetch did not bring this kid: remember it for a cooldown.
                if let (KeyMiss::UnknownKid, Some(kid)) = (miss, header.kid.as_deref()) {
                    source.remember_unknown(kid);
                }
                return Err(key_miss(miss));
            }
            KeyLookup::Unavailable(retry_after) => {
                return Err(AuthError::keys_unavailable("keys unavailable", retry_after));
            }
            KeyLookup::Fetch(_) => return Err(AuthError::keys_unavailable("keys unavailable", 1)),
        };
        let signed = (&token[..signing_len], &token[signing_len + 1..]);
        let parts = Self::finish(issuer, &key, &header, &claims, &token, signed, unix_now());
        drop(claims);
        drop(json);
        self.cached(parts?, index)
    }

    /// The signature and the claims, once the key is known; `signed` is the
    /// signing input and the signature.
    fn finish(
        issuer: &Issuer,
        key: &VerifyingKey,
        header: &jws::Header<'_>,
        claims: &jws::Claims<'_>,
        token: &str,
        (signing_input, signature): (&str, &str),
        now: u64,
    ) -> Result<PrincipalParts, AuthError> {
        if !key.verify(header.alg, signing_input.as_bytes(), signature) {
            return Err(AuthError::invalid_token("bad signature"));
        }
        let checked = issuer.check_claims(header, claims, now)?;
        Ok(PrincipalParts {
            subject: checked.subject,
            // A tenant template's principal names its own tenant's issuer.
            issuer: match (&issuer.template, claims.iss.as_deref()) {
                (Some(_), Some(iss)) => Arc::from(iss),
                _ => issuer.name.clone(),
            },
            permissions: checked.permissions,
            roles: checked.roles,
            payload: None,
            token: token.into(),
            jti: claims.jti.as_deref().map(Into::into),
            issued_at: claims.iat.map(|v| v as u64),
            expires_at: checked.exp,
            accepted_until: checked.accepted_until,
            not_before: checked.nbf,
            actors: checked.actors,
            key_id: key.id,
            confirmation: claims.cnf.clone(),
        })
    }

    /// The principal of verified parts, checked by the application's rule
    /// (once) and kept in the cache.
    fn cached(&self, parts: PrincipalParts, index: usize) -> Result<Principal, AuthError> {
        let principal = Principal::from_parts(parts);
        if let Some(check) = &self.0.issuers[index].claims_check {
            check(principal.claims_map()).map_err(AuthError::invalid_token)?;
        }
        if let Some(cache) = &self.0.cache {
            cache.insert(&principal, index);
        }
        Ok(principal)
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
