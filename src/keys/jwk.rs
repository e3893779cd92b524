//! JWKs and JWKS documents (RFC 7517, RFC 7518 §6), read into verifying
//! keys with the JWK rules checked while reading.

use base64::Engine as _;
use serde::Deserialize;

use std::sync::Arc;

use super::{AlgSet, Algorithm, B64, Family, KeySet, Material, VerifyingKey, strip_zeros};
use crate::ConfigError;

/// The members of a JWK (RFC 7517 §4, RFC 7518 §6) that matter for verification.
/// Every member is typed: a member of the wrong JSON type refuses the key.
#[derive(Deserialize)]
pub(super) struct Jwk {
    kty: String,
    #[serde(default)]
    pub(super) kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    k: Option<String>,
    #[serde(default)]
    d: Option<serde::de::IgnoredAny>,
}

fn b64_field(name: &str, value: Option<&String>) -> Result<Vec<u8>, String> {
    let value = value.ok_or_else(|| format!("missing member {name:?}"))?;
    B64.decode(value)
        .map_err(|_| format!("member {name:?} is not unpadded base64url"))
}

impl Jwk {
    pub(super) fn into_key(self) -> Result<VerifyingKey, String> {
        if self.d.is_some() && self.kty != "oct" {
            return Err("the JWK holds private key material".into());
        }
        if let Some(u) = &self.use_
            && u != "sig"
        {
            return Err(format!("\"use\" is {u:?}, not \"sig\""));
        }
        if let Some(ops) = &self.key_ops
            && !ops.iter().any(|op| op == "verify")
        {
            return Err("\"key_ops\" does not contain \"verify\"".into());
        }
        let algs = match &self.alg {
            Some(name) => AlgSet::of([Algorithm::from_header(name).ok_or_else(|| {
                format!("\"alg\" {name:?} is not a supported signature algorithm")
            })?]),
            None => AlgSet::of(Algorithm::ALL),
        };
        let material = match self.kty.as_str() {
            "RSA" => {
                let n = b64_field("n", self.n.as_ref())?;
                let e = b64_field("e", self.e.as_ref())?;
                Material::Rsa {
                    n: strip_zeros(&n).to_vec(),
                    e: strip_zeros(&e).to_vec(),
                }
            }
            "EC" => {
                let (curve, len) = match self.crv.as_deref() {
                    Some("P-256") => (Family::EcP256, 32),
                    Some("P-384") => (Family::EcP384, 48),
                    other => return Err(format!("unsupported EC curve {other:?}")),
                };
                let x = b64_field("x", self.x.as_ref())?;
                let y = b64_field("y", self.y.as_ref())?;
                if x.len() != len || y.len() != len {
                    return Err("EC coordinates have the wrong length".into());
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Material::Ec { curve, point }
            }
            "OKP" => match self.crv.as_deref() {
                Some("Ed25519") => {
                    let x = b64_field("x", self.x.as_ref())?;
                    if x.len() != 32 {
                        return Err("Ed25519 key is not 32 bytes".into());
                    }
                    Material::Ed25519 { x }
                }
                other => return Err(format!("unsupported OKP curve {other:?}")),
            },
            "oct" => Material::Hmac {
                secret: b64_field("k", self.k.as_ref())?,
            },
            other => return Err(format!("unsupported key type {other:?}")),
        };
        VerifyingKey::new(self.kid, material, algs)
    }
}

/// Parse a JWKS document, skipping unusable keys with a warning. Secrets
/// (`oct` keys) are refused in documents fetched from the network.
pub(crate) fn parse_jwks_document(json: &str, allow_secrets: bool) -> Result<KeySet, ConfigError> {
    #[derive(Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let doc: Doc =
        serde_json::from_str(json).map_err(|e| ConfigError::InvalidJwks(e.to_string()))?;
    let mut keys = Vec::with_capacity(doc.keys.len());
    for (index, value) in doc.keys.into_iter().enumerate() {
        let kid = value.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
        let result = serde_json::from_value::<Jwk>(value)
            .map_err(|e| e.to_string())
            .and_then(|jwk| {
                if jwk.kty == "oct" && !allow_secrets {
                    Err("a secret key in a published JWKS document".to_owned())
                } else {
                    jwk.into_key()
                }
            });
        match result {
            Ok(key) => keys.push(Arc::new(key)),
            Err(reason) => tracing::warn!(
                target: "tower_mandate::keys",
                index,
                kid = kid.as_deref().unwrap_or(""),
                %reason,
                "skipping unusable key in JWKS document"
            ),
        }
    }
    Ok(KeySet { keys: keys.into() })
}

/// The members of a JWK that only a private (or secret) key has.
#[cfg(feature = "_aws-lc")]
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The public key a DPoP proof carries in its `jwk` header (RFC 9449 §4.2),
/// for `alg` only: no private members, an asymmetric key type.
#[cfg(feature = "_aws-lc")]
pub(crate) fn proof_key(
    jwk: &serde_json::Value,
    alg: Algorithm,
) -> Result<VerifyingKey, &'static str> {
    let members = jwk.as_object().ok_or("the proof's jwk is not an object")?;
    if PRIVATE_MEMBERS.iter().any(|m| members.contains_key(*m)) {
        return Err("private key in the proof's jwk");
    }
    let jwk = Jwk::deserialize(jwk).map_err(|_| "malformed jwk in the proof")?;
    let key = jwk.into_key().map_err(|_| "unusable jwk in the proof")?;
    if key.algs.contains(alg) {
        Ok(key)
    } else {
        Err("the proof's jwk does not fit its alg")
    }
}
