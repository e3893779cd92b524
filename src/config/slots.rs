//! The layer's part of a configuration file: slots, issuers and their
//! keys and rules, the revocation store.

use std::collections::BTreeMap;
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

use super::{Client, at, invalid};
use crate::keys::{Algorithm, KeySet};
use crate::permission::PermissionMapping;
use crate::revocation::Revocation;
use crate::server::TokenSource;
use crate::{ConfigError, Issuer, Slot, Verifier};

/// Whether a slot must carry a token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SlotMode {
    /// Every request carries a valid token in this slot (the default).
    #[default]
    Required,
    /// A token is verified when present.
    Optional,
    /// The slot is not used.
    Off,
}

/// One slot: where its token is read, the issuers it trusts, its cache.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SlotConfig {
    /// `required` (default), `optional` or `off`.
    #[serde(default)]
    pub mode: SlotMode,
    /// The header the token is read from, as `Bearer <token>` (default
    /// `authorization` for the user, `service-authorization` for the
    /// service).
    #[serde(default)]
    pub header: Option<String>,
    /// Read the header's value as the token itself, without a scheme.
    #[serde(default)]
    pub raw: bool,
    /// The issuers whose tokens this slot accepts.
    pub issuers: Vec<IssuerConfig>,
    /// Keep verified tokens (default true).
    #[serde(default = "yes")]
    pub cache: bool,
    /// Entries of the verified-token cache (default 10,000).
    #[serde(default)]
    pub cache_capacity: Option<usize>,
    /// The longest token accepted, in bytes (default 8 KiB).
    #[serde(default)]
    pub max_token_len: Option<usize>,
}

fn yes() -> bool {
    true
}

/// One trusted issuer: its keys (exactly one of `jwks_file`, `jwks_url`,
/// `discovery = true`) and its rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IssuerConfig {
    /// The `iss` value, matched exactly.
    pub issuer: String,
    /// Accepted `aud` values; at least one.
    pub audiences: Vec<String>,
    /// The algorithm allow-list (default RS256, ES256, EdDSA).
    #[serde(default)]
    pub algorithms: Option<Vec<Algorithm>>,
    /// Keys from a JWKS document on disk.
    #[serde(default)]
    pub jwks_file: Option<String>,
    /// Keys from a JWKS endpoint.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Keys from OIDC discovery at the issuer.
    #[serde(default)]
    pub discovery: bool,
    /// Allow a plain-http JWKS or discovery URL (loopback tests only).
    #[serde(default)]
    pub insecure_allow_http: bool,
    /// Minimum time between two refetches caused by unknown kids.
    #[serde(default, with = "humantime_serde")]
    pub key_cooldown: Option<Duration>,
    /// How long keys are used after the endpoint stopped answering.
    #[serde(default, with = "humantime_serde")]
    pub max_staleness: Option<Duration>,
    /// How long a request waits for keys being fetched.
    #[serde(default, with = "humantime_serde")]
    pub max_wait: Option<Duration>,
    /// Clock skew allowed on `exp`, `nbf` and `iat` (default 60 s).
    #[serde(default, with = "humantime_serde")]
    pub leeway: Option<Duration>,
    /// A required `typ` header (`at+jwt`, …).
    #[serde(default)]
    pub typ: Option<String>,
    /// Claims every token must carry.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Claims holding permissions (default `scope`, `scp`, `permissions`).
    #[serde(default)]
    pub permission_claims: Option<Vec<String>>,
    /// Claims holding roles (default `roles`).
    #[serde(default)]
    pub role_claims: Option<Vec<String>>,
    /// Permissions granted by each role.
    #[serde(default)]
    pub role_permissions: BTreeMap<String, Vec<String>>,
    /// The deepest `act` chain accepted.
    #[serde(default)]
    pub max_actor_depth: Option<usize>,
    /// Refuse a delegated token whose actor is not in the subject's `may_act`.
    #[serde(default)]
    pub require_may_act: bool,
}

/// Where the revocation list and replay records are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StoreKind {
    /// In this process ([`MemoryStore`](crate::revocation::MemoryStore)).
    #[default]
    Memory,
    /// On Redis, shared by replicas (feature `redis`).
    Redis,
}

