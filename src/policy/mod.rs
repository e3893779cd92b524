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

#[cfg(feature = "cedar")]
mod cedar;
mod ownership;

#[cfg(feature = "cedar")]
pub use cedar::{CedarPolicy, PolicyDecision, Resource};
