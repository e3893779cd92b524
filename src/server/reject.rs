use std::fmt;
use std::sync::Arc;

use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response};

use crate::AuthError;
use crate::metrics::Outcome;

/// Turns an [`AuthError`] into the response the client sees.
///
/// The layer and the axum extractors use the same renderer, and always add
/// the `AuthError` to the response's extensions afterwards, whatever the
/// renderer returns. Closures `Fn(&AuthError, &HeaderMap) -> Response<String>`
/// implement it.
///
/// ```
/// use http::{HeaderMap, Response, StatusCode};
/// use tower_mandate::{server::MakeRejection, AuthError};
///
/// // Plain-text bodies, same statuses and challenges as the default.
/// let plain = |error: &AuthError, _request: &HeaderMap| {
///     let mut response = Response::new(format!("refused: {}", error.reason()));
///     *response.status_mut() = error.status();
///     response
/// };
/// fn assert_renderer(_: &impl MakeRejection) {}
/// assert_renderer(&plain);
/// ```
pub trait MakeRejection: Send + Sync + 'static {
    /// Render `error`; `request` holds the refused request's headers.
    fn make_rejection(&self, error: &AuthError, request: &HeaderMap) -> Response<String>;
}

impl<F> MakeRejection for F
where
    F: Fn(&AuthError, &HeaderMap) -> Response<String> + Send + Sync + 'static,
{
    fn make_rejection(&self, error: &AuthError, request: &HeaderMap) -> Response<String> {
        self(error, request)
    }
}

/// The default renderer: the status and `WWW-Authenticate` challenge of
/// RFC 6750 §3, and a short JSON body with the error code and fixed reason.
/// Nothing from the request is echoed.
///
/// For gRPC requests (`content-type: application/grpc…`) it answers a
/// trailers-only gRPC response instead: HTTP 200 with `grpc-status`
/// UNAUTHENTICATED (16) for missing or bad tokens, PERMISSION_DENIED (7) for
/// missing permissions, INVALID_ARGUMENT (3) for malformed credentials,
/// UNAVAILABLE (14) when keys cannot be had, and the fixed reason as
/// `grpc-message`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejection;

