//! Resource-level rules, checked before anything is mutated.
//!
//! - **Ownership**: [`Caller::require_owner_of`](crate::Caller::require_owner_of)
//!   — the caller's user owns the resource, or every principal holds the
//!   matching `…:any` permission. The same call works in axum handlers (it
//!   returns an [`AuthError`](crate::AuthError), a response) and in tonic
//!   handlers (through [`RequestExt`](crate::tonic::RequestExt), a `Status`).
//! - **Cedar** (feature `cedar`): [`CedarPolicy`] evaluates a policy set with
//!   the user as principal (roles as parent entities), the permission as
//!   action, a resource the handler supplies, and the calling service and
//!   actor chain as context. Every evaluation is one audit event naming the
//!   policies that decided.
//! - **An external decision point** (feature `authzen`): [`AuthZen`] asks a
//!   policy decision point that speaks the OpenID AuthZEN Authorization
//!   API 1.0 (Cerbos, OPA/Topaz, OpenFGA, Keycloak, …), with every
//!   principal of the request a subject of one batch request. The call is
//!   Cedar's, awaited: a handler swaps one for the other.

#[cfg(feature = "authzen")]
mod authzen;
#[cfg(feature = "cedar")]
mod cedar;
#[cfg(any(feature = "cedar", feature = "authzen"))]
mod decision;
mod ownership;

#[cfg(feature = "authzen")]
pub use authzen::{AuthZen, AuthZenBuilder, Semantic};
#[cfg(feature = "cedar")]
pub use cedar::CedarPolicy;
#[cfg(any(feature = "cedar", feature = "authzen"))]
pub use decision::{PolicyDecision, Resource, SubjectDecision, SubjectRole};

/// The scope a transaction must hold for an action: the action's own name
/// unless mapped (`with_action_scope` of [`CedarPolicy`] and
/// [`AuthZenBuilder`]).
#[cfg(any(feature = "cedar", feature = "authzen"))]
#[derive(Debug, Clone, Default)]
pub(crate) struct ActionScopes(std::collections::BTreeMap<String, String>);

#[cfg(any(feature = "cedar", feature = "authzen"))]
impl ActionScopes {
    pub(crate) fn insert(&mut self, action: String, scope: String) {
        self.0.insert(action, scope);
    }

    /// The scope (permission) `action` stands for.
    pub(crate) fn scope_for<'a>(&'a self, action: &'a str) -> &'a str {
        self.0.get(action).map_or(action, String::as_str)
    }

    /// Whether `caller`'s transaction, when there is one, covers `action`.
    pub(crate) fn covers(&self, caller: &crate::Caller, action: &str) -> bool {
        let scope = self.scope_for(action);
        caller
            .transaction()
            .is_none_or(|t| t.principal().permissions().contains(scope))
    }
}
