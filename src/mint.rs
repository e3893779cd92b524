//! Signing tokens and publishing the public keys (aws-lc-rs).
//!
//! A service that signs its own short-lived tokens (see
//! [`SelfSigned`](crate::provider::SelfSigned)) holds a [`SigningKey`] and
//! publishes [`SigningKey::jwk`] in a JWKS document for its peers.
//!
//! ```
//! use tower_mandate::{keys::Algorithm, mint::SigningKey};
//!
//! let key = SigningKey::generate(Algorithm::ES256, "relay-1");
//! let token = key.sign_claims(&serde_json::json!({"iss": "relay", "sub": "relay"}));
//! assert_eq!(token.split('.').count(), 3);
//! assert_eq!(key.jwk().unwrap()["kid"], "relay-1");
//! ```

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self as sig, KeyPair};
use aws_lc_rs::{hmac, rsa};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::{ConfigError, keys::Algorithm};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

enum Pair {
    Rsa(sig::RsaKeyPair),
    Ec(sig::EcdsaKeyPair),
    Ed(sig::Ed25519KeyPair),
    Hmac(Vec<u8>),
}

/// A private signing key with its `kid`, its algorithm and its public JWK.
///
/// `Debug` prints only the `kid` and algorithm.
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    pair: Pair,
}

