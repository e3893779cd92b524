//! Test kit (feature `test-util`): generate keys, mint user and service
//! tokens with chosen claims, and publish the JWKS document.
//!
//! Keys are generated and tokens signed with aws-lc-rs directly, so tokens
//! from this kit do not go through the code that verifies them.
//!
//! ```
//! use std::time::Duration;
//! use tower_mandate::testing::TestIssuer;
//!
//! let idp = TestIssuer::es256("https://id.example").with_audience("image-store");
//! let token = idp
//!     .token("alice")
//!     .scope("images:read images:write")
//!     .expires_in(Duration::from_secs(60))
//!     .sign();
//! assert_eq!(token.split('.').count(), 3);
//! assert!(idp.jwks().contains("\"kty\":\"EC\""));
//! ```

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::clock::unix_now;
use crate::keys::Algorithm;
use crate::mint::SigningKey;
use crate::{ConfigError, keys::KeySet};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// An in-process issuer: keys, tokens and the JWKS document.
///
/// Cheap to clone; clones share keys. [`TestIssuer::rotate`] adds a new
/// current key and keeps the old one published.
#[derive(Clone)]
pub struct TestIssuer {
    issuer: String,
    audience: Option<String>,
    keys: Arc<std::sync::RwLock<Vec<Arc<SigningKey>>>>,
    counter: Arc<AtomicUsize>,
}

impl TestIssuer {
    /// An issuer signing with `key`.
    pub fn new(issuer: impl Into<String>, key: SigningKey) -> Self {
        TestIssuer {
            issuer: issuer.into(),
            audience: None,
            keys: Arc::new(std::sync::RwLock::new(vec![Arc::new(key)])),
            counter: Arc::new(AtomicUsize::new(1)),
        }
    }

    /// An issuer with a fresh RSA-2048 key (RS256).
    pub fn rs256(issuer: impl Into<String>) -> Self {
        Self::new(issuer, SigningKey::generate(Algorithm::RS256, "key-1"))
    }

    /// An issuer with a fresh P-256 key (ES256).
    pub fn es256(issuer: impl Into<String>) -> Self {
        Self::new(issuer, SigningKey::generate(Algorithm::ES256, "key-1"))
    }

    /// An issuer with a fresh Ed25519 key (EdDSA).
    pub fn eddsa(issuer: impl Into<String>) -> Self {
        Self::new(issuer, SigningKey::generate(Algorithm::EdDSA, "key-1"))
    }

    /// Put this `aud` in every token unless the token sets its own.
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The `iss` of the tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The current signing key.
    pub fn current_key(&self) -> Arc<SigningKey> {
        self.keys
            .read()
            .expect("lock")
            .last()
            .cloned()
            .expect("a key")
    }

    /// Add a fresh key of the current key's algorithm and sign with it from
    /// now on; older keys stay in the JWKS document until [`TestIssuer::retire_old_keys`].
    pub fn rotate(&self) -> Arc<SigningKey> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let key = Arc::new(SigningKey::generate(
            self.current_key().algorithm(),
            format!("key-{n}"),
        ));
        self.keys.write().expect("lock").push(key.clone());
        key
    }

    /// Drop every key but the current one.
    pub fn retire_old_keys(&self) {
        let mut keys = self.keys.write().expect("lock");
        let last = keys.pop().expect("a key");
        keys.clear();
        keys.push(last);
    }

    /// The JWKS document of all published keys.
    pub fn jwks(&self) -> String {
        let keys: Vec<Value> = self
            .keys
            .read()
            .expect("lock")
            .iter()
            .filter_map(|k| k.jwk())
            .collect();
        json!({ "keys": keys }).to_string()
    }

    /// The published keys, parsed.
    ///
    /// # Panics
    ///
    /// Never for keys this kit generated.
    pub fn key_set(&self) -> KeySet {
        self.try_key_set().expect("test keys are valid")
    }

    fn try_key_set(&self) -> Result<KeySet, ConfigError> {
        let keys = self.keys.read().expect("lock");
        let mut set = if keys.iter().all(|k| k.is_secret()) {
            KeySet::new()
        } else {
            KeySet::from_jwks(&self.jwks())?
        };
        // Secrets are never in the JWKS document: the verifier gets them directly.
        for key in keys.iter() {
            if let Some(secret) = key.secret() {
                set = set.add_hmac_secret(Some(key.kid()), secret)?;
            }
        }
        Ok(set)
    }

    /// Start a token for `subject`.
    pub fn token(&self, subject: &str) -> TokenBuilder {
        let now = unix_now();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("sub".into(), json!(subject));
        if let Some(aud) = &self.audience {
            claims.insert("aud".into(), json!(aud));
        }
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + 300));
        let mut jti = [0u8; 12];
        SystemRandom::new().fill(&mut jti).expect("random");
        claims.insert("jti".into(), json!(B64.encode(jti)));
        let key = self.current_key();
        let mut header = Map::new();
        header.insert("alg".into(), json!(key.algorithm().as_str()));
        header.insert("typ".into(), json!("JWT"));
        header.insert("kid".into(), json!(key.kid()));
        TokenBuilder {
            key,
            header,
            claims,
        }
    }
}

