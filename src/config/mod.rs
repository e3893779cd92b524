//! Configuration from a file (feature `config`): the layer's slots and
//! issuers, the revocation store, token providers and propagation, and
//! delegations for work done later (`[jobs]`), as plain `serde` types
//! that build the same values as the builders.
//!
//! Every table refuses unknown keys; durations are text (`"30s"`, `"10m"`,
//! humantime); secrets are never inline — `client_secret_env = "NAME"` or
//! `client_secret_file = "path"` — and are read when the provider is
//! built. Errors name the key path and quote the bad value:
//! `user.issuers[1].jwks_url: invalid URL "htp:/x": …`.
//!
//! ```
//! use tower_mandate::config::MandateConfig;
//! # let dir = std::env::temp_dir().join(format!("mandate-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let idp = tower_mandate::testing::TestIssuer::rs256("https://idp.test");
//! # let jwks = dir.join("users-jwks.json");
//! # std::fs::write(&jwks, idp.jwks())?;
//! let text = format!(r#"
//! [user]
//! mode = "required"
//! [[user.issuers]]
//! issuer = "https://idp.test"
//! audiences = ["image-store"]
//! algorithms = ["RS256", "ES256"]
//! jwks_file = "{}"
//! leeway = "30s"
//! "#, jwks.display());
//! let config = MandateConfig::from_toml(&text)?;
//! let layer = config.layer()?;
//! # let _ = layer;
//!
//! // A mistake names its key.
//! let err = MandateConfig::from_toml("[user]\nmode = \"sometimes\"").unwrap_err();
//! assert!(err.to_string().starts_with("user.mode: "), "{err}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! As a section of an application's own configuration, deserialize it with
//! figment (`figment.extract_inner::<MandateConfig>("mandate")`) or the
//! `config` crate (`settings.get::<MandateConfig>("mandate")`); see
//! `examples/config_file.rs`.

mod binding;
mod issuer;
#[cfg(all(feature = "oauth", feature = "_aws-lc"))]
mod jobs;
#[cfg(feature = "authzen")]
mod policy;
mod propagate;
mod slots;
mod transaction;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

pub use binding::{CertificateSourceKind, ClientCertificatesConfig, DpopMode};
pub use issuer::{IssuerConfig, Preset, Tenants};
#[cfg(all(feature = "oauth", feature = "_aws-lc"))]
pub use jobs::{AssertionKeyConfig, GrantKind, JobConfig, SealingKeyConfig};
#[cfg(feature = "authzen")]
pub use policy::PolicyConfig;
pub use propagate::{
    ClientAuthKind, DestinationConfig, PropagateConfig, ProviderConfig, ProviderKind, Providers,
    TokenRequestConfig, UserTokenMode,
};
pub use slots::{RevocationConfig, SlotConfig, SlotMode, StoreKind};
pub use transaction::TransactionConfig;

use crate::server::MandateBuilder;
use crate::{ConfigError, MandateLayer};

/// Everything the crate can be configured with, as one table (for example
/// the `[mandate]` section of a service's configuration).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MandateConfig {
    /// The end user's slot.
    #[serde(default)]
    pub user: Option<SlotConfig>,
    /// The calling service's slot.
    #[serde(default)]
    pub service: Option<SlotConfig>,
    /// The Transaction Token slot.
    #[serde(default)]
    pub transaction: Option<TransactionConfig>,
    /// A revocation list and replay guard checked on every request.
    #[serde(default)]
    pub revocation: Option<RevocationConfig>,
    /// Token providers by name, referred to by `propagate` and by the
    /// application ([`Providers::get`]).
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Where outgoing calls may carry tokens, and which.
    #[serde(default)]
    pub propagate: Option<PropagateConfig>,
    /// Requests let through unauthenticated.
    #[serde(default)]
    pub skip: SkipConfig,
    /// Where client certificates come from, for certificate-bound tokens.
    #[serde(default)]
    pub client_certificates: Option<ClientCertificatesConfig>,
    /// An external policy decision point (feature `authzen`).
    #[cfg(feature = "authzen")]
    #[serde(default)]
    pub policy: Option<PolicyConfig>,
    /// Delegations for work done later, by name (features `oauth` and
    /// `aws-lc-rs`): see [`MandateConfig::delegation`].
    #[cfg(all(feature = "oauth", feature = "_aws-lc"))]
    #[serde(default)]
    pub jobs: BTreeMap<String, JobConfig>,
    /// See [`MandateBuilder::insecure_allow_interchangeable_slots`].
    #[serde(default)]
    pub insecure_allow_interchangeable_slots: bool,
    /// The application's HTTP client, for key sources and token endpoints
    /// (not from the file: see [`MandateConfig::with_http_client`]).
    #[cfg(any(feature = "jwks", feature = "oauth", feature = "authzen"))]
    #[serde(skip)]
    http_client: Option<Client>,
}

