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
            Skip::PathPrefix(prefix) => {
                // On a segment boundary: `/health` is not `/health-admin`.
                let path = req.uri().path();
                path.strip_prefix(&**prefix).is_some_and(|rest| {
                    prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/')
                })
            }
            Skip::CorsPreflight => is_preflight(req),
            Skip::Custom(predicate) => predicate(req.method(), req.uri(), req.headers()),
        }
    }
}

/// A CORS preflight as browsers send it: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`, and nothing that could carry a call —
/// no `Content-Type`, no `Transfer-Encoding`, no `Content-Length` but 0.
/// (A gRPC server dispatches on the path whatever the method: an `OPTIONS`
/// with a gRPC body is no preflight.)
fn is_preflight<B>(req: &Request<B>) -> bool {
    let h = req.headers();
    req.method() == Method::OPTIONS
        && h.contains_key(http::header::ORIGIN)
        && h.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        && !h.contains_key(http::header::CONTENT_TYPE)
        && !h.contains_key(http::header::TRANSFER_ENCODING)
        && h.get_all(http::header::CONTENT_LENGTH)
            .iter()
            .all(|v| v.as_bytes() == b"0")
}

/// A prefix that would skip every path.
pub(crate) fn too_broad(rules: &[Skip]) -> Option<&str> {
    rules.iter().find_map(|r| match r {
        Skip::PathPrefix(p) if p.is_empty() || &**p == "/" => Some(&**p),
        _ => None,
    })
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

#[cfg(test)]
mod tests {
    use http::{Method, Request};

    use super::{Skip, skips, too_broad};

    fn req(method: Method, path: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn prefixes_end_on_a_segment_boundary() {
        let rules = [Skip::PathPrefix("/health".into())];
        let get = |p| skips(&rules, &req(Method::GET, p, &[]));
        assert!(get("/health") && get("/health/live"));
        assert!(!get("/health-admin") && !get("/healthz") && !get("/x/health"));
        assert_eq!(too_broad(&[Skip::PathPrefix("/".into())]), Some("/"));
        assert_eq!(too_broad(&[Skip::PathPrefix("".into())]), Some(""));
        assert_eq!(too_broad(&rules), None);
    }

    #[test]
    fn a_preflight_carries_no_call() {
        let rules = [Skip::CorsPreflight];
        let pre = [
            ("origin", "https://app.example"),
            ("access-control-request-method", "POST"),
        ];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut h: Vec<(&str, &str)> = pre.to_vec();
            h.extend_from_slice(extra);
            skips(&rules, &req(Method::OPTIONS, "/pkg.Admin/Delete", &h))
        };
        assert!(with(&[]));
        assert!(with(&[("content-length", "0")]));
        assert!(
            !with(&[("content-type", "application/grpc")]),
            "a gRPC call"
        );
        assert!(!with(&[("content-length", "12")]));
        assert!(!with(&[("transfer-encoding", "chunked")]));
        assert!(!skips(&rules, &req(Method::POST, "/x", &pre)));
    }
}
