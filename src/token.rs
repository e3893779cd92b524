//! Where raw tokens come from: a header, with or without an auth scheme.

use std::fmt;

use http::{HeaderMap, HeaderName};

use crate::AuthError;

/// Where a slot reads its token from.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use tower_mandate::server::TokenSource;
///
/// let source = TokenSource::authorization();
/// let mut headers = HeaderMap::new();
/// headers.insert("authorization", HeaderValue::from_static("bearer abc.def.ghi"));
/// assert_eq!(source.extract(&headers).unwrap(), Some("abc.def.ghi"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSource {
    header: HeaderName,
    scheme: Option<&'static str>,
}

impl TokenSource {
    /// `<header>: Bearer <token>`; the scheme is matched case-insensitively (RFC 7235 §2.1).
    pub fn bearer(header: HeaderName) -> Self {
        TokenSource {
            header,
            scheme: Some("Bearer"),
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
            header,
            scheme: None,
        }
    }

    /// The header this source reads.
    pub fn header_name(&self) -> &HeaderName {
        &self.header
    }

    /// Read the token from `headers`.
    ///
    /// `Ok(None)` when the header is absent, or carries another auth scheme
    /// (for example `Basic`): this slot was given no bearer credential.
    ///
    /// # Errors
    ///
    /// `InvalidRequest` when the header appears more than once or names the
    /// scheme without a token; `InvalidToken` when the token is not a
    /// well-formed `b64token` (RFC 6750 §2.1).
    pub fn extract<'h>(&self, headers: &'h HeaderMap) -> Result<Option<&'h str>, AuthError> {
        let mut values = headers.get_all(&self.header).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(AuthError::invalid_request("duplicate credentials"));
        }
        // RFC 6750 §3.1: a malformed token is `invalid_token` (401); a
        // missing one after the scheme is a malformed request (400).
        let malformed = || AuthError::invalid_token("malformed token");
        let bytes = value.as_bytes();
        let rest = match self.scheme {
            None => bytes,
            Some(scheme) => {
                let n = scheme.len();
                let named = bytes.len() >= n && bytes[..n].eq_ignore_ascii_case(scheme.as_bytes());
                if !named || bytes.get(n).is_some_and(|b| *b != b' ') {
                    // Another scheme (e.g. `Basic`): no bearer credential here.
                    return Ok(None);
                }
                &bytes[n..]
            }
        };
        let token = rest.trim_ascii();
        // RFC 6750 §2.1 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
        // One pass; it also rules out anything that is not visible ASCII.
        if token.is_empty() {
            return Err(AuthError::invalid_request("no token after the scheme"));
        }
        let body_len = token.len() - token.iter().rev().take_while(|b| **b == b'=').count();
        if body_len == 0 || !is_b64token(&token[..body_len]) {
            return Err(malformed());
        }
        let token = std::str::from_utf8(token).map_err(|_| malformed())?;
        Ok(Some(token))
    }
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("header", &self.header)
            .field("scheme", &self.scheme)
            .finish()
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
            let got = source.extract(&headers).map_err(|e| e.reason());
            assert_eq!(got, c.want, "{}", c.name);
        }
    }
}
