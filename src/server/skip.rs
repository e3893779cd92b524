//! Requests the layer lets through unauthenticated: health checks, gRPC
//! reflection, CORS preflights, or what a predicate names.
//!
//! A skipped request carries no [`Caller`](crate::Caller), but a marker:
//! a guard that runs on it anyway refuses with 401, like an anonymous
//! request, instead of the 500 of a missing layer.

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, Method, Request, Uri};

/// The predicate of [`MandateBuilder::add_skip_if`](super::MandateBuilder::add_skip_if).
type Predicate = dyn Fn(&Method, &Uri, &HeaderMap) -> bool + Send + Sync;

/// One rule for requests that skip authentication.
#[derive(Clone)]
pub(crate) enum Skip {
    /// The path starts with this (compared byte for byte, never decoded).
    PathPrefix(Box<str>),
    /// `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
    CorsPreflight,
    Custom(Arc<Predicate>),
}

/// Marks a request that skipped authentication.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Skipped;

/// gRPC health checking (`grpc.health.v1.Health`, all its methods).
pub(crate) const GRPC_HEALTH: &str = "/grpc.health.v1.Health/";
/// gRPC server reflection, both versions.
pub(crate) const GRPC_REFLECTION: [&str; 2] = [
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

impl Skip {
    pub(crate) fn custom(
        predicate: impl Fn(&Method, &Uri, &HeaderMap) -> bool + Send + Sync + 'static,
    ) -> Self {
        Skip::Custom(Arc::new(predicate))
    }

    fn matches<B>(&self, req: &Request<B>) -> bool {
        match self {
            Skip::PathPrefix(prefix) => req.uri().path().starts_with(&**prefix),
            Skip::CorsPreflight => {
                req.method() == Method::OPTIONS
                    && req.headers().contains_key(http::header::ORIGIN)
                    && req
                        .headers()
                        .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            }
            Skip::Custom(predicate) => predicate(req.method(), req.uri(), req.headers()),
        }
    }
}

/// Whether `req` skips authentication under `rules`.
#[inline]
pub(crate) fn skips<B>(rules: &[Skip], req: &Request<B>) -> bool {
    !rules.is_empty() && rules.iter().any(|r| r.matches(req))
}

impl fmt::Debug for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::PathPrefix(p) => f.debug_tuple("PathPrefix").field(p).finish(),
            Skip::CorsPreflight => f.write_str("CorsPreflight"),
            Skip::Custom(_) => f.write_str("Custom"),
        }
    }
}
