//! One credential slot: where its token is read, how it is verified,
//! whether it is required.

use http::{HeaderMap, Uri};
use serde_json::Value;

use super::{SlotKind, TokenSource};
use crate::verify::Step;
use crate::verify::rules::ClaimRule;
use crate::{AuthError, Principal, Verifier};

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
}

impl Slot {
    /// Every request must carry a valid token in this slot.
    pub fn required(verifier: Verifier) -> Self {
        Slot {
            verifier,
            mode: Mode::Required,
            source: None,
            rules: Vec::new(),
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
        let claims = principal.claims_map();
        let own = self.rules.iter().all(|r| r.holds(claims));
        let other = !others.is_empty() && others.iter().all(|r| r.holds(claims));
        if own && !other {
            Ok(principal)
        } else {
            Err(AuthError::invalid_token("token of another slot").with_slot(kind))
        }
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
        (headers, uri): (&'h HeaderMap, &'h Uri),
    ) -> Result<Option<&'h str>, AuthError> {
        match source
            .extract(headers, uri)
            .map_err(|e| e.with_slot(kind))?
        {
            None if self.mode == Mode::Required => {
                Err(AuthError::missing_credentials().with_slot(kind))
            }
            token => Ok(token),
        }
    }

    /// Whether this slot must carry a token.
    pub(super) fn is_required(&self) -> bool {
        self.mode == Mode::Required
    }

    /// Without waiting: `Err(Step::Fetch)` when keys must be fetched first.
    #[allow(clippy::result_large_err)]
    pub(super) fn authenticate(
        &self,
        kind: SlotKind,
        source: &TokenSource,
        head: (&HeaderMap, &Uri),
        now: u64,
    ) -> Result<Option<Principal>, Step> {
        match self.token(kind, source, head)? {
            None => Ok(None),
            Some(token) => match self.verifier.verify_step(token, now, true, kind.as_str()) {
                Ok(p) => Ok(Some(p)),
                Err(Step::Refused(e)) => Err(Step::Refused(e.with_slot(kind))),
                #[cfg(feature = "jwks")]
                Err(fetch) => Err(fetch),
            },
        }
    }
}
