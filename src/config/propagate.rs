//! The outgoing part of a configuration file: token providers by name, and
//! the destinations that may receive tokens.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

#[cfg(any(feature = "oauth", feature = "_aws-lc"))]
use super::at;
use super::{Client, invalid};
use crate::ConfigError;
use crate::propagate::{Destination, PropagateLayer};
use crate::provider::{TokenProvider, TokenRequest};

/// What kind of provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProviderKind {
    /// OAuth client credentials (feature `oauth`).
    ClientCredentials,
    /// RFC 8693 token exchange (feature `oauth`).
    TokenExchange,
    /// Tokens this service signs itself (feature `aws-lc-rs`).
    SelfSigned,
}

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientAuthKind {
    /// `client_secret_basic` (the default).
    #[default]
    SecretBasic,
    /// `client_secret_post`.
    SecretPost,
    /// `private_key_jwt` (RFC 7523), with `private_key_file`.
    PrivateKeyJwt,
}

/// One token provider. The secret is read, from the environment variable
/// or the file named here, when the provider is built; `Debug` shows the
/// names, never a value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProviderConfig {
    /// `client_credentials`, `token_exchange` or `self_signed`.
    pub kind: ProviderKind,
    /// The token endpoint (OAuth providers).
    #[serde(default)]
    pub token_url: Option<String>,
    /// The client id (OAuth providers).
    #[serde(default)]
    pub client_id: Option<String>,
    /// How the client authenticates (default `secret_basic`).
    #[serde(default)]
    pub auth: ClientAuthKind,
    /// The environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// The file holding the client secret (trailing newline ignored).
    #[serde(default)]
    pub client_secret_file: Option<String>,
    /// Refused with a message: secrets are never inline.
    #[serde(default)]
    client_secret: Option<serde::de::IgnoredAny>,
    /// A PKCS#8 PEM private key (`private_key_jwt`, `self_signed`).
    #[serde(default)]
    pub private_key_file: Option<String>,
    /// The key's algorithm (default ES256).
    #[serde(default)]
    pub key_algorithm: Option<crate::keys::Algorithm>,
    /// The key's id (default `key-1`).
    #[serde(default)]
    pub key_id: Option<String>,
    /// Allow a plain-http token endpoint (loopback tests only).
    #[serde(default)]
    pub insecure_allow_http: bool,
    /// The actor token sent with an exchange (`token_exchange`).
    #[serde(default)]
    pub actor: Option<TokenRequestConfig>,
    /// The `iss` of self-signed tokens.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The `sub` of self-signed tokens (default the issuer).
    #[serde(default)]
    pub subject: Option<String>,
    /// The lifetime of self-signed tokens (default 5 minutes).
    #[serde(default, with = "humantime_serde")]
    pub lifetime: Option<Duration>,
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("kind", &self.kind)
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("auth", &self.auth)
            .field("client_secret_env", &self.client_secret_env)
            .field("client_secret_file", &self.client_secret_file)
            .field("private_key_file", &self.private_key_file)
            .finish_non_exhaustive()
    }
}

/// A token asked of a provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TokenRequestConfig {
    /// The provider's name in `[providers]`.
    pub provider: String,
    /// The audience of the token.
    pub audience: String,
    /// Scopes, joined with spaces.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// An RFC 8707 resource indicator.
    #[serde(default)]
    pub resource: Option<String>,
}

/// What happens to the user's token on the way to a destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum UserTokenMode {
    /// Sent as received (the default).
    #[default]
    Forward,
    /// Exchanged (RFC 8693) through `exchange`.
    Exchange,
    /// Not sent.
    Drop,
}

/// One destination that may receive tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct DestinationConfig {
    /// The host, matched exactly (case-insensitive).
    pub host: String,
    /// The port (default 443; required with `insecure_http`).
    #[serde(default)]
    pub port: Option<u16>,
    /// Plain http (loopback tests only).
    #[serde(default)]
    pub insecure_http: bool,
    /// `forward` (default), `exchange` or `drop`.
    #[serde(default)]
    pub user_token: UserTokenMode,
    /// The exchange of the user's token, with `user_token = "exchange"`.
    #[serde(default)]
    pub exchange: Option<TokenRequestConfig>,
    /// This service's own token.
    #[serde(default)]
    pub service_token: Option<TokenRequestConfig>,
}