impl fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestIssuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// A token being assembled; [`TokenBuilder::sign`] produces the compact JWS.
pub struct TokenBuilder {
    key: Arc<SigningKey>,
    header: Map<String, Value>,
    claims: Map<String, Value>,
}

impl TokenBuilder {
    /// Set `aud` to a string.
    pub fn audience(self, aud: &str) -> Self {
        self.claim("aud", json!(aud))
    }

    /// Set `scope` (space-delimited).
    pub fn scope(self, scope: &str) -> Self {
        self.claim("scope", json!(scope))
    }

    /// Set `permissions` (array).
    pub fn permissions<I: IntoIterator<Item = S>, S: AsRef<str>>(self, perms: I) -> Self {
        let perms: Vec<Value> = perms.into_iter().map(|p| json!(p.as_ref())).collect();
        self.claim("permissions", Value::Array(perms))
    }

    /// Set `exp` to now + `d`.
    pub fn expires_in(self, d: Duration) -> Self {
        self.claim("exp", json!(unix_now() + d.as_secs()))
    }

    /// Set `exp` to `d` ago.
    pub fn expired_for(self, d: Duration) -> Self {
        self.claim("exp", json!(unix_now().saturating_sub(d.as_secs())))
    }

    /// Set `nbf` to now + `d`.
    pub fn not_before_in(self, d: Duration) -> Self {
        self.claim("nbf", json!(unix_now() + d.as_secs()))
    }

    /// Add an `act` claim naming `actor` as the current actor, nesting any existing one.
    pub fn actor(mut self, actor: &str) -> Self {
        let mut act = Map::new();
        act.insert("sub".into(), json!(actor));
        if let Some(prev) = self.claims.remove("act") {
            act.insert("act".into(), prev);
        }
        self.claims.insert("act".into(), Value::Object(act));
        self
    }

    /// Set any claim.
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.claims.insert(name.into(), value);
        self
    }

    /// Remove a claim.
    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Set any header parameter.
    pub fn header(mut self, name: &str, value: Value) -> Self {
        self.header.insert(name.into(), value);
        self
    }

    /// Remove a header parameter (e.g. `kid`).
    pub fn without_header(mut self, name: &str) -> Self {
        self.header.remove(name);
        self
    }

    /// Sign with the issuer's current key.
    pub fn sign(self) -> String {
        let key = self.key.clone();
        self.sign_with(&key)
    }

    /// Sign with another key (e.g. a forger's), keeping the header as set.
    pub fn sign_with(self, key: &SigningKey) -> String {
        let input = format!(
            "{}.{}",
            B64.encode(Value::Object(self.header).to_string()),
            B64.encode(Value::Object(self.claims).to_string())
        );
        let signature = key.sign_input(input.as_bytes());
        format!("{input}.{signature}")
    }

    /// The unsigned `header.payload.` form with an empty signature and
    /// `alg: none` (for negative tests).
    pub fn unsigned(mut self) -> String {
        self.header.insert("alg".into(), json!("none"));
        format!(
            "{}.{}.",
            B64.encode(Value::Object(self.header).to_string()),
            B64.encode(Value::Object(self.claims).to_string())
        )
    }
}

impl fmt::Debug for TokenBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("header", &self.header)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}
