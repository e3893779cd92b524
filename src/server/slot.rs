//! One credential slot: where its token is read, how it is verified,
//! whether it is required.

use serde_json::Value;

use super::{SlotKind, TokenSource};
use crate::binding::SlotBinding;
use crate::token::{Head, Scheme};
use crate::verify::Step;
use crate::verify::rules::ClaimRule;
use crate::{AuthError, Principal, Verifier};

/// How far a slot got without waiting. `Fetch` holds the parsed token by
/// value (the rare path, as `Progress::Waiting`).
#[allow(clippy::large_enum_variant)]
pub(super) enum Authenticated {
    /// No token, and none is required.
    Empty,
    Verified(Principal, Scheme),
    /// The key must be fetched first.
    #[cfg(feature = "jwks")]
    Fetch(crate::verify::Pending, Scheme),
}

/// Whether a slot must carry a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Required,
    Optional,
}

/// One credential slot: where its token comes from, how it is verified, and
/// whether it is required.
#[derive(Debug, Clone)]
pub struct Slot {
    pub(super) verifier: Verifier,
    mode: Mode,
    pub(super) source: Option<TokenSource>,
    /// Claim values that tell this slot's tokens from the other slot's.
    pub(super) rules: Vec<ClaimRule>,
    /// DPoP and certificate binding.
    pub(super) binding: SlotBinding,
}

impl Slot {
    /// Every request must carry a valid token in this slot.
    pub fn required(verifier: Verifier) -> Self {
        Slot {
            verifier,
            mode: Mode::Required,
            source: None,
            rules: Vec::new(),
            binding: SlotBinding::default(),
        }
    }

    /// A token in this slot is verified when present; its absence is fine.
    /// A present but invalid token is always refused.
    pub fn optional(verifier: Verifier) -> Self {
        Slot {
            verifier,
            mode: Mode::Optional,
            source: None,
            rules: Vec::new(),
            binding: SlotBinding::default(),
        }
    }

    /// This slot's tokens have this claim value. When one provider issues
    /// both the users' and the services' tokens with the same issuer and
    /// audience, give each slot a rule on the same claim with different
    /// values (Entra ID's optional `idtyp` claim: `user` and `app`):
    /// [`build`](crate::server::MandateBuilder::build) then accepts the
    /// shared issuer, each slot refuses the other's tokens (401), and a
    /// token without the claim fits neither. A rule on one slot only does
    /// not tell the slots apart.
    ///
    /// ```
    /// use tower_mandate::{Issuer, MandateLayer, Slot, Verifier};
    /// # let idp = tower_mandate::testing::TestIssuer::rs256("https://login.example");
    /// let rules = || Verifier::new([Issuer::new("https://login.example", "api").with_keys(idp.key_set())]);
    /// let layer = MandateLayer::builder()
    ///     .user(Slot::optional(rules()?).require_claim_eq("idtyp", "user"))
    ///     .service(Slot::optional(rules()?).require_claim_eq("idtyp", "app"))
    ///     .build()?; // no InterchangeableSlots: the claim tells them apart
    /// // A rule on one slot only does not.
    /// assert!(MandateLayer::builder()
    ///     .user(Slot::optional(rules()?))
    ///     .service(Slot::optional(rules()?).require_claim_eq("idtyp", "app"))
    ///     .build()
    ///     .is_err());
    /// # let _ = layer;
    /// # Ok::<(), tower_mandate::ConfigError>(())
    /// ```
    pub fn require_claim_eq(self, claim: impl Into<String>, value: impl Into<Value>) -> Self {
        self.require_claim_in(claim, [value])
    }

