//! Tokens the service signs itself.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;
use serde_json::json;

use super::{
    AccessToken, ProviderCache, ProviderError, ProviderErrorKind, TokenFuture, TokenProvider,
    TokenRequest,
};
use crate::ConfigError;
use crate::clock::unix_now;
use crate::mint::SigningKey;

/// A [`TokenProvider`] that signs short-lived tokens with the service's own
/// key: `iss` and `sub` are the service, `aud` is the destination
/// ([`TokenRequest::audience`], required), with `iat`, `exp` and a random
/// `jti`. Peers trust it through the JWKS document of [`SelfSigned::jwks`]
/// (served by [`SelfSigned::jwks_route`] with axum).
///
/// ```
/// use tower_mandate::provider::{SelfSigned, TokenProvider, TokenRequest};
/// use tower_mandate::{keys::Algorithm, mint::SigningKey};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tower_mandate::ConfigError> {
/// let relay = SelfSigned::new("https://relay.internal", SigningKey::generate(Algorithm::ES256, "relay-1"))?;
/// let token = relay.token(TokenRequest::for_audience("image-store")).await.unwrap();
/// assert_eq!(token.secret().split('.').count(), 3);
/// assert!(SelfSigned::new("https://relay.internal", SigningKey::generate(Algorithm::HS256, "h")).is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SelfSigned(Arc<Inner>);

struct Inner {
    issuer: String,
    subject: String,
    key: Arc<SigningKey>,
    lifetime: Duration,
    cache: ProviderCache,
}

/// Builds a [`SelfSigned`] provider: every setting is made before it is
/// shared.
///
/// ```
/// use std::time::Duration;
/// use tower_mandate::provider::SelfSigned;
/// use tower_mandate::{keys::Algorithm, mint::SigningKey};
///
/// let relay = SelfSigned::builder("https://mesh.internal", SigningKey::generate(Algorithm::EdDSA, "r1"))
///     .with_subject("relay")
///     .with_lifetime(Duration::from_secs(60))
///     .build()?;
/// # let _ = relay;
/// # Ok::<(), tower_mandate::ConfigError>(())
/// ```
#[must_use]
pub struct SelfSignedBuilder {
    issuer: String,
    subject: Option<String>,
    key: SigningKey,
    lifetime: Duration,
}

impl SelfSignedBuilder {
    /// Use another `sub` than the issuer.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// How long minted tokens live (default 5 minutes).
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The provider.
    ///
    /// # Errors
    ///
    /// When the key is an HMAC secret: peers trust a self-signed service
    /// through its published JWKS document, and a secret must never be
    /// published (whoever reads it could sign as this service).
    pub fn build(self) -> Result<SelfSigned, ConfigError> {
        if self.key.is_secret() {
            return Err(ConfigError::InvalidKey {
                kid: Some(self.key.kid().to_owned()),
                reason: "a self-signed service needs an asymmetric key: an HMAC secret cannot be published".into(),
            });
        }
        Ok(SelfSigned(Arc::new(Inner {
            subject: self.subject.unwrap_or_else(|| self.issuer.clone()),
            issuer: self.issuer,
            key: Arc::new(self.key),
            lifetime: self.lifetime,
            cache: ProviderCache::new("self_signed"),
        })))
    }
}

impl fmt::Debug for SelfSignedBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfSignedBuilder")
            .field("issuer", &self.issuer)
            .field("subject", &self.subject)
            .field("key", &self.key)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl SelfSigned {
    /// Sign as `issuer` (also the subject) with `key`; tokens live 5
    /// minutes ([`SelfSigned::builder`] for other settings).
    ///
    /// # Errors
    ///
    /// As [`SelfSignedBuilder::build`].
    pub fn new(issuer: impl Into<String>, key: SigningKey) -> Result<Self, ConfigError> {
        Self::builder(issuer, key).build()
    }

    /// Start a provider signing as `issuer` with `key`.
    pub fn builder(issuer: impl Into<String>, key: SigningKey) -> SelfSignedBuilder {
        SelfSignedBuilder {
            issuer: issuer.into(),
            subject: None,
            key,
            lifetime: Duration::from_secs(300),
        }
    }

    /// The JWKS document with the public key, for peers to trust.
    pub fn jwks(&self) -> String {
        self.0.key.jwks()
    }

    /// An axum route answering the JWKS document (e.g. at
    /// `/.well-known/jwks.json`).
    #[cfg(feature = "axum")]
    pub fn jwks_route<S: Clone + Send + Sync + 'static>(&self) -> axum::routing::MethodRouter<S> {
        let body = self.jwks();
        axum::routing::get(move || {
            let body = body.clone();
            async move {
                (
                    [
                        (http::header::CONTENT_TYPE, "application/jwk-set+json"),
                        (http::header::CACHE_CONTROL, "max-age=300"),
                    ],
                    body,
                )
            }
        })
    }

    fn mint(&self, request: &TokenRequest) -> Result<AccessToken, ProviderError> {
        let audience = request.audience.as_deref().ok_or_else(|| {
            ProviderError::new(
                ProviderErrorKind::InvalidRequest,
                "a self-signed token needs an audience",
            )
        })?;
        let now = unix_now();
        let mut jti = [0u8; 16];
        SystemRandom::new()
            .fill(&mut jti)
            .map_err(|_| ProviderError::new(ProviderErrorKind::InvalidRequest, "no randomness"))?;
        let mut claims = json!({
            "iss": self.0.issuer,
            "sub": self.0.subject,
            "aud": audience,
            "iat": now,
            "exp": now.saturating_add(self.0.lifetime.as_secs()),
            "jti": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti),
        });
        if let Some(scope) = &request.scope {
            claims["scope"] = json!(scope);
        }
        Ok(AccessToken::new(
            self.0.key.sign_claims(&claims),
            self.0.lifetime,
        ))
    }
}

impl TokenProvider for SelfSigned {
    fn token(&self, request: TokenRequest) -> TokenFuture {
        let this = self.clone();
        Box::pin(async move {
            let key = request.clone();
            this.0
                .cache
                .get(key, || async { this.mint(&request) })
                .await
        })
    }

    fn cached(&self, request: &TokenRequest) -> Option<AccessToken> {
        self.0.cache.fresh(request)
    }
}

impl fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelfSigned")
            .field("issuer", &self.0.issuer)
            .field("subject", &self.0.subject)
            .field("key", &self.0.key)
            .field("lifetime", &self.0.lifetime)
            .finish()
    }
}