/// The revocation check of the layer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RevocationConfig {
    /// `memory` (default) or `redis`.
    #[serde(default)]
    pub store: StoreKind,
    /// The Redis URL (`redis://…` or `rediss://…`).
    #[serde(default)]
    pub url: Option<String>,
    /// A PEM file of the CA that signed the Redis server's certificate.
    #[serde(default)]
    pub root_ca_file: Option<String>,
    /// The key prefix on Redis (default `tower-mandate:`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// Connect and response timeout towards Redis (default 500 ms).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Refuse a `jti` presented twice.
    #[serde(default)]
    pub guard_replay: bool,
    /// Accept requests when the store cannot answer.
    #[serde(default)]
    pub insecure_fail_open: bool,
}

impl SlotConfig {
    /// The slot, or `None` when it is off.
    pub(super) fn build(
        &self,
        path: &str,
        client: Option<&Client>,
    ) -> Result<Option<Slot>, ConfigError> {
        let verifier = match self.mode {
            SlotMode::Off => return Ok(None),
            _ => self.verifier(path, client)?,
        };
        let slot = match self.mode {
            SlotMode::Optional => Slot::optional(verifier),
            _ => Slot::required(verifier),
        };
        let Some(header) = &self.header else {
            if self.raw {
                return Err(invalid(format!("{path}.raw"), "needs a header"));
            }
            return Ok(Some(slot));
        };
        let name = HeaderName::try_from(header.as_str()).map_err(|_| {
            invalid(
                format!("{path}.header"),
                format!("invalid header name {header:?}"),
            )
        })?;
        let source = if self.raw {
            TokenSource::raw_header(name)
        } else {
            TokenSource::bearer(name)
        };
        Ok(Some(slot.with_source(source)))
    }

    fn verifier(&self, path: &str, client: Option<&Client>) -> Result<Verifier, ConfigError> {
        if self.issuers.is_empty() {
            return Err(invalid(
                format!("{path}.issuers"),
                "at least one issuer is needed",
            ));
        }
        let issuers = self
            .issuers
            .iter()
            .enumerate()
            .map(|(i, issuer)| issuer.build(&format!("{path}.issuers[{i}]"), client))
            .collect::<Result<Vec<_>, _>>()?;
        let mut builder = Verifier::builder(issuers);
        if let Some(len) = self.max_token_len {
            builder = builder.with_max_token_len(len);
        }
        builder = match (self.cache, self.cache_capacity) {
            (false, _) => builder.without_cache(),
            (true, Some(capacity)) => builder.with_cache(capacity),
            (true, None) => builder,
        };
        builder.build().map_err(at(path))
    }
}

impl IssuerConfig {
    pub(super) fn build(&self, path: &str, client: Option<&Client>) -> Result<Issuer, ConfigError> {
        let mut audiences = self.audiences.iter();
        let Some(first) = audiences.next() else {
            return Err(invalid(
                format!("{path}.audiences"),
                "at least one audience is needed",
            ));
        };
        let mut issuer = Issuer::new(&self.issuer, first);
        for audience in audiences {
            issuer = issuer.add_audience(audience);
        }
        if let Some(algorithms) = &self.algorithms {
            issuer = issuer.with_algorithms(algorithms.iter().copied());
        }
        if let Some(leeway) = self.leeway {
            issuer = issuer.with_leeway(leeway);
        }
        if let Some(typ) = &self.typ {
            issuer = issuer.require_typ(typ);
        }
        for claim in &self.required_claims {
            issuer = issuer.require_claim(claim);
        }
        if let Some(depth) = self.max_actor_depth {
            issuer = issuer.with_max_actor_depth(depth);
        }
        if self.require_may_act {
            issuer = issuer.require_may_act();
        }
        issuer = issuer.with_permissions(self.mapping());
        self.with_keys(issuer, path, client)
    }

    fn mapping(&self) -> PermissionMapping {
        let mut mapping = PermissionMapping::default();
        if let Some(claims) = &self.permission_claims {
            mapping = mapping.with_permission_claims(claims);
        }
        if let Some(claims) = &self.role_claims {
            mapping = mapping.with_role_claims(claims);
        }
        for (role, permissions) in &self.role_permissions {
            mapping = mapping.add_role(role, permissions.iter().cloned());
        }
        mapping
    }