/// Where outgoing calls may carry tokens.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PropagateConfig {
    /// The destinations.
    #[serde(default)]
    pub destinations: Vec<DestinationConfig>,
    /// The header of the user's token (default `authorization`).
    #[serde(default)]
    pub user_header: Option<String>,
    /// The header of the service's token (default `service-authorization`).
    #[serde(default)]
    pub service_header: Option<String>,
    /// Replace token headers the application set itself.
    #[serde(default)]
    pub overwrite_existing: bool,
}

/// The providers of a configuration, by name.
#[derive(Clone, Default)]
pub struct Providers(BTreeMap<String, Arc<dyn TokenProvider>>);

impl fmt::Debug for Providers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Providers {
    /// The provider named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn TokenProvider>> {
        self.0.get(name).cloned()
    }

    pub(super) fn build(
        configs: &BTreeMap<String, ProviderConfig>,
        client: Option<&Client>,
    ) -> Result<Self, ConfigError> {
        let mut built: BTreeMap<String, Arc<dyn TokenProvider>> = BTreeMap::new();
        // Token exchanges may name an actor provider: build the others first.
        let (exchanges, others): (Vec<_>, Vec<_>) = configs
            .iter()
            .partition(|(_, c)| c.kind == ProviderKind::TokenExchange);
        for (name, config) in others.into_iter().chain(exchanges) {
            let path = format!("providers.{name}");
            let provider = config.build(&path, &Providers(built.clone()), client)?;
            built.insert(name.clone(), provider);
        }
        Ok(Providers(built))
    }

    fn request(
        &self,
        config: &TokenRequestConfig,
        path: &str,
    ) -> Result<(Arc<dyn TokenProvider>, TokenRequest), ConfigError> {
        let provider = self.get(&config.provider).ok_or_else(|| {
            invalid(
                format!("{path}.provider"),
                format!("no provider named {:?} in [providers]", config.provider),
            )
        })?;
        let mut request = TokenRequest::for_audience(&config.audience);
        if !config.scopes.is_empty() {
            request = request.with_scope(config.scopes.join(" "));
        }
        if let Some(resource) = &config.resource {
            request = request.with_resource(resource);
        }
        Ok((provider, request))
    }
}

impl ProviderConfig {
    fn build(
        &self,
        path: &str,
        built: &Providers,
        client: Option<&Client>,
    ) -> Result<Arc<dyn TokenProvider>, ConfigError> {
        if self.client_secret.is_some() {
            return Err(invalid(
                format!("{path}.client_secret"),
                "secrets are never inline: use client_secret_env or client_secret_file",
            ));
        }
        match self.kind {
            ProviderKind::SelfSigned => self.self_signed(path),
            kind => self.oauth(kind, path, built, client),
        }
    }