/// Requests the layer lets through unauthenticated (see
/// [`MandateBuilder::add_skip_path_prefix`] and its siblings).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SkipConfig {
    /// Path prefixes, compared byte for byte.
    #[serde(default)]
    pub path_prefixes: Vec<String>,
    /// gRPC health checks.
    #[serde(default)]
    pub grpc_health: bool,
    /// gRPC server reflection.
    #[serde(default)]
    pub grpc_reflection: bool,
    /// CORS preflights.
    #[serde(default)]
    pub cors_preflight: bool,
}

impl MandateConfig {
    /// Read a configuration from any `serde` deserializer, with the key path
    /// in the error.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] naming the key: an unknown key, a value of
    /// the wrong type, a bad duration or algorithm.
    pub fn deserialize_from<'de, D>(deserializer: D) -> Result<Self, ConfigError>
    where
        D: serde::Deserializer<'de>,
        D::Error: fmt::Display,
    {
        serde_path_to_error::deserialize(deserializer).map_err(|e| ConfigError::Parse {
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })
    }

    /// Read a configuration from TOML text.
    ///
    /// # Errors
    ///
    /// As [`MandateConfig::deserialize_from`], and for text that is not TOML.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        // The message with the line, without toml's multi-line excerpt.
        let parse = |path: String, e: &toml::de::Error| {
            let line = e
                .span()
                .and_then(|s| text.get(..s.start))
                .map(|before| before.matches('\n').count() + 1);
            ConfigError::Parse {
                path,
                message: match line {
                    Some(line) => format!("{} (line {line})", e.message()),
                    None => e.message().to_owned(),
                },
            }
        };
        let deserializer = toml::Deserializer::parse(text).map_err(|e| parse(String::new(), &e))?;
        serde_path_to_error::deserialize(deserializer)
            .map_err(|e| parse(e.path().to_string(), e.inner()))
    }

    /// Read a configuration from a TOML file.
    ///
    /// # Errors
    ///
    /// As [`MandateConfig::from_toml`], and when the file cannot be read.
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text)
    }

    /// Fetch keys and tokens with the application's own HTTP client (a
    /// private CA, a proxy): `client` makes a `reqwest::ClientBuilder` for
    /// each key source and provider, which the crate builds under its rules
    /// (see [`JwksBuilder::with_client`](crate::keys::JwksBuilder::with_client)).
    #[cfg(any(feature = "jwks", feature = "oauth", feature = "authzen"))]
    pub fn with_http_client(
        mut self,
        client: impl Fn() -> reqwest::ClientBuilder + Send + Sync + 'static,
    ) -> Self {
        self.http_client = Some(Client(std::sync::Arc::new(client)));
        self
    }

    #[cfg(any(feature = "jwks", feature = "oauth", feature = "authzen"))]
    fn client(&self) -> Option<&Client> {
        self.http_client.as_ref()
    }

    #[cfg(not(any(feature = "jwks", feature = "oauth", feature = "authzen")))]
    fn client(&self) -> Option<&Client> {
        None
    }

    /// The layer's builder, for settings a file cannot hold (a renderer, a
    /// revocation store the application keeps a handle on).
    ///
    /// # Errors
    ///
    /// [`ConfigError::At`] naming the key of what cannot be built (a key
    /// file, a URL, an issuer's rules), or a slot conflict.
    pub fn layer_builder(&self) -> Result<MandateBuilder, ConfigError> {
        let mut builder = MandateLayer::builder();
        if let Some(slot) = self
            .user
            .as_ref()
            .map(|s| s.build("user", self.client()))
            .transpose()?
            .flatten()
        {
            builder = builder.user(slot);
        }
        if let Some(slot) = self
            .service
            .as_ref()
            .map(|s| s.build("service", self.client()))
            .transpose()?
            .flatten()
        {
            builder = builder.service(slot);
        }
        if let Some(slot) = self
            .transaction
            .as_ref()
            .map(|t| t.build("transaction", self.client()))
            .transpose()?
            .flatten()
        {
            builder = builder.transaction(slot);
        }
        if let Some(revocation) = &self.revocation {
            builder = builder.with_revocation(revocation.build("revocation")?);
        }
        for prefix in &self.skip.path_prefixes {
            builder = builder.add_skip_path_prefix(prefix);
        }
        #[cfg(feature = "_aws-lc")]
        if let Some(certificates) = &self.client_certificates {
            builder = builder.with_client_certificates(certificates.build("client_certificates")?);
        }
        if self.skip.grpc_health {
            builder = builder.add_skip_grpc_health();
        }
        if self.skip.grpc_reflection {
            builder = builder.add_skip_grpc_reflection();
        }
        if self.skip.cors_preflight {
            builder = builder.add_skip_cors_preflight();
        }
        if self.insecure_allow_interchangeable_slots {
            builder = builder.insecure_allow_interchangeable_slots();
        }
        Ok(builder)
    }

    /// The layer.
    ///
    /// # Errors
    ///
    /// As [`MandateConfig::layer_builder`] and [`MandateBuilder::build`].
    pub fn layer(&self) -> Result<MandateLayer, ConfigError> {
        self.layer_builder()?.build()
    }

    /// The AuthZEN decision point of `[policy]`, when the table names one;
    /// its token, when `token_provider` names one, from `providers`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::At`] naming the key: a bad URL, an unknown provider.
    #[cfg(feature = "authzen")]
    pub fn authzen(
        &self,
        providers: &Providers,
    ) -> Result<Option<crate::policy::AuthZen>, ConfigError> {
        self.policy
            .as_ref()
            .map(|p| p.build("policy", providers, self.client()))
            .transpose()
    }

    /// The token providers, built (secrets read) once.
    ///
    /// # Errors
    ///
    /// [`ConfigError::At`] naming the provider's key: a missing setting, a
    /// secret that cannot be read, a bad URL or key.
    pub fn providers(&self) -> Result<Providers, ConfigError> {
        Providers::build(&self.providers, self.client())
    }

    /// The propagation layer (no destination when `propagate` is absent),
    /// its providers from `providers`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::At`] naming the destination: an unknown provider, a
    /// plain-http destination without a port.
    pub fn propagate_layer(
        &self,
        providers: &Providers,
    ) -> Result<crate::propagate::PropagateLayer, ConfigError> {
        match &self.propagate {
            Some(p) => p.build(providers),
            None => Ok(crate::propagate::PropagateLayer::new()),
        }
    }
}

