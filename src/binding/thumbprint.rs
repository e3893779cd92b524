//! SHA-256 thumbprints: of a JWK (RFC 7638 §3), of a token (`ath`, RFC 9449
//! §4.2) and of a DER certificate (`x5t#S256`, RFC 8705 §3.1), base64url.

use base64::Engine as _;
use serde_json::{Map, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// base64url (no padding) of the SHA-256 of `data`.
pub(crate) fn sha256_b64(data: &[u8]) -> String {
    B64.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data))
}

/// The RFC 7638 thumbprint of a public JWK: the SHA-256 of its required
/// members, in lexicographic order, without whitespace.
pub(crate) fn jwk_thumbprint(jwk: &Map<String, Value>) -> Result<String, &'static str> {
    let member = |name: &str| -> Result<String, &'static str> {
        match jwk.get(name) {
            // A JSON string, escaped as serde_json writes it (RFC 7638 §3.3).
            Some(Value::String(s)) => Ok(serde_json::to_string(s).unwrap_or_default()),
            _ => Err("the proof's jwk lacks a required member"),
        }
    };
    let kty = match jwk.get("kty") {
        Some(Value::String(kty)) => kty.as_str(),
        _ => return Err("the proof's jwk has no kty"),
    };
    let canonical = match kty {
        "RSA" => format!(
            r#"{{"e":{},"kty":"RSA","n":{}}}"#,
            member("e")?,
            member("n")?
        ),
        "EC" => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            member("crv")?,
            member("x")?,
            member("y")?
        ),
        "OKP" => format!(
            r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
            member("crv")?,
            member("x")?
        ),
        _ => return Err("the proof's jwk has an unsupported kty"),
    };
    Ok(sha256_b64(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_7638_example() {
        // RFC 7638 §3.1.
        let jwk: Value = serde_json::from_str(
            r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .unwrap();
        assert_eq!(
            jwk_thumbprint(jwk.as_object().unwrap()).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn ath_is_sha256_of_the_token() {
        // RFC 9449 §7.1's example token and its `ath`.
        assert_eq!(
            sha256_b64(b"Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }
}
