//! Where raw tokens come from: a header, with or without an auth scheme, a
//! cookie, a query parameter, or the application's own extractor.

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, Uri};

use crate::AuthError;

/// An extractor of the application's own: the raw token, if any.
type Extract =
    dyn for<'r> Fn(&'r HeaderMap, &'r Uri) -> Result<Option<&'r str>, AuthError> + Send + Sync;

#[derive(Clone)]
enum Kind {
    Header {
        header: HeaderName,
        scheme: Option<&'static str>,
    },
    Cookie(Box<str>),
    Query(Box<str>),
    Custom(&'static str, Arc<Extract>),
}

/// Where a slot reads its token from.
///
/// ```
/// use http::{HeaderMap, HeaderValue, Uri};
/// use tower_mandate::server::TokenSource;
///
/// let source = TokenSource::authorization();
/// let mut headers = HeaderMap::new();
/// headers.insert("authorization", HeaderValue::from_static("bearer abc.def.ghi"));
/// let uri = Uri::from_static("/images");
/// assert_eq!(source.extract(&headers, &uri).unwrap(), Some("abc.def.ghi"));
///
/// // Browsers: a cookie.
/// let cookie = TokenSource::cookie("access_token");
/// headers.insert("cookie", HeaderValue::from_static("theme=dark; access_token=abc.def.ghi"));
/// assert_eq!(cookie.extract(&headers, &uri).unwrap(), Some("abc.def.ghi"));
/// ```
#[derive(Clone)]
pub struct TokenSource {
    kind: Kind,
}

impl TokenSource {
    /// `<header>: Bearer <token>`; the scheme is matched case-insensitively (RFC 7235 §2.1).
    pub fn bearer(header: HeaderName) -> Self {
        TokenSource {
            kind: Kind::Header {
                header,
                scheme: Some("Bearer"),
            },
        }
    }

    /// `Authorization: Bearer <token>` (RFC 6750 §2.1), the user slot's default.
    pub fn authorization() -> Self {
        Self::bearer(http::header::AUTHORIZATION)
    }

    /// `Service-Authorization: Bearer <token>`, the service slot's default.
    pub fn service_authorization() -> Self {
        Self::bearer(HeaderName::from_static("service-authorization"))
    }

    /// The whole header value is the token, without a scheme.
    pub fn raw_header(header: HeaderName) -> Self {
        TokenSource {
            kind: Kind::Header {
                header,
                scheme: None,
            },
        }
    }

    /// The cookie `name` (browsers). The same cookie twice (a second one
    /// set for a parent domain, say) is refused as ambiguous (400).
    ///
    /// # Security
    ///
    /// A cookie goes with every request the browser makes to the site,
    /// wherever it was started: pair it with `SameSite` cookies and a CSRF
    /// defence (tower-http, or a custom header the other origin cannot set).
    /// Name it with the `__Host-` prefix (`__Host-access_token`, set with
    /// `Secure`, `Path=/` and no `Domain`), so that a sibling subdomain
    /// cannot plant a second cookie of the same name, which this source
    /// refuses (400) rather than guess.
    pub fn cookie(name: impl Into<String>) -> Self {
        TokenSource {
            kind: Kind::Cookie(name.into().into_boxed_str()),
        }
    }

    /// The query parameter `name` (RFC 6750 §2.3's `access_token`), for
    /// WebSocket upgrades, which browsers send without headers.
    ///
    /// # Security
    ///
    /// URLs end up in access logs, proxies' logs, browser history and
    /// `Referer` headers: the token leaks there. Use short-lived tokens made
    /// for the upgrade only, and keep query strings out of the logs.
    pub fn insecure_query(name: impl Into<String>) -> Self {
        TokenSource {
            kind: Kind::Query(name.into().into_boxed_str()),
        }
    }

    /// The application's own extractor, named `name` (for `Debug`). The
    /// token it returns is still checked to be a well-formed `b64token`.
    pub fn custom(
        name: &'static str,
        extract: impl for<'r> Fn(&'r HeaderMap, &'r Uri) -> Result<Option<&'r str>, AuthError>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        TokenSource {
            kind: Kind::Custom(name, Arc::new(extract)),
        }
    }

    /// The header this source reads, when it reads one (cookies: `Cookie`).
    pub fn header_name(&self) -> Option<&HeaderName> {
        match &self.kind {
            Kind::Header { header, .. } => Some(header),
            Kind::Cookie(_) => Some(&http::header::COOKIE),
            Kind::Query(_) | Kind::Custom(..) => None,
        }
    }

