//! The `cnf` claim (RFC 7800 §3.1) of a verified token: the key (RFC 9449
//! §6.1, `jkt`) or the client certificate (RFC 8705 §3.1, `x5t#S256`) the
//! token is bound to.

use serde_json::Value;

/// The start of the reason for a `cnf` this crate cannot check.
pub(crate) const UNSUPPORTED_BINDING: &str = "unsupported token binding";

/// What a token is bound to: its `cnf` claim. A token with a confirmation
/// is accepted only with its proof — a DPoP proof signed by the key with
/// thumbprint [`dpop_jkt`](Self::dpop_jkt), a TLS client certificate with
/// thumbprint [`certificate_thumbprint`](Self::certificate_thumbprint) —
/// never as a bearer token.
///
/// A `cnf` with any other confirmation method (`jwk`, `jwe`, `kid`, `jku`:
/// RFC 7800 proof-of-possession keys this crate cannot check) refuses the
/// token: a bound token must not be accepted as a bearer token because its
/// binding is not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    jkt: Option<Box<str>>,
    x5t_s256: Option<Box<str>>,
}

impl Confirmation {
    /// The RFC 7638 SHA-256 thumbprint of the DPoP key (`cnf.jkt`), base64url.
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.jkt.as_deref()
    }

    /// The SHA-256 thumbprint of the client certificate (`cnf["x5t#S256"]`),
    /// base64url of the DER certificate's digest.
    pub fn certificate_thumbprint(&self) -> Option<&str> {
        self.x5t_s256.as_deref()
    }

    /// Read a `cnf` claim value.
    pub(crate) fn from_claim(value: &Value) -> Result<Confirmation, String> {
        let Value::Object(members) = value else {
            return Err("cnf is not an object".into());
        };
        let mut confirmation = Confirmation {
            jkt: None,
            x5t_s256: None,
        };
        for (name, value) in members {
            let slot = match name.as_str() {
                "jkt" => &mut confirmation.jkt,
                "x5t#S256" => &mut confirmation.x5t_s256,
                _ => return Err(format!("{UNSUPPORTED_BINDING}: cnf member {name:?}")),
            };
            // A SHA-256 digest in base64url is 43 characters.
            match value.as_str() {
                Some(s) if s.len() == 43 && s.bytes().all(is_b64url) => {
                    *slot = Some(s.into());
                }
                _ => {
                    return Err(format!(
                        "{UNSUPPORTED_BINDING}: cnf {name:?} is not a SHA-256 thumbprint"
                    ));
                }
            }
        }
        if confirmation.jkt.is_none() && confirmation.x5t_s256.is_none() {
            return Err(format!("{UNSUPPORTED_BINDING}: empty cnf"));
        }
        Ok(confirmation)
    }
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_jkt_and_x5t() {
        let t = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
        let c = Confirmation::from_claim(&json!({ "jkt": t })).unwrap();
        assert_eq!(c.dpop_jkt(), Some(t));
        assert_eq!(c.certificate_thumbprint(), None);
        let c = Confirmation::from_claim(&json!({ "x5t#S256": t, "jkt": t })).unwrap();
        assert_eq!(c.certificate_thumbprint(), Some(t));
    }

    #[test]
    fn refuses_what_it_cannot_check() {
        let t = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
        for cnf in [
            json!({}),
            json!("x"),
            json!({ "jwk": { "kty": "EC" } }),
            json!({ "kid": "k1" }),
            json!({ "jkt": t, "jku": "https://x" }),
            json!({ "jkt": "short" }),
            json!({ "jkt": 1 }),
            json!({ "x5t#S256": format!("{t}=") }),
        ] {
            let e = Confirmation::from_claim(&cnf).unwrap_err();
            assert!(
                e.starts_with(UNSUPPORTED_BINDING) || e.contains("not an object"),
                "{cnf}: {e}"
            );
        }
    }
}
