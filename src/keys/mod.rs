//! Verification keys: PEM, JWK, JWKS documents and HMAC secrets, parsed once.
//!
//! The JWK and DER readers are the crate's own: a key is parsed once into
//! the backend's verifying form (aws-lc-rs `ParsedPublicKey` per allowed
//! algorithm), and the JWK rules (`alg`, `use`, `key_ops`, key type, RSA
//! size) are checked while reading, which `jsonwebtoken::jwk` does not do;
//! a request then pays only for the signature (BENCHMARKS.md: RS256 at
//! 0.80× `jsonwebtoken::decode`, whose `DecodingKey` re-parses the key
//! material on every verification).
//!
//! A [`KeySet`] is built when the layer is configured. Every key in it knows
//! which algorithms it may verify: the intersection of what its key type
//! allows, what its JWK `alg` names, and what its `use` / `key_ops` permit.
//! A single key that breaks a rule is a [`ConfigError`]; inside a JWKS
//! document such a key is skipped with a warning, since real documents mix
//! signing, encryption and legacy keys.
//!
//! ```
//! use tower_mandate::keys::KeySet;
//!
//! let jwks = r#"{"keys":[
//!   {"kty":"OKP","crv":"Ed25519","kid":"k1","alg":"EdDSA","use":"sig",
//!    "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
//!   {"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}
//! ]}"#;
//! let keys = KeySet::from_jwks(jwks)?;
//! assert_eq!(keys.len(), 1); // the encryption key was skipped
//! # Ok::<(), tower_mandate::ConfigError>(())
//! ```

mod algorithm;
mod backend;
mod jwk;
#[cfg(feature = "jwks")]
mod jwks;
mod pem;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use algorithm::Algorithm;
pub(crate) use algorithm::{AlgSet, Family};
use jwk::Jwk;
pub(crate) use jwk::parse_jwks_document;
#[cfg(feature = "_aws-lc")]
pub(crate) use jwk::proof_key;
#[cfg(feature = "jwks")]
pub use jwks::{JwksBuilder, JwksSource, JwksStats};
#[cfg(feature = "jwks")]
pub(crate) use jwks::{KeyWait, Lookup};
use pem::pem_material;

use crate::ConfigError;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const MIN_RSA_BITS: usize = 2048;

/// Public key material, normalised.
// Without a backend nothing reads the material: loading fails with a ConfigError.
#[cfg_attr(
    not(any(feature = "aws-lc-rs", feature = "rust-crypto")),
    allow(dead_code)
)]
pub(crate) enum Material {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { curve: Family, point: Vec<u8> },
    Ed25519 { x: Vec<u8> },
    Hmac { secret: Vec<u8> },
}

impl Material {
    fn family_algs(&self) -> AlgSet {
        match self {
            Material::Rsa { .. } => AlgSet::of(
                Algorithm::ALL
                    .into_iter()
                    .filter(|a| a.family() == Family::Rsa),
            ),
            Material::Ec { curve, .. } => {
                AlgSet::of(Algorithm::ALL.into_iter().filter(|a| a.family() == *curve))
            }
            Material::Ed25519 { .. } => AlgSet::of([Algorithm::EdDSA]),
            // RFC 7518 §3.2: the key must be at least as long as the hash output.
            Material::Hmac { secret } => AlgSet::of(
                [
                    (Algorithm::HS256, 32),
                    (Algorithm::HS384, 48),
                    (Algorithm::HS512, 64),
                ]
                .into_iter()
                .filter(|(_, min)| secret.len() >= *min)
                .map(|(a, _)| a),
            ),
        }
    }