    fn with_keys(
        &self,
        issuer: Issuer,
        path: &str,
        client: Option<&Client>,
    ) -> Result<Issuer, ConfigError> {
        let sources = [
            self.jwks_file.is_some(),
            self.jwks_url.is_some(),
            self.discovery,
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(invalid(
                path,
                "exactly one of jwks_file, jwks_url, discovery = true is needed",
            ));
        }
        if let Some(file) = &self.jwks_file {
            let remote_only = [
                ("insecure_allow_http", self.insecure_allow_http),
                ("key_cooldown", self.key_cooldown.is_some()),
                ("max_staleness", self.max_staleness.is_some()),
                ("max_wait", self.max_wait.is_some()),
            ];
            if let Some((key, _)) = remote_only.iter().find(|(_, set)| *set) {
                return Err(invalid(
                    format!("{path}.{key}"),
                    "applies to jwks_url and discovery only",
                ));
            }
            let keys = KeySet::from_jwks_file(file).map_err(at(format!("{path}.jwks_file")))?;
            return Ok(issuer.with_keys(keys));
        }
        self.with_remote_keys(issuer, path, client)
    }

    #[cfg(feature = "jwks")]
    fn with_remote_keys(
        &self,
        issuer: Issuer,
        path: &str,
        client: Option<&Client>,
    ) -> Result<Issuer, ConfigError> {
        use crate::keys::JwksSource;
        let (mut builder, key) = match &self.jwks_url {
            Some(url) => (JwksSource::builder(url), "jwks_url"),
            None => (JwksSource::discovery(&self.issuer), "discovery"),
        };
        if self.insecure_allow_http {
            builder = builder.insecure_allow_http();
        }
        if let Some(cooldown) = self.key_cooldown {
            builder = builder.with_cooldown(cooldown);
        }
        if let Some(max) = self.max_staleness {
            builder = builder.with_max_staleness(max);
        }
        if let Some(max) = self.max_wait {
            builder = builder.with_max_wait(max);
        }
        if let Some(client) = client {
            builder = builder.with_client(client.clone());
        }
        let source = builder.build().map_err(at(format!("{path}.{key}")))?;
        source.prefetch();
        Ok(issuer.with_jwks(source))
    }

    #[cfg(not(feature = "jwks"))]
    fn with_remote_keys(
        &self,
        _: Issuer,
        path: &str,
        _: Option<&Client>,
    ) -> Result<Issuer, ConfigError> {
        let key = if self.jwks_url.is_some() {
            "jwks_url"
        } else {
            "discovery"
        };
        Err(invalid(
            format!("{path}.{key}"),
            "keys from the network need the feature `jwks`",
        ))
    }
}

impl RevocationConfig {
    pub(super) fn build(&self, path: &str) -> Result<Revocation, ConfigError> {
        let mut revocation = match self.store {
            StoreKind::Memory => {
                let redis_only = [
                    ("url", self.url.is_some()),
                    ("root_ca_file", self.root_ca_file.is_some()),
                    ("prefix", self.prefix.is_some()),
                    ("timeout", self.timeout.is_some()),
                ];
                if let Some((key, _)) = redis_only.iter().find(|(_, set)| *set) {
                    return Err(invalid(
                        format!("{path}.{key}"),
                        "applies to store = \"redis\" only",
                    ));
                }
                Revocation::new(crate::revocation::MemoryStore::new())
            }
            StoreKind::Redis => self.redis(path)?,
        };
        if self.guard_replay {
            revocation = revocation.guard_replay();
        }
        if self.insecure_fail_open {
            revocation = revocation.insecure_fail_open();
        }
        Ok(revocation)
    }

    #[cfg(feature = "redis")]
    fn redis(&self, path: &str) -> Result<Revocation, ConfigError> {
        use crate::revocation::RedisStore;
        let Some(url) = &self.url else {
            return Err(invalid(
                format!("{path}.url"),
                "store = \"redis\" needs a url",
            ));
        };
        let mut store = match &self.root_ca_file {
            Some(file) => {
                let pem = std::fs::read(file).map_err(|source| {
                    at(format!("{path}.root_ca_file"))(ConfigError::Io {
                        path: file.into(),
                        source,
                    })
                })?;
                RedisStore::new_with_root_ca(url, &pem)
            }
            None => RedisStore::new(url),
        }
        .map_err(at(format!("{path}.url")))?;
        if let Some(prefix) = &self.prefix {
            store = store.with_prefix(prefix);
        }
        if let Some(timeout) = self.timeout {
            store = store.with_timeout(timeout);
        }
        Ok(Revocation::new(store))
    }

    #[cfg(not(feature = "redis"))]
    fn redis(&self, path: &str) -> Result<Revocation, ConfigError> {
        Err(invalid(
            format!("{path}.store"),
            "store = \"redis\" needs the feature `redis`",
        ))
    }
}
