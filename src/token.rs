//! Where raw tokens come from: a header, with or without an auth scheme.

use std::fmt;

use http::{HeaderMap, HeaderName};

use crate::AuthError;

/// Where a slot reads its token from.
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use tower_mandate::TokenSource;
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
    /// `InvalidRequest` when the header appears more than once, is not
    /// visible ASCII, or names the scheme without a well-formed token.
    pub fn extract<'h>(&self, headers: &'h HeaderMap) -> Result<Option<&'h str>, AuthError> {
        let mut values = headers.get_all(&self.header).iter();
        let Some(value) = values.next() else {
            return Ok(None);
        };
        if values.next().is_some() {
            return Err(AuthError::invalid_request("duplicate credentials"));
        }
        let value = value
            .to_str()
            .map_err(|_| AuthError::invalid_request("malformed credentials"))?;
        let token = match self.scheme {
            None => value.trim(),
            Some(scheme) => {
                let (name, rest) = value.split_once(' ').unwrap_or((value, ""));
                if !name.eq_ignore_ascii_case(scheme) {
                    return Ok(None);
                }
                rest.trim_matches(' ')
            }
        };
        // RFC 6750 §2.1 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
        let body = token.trim_end_matches('=');
        if body.is_empty()
            || !body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
        {
            return Err(AuthError::invalid_request("malformed credentials"));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

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
                want: Err("malformed credentials"),
            },
            Case {
                name: "scheme and space",
                values: &[b"Bearer "],
                want: Err("malformed credentials"),
            },
            Case {
                name: "two tokens",
                values: &[b"Bearer a b"],
                want: Err("malformed credentials"),
            },
            Case {
                name: "bad chars",
                values: &[b"Bearer a\"b"],
                want: Err("malformed credentials"),
            },
            Case {
                name: "non ascii",
                values: &[b"Bearer \xff\xfe"],
                want: Err("malformed credentials"),
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