    /// As [`require_claim_eq`](Self::require_claim_eq), with one of several
    /// values (a `client_id` or `azp` allow-list of the services).
    pub fn require_claim_in<I, V>(mut self, claim: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = V>,
        V: Into<Value>,
    {
        self.rules.push(ClaimRule::new(claim, values));
        self
    }

    /// Whether `principal` belongs in this slot: it satisfies this slot's
    /// rules, and not every rule of the other slot (`others`).
    pub(super) fn admit(
        &self,
        kind: SlotKind,
        others: &[ClaimRule],
        principal: Principal,
    ) -> Result<Principal, AuthError> {
        // No rules: the claims are not parsed (a cached principal would keep
        // the parsed map for as long as it is cached).
        if self.rules.is_empty() && others.is_empty() {
            return Ok(principal);
        }
        let claims = principal.claims_map();
        let own = self.rules.iter().all(|r| r.holds(claims));
        let other = !others.is_empty() && others.iter().all(|r| r.holds(claims));
        if own && !other {
            Ok(principal)
        } else {
            Err(AuthError::invalid_token("token of another slot").with_slot(kind))
        }
    }

    /// Take DPoP-bound tokens (RFC 9449) with their proofs, besides bearer
    /// tokens ([`Dpop::allowed`](crate::binding::Dpop::allowed)) or only
    /// them ([`Dpop::required`](crate::binding::Dpop::required)); see
    /// [`binding`](crate::binding). One slot of a layer at most: a request
    /// has one `DPoP` header.
    ///
    /// ```
    /// use tower_mandate::{binding::Dpop, Issuer, MandateLayer, Slot, Verifier};
    /// # let idp = tower_mandate::testing::TestIssuer::es256("https://id.example");
    /// let users = Verifier::new([Issuer::new("https://id.example", "images").with_keys(idp.key_set())])?;
    /// let layer = MandateLayer::builder()
    ///     .user(Slot::required(users).with_dpop(Dpop::required().with_origin("https://images.example")))
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_mandate::ConfigError>(())
    /// ```
    #[cfg(feature = "_aws-lc")]
    pub fn with_dpop(mut self, dpop: crate::binding::Dpop) -> Self {
        self.binding.dpop = Some(dpop);
        self
    }

    /// Take only certificate-bound tokens (RFC 8705 §3): a token without
    /// `cnf["x5t#S256"]` gets 401. A bound token is checked against the
    /// request's client certificate in every slot, required or not.
    pub fn require_certificate_bound(mut self) -> Self {
        self.binding.certificate_bound = true;
        self
    }

    /// Read the token from `source` instead of the slot's default header.
    pub fn with_source(mut self, source: TokenSource) -> Self {
        self.source = Some(source);
        self
    }

    fn token<'h>(
        &self,
        kind: SlotKind,
        source: &TokenSource,
        head: &Head<'h>,
    ) -> Result<Option<(&'h [u8], Scheme)>, AuthError> {
        let refuse = |e: AuthError| {
            e.with_slot(kind)
                .with_challenge(self.binding.challenge(None))
        };
        match source
            .locate(head.headers, head.uri, self.binding.takes_dpop())
            .map_err(refuse)?
        {
            None if self.mode == Mode::Required => Err(refuse(AuthError::missing_credentials())),
            token => Ok(token),
        }
    }

    /// Whether this slot must carry a token.
    pub(super) fn is_required(&self) -> bool {
        self.mode == Mode::Required
    }

    /// Without waiting: [`Authenticated::Fetch`] when keys must be
    /// fetched first.
    pub(super) fn authenticate(
        &self,
        kind: SlotKind,
        source: &TokenSource,
        head: &Head<'_>,
        now: u64,
    ) -> Result<Authenticated, AuthError> {
        let Some((raw, scheme)) = self.token(kind, source, head)? else {
            return Ok(Authenticated::Empty);
        };
        let refuse = |e: AuthError| {
            e.with_slot(kind)
                .with_challenge(self.binding.challenge(Some(scheme)))
        };
        self.binding.precheck(scheme).map_err(refuse)?;
        // A token in the cache verified: its three segments decoded as strict
        // base64url, so it is a b64token. A hit is byte-for-byte such a
        // token, so the cache is asked before the bytes are scanned.
        if let Some(p) = self.verifier.cached_principal(raw, now, kind.as_str()) {
            return Ok(Authenticated::Verified(p, scheme));
        }
        let token = crate::token::checked(raw).map_err(|e| {
            e.with_slot(kind)
                .with_challenge(self.binding.challenge(None))
        })?;
        match self
            .verifier
            .verify_uncached(token, now, true, kind.as_str())
        {
            Ok(p) => Ok(Authenticated::Verified(p, scheme)),
            Err(Step::Refused(e)) => Err(refuse(e)),
            #[cfg(feature = "jwks")]
            Err(Step::Fetch(pending)) => Ok(Authenticated::Fetch(pending, scheme)),
        }
    }

    /// A verified principal, checked against this slot's rules and its
    /// binding: the DPoP proof that passed, if any.
    pub(super) fn admit_bound(
        &self,
        kind: SlotKind,
        others: &[ClaimRule],
        (principal, scheme): (Principal, Scheme),
        head: &Head<'_>,
        certificates: &crate::binding::Certificates,
        now: u64,
    ) -> Result<(Principal, Option<crate::binding::Bound>), AuthError> {
        let refuse = |e: AuthError| {
            e.with_slot(kind)
                .with_challenge(self.binding.challenge(Some(scheme)))
        };
        let principal = self.admit(kind, others, principal).map_err(refuse)?;
        let bound = self
            .binding
            .check(
                (principal.token(), principal.confirmation()),
                scheme,
                head,
                certificates,
                now,
            )
            .map_err(refuse)?;
        Ok((principal, bound))
    }
}
