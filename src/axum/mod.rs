//! axum extractors (feature `axum`): [`Caller`], `Option<Caller>`,
//! [`Require<P>`](crate::Require), [`RequireUser<P>`](crate::RequireUser) and
//! [`RequireService<P>`](crate::RequireService).
//!
//! A handler argument `Require<ImagesWrite>` exists only if **every**
//! verified principal on the request (user and service) holds
//! `images:write`; otherwise the handler never runs and the client gets
//! 403 `insufficient_scope` (401 when nobody verified). The extractors read
//! what [`MandateLayer`](crate::MandateLayer) put into the request; without
//! that layer they answer 500 with a message naming the fix.
//! [`RequireAuthentication<A>`] asks for a strong and recent enough login
//! (RFC 9470, [`step_up`](crate::step_up)).
//!
//! ```
//! use axum::{Router, routing::{get, post}};
//! use tower_mandate::{permission::AllOf, Caller, Require, RequireService, permission};
//!
//! permission! {
//!     pub ImagesRead = "images:read";
//!     pub ImagesWrite = "images:write";
//!     pub TagsWrite = "tags:write";
//! }
//!
//! async fn read(caller: Require<ImagesRead>) -> String {
//!     format!("hello {:?}", caller.user().map(|u| u.subject()))
//! }
//! async fn tag(_: Require<AllOf<(ImagesWrite, TagsWrite)>>) {}
//! async fn internal(service: RequireService<ImagesRead>) -> String {
//!     service.principal().subject().to_owned()
//! }
//! async fn maybe(caller: Option<Caller>) -> &'static str {
//!     if caller.is_some() { "known" } else { "anonymous" }
//! }
//!
//! let app: Router = Router::new()
//!     .route("/read", get(read))
//!     .route("/tag", post(tag))
//!     .route("/internal", get(internal))
//!     .route("/maybe", get(maybe));
//! ```

pub(crate) mod require;

pub use require::RequireAuthentication;

use std::fmt;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, StatusCode};

use crate::caller::NOBODY;
use crate::server::behind_layer;
use crate::server::skip::Skipped;
use crate::{AuthError, Caller};

const MISSING_LAYER: &str = "tower_mandate: no MandateLayer ran for this request; add \
     `.route_layer(MandateLayer::…)` to the Router that serves this route so that Caller, \
     Require<P>, RequireUser<P> and RequireService<P> can be extracted";

/// Rejection when no [`MandateLayer`](crate::MandateLayer) ran: a 500 whose
/// body names the fix. This is a server bug, not a client error.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct MissingMandateLayer;

impl MissingMandateLayer {
    /// 500.
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The message naming the fix.
    pub fn body_text(&self) -> String {
        MISSING_LAYER.to_owned()
    }
}

impl IntoResponse for MissingMandateLayer {
    fn into_response(self) -> Response {
        tracing::error!(target: "tower_mandate::axum", "{MISSING_LAYER}");
        (self.status(), self.body_text()).into_response()
    }
}

/// Rejection of a caller who is not authenticated or lacks a permission,
/// rendered by the layer's [`MakeRejection`](crate::server::MakeRejection).
///
/// Its response carries the [`AuthError`] in its extensions; the layer in
/// front renders it with its own renderer, like its own refusals.
pub struct Refused(Box<RefusedInner>);

struct RefusedInner {
    error: AuthError,
    headers: HeaderMap,
}

impl Refused {
    /// 401 or 403.
    pub fn status(&self) -> StatusCode {
        self.0.error.status()
    }

    /// A short description.
    pub fn body_text(&self) -> String {
        self.0.error.to_string()
    }

    /// The error.
    pub fn error(&self) -> &AuthError {
        &self.0.error
    }
}

impl fmt::Debug for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Refused")
            .field("error", &self.0.error)
            .finish()
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let RefusedInner { error, headers } = *self.0;
        behind_layer(error, Some(headers))
    }
}

/// Why a [`Caller`]-based extractor failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum MandateRejection {
    /// No `MandateLayer` ran (500).
    MissingLayer(MissingMandateLayer),
    /// The caller is not authenticated or lacks a permission (401/403).
    Refused(Refused),
}

impl MandateRejection {
    /// The status of the answer.
    pub fn status(&self) -> StatusCode {
        match self {
            MandateRejection::MissingLayer(r) => r.status(),
            MandateRejection::Refused(r) => r.status(),
        }
    }

    /// The text of the answer.
    pub fn body_text(&self) -> String {
        match self {
            MandateRejection::MissingLayer(r) => r.body_text(),
            MandateRejection::Refused(r) => r.body_text(),
        }
    }
}

impl IntoResponse for MandateRejection {
    fn into_response(self) -> Response {
        match self {
            MandateRejection::MissingLayer(r) => r.into_response(),
            MandateRejection::Refused(r) => r.into_response(),
        }
    }
}

pub(super) fn refuse(parts: &Parts, error: AuthError) -> MandateRejection {
    MandateRejection::Refused(Refused(Box::new(RefusedInner {
        error,
        headers: parts.headers.clone(),
    })))
}

/// The caller the layer put there, or the missing-layer rejection.
fn lookup(parts: &Parts) -> Result<&Caller, MandateRejection> {
    match parts.extensions.get::<Caller>() {
        Some(caller) => Ok(caller),
        // Let through unauthenticated by the layer: nobody is calling.
        None if parts.extensions.get::<Skipped>().is_some() => Ok(&NOBODY),
        None => Err(MandateRejection::MissingLayer(MissingMandateLayer)),
    }
}

pub(super) fn authenticated(parts: &Parts) -> Result<&Caller, MandateRejection> {
    let caller = lookup(parts)?;
    if caller.is_anonymous() {
        return Err(refuse(parts, AuthError::missing_credentials()));
    }
    Ok(caller)
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = MandateRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        authenticated(parts).cloned()
    }
}

/// `Option<Caller>` is `None` for an anonymous request (every slot optional
/// and empty); a missing layer is still a 500.
impl<S: Send + Sync> OptionalFromRequestParts<S> for Caller {
    type Rejection = MissingMandateLayer;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        match lookup(parts) {
            Ok(caller) => Ok((!caller.is_anonymous()).then(|| caller.clone())),
            Err(_) => Err(MissingMandateLayer),
        }
    }
}

impl IntoResponse for AuthError {
    /// Lets handlers write `caller.require_owner::<P>(owner)?`. The error
    /// goes into the response's extensions, and the layer in front renders
    /// it with its renderer (without a layer, [`DefaultRejection`](crate::server::DefaultRejection)
    /// has rendered it).
    fn into_response(self) -> Response {
        behind_layer(self, None)
    }
}
