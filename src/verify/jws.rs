//! Compact JWS parsing (RFC 7515 §7.1), strict: three base64url segments
//! without padding, a header whose members have the right types, no header
//! parameter the crate does not understand in `crit`, no key-bearing or
//! key-locating parameters, and a claims object without duplicate members.

use std::fmt;

use base64::Engine as _;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

use crate::AuthError;
use crate::keys::Algorithm;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The three segments of a compact JWS.
pub(crate) struct Compact<'a> {
    pub(crate) header: &'a str,
    pub(crate) payload: &'a str,
    pub(crate) signature: &'a str,
    /// `header.payload`, the JWS signing input.
    pub(crate) signing_input: &'a str,
}

pub(crate) fn split(token: &str) -> Result<Compact<'_>, AuthError> {
    let malformed = || AuthError::invalid_token("malformed token");
    let first = token.find('.').ok_or_else(malformed)?;
    let second = first + 1 + token[first + 1..].find('.').ok_or_else(malformed)?;
    let signature = &token[second + 1..];
    if signature.contains('.') {
        // Five segments is a JWE; more is garbage.
        return Err(malformed());
    }
    let header = &token[..first];
    let payload = &token[first + 1..second];
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        return Err(malformed());
    }
    Ok(Compact {
        header,
        payload,
        signature,
        signing_input: &token[..second],
    })
}

/// The protected header. Members of the wrong JSON type fail deserialisation.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    cty: Option<String>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
    #[serde(default)]
    jku: Option<IgnoredAny>,
    #[serde(default)]
    jwk: Option<IgnoredAny>,
    #[serde(default)]
    x5u: Option<IgnoredAny>,
    #[serde(default)]
    x5c: Option<IgnoredAny>,
    #[serde(default)]
    b64: Option<IgnoredAny>,
    #[serde(default)]
    zip: Option<IgnoredAny>,
    #[serde(default)]
    enc: Option<IgnoredAny>,
}

/// A checked header.
#[derive(Debug)]
pub(crate) struct Header {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    pub(crate) typ: Option<String>,
}

pub(crate) fn header(segment: &str) -> Result<Header, AuthError> {
    let bytes = B64
        .decode(segment)
        .map_err(|_| AuthError::invalid_token("malformed header"))?;
    // RFC 7515 §4: UTF-8 JSON. serde would skip unknown members without
    // checking them, and read a struct from a JSON array: refuse both.
    let text =
        std::str::from_utf8(&bytes).map_err(|_| AuthError::invalid_token("malformed header"))?;
    if !text.trim_start().starts_with('{') {
        return Err(AuthError::invalid_token("malformed header"));
    }
    let raw: RawHeader =
        serde_json::from_str(text).map_err(|_| AuthError::invalid_token("malformed header"))?;
    // RFC 8725 §3.1: only algorithms on the allow-list; `none` is never one.
    let alg = Algorithm::from_header(&raw.alg)
        .ok_or_else(|| AuthError::invalid_token("algorithm not allowed"))?;
    // RFC 7515 §4.1.11: a `crit` parameter the recipient does not understand
    // makes the JWS invalid; this crate understands none.
    if raw.crit.is_some() || raw.b64.is_some() {
        return Err(AuthError::invalid_token("unsupported critical header"));
    }
    // RFC 8725 §3.10 and CVE-2018-0114: never locate or take a key from the token itself.
    if raw.jku.is_some() || raw.jwk.is_some() || raw.x5u.is_some() || raw.x5c.is_some() {
        return Err(AuthError::invalid_token("key reference in header"));
    }
    if raw.zip.is_some() || raw.enc.is_some() {
        return Err(AuthError::invalid_token("encrypted or compressed token"));
    }
    if raw
        .cty
        .as_deref()
        .is_some_and(|c| c.eq_ignore_ascii_case("jwt"))
    {
        return Err(AuthError::invalid_token("nested token"));
    }
    Ok(Header {
        alg,
        kid: raw.kid,
        typ: raw.typ,
    })
}

/// A JSON object whose top-level members are unique (RFC 7519 §4: a
/// duplicate claim name must be rejected or handled consistently; this crate
/// rejects).
struct StrictObject(Map<String, Value>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<StrictObject, A::Error> {
                let mut map = Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    if map.contains_key(&key) {
                        return Err(de::Error::custom("duplicate member"));
                    }
                    let value: Value = access.next_value()?;
                    map.insert(key, value);
                }
                Ok(StrictObject(map))
            }
        }
        d.deserialize_map(V)
    }
}

