//! The client side of DPoP: a key held by a token provider, and the proof
//! it signs for each outgoing request (RFC 9449 §4.2).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::thumbprint::{jwk_thumbprint, sha256_b64};
use crate::ConfigError;
use crate::keys::Algorithm;
use crate::mint::SigningKey;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A DPoP key: the private key a client proves possession of, for
/// [`ClientCredentialsBuilder::with_dpop`](crate::provider::ClientCredentialsBuilder::with_dpop).
///
/// Cheap to clone (shared). `Debug` prints only its thumbprint; the private
/// key never leaves it.
///
/// ```
/// use tower_mandate::binding::DpopKey;
///
/// let key = DpopKey::generate();
/// let uri: http::Uri = "https://images.example/images/1?size=2".parse().unwrap();
/// let proof = key.proof(&http::Method::GET, &uri, Some("access-token"), None)?;
/// let claims = proof.split('.').nth(1).unwrap();
/// # use base64::Engine as _;
/// let claims: serde_json::Value = serde_json::from_slice(
///     &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).unwrap(),
/// ).unwrap();
/// assert_eq!(claims["htu"], "https://images.example/images/1"); // no query
/// assert_eq!(claims["htm"], "GET");
/// assert_eq!(key.thumbprint().len(), 43);
/// # Ok::<(), tower_mandate::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct DpopKey(Arc<Inner>);

struct Inner {
    key: SigningKey,
    /// The base64url protected header: `typ`, `alg` and the public `jwk`.
    header: String,
    jkt: String,
    /// The latest `DPoP-Nonce` each resource server handed out, by origin.
    nonces: Mutex<HashMap<String, String>>,
}

/// Origins whose nonce is kept; past it the map starts afresh.
#[cfg_attr(not(feature = "reqwest"), allow(dead_code))]
const MAX_ORIGINS: usize = 256;
/// The longest nonce kept.
#[cfg_attr(not(feature = "reqwest"), allow(dead_code))]
const MAX_NONCE: usize = 512;

impl DpopKey {
    /// A new ES256 key (P-256), made at start-up: a DPoP key needs no
    /// registration, and a restart simply binds new tokens to a new key.
    ///
    /// # Panics
    ///
    /// If the system random source fails.
    pub fn generate() -> Self {
        Self::new(SigningKey::generate(Algorithm::ES256, "dpop"))
            .expect("a generated ES256 key is asymmetric")
    }

    /// A DPoP key from an asymmetric signing key (ES256, ES384, EdDSA,
    /// RSA).
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidBinding`] for an HMAC key.
    pub fn new(key: SigningKey) -> Result<Self, ConfigError> {
        let Some(Value::Object(full)) = key.jwk() else {
            return Err(ConfigError::InvalidBinding(
                "a DPoP key must be asymmetric".into(),
            ));
        };
        // Only the public members: no kid, use or alg.
        let jwk: Map<String, Value> = full
            .into_iter()
            .filter(|(k, _)| matches!(k.as_str(), "kty" | "crv" | "x" | "y" | "n" | "e"))
            .collect();
        let jkt = jwk_thumbprint(&jwk).map_err(|e| ConfigError::InvalidBinding(e.into()))?;
        let header = json!({"typ": "dpop+jwt", "alg": key.algorithm().as_str(), "jwk": jwk});
        Ok(DpopKey(Arc::new(Inner {
            header: B64.encode(header.to_string()),
            key,
            jkt,
            nonces: Mutex::default(),
        })))
    }

    /// The RFC 7638 thumbprint of the public key: the `cnf.jkt` of tokens
    /// bound to it.
    pub fn thumbprint(&self) -> &str {
        &self.0.jkt
    }

    /// A fresh proof for one request: `htm` `method`, `htu` the URI's
    /// scheme, authority and path, a new `jti`, `iat` now, `ath` of
    /// `token` when given (every request to a resource server), `nonce`
    /// when the server asked for one.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidBinding`] when `uri` is not absolute.
    pub fn proof(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        token: Option<&str>,
        nonce: Option<&str>,
    ) -> Result<String, ConfigError> {
        let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
            return Err(ConfigError::InvalidBinding(
                "a DPoP proof needs an absolute URI".into(),
            ));
        };
        // Scheme, host and port: never the user info of the authority.
        let authority = match uri.port_u16() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let mut jti = [0u8; 16];
        SystemRandom::new()
            .fill(&mut jti)
            .map_err(|_| ConfigError::InvalidBinding("no random source".into()))?;
        let mut claims = json!({
            "jti": B64.encode(jti),
            "htm": method.as_str(),
            "htu": format!("{scheme}://{authority}{}", uri.path()),
            "iat": crate::clock::unix_now(),
        });
        if let Some(token) = token {
            claims["ath"] = Value::String(sha256_b64(token.as_bytes()));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = Value::String(nonce.to_owned());
        }
        let input = format!("{}.{}", self.0.header, B64.encode(claims.to_string()));
        let signature = self.0.key.sign_input(input.as_bytes());
        Ok(format!("{input}.{signature}"))
    }
}

impl DpopKey {
    /// `scheme://host[:port]` of `uri`.
    fn origin(uri: &http::Uri) -> Option<String> {
        let (scheme, host) = (uri.scheme_str()?, uri.host()?);
        Some(match uri.port_u16() {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        })
    }

    /// The nonce `uri`'s server handed out last, if any.
    pub(crate) fn nonce_for(&self, uri: &http::Uri) -> Option<String> {
        let origin = Self::origin(uri)?;
        let nonces = self.0.nonces.lock().unwrap_or_else(|p| p.into_inner());
        nonces.get(&origin).cloned()
    }

    /// Remember the `DPoP-Nonce` `uri`'s server answered with (RFC 9449 §9).
    #[cfg_attr(not(feature = "reqwest"), allow(dead_code))]
    pub(crate) fn remember_nonce(&self, uri: &http::Uri, nonce: &str) {
        let Some(origin) = Self::origin(uri) else {
            return;
        };
        if nonce.is_empty() || nonce.len() > MAX_NONCE || !nonce.is_ascii() {
            return;
        }
        let mut nonces = self.0.nonces.lock().unwrap_or_else(|p| p.into_inner());
        if nonces.len() >= MAX_ORIGINS && !nonces.contains_key(&origin) {
            nonces.clear();
        }
        nonces.insert(origin, nonce.to_owned());
    }
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpopKey")
            .field("jkt", &self.0.jkt)
            .field("alg", &self.0.key.algorithm())
            .finish_non_exhaustive()
    }
}