fn is_grpc(request: &HeaderMap) -> bool {
    request
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// The `DPoP-Nonce` response header (RFC 9449 §8.1).
pub(crate) const DPOP_NONCE: http::HeaderName = http::HeaderName::from_static("dpop-nonce");

/// A trailers-only gRPC response for `error`.
fn grpc_rejection(error: &AuthError) -> Response<String> {
    let mut response = Response::new(String::new());
    let headers = response.headers_mut();
    // The challenge, as metadata: a DPoP client reads `algs` from it.
    if let Some(challenge) = error.www_authenticate()
        && (challenge.contains("DPoP") || challenge.contains("insufficient_user_authentication"))
        && let Ok(value) = HeaderValue::from_str(&challenge)
    {
        headers.insert(WWW_AUTHENTICATE, value);
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("grpc-status", HeaderValue::from(error.kind().grpc_code()));
    // The reason is a fixed ASCII text: no percent-encoding needed.
    if let Ok(message) = HeaderValue::from_str(error.reason()) {
        headers.insert("grpc-message", message);
    }
    response
}

impl MakeRejection for DefaultRejection {
    fn make_rejection(&self, error: &AuthError, request: &HeaderMap) -> Response<String> {
        if is_grpc(request) {
            return grpc_rejection(error);
        }
        let code = error.kind().error_code().unwrap_or(match error.kind() {
            crate::AuthErrorKind::KeysUnavailable | crate::AuthErrorKind::PolicyUnavailable => {
                "temporarily_unavailable"
            }
            _ => "unauthorized",
        });
        let body = serde_json::json!({
            "error": code,
            "error_description": error.reason(),
        })
        .to_string();
        let mut response = Response::new(body);
        *response.status_mut() = error.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(secs) = error.retry_after() {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = error.www_authenticate()
            && let Ok(value) = HeaderValue::from_str(&challenge)
        {
            headers.insert(WWW_AUTHENTICATE, value);
        }
        response
    }
}

/// A response body a rejection can be written into. Implemented for the
/// bodies of axum, tonic and hyper (`http_body_util::Full<Bytes>`), and
/// `String`; implement it for your own body type to use the layer with it.
pub trait RejectionBody {
    /// A body holding `text`.
    fn from_text(text: String) -> Self;
}

impl RejectionBody for String {
    fn from_text(text: String) -> Self {
        text
    }
}

impl RejectionBody for http_body_util::Full<bytes::Bytes> {
    fn from_text(text: String) -> Self {
        http_body_util::Full::new(bytes::Bytes::from(text))
    }
}

#[cfg(feature = "axum")]
impl RejectionBody for axum::body::Body {
    fn from_text(text: String) -> Self {
        axum::body::Body::from(text)
    }
}

#[cfg(feature = "tonic")]
impl RejectionBody for tonic::body::Body {
    fn from_text(text: String) -> Self {
        if text.is_empty() {
            tonic::body::Body::empty()
        } else {
            tonic::body::Body::new(http_body_util::Full::new(bytes::Bytes::from(text)))
        }
    }
}

/// Marks a refusal made behind the layer (an extractor's, or a handler's
/// `AuthError` returned with `?`): rendered by default where it was made,
/// rendered again by the layer with its own renderer on the way out, so
/// that every refusal of one service looks the same. Holds the refused
/// request's headers when the refusal had them.
#[derive(Clone)]
pub(crate) struct Unrendered(pub(crate) Option<HeaderMap>);

/// A refusal made behind the layer: rendered by [`DefaultRejection`], with
/// the [`AuthError`] and the [`Unrendered`] mark in its extensions.
#[cfg(feature = "axum")]
pub(crate) fn behind_layer<B: RejectionBody>(
    error: AuthError,
    request: Option<HeaderMap>,
) -> Response<B> {
    let empty = HeaderMap::new();
    let mut response = Renderer::default().render(error, request.as_ref().unwrap_or(&empty));
    response.extensions_mut().insert(Unrendered(request));
    response
}

/// The layer's renderer.
#[derive(Clone)]
pub(crate) struct Renderer(pub(crate) Arc<dyn MakeRejection>);

impl Renderer {
    pub(crate) fn render<B: RejectionBody>(
        &self,
        error: AuthError,
        request: &HeaderMap,
    ) -> Response<B> {
        let mut response = self.0.make_rejection(&error, request).map(B::from_text);
        // RFC 9449 §8: the nonce the client must use, whatever the renderer.
        if let Some(nonce) = error.dpop_nonce()
            && let Ok(value) = HeaderValue::from_str(nonce)
        {
            response.headers_mut().insert(DPOP_NONCE, value);
        }
        response.extensions_mut().insert(error);
        response
    }

    /// Render a refusal made behind the layer again, with this renderer
    /// (and `challenge`, after a DPoP request); any other response passes
    /// unchanged. The request's outcome.
    pub(crate) fn finish<B: RejectionBody>(
        &self,
        response: &mut Response<B>,
        challenge: Option<&crate::error::Challenge>,
        metadata: Option<&Arc<str>>,
    ) -> Outcome {
        // The common case: a response of the application, left in place.
        if response.extensions().get::<Unrendered>().is_none() {
            return Outcome::Allowed;
        }
        let request = response
            .extensions_mut()
            .remove::<Unrendered>()
            .and_then(|u| u.0)
            .unwrap_or_default();
        match response.extensions_mut().remove::<AuthError>() {
            Some(error) => {
                let outcome = Outcome::of(error.kind());
                let error = match challenge {
                    Some(c) => error.with_challenge(c.clone()),
                    None => error,
                }
                .with_resource_metadata(metadata.cloned());
                *response = self.render(error, &request);
                outcome
            }
            None => Outcome::Allowed,
        }
    }
}

impl Default for Renderer {
    fn default() -> Self {
        Renderer(Arc::new(DefaultRejection))
    }
}

impl fmt::Debug for Renderer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Renderer")
    }
}