pub(crate) fn claims(segment: &str) -> Result<Map<String, Value>, AuthError> {
    let bytes = B64
        .decode(segment)
        .map_err(|_| AuthError::invalid_token("malformed claims"))?;
    serde_json::from_slice::<StrictObject>(&bytes)
        .map(|o| o.0)
        .map_err(|_| AuthError::invalid_token("malformed claims"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        B64.encode(s)
    }

    #[test]
    fn split_table() {
        struct Case {
            name: &'static str,
            token: &'static str,
            ok: bool,
        }
        let cases = [
            Case {
                name: "three",
                token: "a.b.c",
                ok: true,
            },
            Case {
                name: "two",
                token: "a.b",
                ok: false,
            },
            Case {
                name: "empty signature",
                token: "a.b.",
                ok: false,
            },
            Case {
                name: "empty header",
                token: ".b.c",
                ok: false,
            },
            Case {
                name: "jwe",
                token: "a.b.c.d.e",
                ok: false,
            },
            Case {
                name: "four",
                token: "a.b.c.d",
                ok: false,
            },
            Case {
                name: "dots",
                token: "....",
                ok: false,
            },
            Case {
                name: "none",
                token: "abc",
                ok: false,
            },
        ];
        for c in cases {
            assert_eq!(split(c.token).is_ok(), c.ok, "{}", c.name);
        }
    }

    #[test]
    fn header_table() {
        struct Case {
            name: &'static str,
            json: &'static str,
            reason: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "plain",
                json: r#"{"alg":"RS256","kid":"k"}"#,
                reason: None,
            },
            Case {
                name: "typ",
                json: r#"{"alg":"ES256","typ":"at+jwt"}"#,
                reason: None,
            },
            Case {
                name: "x5t is fine",
                json: r#"{"alg":"RS256","x5t":"abc"}"#,
                reason: None,
            },
            Case {
                name: "none",
                json: r#"{"alg":"none"}"#,
                reason: Some("algorithm not allowed"),
            },
            Case {
                name: "None",
                json: r#"{"alg":"None"}"#,
                reason: Some("algorithm not allowed"),
            },
            Case {
                name: "NONE",
                json: r#"{"alg":"NONE"}"#,
                reason: Some("algorithm not allowed"),
            },
            Case {
                name: "alg number",
                json: r#"{"alg":256}"#,
                reason: Some("malformed header"),
            },
            Case {
                name: "no alg",
                json: r#"{"kid":"k"}"#,
                reason: Some("malformed header"),
            },
            Case {
                name: "kid number",
                json: r#"{"alg":"RS256","kid":5}"#,
                reason: Some("malformed header"),
            },
            Case {
                name: "dup alg",
                json: r#"{"alg":"RS256","alg":"HS256"}"#,
                reason: Some("malformed header"),
            },
            Case {
                name: "crit",
                json: r#"{"alg":"RS256","crit":["exp"]}"#,
                reason: Some("unsupported critical header"),
            },
            Case {
                name: "b64",
                json: r#"{"alg":"RS256","b64":false}"#,
                reason: Some("unsupported critical header"),
            },
            Case {
                name: "jku",
                json: r#"{"alg":"RS256","jku":"https://evil"}"#,
                reason: Some("key reference in header"),
            },
            Case {
                name: "jwk",
                json: r#"{"alg":"RS256","jwk":{}}"#,
                reason: Some("key reference in header"),
            },
            Case {
                name: "x5u",
                json: r#"{"alg":"RS256","x5u":"https://evil"}"#,
                reason: Some("key reference in header"),
            },
            Case {
                name: "x5c",
                json: r#"{"alg":"RS256","x5c":["MII"]}"#,
                reason: Some("key reference in header"),
            },
            Case {
                name: "zip",
                json: r#"{"alg":"RS256","zip":"DEF"}"#,
                reason: Some("encrypted or compressed token"),
            },
            Case {
                name: "cty jwt",
                json: r#"{"alg":"RS256","cty":"JWT"}"#,
                reason: Some("nested token"),
            },
            Case {
                name: "array",
                json: r#"["RS256"]"#,
                reason: Some("malformed header"),
            },
        ];
        for c in cases {
            let got = header(&b64(c.json)).err().map(|e| e.reason());
            assert_eq!(got, c.reason, "{}", c.name);
        }
        assert!(header("eyJhbGciOiJSUzI1NiJ9=").is_err(), "padding");
        assert!(header("!!!").is_err(), "not base64");
        assert!(
            header(&B64.encode(b"{\"alg\":\"RS256\",\"x\":\"\xff\"}")).is_err(),
            "invalid utf-8"
        );
    }

    #[test]
    fn claims_table() {
        assert!(claims(&b64(r#"{"sub":"a","exp":1}"#)).is_ok());
        assert!(
            claims(&b64(r#"{"sub":"a","sub":"b"}"#)).is_err(),
            "duplicate"
        );
        assert!(claims(&b64(r#"[1]"#)).is_err(), "array");
        assert!(claims(&b64(r#"{"a":1} x"#)).is_err(), "trailing");
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(
            claims(&b64(&format!(r#"{{"a":{deep}}}"#))).is_err(),
            "deep nesting"
        );
    }
}
