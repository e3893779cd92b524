//! One credential slot: where its token is read, how it is verified,
//! whether it is required.

use http::{HeaderMap, Uri};

use super::{SlotKind, TokenSource};
use crate::verify::Step;
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
}

impl Slot {
    /// Every request must carry a valid token in this slot.
    pub fn required(verifier: Verifier) -> Self {
        Slot {
            verifier,
            mode: Mode::Required,
            source: None,
        }
    }

    /// A token in this slot is verified when present; its absence is fine.
    /// A present but invalid token is always refused.
    pub fn optional(verifier: Verifier) -> Self {
        Slot {
            verifier,
            mode: Mode::Optional,
            source: None,
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
