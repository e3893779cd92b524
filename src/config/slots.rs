//! The layer's part of a configuration file: slots, issuers and their
//! keys and rules, the revocation store.

use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

use super::binding::DpopMode;
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
    /// `bearer` (default), `allowed` or `required`: DPoP-bound tokens
    /// (RFC 9449; see [`Dpop`](crate::binding::Dpop)).
    #[serde(default)]
    pub dpop: DpopMode,
    /// The origins (`https://host[:port]`) clients send DPoP requests to.
    #[serde(default)]
    pub dpop_origins: Vec<String>,
    /// How old a proof may be (default 60 s).
    #[serde(default, with = "humantime_serde")]
    pub dpop_max_age: Option<Duration>,
    /// Clock leeway for proofs (default 5 s).
    #[serde(default, with = "humantime_serde")]
    pub dpop_leeway: Option<Duration>,
    /// The proof algorithms taken (default: every asymmetric one).
    #[serde(default)]
    pub dpop_algorithms: Vec<crate::keys::Algorithm>,
    /// Server nonces: the environment variable holding their secret (at
    /// least 32 bytes, the same on every replica).
    #[serde(default)]
    pub dpop_nonce_secret_env: Option<String>,
    /// Server nonces: the file holding their secret.
    #[serde(default)]
    pub dpop_nonce_secret_file: Option<String>,
    /// How often the nonce changes (default 5 minutes).
    #[serde(default, with = "humantime_serde")]
    pub dpop_nonce_rotation: Option<Duration>,
    /// Take certificate-bound tokens only (RFC 8705).
    #[serde(default)]
    pub certificate_bound: bool,
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
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RevocationConfig {
    /// `memory` (default) or `redis`.
    #[serde(default)]
    pub store: StoreKind,
    /// The Redis URL (`redis://…` or `rediss://…`), without a password:
    /// secrets are never inline.
    #[serde(default)]
    pub url: Option<String>,
    /// The environment variable holding the Redis password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The file holding the Redis password (trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<String>,
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

/// `url` with what sits before `@` in its authority hidden.
fn redacted(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://<redacted>{}", &rest[at..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

impl std::fmt::Debug for RevocationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationConfig")
            .field("store", &self.store)
            .field("url", &self.url.as_deref().map(redacted))
            .field("password_env", &self.password_env)
            .field("password_file", &self.password_file)
            .field("root_ca_file", &self.root_ca_file)
            .field("guard_replay", &self.guard_replay)
            .finish_non_exhaustive()
    }
}

/// Percent-encode all but the unreserved characters (RFC 3986 §2.3), for
/// the password in a URL.
#[cfg(feature = "redis")]
fn percent_encode(s: &str) -> String {
    use std::fmt::Write as _;
    s.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
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
        let mut slot = super::binding::DpopKeys {
            mode: self.dpop,
            max_age: self.dpop_max_age,
            leeway: self.dpop_leeway,
            origins: &self.dpop_origins,
            algorithms: &self.dpop_algorithms,
            nonce_secret_env: self.dpop_nonce_secret_env.as_deref(),
            nonce_secret_file: self.dpop_nonce_secret_file.as_deref(),
            nonce_rotation: self.dpop_nonce_rotation,
            certificate_bound: self.certificate_bound,
        }
        .apply(path, slot)?;
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
                    ("password_env", self.password_env.is_some()),
                    ("password_file", self.password_file.is_some()),
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
        if redacted(url) != *url {
            return Err(invalid(
                format!("{path}.url"),
                "credentials are never inline: use password_env or password_file",
            ));
        }
        let password = super::secret(
            path,
            "password_",
            self.password_env.as_deref(),
            self.password_file.as_deref(),
        )?;
        let with_password;
        let url = match &password {
            None => url,
            Some(password) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("redis", url.as_str()));
                with_password = format!("{scheme}://:{}@{rest}", percent_encode(password));
                &with_password
            }
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
        // The URL may hold the password now: the error names the file's URL.
        .map_err(|_| {
            invalid(
                format!("{path}.url"),
                format!(
                    "not a Redis URL: {:?}",
                    self.url.as_deref().unwrap_or_default()
                ),
            )
        })?;
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
        let _ = redacted;
        Err(invalid(
            format!("{path}.store"),
            "store = \"redis\" needs the feature `redis`",
        ))
    }
}