    #[cfg(any(feature = "oauth", feature = "_aws-lc"))]
    fn required<'a>(
        &self,
        value: &'a Option<String>,
        path: &str,
        key: &str,
    ) -> Result<&'a str, ConfigError> {
        value
            .as_deref()
            .ok_or_else(|| invalid(format!("{path}.{key}"), format!("{key} is needed")))
    }

    #[cfg(feature = "_aws-lc")]
    fn signing_key(&self, path: &str) -> Result<crate::mint::SigningKey, ConfigError> {
        let file = self.required(&self.private_key_file, path, "private_key_file")?;
        signing_key_file(
            &format!("{path}.private_key_file"),
            file,
            self.key_algorithm,
            self.key_id.as_deref(),
        )
    }

    #[cfg(feature = "_aws-lc")]
    fn self_signed(&self, path: &str) -> Result<Arc<dyn TokenProvider>, ConfigError> {
        let issuer = self.required(&self.issuer, path, "issuer")?;
        let mut builder = crate::provider::SelfSigned::builder(issuer, self.signing_key(path)?);
        if let Some(subject) = &self.subject {
            builder = builder.with_subject(subject);
        }
        if let Some(lifetime) = self.lifetime {
            builder = builder.with_lifetime(lifetime);
        }
        Ok(Arc::new(builder.build().map_err(at(path))?))
    }

    #[cfg(not(feature = "_aws-lc"))]
    fn self_signed(&self, path: &str) -> Result<Arc<dyn TokenProvider>, ConfigError> {
        Err(invalid(
            format!("{path}.kind"),
            "self_signed needs the feature `aws-lc-rs`",
        ))
    }

    #[cfg(feature = "oauth")]
    fn secret(&self, path: &str) -> Result<String, ConfigError> {
        super::secret(
            path,
            "client_secret_",
            self.client_secret_env.as_deref(),
            self.client_secret_file.as_deref(),
        )?
        .ok_or_else(|| {
            invalid(
                path,
                "exactly one of client_secret_env, client_secret_file is needed",
            )
        })
    }

    /// The token endpoint, client id and client authentication of an OAuth
    /// provider (also a job's client: `[jobs.<name>] client`).
    #[cfg(feature = "oauth")]
    pub(super) fn endpoint(
        &self,
        path: &str,
    ) -> Result<(&str, &str, crate::provider::ClientAuth), ConfigError> {
        use crate::provider::ClientAuth;
        if self.kind == ProviderKind::SelfSigned {
            return Err(invalid(
                format!("{path}.kind"),
                "a self_signed provider has no token endpoint",
            ));
        }
        if self.client_secret.is_some() {
            return Err(invalid(
                format!("{path}.client_secret"),
                "secrets are never inline: use client_secret_env or client_secret_file",
            ));
        }
        let token_url = self.required(&self.token_url, path, "token_url")?;
        let client_id = self.required(&self.client_id, path, "client_id")?;
        let auth = match self.auth {
            ClientAuthKind::SecretBasic => ClientAuth::SecretBasic(self.secret(path)?),
            ClientAuthKind::SecretPost => ClientAuth::SecretPost(self.secret(path)?),
            #[cfg(feature = "_aws-lc")]
            ClientAuthKind::PrivateKeyJwt => ClientAuth::PrivateKeyJwt(self.signing_key(path)?),
            #[cfg(not(feature = "_aws-lc"))]
            ClientAuthKind::PrivateKeyJwt => {
                return Err(invalid(
                    format!("{path}.auth"),
                    "private_key_jwt needs the feature `aws-lc-rs`",
                ));
            }
        };
        check_url(token_url, self.insecure_allow_http).map_err(at(format!("{path}.token_url")))?;
        Ok((token_url, client_id, auth))
    }

    #[cfg(feature = "oauth")]
    fn oauth(
        &self,
        kind: ProviderKind,
        path: &str,
        built: &Providers,
        client: Option<&Client>,
    ) -> Result<Arc<dyn TokenProvider>, ConfigError> {
        use crate::provider::{ClientCredentials, TokenExchange};
        let (token_url, client_id, auth) = self.endpoint(path)?;
        if kind == ProviderKind::ClientCredentials {
            if self.actor.is_some() {
                return Err(invalid(
                    format!("{path}.actor"),
                    "applies to token_exchange only",
                ));
            }
            let mut builder = ClientCredentials::builder(token_url, client_id, auth);
            if self.insecure_allow_http {
                builder = builder.insecure_allow_http();
            }
            if let Some(client) = client {
                builder = builder.with_client(client.builder());
            }
            return Ok(Arc::new(builder.build()));
        }
        let mut builder = TokenExchange::builder(token_url, client_id, auth);
        if let Some(client) = client {
            builder = builder.with_client(client.builder());
        }
        if let Some(actor) = &self.actor {
            let (provider, request) = built.request(actor, &format!("{path}.actor"))?;
            builder = builder.with_actor(provider, request);
        }
        if self.insecure_allow_http {
            builder = builder.insecure_allow_http();
        }
        Ok(Arc::new(builder.build()))
    }

    #[cfg(not(feature = "oauth"))]
    fn oauth(
        &self,
        _: ProviderKind,
        path: &str,
        _: &Providers,
        _: Option<&Client>,
    ) -> Result<Arc<dyn TokenProvider>, ConfigError> {
        Err(invalid(
            format!("{path}.kind"),
            "client_credentials and token_exchange need the feature `oauth`",
        ))
    }
}

