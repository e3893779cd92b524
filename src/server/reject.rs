use std::fmt;
use std::sync::Arc;

use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response};

use crate::AuthError;

/// Turns an [`AuthError`] into the response the client sees.
///
/// The layer and the axum extractors use the same renderer, and always add
/// the `AuthError` to the response's extensions afterwards, whatever the
/// renderer returns. Closures `Fn(&AuthError, &HeaderMap) -> Response<String>`
/// implement it.
///
/// ```
/// use http::{HeaderMap, Response, StatusCode};
/// use tower_mandate::{AuthError, MakeRejection};
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
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultRejection;

impl MakeRejection for DefaultRejection {
    fn make_rejection(&self, error: &AuthError, _request: &HeaderMap) -> Response<String> {
        let code = error.kind().error_code().unwrap_or(match error.kind() {
            crate::AuthErrorKind::KeysUnavailable => "temporarily_unavailable",
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

/// The renderer shared by a layer and the extractors behind it.
#[derive(Clone)]
pub(crate) struct Renderer(pub(crate) Arc<dyn MakeRejection>);

impl Renderer {
    pub(crate) fn render<B: From<String>>(
        &self,
        error: AuthError,
        request: &HeaderMap,
    ) -> Response<B> {
        let mut response = self.0.make_rejection(&error, request).map(B::from);
        response.extensions_mut().insert(error);
        response
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
