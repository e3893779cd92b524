//! The `[jobs.<name>]` tables: delegations for work done later (features
//! `oauth` and `aws-lc-rs`; see [`crate::job`]).

use std::time::Duration;

use serde::Deserialize;

use super::{MandateConfig, StoreKind, at, invalid, secret};
use crate::ConfigError;
use crate::job::{Delegation, DelegationBuilder, Grant, SealingKeys};
use crate::keys::Algorithm;

/// Which standard route a delegation takes (see [`Grant`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum GrantKind {
    /// [`Grant::refresh_token`]: RFC 8693 for a refresh token at capture.
    RefreshToken,
    /// [`Grant::jwt_bearer`]: RFC 7523, this service's own assertion.
    JwtBearer,
}

/// A key named by its id, its base64 in an environment variable or a file
/// (never inline).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SealingKeyConfig {
    /// The key's id, written into every handle it seals.
    pub id: String,
    /// The environment variable holding the key's base64 (32 bytes).
    #[serde(default)]
    pub env: Option<String>,
    /// The file holding the key's base64 (trailing newline ignored).
    #[serde(default)]
    pub file: Option<String>,
}

/// The RFC 7523 assertion's signing key (`grant = "jwt_bearer"`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AssertionKeyConfig {
    /// A PKCS#8 PEM private key, whose public key the authorization server
    /// knows.
    pub file: String,
    /// Its algorithm (default ES256).
    #[serde(default)]
    pub algorithm: Option<Algorithm>,
    /// Its id, the assertion's `kid` (default `key-1`).
    #[serde(default)]
    pub id: Option<String>,
}

/// One delegation: [`MandateConfig::delegation`] builds it.
///
/// ```toml
/// [providers.tagger]                 # the client: token endpoint, id, credentials
/// kind = "client_credentials"
/// token_url = "https://id.example/oauth/token"
/// client_id = "tagger"
/// client_secret_env = "TAGGER_SECRET"
///
/// [jobs.tagging]
/// grant = "refresh_token"            # or jwt_bearer, with assertion_key
/// client = "tagger"
/// issuer = "https://id.example"      # whose users it acts for
/// max_lifetime = "1d"                # default 7 days
/// revocation = true                  # the [revocation] store (redis) before each token: the default with one
/// sealing_key = { id = "2026-12", env = "JOB_KEY" }
/// previous_sealing_keys = [{ id = "2026-11", file = "/run/secrets/job-key-2026-11" }]
/// ```
///
/// The transaction route ([`Grant::transaction`]) needs the application's
/// Transaction Token Service client and stays in code.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JobConfig {
    /// `refresh_token` or `jwt_bearer`.
    pub grant: GrantKind,
    /// The provider in `[providers]` (`client_credentials` or
    /// `token_exchange`) whose token endpoint, client id and client
    /// authentication the delegation uses; its `insecure_allow_http`
    /// applies too, its `actor` does not (the client is the actor).
    pub client: String,
    /// The issuer whose users the delegation acts for: the authorization
    /// server's own.
    pub issuer: String,
    /// The key that seals new handles.
    pub sealing_key: SealingKeyConfig,
    /// Keys that still open handles sealed before a rotation.
    #[serde(default)]
    pub previous_sealing_keys: Vec<SealingKeyConfig>,
    /// The assertion's key, with `grant = "jwt_bearer"`.
    #[serde(default)]
    pub assertion_key: Option<AssertionKeyConfig>,
    /// The longest a handle lives (default 7 days).
    #[serde(default, with = "humantime_serde")]
    pub max_lifetime: Option<Duration>,
    /// Check the `[revocation]` store before each token: on by default
    /// when that store is Redis, off without a `[revocation]` table. A
    /// memory store is the process's own: set `revocation = false` and
    /// pass it with [`DelegationBuilder::with_revocation`]. A job's check
    /// always fails closed (`insecure_fail_open` is the layer's only).
    #[serde(default)]
    pub revocation: Option<bool>,
}

impl SealingKeyConfig {
    fn secret(&self, path: &str) -> Result<String, ConfigError> {
        secret(path, "", self.env.as_deref(), self.file.as_deref())?
            .ok_or_else(|| invalid(path, "exactly one of env, file is needed"))
    }
}