    /// Whether two sources read the same credential (two slots must not).
    pub(crate) fn same_as(&self, other: &TokenSource) -> bool {
        match (&self.kind, &other.kind) {
            (Kind::Header { header: a, .. }, Kind::Header { header: b, .. }) => a == b,
            (Kind::Cookie(a), Kind::Cookie(b)) | (Kind::Query(a), Kind::Query(b)) => a == b,
            _ => false,
        }
    }

    /// Read the token from a request's `headers` and `uri`.
    ///
    /// `Ok(None)` when the credential is absent, or a header carries another
    /// auth scheme (for example `Basic`): this slot was given no bearer
    /// credential.
    ///
    /// # Errors
    ///
    /// `InvalidRequest` when the credential appears more than once or a
    /// header names the scheme without a token; `InvalidToken` when the
    /// token is not a well-formed `b64token` (RFC 6750 §2.1).
    pub fn extract<'r>(
        &self,
        headers: &'r HeaderMap,
        uri: &'r Uri,
    ) -> Result<Option<&'r str>, AuthError> {
        Ok(self
            .extract_with_scheme(headers, uri, false)?
            .map(|(token, _)| token))
    }

    /// As [`extract`](Self::extract), with the scheme the token came with;
    /// with `dpop`, a header source that takes `Bearer` also takes `DPoP`
    /// (RFC 9449 §7.1).
    pub(crate) fn extract_with_scheme<'r>(
        &self,
        headers: &'r HeaderMap,
        uri: &'r Uri,
        dpop: bool,
    ) -> Result<Option<(&'r str, Scheme)>, AuthError> {
        self.locate(headers, uri, dpop)?
            .map(|(raw, scheme)| checked(raw).map(|t| (t, scheme)))
            .transpose()
    }

    /// The credential's bytes (trimmed) and scheme, not yet checked as a
    /// `b64token` ([`checked`]): the layer looks them up in the
    /// verified-token cache first, where only checked tokens are.
    pub(crate) fn locate<'r>(
        &self,
        headers: &'r HeaderMap,
        uri: &'r Uri,
        dpop: bool,
    ) -> Result<Option<(&'r [u8], Scheme)>, AuthError> {
        let (raw, scheme) = match &self.kind {
            Kind::Header { header, scheme } => {
                match header_value(headers, header, *scheme, dpop)? {
                    Some((raw, scheme)) => (Some(raw), scheme),
                    None => (None, Scheme::Bearer),
                }
            }
            Kind::Cookie(name) => (cookie(headers, name)?, Scheme::Bearer),
            Kind::Query(name) => (query(uri, name)?, Scheme::Bearer),
            Kind::Custom(_, extract) => (extract(headers, uri)?.map(str::as_bytes), Scheme::Bearer),
        };
        Ok(raw.map(|raw| (raw.trim_ascii(), scheme)))
    }
}

/// The authentication scheme a token was presented with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `Bearer`, or a source without a scheme (cookie, query, raw header):
    /// a bearer token.
    Bearer,
    /// `DPoP` (RFC 9449 §7.1): the request must carry a proof.
    Dpop,
}

/// What the layer reads of a request besides its body.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "_aws-lc"), allow(dead_code))]
pub(crate) struct Head<'a> {
    pub(crate) method: &'a http::Method,
    pub(crate) uri: &'a Uri,
    pub(crate) headers: &'a HeaderMap,
    pub(crate) extensions: &'a http::Extensions,
}

impl<'a> Head<'a> {
    pub(crate) fn of<B>(req: &'a http::Request<B>) -> Self {
        Head {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            extensions: req.extensions(),
        }
    }

    /// The path the client sent: axum's `OriginalUri` when a router
    /// nested the service (it strips the prefix), else the URI's.
    #[cfg_attr(not(feature = "_aws-lc"), allow(dead_code))]
    pub(crate) fn original_path(&self) -> &'a str {
        #[cfg(feature = "axum")]
        if let Some(original) = self.extensions.get::<axum::extract::OriginalUri>() {
            return original.0.path();
        }
        self.uri.path()
    }
}

/// The bytes after the scheme of the one `header`.
fn header_value<'r>(
    headers: &'r HeaderMap,
    header: &HeaderName,
    scheme: Option<&'static str>,
    dpop: bool,
) -> Result<Option<(&'r [u8], Scheme)>, AuthError> {
    let mut values = headers.get_all(header).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::invalid_request("duplicate credentials"));
    }
    let bytes = value.as_bytes();
    let Some(scheme) = scheme else {
        return Ok(Some((bytes, Scheme::Bearer)));
    };
    let named = |name: &str| {
        let n = name.len();
        bytes.len() >= n
            && bytes[..n].eq_ignore_ascii_case(name.as_bytes())
            && bytes.get(n).is_none_or(|b| *b == b' ')
    };
    let (n, kind) = if named(scheme) {
        (scheme.len(), Scheme::Bearer)
    } else if dpop && named("DPoP") {
        (4, Scheme::Dpop)
    } else {
        // Another scheme (e.g. `Basic`): no bearer credential here.
        return Ok(None);
    };
    // RFC 6750 §3.1: a missing token after the scheme is a malformed request (400).
    let rest = bytes[n..].trim_ascii();
    if rest.is_empty() {
        return Err(AuthError::invalid_request("no token after the scheme"));
    }
    Ok(Some((rest, kind)))
}