    fn check_strength(&self) -> Result<(), String> {
        match self {
            Material::Rsa { n, .. } => {
                let bits = bit_len(n);
                if bits < MIN_RSA_BITS {
                    return Err(format!(
                        "RSA key of {bits} bits; at least {MIN_RSA_BITS} required"
                    ));
                }
            }
            Material::Hmac { secret } if secret.len() < 32 => {
                return Err(format!(
                    "HMAC secret of {} bytes; at least 32 required",
                    secret.len()
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

fn bit_len(n: &[u8]) -> usize {
    let n = strip_zeros(n);
    match n.first() {
        None => 0,
        Some(first) => (n.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

fn strip_zeros(n: &[u8]) -> &[u8] {
    let start = n.iter().position(|b| *b != 0).unwrap_or(n.len());
    &n[start..]
}

static NEXT_KEY_ID: AtomicU64 = AtomicU64::new(1);

/// One parsed verification key.
pub(crate) struct VerifyingKey {
    /// Unique per parsed key in this process: lets the verified-token cache
    /// drop entries whose key left the key set.
    pub(crate) id: u64,
    pub(crate) kid: Option<Box<str>>,
    pub(crate) algs: AlgSet,
    verifiers: backend::Verifiers,
}

impl VerifyingKey {
    fn new(kid: Option<String>, material: Material, algs: AlgSet) -> Result<Self, String> {
        material.check_strength()?;
        let algs = algs.intersect(material.family_algs());
        if algs.is_empty() {
            return Err("the key cannot verify any supported algorithm".into());
        }
        let verifiers = backend::Verifiers::new(&material, algs)?;
        Ok(VerifyingKey {
            id: NEXT_KEY_ID.fetch_add(1, Ordering::Relaxed),
            kid: kid.map(String::into_boxed_str),
            algs,
            verifiers,
        })
    }

    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature_b64: &str) -> bool {
        self.algs.contains(alg) && self.verifiers.verify(alg, message, signature_b64)
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algs", &self.algs)
            .field("material", &"<redacted>")
            .finish()
    }
}

/// Why no key could be chosen for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyMiss {
    /// No key has the token's `kid`.
    UnknownKid,
    /// A key has the `kid`, but may not verify the token's `alg`.
    WrongAlgorithm,
    /// No `kid`, and zero or several keys could verify the `alg`.
    Ambiguous,
}

/// An immutable set of parsed verification keys.
///
/// Cloning is cheap (the keys are shared). `Debug` never prints key material.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Arc<[Arc<VerifyingKey>]>,
}

fn invalid_key(kid: Option<&str>, reason: impl Into<String>) -> ConfigError {
    ConfigError::InvalidKey {
        kid: kid.map(str::to_owned),
        reason: reason.into(),
    }
}

impl KeySet {
    /// An empty key set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parse a JWKS document (RFC 7517 §5).
    ///
    /// Keys that cannot be used for verification (encryption keys, unknown
    /// types, RSA under 2048 bits, an `alg` that disagrees with the key type,
    /// private key material) are skipped with a `tracing` warning and never
    /// used.
    ///
    /// # Errors
    ///
    /// When the document is not a JSON object with a `keys` array, or when it
    /// holds no usable key.
    pub fn from_jwks(json: &str) -> Result<Self, ConfigError> {
        let keys = parse_jwks_document(json, true)?;
        if keys.is_empty() {
            return Err(ConfigError::InvalidJwks("no usable signing key".into()));
        }
        Ok(keys)
    }

    /// Read and parse a JWKS document from a file; see [`KeySet::from_jwks`].
    ///
    /// # Errors
    ///
    /// When the file cannot be read or the document is unusable.
    pub fn from_jwks_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let json = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_jwks(&json)
    }

    /// Add one JWK (a JSON object).
    ///
    /// # Errors
    ///
    /// Unlike inside a JWKS document, a key that breaks a rule is an error here.
    pub fn add_jwk(self, json: &str) -> Result<Self, ConfigError> {
        let jwk: Jwk = serde_json::from_str(json).map_err(|e| invalid_key(None, e.to_string()))?;
        let kid = jwk.kid.clone();
        let key = jwk
            .into_key()
            .map_err(|reason| invalid_key(kid.as_deref(), reason))?;
        Ok(self.push(key))
    }

    /// Add a public key in PEM form (RSA, EC P-256/P-384 or Ed25519;
    /// `PUBLIC KEY` or `RSA PUBLIC KEY`).
    ///
    /// # Errors
    ///
    /// When the PEM is not a supported public key, or is too weak.
    pub fn add_pem(self, kid: Option<&str>, pem: impl AsRef<[u8]>) -> Result<Self, ConfigError> {
        let material = pem_material(pem.as_ref()).map_err(|r| invalid_key(kid, r))?;
        let key = VerifyingKey::new(kid.map(str::to_owned), material, AlgSet::of(Algorithm::ALL))
            .map_err(|r| invalid_key(kid, r))?;
        Ok(self.push(key))
    }

    /// Add a PEM key that may verify only `alg`.
    ///
    /// # Errors
    ///
    /// As [`KeySet::add_pem`], and when the key type cannot verify `alg`.
    pub fn add_pem_for(
        self,
        kid: Option<&str>,
        alg: Algorithm,
        pem: impl AsRef<[u8]>,
    ) -> Result<Self, ConfigError> {
        let material = pem_material(pem.as_ref()).map_err(|r| invalid_key(kid, r))?;
        let key = VerifyingKey::new(kid.map(str::to_owned), material, AlgSet::of([alg]))
            .map_err(|r| invalid_key(kid, r))?;
        Ok(self.push(key))
    }

    /// Add an HMAC secret (at least 32 bytes; HS384 needs 48, HS512 64).
    ///
    /// # Security
    ///
    /// Anyone holding the secret can mint tokens. Prefer asymmetric keys
    /// between services; HMAC algorithms must also be allowed explicitly on
    /// the issuer.
    ///
    /// # Errors
    ///
    /// When the secret is shorter than 32 bytes.
    pub fn add_hmac_secret(
        self,
        kid: Option<&str>,
        secret: impl AsRef<[u8]>,
    ) -> Result<Self, ConfigError> {
        let material = Material::Hmac {
            secret: secret.as_ref().to_vec(),
        };
        let key = VerifyingKey::new(kid.map(str::to_owned), material, AlgSet::of(Algorithm::ALL))
            .map_err(|r| invalid_key(kid, r))?;
        Ok(self.push(key))
    }

    fn push(self, key: VerifyingKey) -> Self {
        let mut keys: Vec<_> = self.keys.iter().cloned().collect();
        keys.push(Arc::new(key));
        KeySet { keys: keys.into() }
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key ids in the set (keys without `kid` are not listed).
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().filter_map(|k| k.kid.as_deref())
    }

    pub(crate) fn contains_key_id(&self, id: u64) -> bool {
        self.keys.iter().any(|k| k.id == id)
    }

    pub(crate) fn algorithms(&self) -> AlgSet {
        AlgSet::of(self.keys.iter().flat_map(|k| k.algs.iter()))
    }

    /// Choose the key for a token: by `kid` when it has one; without `kid`,
    /// only when exactly one key may verify `alg`.
    pub(crate) fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<&Arc<VerifyingKey>, KeyMiss> {
        match kid {
            Some(kid) => {
                let mut seen = false;
                for key in self.keys.iter().filter(|k| k.kid.as_deref() == Some(kid)) {
                    seen = true;
                    if key.algs.contains(alg) {
                        return Ok(key);
                    }
                }
                Err(if seen {
                    KeyMiss::WrongAlgorithm
                } else {
                    KeyMiss::UnknownKid
                })
            }
            None => {
                let mut fitting = self.keys.iter().filter(|k| k.algs.contains(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Ok(key),
                    _ => Err(KeyMiss::Ambiguous),
                }
            }
        }
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.keys.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn rsa_jwk(bits: usize, extra: &str) -> String {
        // A modulus of the requested size; primality does not matter for parsing rules.
        let mut n = vec![0xffu8; bits / 8];
        n[bits / 8 - 1] = 0xf1;
        format!(
            r#"{{"kty":"RSA","kid":"r","n":"{}","e":"AQAB"{extra}}}"#,
            B64.encode(n)
        )
    }

    #[test]
    fn single_jwk_rules() {
        struct Case {
            name: &'static str,
            jwk: String,
            ok: bool,
        }
        let ed = |extra: &str| {
            format!(r#"{{"kty":"OKP","crv":"Ed25519","kid":"e","x":"{ED_X}"{extra}}}"#)
        };
        let cases = [
            Case {
                name: "plain ed25519",
                jwk: ed(""),
                ok: true,
            },
            Case {
                name: "use sig",
                jwk: ed(r#","use":"sig""#),
                ok: true,
            },
            Case {
                name: "use enc",
                jwk: ed(r#","use":"enc""#),
                ok: false,
            },
            Case {
                name: "key_ops verify",
                jwk: ed(r#","key_ops":["verify"]"#),
                ok: true,
            },
            Case {
                name: "key_ops encrypt",
                jwk: ed(r#","key_ops":["encrypt"]"#),
                ok: false,
            },
            Case {
                name: "alg matches",
                jwk: ed(r#","alg":"EdDSA""#),
                ok: true,
            },
            Case {
                name: "alg of other type",
                jwk: ed(r#","alg":"RS256""#),
                ok: false,
            },
            Case {
                name: "alg none",
                jwk: ed(r#","alg":"none""#),
                ok: false,
            },
            Case {
                name: "alg wrong type",
                jwk: ed(r#","alg":7"#),
                ok: false,
            },
            Case {
                name: "private part",
                jwk: ed(r#","d":"AAAA""#),
                ok: false,
            },
            Case {
                name: "rsa 1024",
                jwk: rsa_jwk(1024, ""),
                ok: false,
            },
            Case {
                name: "rsa 2048",
                jwk: rsa_jwk(2048, ""),
                ok: true,
            },
            Case {
                name: "rsa 2048 with ES256",
                jwk: rsa_jwk(2048, r#","alg":"ES256""#),
                ok: false,
            },
            Case {
                name: "short hmac",
                jwk: format!(r#"{{"kty":"oct","k":"{}"}}"#, B64.encode([7u8; 16])),
                ok: false,
            },
            Case {
                name: "hmac 32",
                jwk: format!(r#"{{"kty":"oct","k":"{}"}}"#, B64.encode([7u8; 32])),
                ok: true,
            },
            Case {
                name: "ec wrong length",
                jwk: r#"{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ"}"#.into(),
                ok: false,
            },
            Case {
                name: "unknown kty",
                jwk: r#"{"kty":"XYZ"}"#.into(),
                ok: false,
            },
            Case {
                name: "padded base64",
                jwk: format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED_X}="}}"#),
                ok: false,
            },
        ];
        for case in cases {
            let result = KeySet::new().add_jwk(&case.jwk);
            assert_eq!(result.is_ok(), case.ok, "{}: {:?}", case.name, result.err());
        }
    }

    #[test]
    fn jwks_skips_bad_keys() {
        let doc = format!(
            r#"{{"keys":[{},{},{{"kty":"OKP","crv":"Ed25519","kid":"good","x":"{ED_X}"}},{{"kty":"OKP","crv":"Ed25519","kid":"enc","use":"enc","x":"{ED_X}"}}]}}"#,
            rsa_jwk(1024, ""),
            r#"{"kty":"EC","crv":"P-521"}"#
        );
        let keys = KeySet::from_jwks(&doc).unwrap();
        assert_eq!(keys.kids().collect::<Vec<_>>(), ["good"]);
        assert!(KeySet::from_jwks(r#"{"keys":[]}"#).is_err());
        assert!(KeySet::from_jwks(r#"{"keys":{}}"#).is_err());
        assert!(KeySet::from_jwks("[]").is_err());
    }

    #[test]
    fn selection_by_kid_and_alg() {
        let keys = KeySet::new()
            .add_jwk(&format!(
                r#"{{"kty":"OKP","crv":"Ed25519","kid":"a","x":"{ED_X}"}}"#
            ))
            .unwrap();
        assert!(keys.select(Some("a"), Algorithm::EdDSA).is_ok());
        assert_eq!(
            keys.select(Some("a"), Algorithm::RS256).err(),
            Some(KeyMiss::WrongAlgorithm)
        );
        assert_eq!(
            keys.select(Some("b"), Algorithm::EdDSA).err(),
            Some(KeyMiss::UnknownKid)
        );
        assert!(
            keys.select(None, Algorithm::EdDSA).is_ok(),
            "one fitting key"
        );
        let two = keys
            .add_jwk(&format!(
                r#"{{"kty":"OKP","crv":"Ed25519","kid":"b","x":"{ED_X}"}}"#
            ))
            .unwrap();
        assert_eq!(
            two.select(None, Algorithm::EdDSA).err(),
            Some(KeyMiss::Ambiguous)
        );
    }

    #[test]
    fn debug_is_redacted() {
        let keys = KeySet::new().add_hmac_secret(Some("h"), [9u8; 32]).unwrap();
        let text = format!("{keys:?}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(!text.contains("9, 9"), "{text}");
    }
}
