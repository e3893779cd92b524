//! Signature checks on keys parsed once.
//!
//! With the `aws-lc-rs` feature, each key is turned into aws-lc-rs parsed
//! keys (one per algorithm it may verify) when it is loaded, so a request pays
//! only for the signature. Without it, verification goes through
//! jsonwebtoken's RustCrypto provider (`rust-crypto`), called directly —
//! never through jsonwebtoken's process-wide default provider, which the
//! application owns. With neither feature, loading a key is a
//! configuration error.

use super::{AlgSet, Algorithm, Material};

#[cfg(feature = "aws-lc-rs")]
mod imp {
    use aws_lc_rs::{hmac, signature as sig};
    use base64::Engine as _;

    use super::{AlgSet, Algorithm, Material};

    enum One {
        Sig(sig::ParsedPublicKey),
        Hmac(Box<hmac::Key>),
    }

    pub(crate) struct Verifiers(Vec<(Algorithm, One)>);

    impl Verifiers {
        pub(crate) fn new(material: &Material, algs: AlgSet) -> Result<Self, String> {
            let mut out = Vec::new();
            for alg in algs.iter() {
                let one = match (material, alg) {
                    (Material::Rsa { n, e }, _) => {
                        let params: &'static sig::RsaParameters = match alg {
                            Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                            Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                            Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                            Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
                            Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
                            _ => &sig::RSA_PSS_2048_8192_SHA512,
                        };
                        let key = sig::RsaPublicKeyComponents { n, e }
                            .to_parsed_public_key(params)
                            .map_err(|e| format!("RSA key rejected: {e}"))?;
                        One::Sig(key)
                    }
                    (Material::Ec { point, .. }, Algorithm::ES256) => One::Sig(
                        sig::ParsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, point)
                            .map_err(|e| format!("EC key rejected: {e}"))?,
                    ),
                    (Material::Ec { point, .. }, _) => One::Sig(
                        sig::ParsedPublicKey::new(&sig::ECDSA_P384_SHA384_FIXED, point)
                            .map_err(|e| format!("EC key rejected: {e}"))?,
                    ),
                    (Material::Ed25519 { x }, _) => One::Sig(
                        sig::ParsedPublicKey::new(&sig::ED25519, x)
                            .map_err(|e| format!("Ed25519 key rejected: {e}"))?,
                    ),
                    (Material::Hmac { secret }, _) => {
                        let h = match alg {
                            Algorithm::HS256 => hmac::HMAC_SHA256,
                            Algorithm::HS384 => hmac::HMAC_SHA384,
                            _ => hmac::HMAC_SHA512,
                        };
                        One::Hmac(Box::new(hmac::Key::new(h, secret)))
                    }
                };
                out.push((alg, one));
            }
            Ok(Verifiers(out))
        }

        /// `signature_b64` is the third segment of the compact token.
        pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature_b64: &str) -> bool {
            let Some((_, one)) = self.0.iter().find(|(a, _)| *a == alg) else {
                return false;
            };
            // RSA-8192 signatures are 1024 bytes: the largest this crate accepts.
            let mut buf = [0u8; 1024];
            if signature_b64.len() > 1368 {
                return false;
            }
            let Ok(len) = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode_slice(signature_b64, &mut buf)
            else {
                return false;
            };
            let signature = &buf[..len];
            match one {
                One::Sig(key) => key.verify_sig(message, signature).is_ok(),
                One::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
            }
        }
    }
}

#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
mod imp {
    use base64::Engine as _;
    use jsonwebtoken::crypto::rust_crypto;
    use jsonwebtoken::{Algorithm as JwtAlg, DecodingKey};

    use super::{AlgSet, Algorithm, Material};

    pub(crate) struct Verifiers {
        key: DecodingKey,
        algs: AlgSet,
    }

    fn jwt_alg(alg: Algorithm) -> JwtAlg {
        match alg {
            Algorithm::HS256 => JwtAlg::HS256,
            Algorithm::HS384 => JwtAlg::HS384,
            Algorithm::HS512 => JwtAlg::HS512,
            Algorithm::RS256 => JwtAlg::RS256,
            Algorithm::RS384 => JwtAlg::RS384,
            Algorithm::RS512 => JwtAlg::RS512,
            Algorithm::PS256 => JwtAlg::PS256,
            Algorithm::PS384 => JwtAlg::PS384,
            Algorithm::PS512 => JwtAlg::PS512,
            Algorithm::ES256 => JwtAlg::ES256,
            Algorithm::ES384 => JwtAlg::ES384,
            Algorithm::EdDSA => JwtAlg::EdDSA,
        }
    }

    impl Verifiers {
        pub(crate) fn new(material: &Material, algs: AlgSet) -> Result<Self, String> {
            let key = match material {
                Material::Rsa { n, e } => DecodingKey::from_rsa_raw_components(n, e),
                Material::Ec { point, .. } => DecodingKey::from_ec_der(point),
                Material::Ed25519 { x } => DecodingKey::from_ed_der(x),
                Material::Hmac { secret } => DecodingKey::from_secret(secret)
                    .map_err(|e| format!("HMAC key rejected: {e}"))?,
            };
            Ok(Verifiers { key, algs })
        }

        /// Through the RustCrypto provider itself, never jsonwebtoken's
        /// process-wide default: an application may install another one, or
        /// enable both of jsonwebtoken's backends, and this must not change.
        pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature_b64: &str) -> bool {
            if !self.algs.contains(alg) {
                return false;
            }
            let Ok(signature) =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature_b64)
            else {
                return false;
            };
            let factory = rust_crypto::DEFAULT_PROVIDER.verifier_factory;
            factory(&jwt_alg(alg), &self.key)
                .is_ok_and(|verifier| verifier.verify(message, &signature).is_ok())
        }
    }
}

#[cfg(not(any(feature = "aws-lc-rs", feature = "rust-crypto")))]
mod imp {
    use super::{AlgSet, Algorithm, Material};

    pub(crate) enum Verifiers {}

    impl Verifiers {
        pub(crate) fn new(_: &Material, _: AlgSet) -> Result<Self, String> {
            Err("no signature backend: enable the `aws-lc-rs` or `rust-crypto` feature".into())
        }

        pub(crate) fn verify(&self, _: Algorithm, _: &[u8], _: &str) -> bool {
            match *self {}
        }
    }
}

pub(crate) use imp::Verifiers;