/// A PKCS#8 PEM private key from `file` (the key `key_path`), ES256 and id
/// `key-1` unless named.
#[cfg(feature = "_aws-lc")]
pub(super) fn signing_key_file(
    key_path: &str,
    file: &str,
    algorithm: Option<crate::keys::Algorithm>,
    kid: Option<&str>,
) -> Result<crate::mint::SigningKey, ConfigError> {
    let pem = std::fs::read_to_string(file).map_err(|source| {
        at(key_path)(ConfigError::Io {
            path: file.into(),
            source,
        })
    })?;
    crate::mint::SigningKey::from_pkcs8_pem(
        algorithm.unwrap_or(crate::keys::Algorithm::ES256),
        kid.unwrap_or("key-1"),
        &pem,
    )
    .map_err(at(key_path))
}

/// An absolute https URL (http with `insecure_allow_http`).
#[cfg(feature = "oauth")]
pub(super) fn check_url(url: &str, allow_http: bool) -> Result<(), ConfigError> {
    let invalid = |reason: &str| ConfigError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if allow_http => Ok(()),
        "http" => Err(invalid("not https (see insecure_allow_http)")),
        _ => Err(invalid("not an http(s) URL")),
    }
}

impl PropagateConfig {
    pub(super) fn build(&self, providers: &Providers) -> Result<PropagateLayer, ConfigError> {
        let mut builder = PropagateLayer::builder();
        for (i, d) in self.destinations.iter().enumerate() {
            builder = builder
                .add_destination(d.build(&format!("propagate.destinations[{i}]"), providers)?);
        }
        let header = |value: &Option<String>, key: &str, default: HeaderName| match value {
            None => Ok(default),
            Some(name) => HeaderName::try_from(name.as_str()).map_err(|_| {
                invalid(
                    format!("propagate.{key}"),
                    format!("invalid header name {name:?}"),
                )
            }),
        };
        if self.user_header.is_some() || self.service_header.is_some() {
            builder = builder.with_headers(
                header(
                    &self.user_header,
                    "user_header",
                    http::header::AUTHORIZATION,
                )?,
                header(
                    &self.service_header,
                    "service_header",
                    HeaderName::from_static("service-authorization"),
                )?,
            );
        }
        if self.overwrite_existing {
            builder = builder.overwrite_existing();
        }
        Ok(builder.build())
    }
}

impl DestinationConfig {
    fn build(&self, path: &str, providers: &Providers) -> Result<Destination, ConfigError> {
        let mut destination = match (self.insecure_http, self.port) {
            (true, Some(port)) => Destination::insecure_http(&self.host, port),
            (true, None) => {
                return Err(invalid(
                    format!("{path}.port"),
                    "insecure_http needs a port",
                ));
            }
            (false, Some(port)) => Destination::https(&self.host).with_port(port),
            (false, None) => Destination::https(&self.host),
        };
        destination = match (self.user_token, &self.exchange) {
            (UserTokenMode::Forward, None) => destination.forward_user_token(),
            (UserTokenMode::Drop, None) => destination.drop_user_token(),
            (UserTokenMode::Exchange, Some(exchange)) => {
                let (provider, request) =
                    providers.request(exchange, &format!("{path}.exchange"))?;
                destination.exchange_user_token(provider, request)
            }
            (UserTokenMode::Exchange, None) => {
                return Err(invalid(
                    format!("{path}.exchange"),
                    "user_token = \"exchange\" needs an exchange table",
                ));
            }
            (_, Some(_)) => {
                return Err(invalid(
                    format!("{path}.exchange"),
                    "applies to user_token = \"exchange\" only",
                ));
            }
        };
        if let Some(service) = &self.service_token {
            let (provider, request) =
                providers.request(service, &format!("{path}.service_token"))?;
            destination = destination.with_service_token(provider, request);
        }
        Ok(destination)
    }
}