/// The value of the one cookie `name`, over every `Cookie` header (HTTP/2
/// may split them), without quotes (RFC 6265 §4.1.1).
fn cookie<'r>(headers: &'r HeaderMap, name: &str) -> Result<Option<&'r [u8]>, AuthError> {
    let mut found = None;
    for header in headers.get_all(http::header::COOKIE) {
        for pair in header.as_bytes().split(|b| *b == b';') {
            let pair = pair.trim_ascii();
            let Some(eq) = pair.iter().position(|b| *b == b'=') else {
                continue;
            };
            if pair[..eq].trim_ascii() != name.as_bytes() {
                continue;
            }
            if found.is_some() {
                return Err(AuthError::invalid_request("duplicate credentials"));
            }
            let value = pair[eq + 1..].trim_ascii();
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            found = Some(value);
        }
    }
    Ok(found)
}

/// The value of the one query parameter `name`, as sent (a token needs no
/// percent-encoding; one that has it is malformed).
fn query<'r>(uri: &'r Uri, name: &str) -> Result<Option<&'r [u8]>, AuthError> {
    let mut found = None;
    for pair in uri.query().unwrap_or("").split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != name {
            continue;
        }
        if found.is_some() {
            return Err(AuthError::invalid_request("duplicate credentials"));
        }
        found = Some(value.as_bytes());
    }
    Ok(found)
}

/// A raw token, checked: RFC 6750 §2.1 `b64token`, else `invalid_token`.
pub(crate) fn checked(raw: &[u8]) -> Result<&str, AuthError> {
    // RFC 6750 §3.1: a malformed token is `invalid_token` (401).
    let malformed = || AuthError::invalid_token("malformed token");
    let token = raw.trim_ascii();
    // b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    // One pass; it also rules out anything that is not visible ASCII.
    let body_len = token.len() - token.iter().rev().take_while(|b| **b == b'=').count();
    if body_len == 0 || !is_b64token(&token[..body_len]) {
        return Err(malformed());
    }
    std::str::from_utf8(token).map_err(|_| malformed())
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Header { header, scheme } => f
                .debug_struct("TokenSource")
                .field("header", header)
                .field("scheme", scheme)
                .finish(),
            Kind::Cookie(name) => f.debug_struct("TokenSource").field("cookie", name).finish(),
            Kind::Query(name) => f.debug_struct("TokenSource").field("query", name).finish(),
            Kind::Custom(name, _) => f.debug_struct("TokenSource").field("custom", name).finish(),
        }
    }
}

/// Whether every byte is ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/".
/// Branch-free so that it vectorises: tokens are long and this runs per request.
fn is_b64token(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| {
        let alpha = (b | 0x20).wrapping_sub(b'a') < 26;
        let digit = b.wrapping_sub(b'0') < 10;
        let symbol =
            (b == b'-') | (b == b'.') | (b == b'_') | (b == b'~') | (b == b'+') | (b == b'/');
        ok & (alpha | digit | symbol)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn b64token_alphabet() {
        for b in 0..=255u8 {
            let want = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!(is_b64token(&[b]), want, "byte {b:#x}");
        }
    }

    #[test]
    fn extraction_table() {
        struct Case {
            name: &'static str,
            values: &'static [&'static [u8]],
            want: Result<Option<&'static str>, &'static str>,
        }
        let cases = [
            Case {
                name: "absent",
                values: &[],
                want: Ok(None),
            },
            Case {
                name: "bearer",
                values: &[b"Bearer a.b.c"],
                want: Ok(Some("a.b.c")),
            },
            Case {
                name: "lower case",
                values: &[b"bearer a.b.c"],
                want: Ok(Some("a.b.c")),
            },
            Case {
                name: "upper case",
                values: &[b"BEARER a.b.c"],
                want: Ok(Some("a.b.c")),
            },
            Case {
                name: "extra spaces",
                values: &[b"Bearer   a.b.c "],
                want: Ok(Some("a.b.c")),
            },
            Case {
                name: "basic is not ours",
                values: &[b"Basic dXNlcjpwYXNz"],
                want: Ok(None),
            },
            Case {
                name: "scheme only",
                values: &[b"Bearer"],
                want: Err("no token after the scheme"),
            },
            Case {
                name: "scheme and space",
                values: &[b"Bearer "],
                want: Err("no token after the scheme"),
            },
            Case {
                name: "two tokens",
                values: &[b"Bearer a b"],
                want: Err("malformed token"),
            },
            Case {
                name: "bad chars",
                values: &[b"Bearer a\"b"],
                want: Err("malformed token"),
            },
            Case {
                name: "padding only",
                values: &[b"Bearer ==="],
                want: Err("malformed token"),
            },
            Case {
                name: "non ascii",
                values: &[b"Bearer \xff\xfe"],
                want: Err("malformed token"),
            },
            Case {
                name: "duplicate",
                values: &[b"Bearer a.b.c", b"Bearer d.e.f"],
                want: Err("duplicate credentials"),
            },
        ];
        let source = TokenSource::authorization();
        for c in cases {
            let mut headers = HeaderMap::new();
            for v in c.values {
                headers.append("authorization", HeaderValue::from_bytes(v).unwrap());
            }
            let uri = Uri::from_static("/");
            let got = source.extract(&headers, &uri).map_err(|e| e.reason());
            assert_eq!(got, c.want, "{}", c.name);
        }
    }
}