impl JobConfig {
    fn keys(&self, path: &str) -> Result<SealingKeys, ConfigError> {
        let key_path = format!("{path}.sealing_key");
        let mut keys =
            SealingKeys::from_base64(&self.sealing_key.id, &self.sealing_key.secret(&key_path)?)
                .map_err(at(key_path))?;
        for (i, previous) in self.previous_sealing_keys.iter().enumerate() {
            let key_path = format!("{path}.previous_sealing_keys[{i}]");
            keys = keys
                .with_previous_base64(&previous.id, &previous.secret(&key_path)?)
                .map_err(at(key_path))?;
        }
        Ok(keys)
    }

    fn build(&self, path: &str, config: &MandateConfig) -> Result<DelegationBuilder, ConfigError> {
        let client_path = format!("providers.{}", self.client);
        let provider = config.providers.get(&self.client).ok_or_else(|| {
            invalid(
                format!("{path}.client"),
                format!("no provider named {:?} in [providers]", self.client),
            )
        })?;
        let (token_url, client_id, auth) = provider.endpoint(&client_path)?;
        if self.issuer.is_empty() {
            return Err(invalid(format!("{path}.issuer"), "must not be empty"));
        }
        let grant = match (self.grant, &self.assertion_key) {
            (GrantKind::RefreshToken, None) => {
                Grant::refresh_token(token_url, client_id, auth, &self.issuer)
            }
            (GrantKind::JwtBearer, Some(key)) => {
                let key = super::propagate::signing_key_file(
                    &format!("{path}.assertion_key.file"),
                    &key.file,
                    key.algorithm,
                    key.id.as_deref(),
                )?;
                Grant::jwt_bearer(token_url, client_id, auth, &self.issuer, key)
            }
            (GrantKind::JwtBearer, None) => {
                return Err(invalid(
                    format!("{path}.assertion_key"),
                    "grant = \"jwt_bearer\" needs an assertion_key",
                ));
            }
            (GrantKind::RefreshToken, Some(_)) => {
                return Err(invalid(
                    format!("{path}.assertion_key"),
                    "applies to grant = \"jwt_bearer\" only",
                ));
            }
        };
        let mut builder = Delegation::builder(grant, self.keys(path)?);
        if let Some(lifetime) = self.max_lifetime {
            if lifetime.is_zero() {
                return Err(invalid(format!("{path}.max_lifetime"), "must not be zero"));
            }
            builder = builder.with_max_lifetime(lifetime);
        }
        if provider.insecure_allow_http {
            builder = builder.insecure_allow_http();
        }
        if let Some(client) = config.client() {
            builder = builder.with_client(client.builder());
        }
        match (self.revocation, &config.revocation) {
            (Some(false), _) | (None, None) => {}
            (Some(true), None) => {
                return Err(invalid(
                    format!("{path}.revocation"),
                    "needs a [revocation] table",
                ));
            }
            (_, Some(revocation)) if revocation.store == StoreKind::Memory => {
                return Err(invalid(
                    format!("{path}.revocation"),
                    "a memory store is this process's own: use store = \"redis\", or set \
                     revocation = false and pass the application's store with \
                     DelegationBuilder::with_revocation",
                ));
            }
            (_, Some(revocation)) => {
                builder = builder.with_revocation_store(revocation.build("revocation")?.store().0);
            }
        }
        Ok(builder)
    }
}

impl MandateConfig {
    /// The delegation `[jobs.<name>]` describes, as a builder for what a
    /// file cannot hold (a memory revocation store the application keeps).
    ///
    /// # Errors
    ///
    /// [`ConfigError::At`] naming the key: no such table, a client that is
    /// not an OAuth provider, a sealing key that is missing or not 32
    /// bytes of base64, an assertion key that cannot be read.
    pub fn delegation(&self, name: &str) -> Result<DelegationBuilder, ConfigError> {
        let path = format!("jobs.{name}");
        let job = self
            .jobs
            .get(name)
            .ok_or_else(|| invalid(&path, format!("no delegation named {name:?} in [jobs]")))?;
        job.build(&path, self)
    }
}