/// Put a key path in front of an error of building.
pub(super) fn at(path: impl Into<String>) -> impl FnOnce(ConfigError) -> ConfigError {
    let path = path.into();
    move |source| ConfigError::At {
        path,
        source: Box::new(source),
    }
}

/// A setting that is missing or contradicts another.
pub(super) fn invalid(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::At {
        path: path.into(),
        source: Box::new(ConfigError::Parse {
            path: String::new(),
            message: message.into(),
        }),
    }
}

/// A secret named by `{prefix}env` (an environment variable) or
/// `{prefix}file` (a file, trailing newline ignored) under `path`: `None`
/// when neither is set, an error naming the key when both are, when what
/// it names cannot be read, or when it is empty.
#[cfg(any(feature = "oauth", feature = "redis"))]
pub(super) fn secret(
    path: &str,
    prefix: &str,
    env: Option<&str>,
    file: Option<&str>,
) -> Result<Option<String>, ConfigError> {
    let (key, value) = match (env, file) {
        (None, None) => return Ok(None),
        (Some(name), None) => (
            "env",
            std::env::var(name).map_err(|_| {
                invalid(
                    format!("{path}.{prefix}env"),
                    format!("the environment variable {name:?} is not set"),
                )
            })?,
        ),
        (None, Some(file)) => (
            "file",
            std::fs::read_to_string(file)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_owned())
                .map_err(|source| {
                    at(format!("{path}.{prefix}file"))(ConfigError::Io {
                        path: file.into(),
                        source,
                    })
                })?,
        ),
        (Some(_), Some(_)) => {
            return Err(invalid(
                path,
                format!("at most one of {prefix}env, {prefix}file"),
            ));
        }
    };
    // An unpopulated secret mount is a mistake, not an empty password.
    if value.is_empty() {
        return Err(invalid(
            format!("{path}.{prefix}{key}"),
            "the secret is empty",
        ));
    }
    Ok(Some(value))
}

/// The HTTP client type, where none of `jwks`, `oauth`, `authzen` has one.
#[cfg(not(any(feature = "jwks", feature = "oauth", feature = "authzen")))]
pub(crate) enum Client {}

/// Makes the application's HTTP client builders.
#[cfg(any(feature = "jwks", feature = "oauth", feature = "authzen"))]
#[derive(Clone)]
pub(crate) struct Client(std::sync::Arc<dyn Fn() -> reqwest::ClientBuilder + Send + Sync>);

#[cfg(any(feature = "jwks", feature = "oauth", feature = "authzen"))]
impl Client {
    pub(crate) fn builder(&self) -> reqwest::ClientBuilder {
        (self.0)()
    }
}

#[cfg(any(feature = "jwks", feature = "oauth", feature = "authzen"))]
impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Client")
    }
}

#[cfg(test)]
mod tests;