impl SigningKey {
    /// Generate a key for `alg` (RSA keys are 2048 bits; HMAC secrets 64 random bytes).
    ///
    /// # Panics
    ///
    /// If the system random source fails.
    pub fn generate(alg: Algorithm, kid: impl Into<String>) -> Self {
        let pair = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => Pair::Rsa(
                sig::RsaKeyPair::generate(rsa::KeySize::Rsa2048).expect("generate RSA key"),
            ),
            Algorithm::ES256 => Pair::Ec(
                sig::EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING)
                    .expect("generate P-256 key"),
            ),
            Algorithm::ES384 => Pair::Ec(
                sig::EcdsaKeyPair::generate(&sig::ECDSA_P384_SHA384_FIXED_SIGNING)
                    .expect("generate P-384 key"),
            ),
            Algorithm::EdDSA => {
                Pair::Ed(sig::Ed25519KeyPair::generate().expect("generate Ed25519 key"))
            }
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let mut secret = vec![0u8; 64];
                SystemRandom::new().fill(&mut secret).expect("random");
                Pair::Hmac(secret)
            }
        };
        SigningKey {
            alg,
            kid: kid.into(),
            pair,
        }
    }

    /// An HMAC key from a given secret.
    pub fn hmac(alg: Algorithm, kid: impl Into<String>, secret: &[u8]) -> Self {
        assert!(alg.is_hmac(), "SigningKey::hmac needs an HMAC algorithm");
        SigningKey {
            alg,
            kid: kid.into(),
            pair: Pair::Hmac(secret.to_vec()),
        }
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    /// Whether this is a shared secret (an HMAC key), which has no public
    /// half and is never published.
    pub fn is_secret(&self) -> bool {
        matches!(self.pair, Pair::Hmac(_))
    }

    /// The shared secret of an HMAC key, for a verifier's
    /// [`KeySet::add_hmac_secret`](crate::keys::KeySet::add_hmac_secret).
    #[cfg(feature = "test-util")]
    pub(crate) fn secret(&self) -> Option<&[u8]> {
        match &self.pair {
            Pair::Hmac(secret) => Some(secret),
            _ => None,
        }
    }

    /// The public JWK; `None` for an HMAC key, whose secret must never be
    /// published.
    ///
    /// # Security
    ///
    /// A JWKS document is public: a secret in it lets anyone mint tokens.
    pub fn jwk(&self) -> Option<Value> {
        let mut jwk = match &self.pair {
            Pair::Rsa(pair) => {
                let c = sig::RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                json!({"kty": "RSA", "n": B64.encode(&c.n), "e": B64.encode(&c.e)})
            }
            Pair::Ec(pair) => {
                let point = pair.public_key().as_ref();
                let len = (point.len() - 1) / 2;
                let crv = if len == 32 { "P-256" } else { "P-384" };
                json!({
                    "kty": "EC", "crv": crv,
                    "x": B64.encode(&point[1..1 + len]),
                    "y": B64.encode(&point[1 + len..]),
                })
            }
            Pair::Ed(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(pair.public_key().as_ref())})
            }
            Pair::Hmac(_) => return None,
        };
        jwk["kid"] = json!(self.kid);
        jwk["alg"] = json!(self.alg.as_str());
        jwk["use"] = json!("sig");
        Some(jwk)
    }

    /// The public key as PEM (`PUBLIC KEY`, SubjectPublicKeyInfo).
    ///
    /// # Panics
    ///
    /// For HMAC keys, which have no public key.
    pub fn public_pem(&self) -> String {
        let der = match &self.pair {
            Pair::Rsa(pair) => pair.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Pair::Ec(pair) => pair.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Pair::Ed(pair) => pair.public_key().as_der().map(|d| d.as_ref().to_vec()),
            Pair::Hmac(_) => panic!("an HMAC key has no public key"),
        }
        .expect("encode public key");
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for line in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ascii"));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    /// Sign `header.payload` and return the base64url signature.
    pub fn sign_input(&self, input: &[u8]) -> String {
        let alg = self.alg;
        let rng = SystemRandom::new();
        let bytes = match &self.pair {
            Pair::Rsa(pair) => {
                let padding: &'static dyn sig::RsaEncoding = match alg {
                    Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &sig::RSA_PSS_SHA256,
                    Algorithm::PS384 => &sig::RSA_PSS_SHA384,
                    Algorithm::PS512 => &sig::RSA_PSS_SHA512,
                    _ => &sig::RSA_PKCS1_SHA256,
                };
                let mut out = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, input, &mut out).expect("RSA sign");
                out
            }
            Pair::Ec(pair) => pair
                .sign(&rng, input)
                .expect("ECDSA sign")
                .as_ref()
                .to_vec(),
            Pair::Ed(pair) => pair.sign(input).as_ref().to_vec(),
            Pair::Hmac(secret) => {
                let h = match alg {
                    Algorithm::HS384 => hmac::HMAC_SHA384,
                    Algorithm::HS512 => hmac::HMAC_SHA512,
                    _ => hmac::HMAC_SHA256,
                };
                hmac::sign(&hmac::Key::new(h, secret), input)
                    .as_ref()
                    .to_vec()
            }
        };
        B64.encode(bytes)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl SigningKey {
    /// A key from a PKCS#8 private key in PEM form (`PRIVATE KEY`).
    ///
    /// # Errors
    ///
    /// When the PEM is not a PKCS#8 key of the kind `alg` needs.
    pub fn from_pkcs8_pem(
        alg: Algorithm,
        kid: impl Into<String>,
        pem: &str,
    ) -> Result<Self, ConfigError> {
        let kid = kid.into();
        let invalid = |reason: &str| ConfigError::InvalidKey {
            kid: Some(kid.clone()),
            reason: reason.to_owned(),
        };
        let body: String = pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|_| invalid("not PEM"))?;
        let pair = match alg.family() {
            crate::keys::Family::Rsa => {
                Pair::Rsa(sig::RsaKeyPair::from_pkcs8(&der).map_err(|e| invalid(&e.to_string()))?)
            }
            crate::keys::Family::EcP256 => Pair::Ec(
                sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                    .map_err(|e| invalid(&e.to_string()))?,
            ),
            crate::keys::Family::EcP384 => Pair::Ec(
                sig::EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P384_SHA384_FIXED_SIGNING, &der)
                    .map_err(|e| invalid(&e.to_string()))?,
            ),
            crate::keys::Family::Ed25519 => Pair::Ed(
                sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
                    .map_err(|e| invalid(&e.to_string()))?,
            ),
            crate::keys::Family::Hmac => return Err(invalid("an HMAC key is not a PKCS#8 key")),
        };
        if let Pair::Rsa(p) = &pair
            && p.public_modulus_len() < 256
        {
            return Err(invalid("RSA keys under 2048 bits are refused"));
        }
        Ok(SigningKey { alg, kid, pair })
    }

    /// Sign `claims` into a compact JWS with header `{alg, typ: "JWT", kid}`.
    pub fn sign_claims(&self, claims: &Value) -> String {
        let header = json!({"alg": self.alg.as_str(), "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = self.sign_input(input.as_bytes());
        format!("{input}.{signature}")
    }

    /// A JWKS document holding this key's public JWK; for an HMAC key, a
    /// document without keys (a secret is never published).
    pub fn jwks(&self) -> String {
        json!({"keys": self.jwk().into_iter().collect::<Vec<_>>()}).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Issuer, Verifier, keys::KeySet};

    fn pem(der: &[u8]) -> String {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        )
    }

    #[test]
    fn pkcs8_keys_sign_tokens_the_verifier_accepts() {
        let rng = SystemRandom::new();
        let ec =
            sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ed = sig::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        for (alg, der) in [
            (Algorithm::ES256, ec.as_ref()),
            (Algorithm::EdDSA, ed.as_ref()),
        ] {
            let key = SigningKey::from_pkcs8_pem(alg, "k", &pem(der)).unwrap();
            let verifier = Verifier::new([
                Issuer::new("svc", "dest").with_keys(KeySet::from_jwks(&key.jwks()).unwrap())
            ])
            .unwrap();
            let token = key.sign_claims(&json!({
                "iss": "svc", "sub": "svc", "aud": "dest",
                "exp": crate::clock::unix_now() + 60,
            }));
            assert_eq!(verifier.verify(&token).unwrap().subject(), "svc", "{alg}");
        }
        assert!(SigningKey::from_pkcs8_pem(Algorithm::ES256, "k", "garbage").is_err());
        assert!(SigningKey::from_pkcs8_pem(Algorithm::RS256, "k", &pem(ec.as_ref())).is_err());
    }

    #[test]
    fn secrets_are_never_published() {
        let key = SigningKey::hmac(Algorithm::HS256, "h", &[0x42; 32]);
        assert!(key.is_secret());
        assert_eq!(key.jwk(), None);
        let doc: Value = serde_json::from_str(&key.jwks()).unwrap();
        assert_eq!(doc, json!({"keys": []}));
        let generated = SigningKey::generate(Algorithm::HS512, "g");
        assert!(!generated.jwks().contains("\"k\""), "{}", generated.jwks());
        let public = SigningKey::generate(Algorithm::ES256, "e");
        assert_eq!(public.jwk().unwrap()["kty"], "EC");
    }

    #[test]
    fn debug_is_redacted() {
        let key = SigningKey::generate(Algorithm::HS256, "h");
        assert!(format!("{key:?}").contains("<redacted>"));
    }
}
