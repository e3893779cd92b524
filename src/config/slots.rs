//! The layer's part of a configuration file: slots, issuers and their
//! keys and rules, the revocation store.

use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

use super::{Client, IssuerConfig, at, invalid};
use crate::revocation::Revocation;
use crate::server::TokenSource;
use crate::{ConfigError, Slot, Verifier};

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
    /// Read the token from this cookie instead of a header.
    #[serde(default)]
    pub cookie: Option<String>,
    /// Read the token from this query parameter (WebSocket upgrades; see
    /// [`TokenSource::insecure_query`]).
    #[serde(default)]
    pub insecure_query: Option<String>,
    /// Claim values this slot's tokens have and the other slot's have not
    /// (see [`Slot::require_claim_eq`]).
    #[serde(default)]
    pub claims_equal: std::collections::BTreeMap<String, serde_json::Value>,
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
        let mut slot = slot;
        for (claim, value) in &self.claims_equal {
            slot = slot.require_claim_eq(claim, value.clone());
        }
        let named = [
            self.header.is_some(),
            self.cookie.is_some(),
            self.insecure_query.is_some(),
        ];
        if named.iter().filter(|n| **n).count() > 1 {
            return Err(invalid(
                path,
                "at most one of header, cookie, insecure_query",
            ));
        }
        if self.raw && self.header.is_none() {
            return Err(invalid(format!("{path}.raw"), "needs a header"));
        }
        let source = if let Some(name) = &self.cookie {
            TokenSource::cookie(name)
        } else if let Some(name) = &self.insecure_query {
            TokenSource::insecure_query(name)
        } else if let Some(header) = &self.header {
            let name = HeaderName::try_from(header.as_str()).map_err(|_| {
                invalid(
                    format!("{path}.header"),
                    format!("invalid header name {header:?}"),
                )
            })?;
            if self.raw {
                TokenSource::raw_header(name)
            } else {
                TokenSource::bearer(name)
            }
        } else {
            return Ok(Some(slot));
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
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten();
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
