//! Ownership: the caller's user owns the resource (same issuer and
//! subject), or every principal holds the matching `…:any` permission.

use std::borrow::Cow;

use crate::metrics;
use crate::permission::Permission;
use crate::{AuthError, Caller, Principal, PrincipalId};

impl Caller {
    /// Ownership rule: every principal holds `P`, and either the caller's
    /// user is `owner` (same issuer and subject), or every principal also
    /// holds `P::ANY` (e.g. `images:read:any`). Call it before any mutation.
    ///
    /// # Errors
    ///
    /// 401 when no principal verified; 403 naming `P` or `P::ANY`.
    ///
    /// ```
    /// # use tower_mandate::{Caller, PrincipalId, permission};
    /// permission! { pub ImagesDelete = "images:delete"; }
    /// # fn f(caller: &Caller) -> Result<(), tower_mandate::AuthError> {
    /// // Stored when the image was created: `caller.user().unwrap().id()`.
    /// let owner = PrincipalId::new("https://id.example", "alice");
    /// caller.require_owner::<ImagesDelete>(&owner)?;
    /// // ... now delete
    /// # Ok(()) }
    /// ```
    pub fn require_owner<P: Permission>(&self, owner: &PrincipalId) -> Result<(), AuthError> {
        self.owner_check::<P>(None, owner)
    }

    /// [`Caller::require_owner`] for the resource `resource`, whose id goes
    /// into the audit event.
    ///
    /// # Errors
    ///
    /// As [`Caller::require_owner`].
    pub fn require_owner_of<P: Permission>(
        &self,
        resource: &str,
        owner: &PrincipalId,
    ) -> Result<(), AuthError> {
        self.owner_check::<P>(Some(resource), owner)
    }

    fn owner_check<P: Permission>(
        &self,
        resource: Option<&str>,
        owner: &PrincipalId,
    ) -> Result<(), AuthError> {
        let deny = |reason, error| {
            metrics::guard(|| Cow::Borrowed(P::NAME), false);
            self.audit(false, reason, P::NAME, resource);
            Err(error)
        };
        if self.is_anonymous() {
            return deny("no credentials", AuthError::missing_credentials());
        }
        if !self.principals().all(Principal::holds::<P>) {
            return deny("permission missing", AuthError::insufficient_scope(P::NAME));
        }
        if self.on_behalf_of().is_some_and(|u| u.is(owner)) {
            metrics::guard(|| Cow::Borrowed(P::NAME), true);
            self.audit(true, "owner", P::NAME, resource);
            return Ok(());
        }
        if self.principals().all(|p| p.permissions().contains(P::ANY)) {
            metrics::guard(|| Cow::Borrowed(P::ANY), true);
            self.audit(true, "any permission held", P::ANY, resource);
            Ok(())
        } else {
            deny("not owner", AuthError::insufficient_scope(P::ANY))
        }
    }
}