#[cfg(test)]
mod more_sources {
    use http::{HeaderMap, HeaderValue, Uri};

    use super::TokenSource;

    fn with_cookies(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("cookie", HeaderValue::from_static(v));
        }
        headers
    }

    #[test]
    fn cookies() {
        let source = TokenSource::cookie("at");
        let uri = Uri::from_static("/");
        let get = |values: &[&'static str]| {
            let headers = with_cookies(values);
            source
                .extract(&headers, &uri)
                .map(|t| t.map(str::to_owned))
                .map_err(|e| e.reason())
        };
        assert_eq!(get(&["a=1; at=x.y.z; b=2"]), Ok(Some("x.y.z".into())));
        assert_eq!(get(&["at=\"x.y.z\""]), Ok(Some("x.y.z".into())));
        assert_eq!(
            get(&["a=1", "at=x.y.z"]),
            Ok(Some("x.y.z".into())),
            "split headers"
        );
        assert_eq!(get(&["bat=x.y.z"]), Ok(None), "another cookie's name");
        assert_eq!(get(&[]), Ok(None));
        assert_eq!(get(&["at=x; at=y"]), Err("duplicate credentials"));
        assert_eq!(get(&["at=x", "at=y"]), Err("duplicate credentials"));
        assert_eq!(get(&["at=a%20b"]), Err("malformed token"));
        assert_eq!(get(&["at="]), Err("malformed token"));
    }

    #[test]
    fn query_parameters() {
        let source = TokenSource::insecure_query("access_token");
        let headers = HeaderMap::new();
        let get = |uri: &'static str| {
            source
                .extract(&headers, &Uri::from_static(uri))
                .map(|t| t.map(str::to_owned))
                .map_err(|e| e.reason())
        };
        assert_eq!(get("/ws?access_token=x.y.z"), Ok(Some("x.y.z".into())));
        assert_eq!(
            get("/ws?a=1&access_token=x.y.z&b"),
            Ok(Some("x.y.z".into()))
        );
        assert_eq!(get("/ws"), Ok(None));
        assert_eq!(get("/ws?my_access_token=x"), Ok(None));
        assert_eq!(
            get("/ws?access_token=a&access_token=b"),
            Err("duplicate credentials")
        );
        assert_eq!(get("/ws?access_token=a%2Eb"), Err("malformed token"));
    }

    #[test]
    fn a_custom_extractor_is_still_checked() {
        let source = TokenSource::custom("x-token", |headers, _| {
            Ok(headers.get("x-token").and_then(|v| v.to_str().ok()))
        });
        let mut headers = HeaderMap::new();
        let uri = Uri::from_static("/");
        headers.insert("x-token", HeaderValue::from_static("a.b.c"));
        assert_eq!(source.extract(&headers, &uri).unwrap(), Some("a.b.c"));
        headers.insert("x-token", HeaderValue::from_static("a b"));
        assert!(source.extract(&headers, &uri).is_err());
        assert!(
            !source.same_as(&source.clone()),
            "custom sources never conflict"
        );
        assert!(TokenSource::cookie("a").same_as(&TokenSource::cookie("a")));
        assert!(!TokenSource::cookie("a").same_as(&TokenSource::cookie("b")));
    }
}
