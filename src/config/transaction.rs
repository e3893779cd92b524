//! The `[transaction]` table: the layer's Transaction Token slot.

use std::time::Duration;

use serde::Deserialize;

use super::{Client, SlotMode, at, invalid};
use crate::ConfigError;
use crate::keys::{Algorithm, KeySet};
use crate::transaction::TransactionSlot;

/// A Transaction Token slot (draft-ietf-oauth-transaction-tokens-10; see
/// [`TransactionSlot`]).
///
/// ```toml
/// [transaction]
/// mode = "optional"                     # required | optional | off, like a slot
/// trust_domain = "images.example"
/// jwks_file = "/path/tts-jwks.json"     # or jwks_url; issuer = "…" when the service sets `iss`
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TransactionConfig {
    /// `required` (default), `optional` or `off`.
    #[serde(default)]
    pub mode: SlotMode,
    /// The trust domain: the tokens' `aud`.
    pub trust_domain: String,
    /// The `iss` the Transaction Token Service sets (tokens without `iss`
    /// when absent).
    #[serde(default)]
    pub issuer: Option<String>,
    /// The service's JWKS as a file.
    #[serde(default)]
    pub jwks_file: Option<String>,
    /// The service's JWKS endpoint.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Allow a plain `http` JWKS URL (loopback tests).
    #[serde(default)]
    pub insecure_allow_http: bool,
    /// Signature algorithms taken (default every asymmetric one).
    #[serde(default)]
    pub algorithms: Vec<Algorithm>,
    /// Clock leeway (default 60 s).
    #[serde(default, with = "humantime_serde")]
    pub leeway: Option<Duration>,
}

impl TransactionConfig {
    /// The slot, or `None` when it is off.
    pub(super) fn build(
        &self,
        path: &str,
        client: Option<&Client>,
    ) -> Result<Option<TransactionSlot>, ConfigError> {
        let mut slot = match self.mode {
            SlotMode::Off => return Ok(None),
            SlotMode::Optional => TransactionSlot::optional(&self.trust_domain),
            _ => TransactionSlot::required(&self.trust_domain),
        };
        if self.trust_domain.is_empty() {
            return Err(invalid(format!("{path}.trust_domain"), "must not be empty"));
        }
        slot = match (&self.jwks_file, &self.jwks_url) {
            (Some(file), None) => {
                if self.insecure_allow_http {
                    return Err(invalid(
                        format!("{path}.insecure_allow_http"),
                        "applies to jwks_url only",
                    ));
                }
                slot.with_keys(
                    KeySet::from_jwks_file(file).map_err(at(format!("{path}.jwks_file")))?,
                )
            }
            (None, Some(url)) => self.remote(path, slot, url, client)?,
            _ => {
                return Err(invalid(
                    path,
                    "exactly one of jwks_file, jwks_url is needed",
                ));
            }
        };
        if let Some(issuer) = &self.issuer {
            slot = slot.with_issuer(issuer);
        }
        if !self.algorithms.is_empty() {
            slot = slot.with_algorithms(self.algorithms.iter().copied());
        }
        if let Some(leeway) = self.leeway {
            slot = slot.with_leeway(leeway);
        }
        Ok(Some(slot))
    }

    #[cfg(feature = "jwks")]
    fn remote(
        &self,
        path: &str,
        slot: TransactionSlot,
        url: &str,
        client: Option<&Client>,
    ) -> Result<TransactionSlot, ConfigError> {
        let mut builder = crate::keys::JwksSource::builder(url);
        if self.insecure_allow_http {
            builder = builder.insecure_allow_http();
        }
        if let Some(client) = client {
            builder = builder.with_client(client.builder());
        }
        let source = builder.build().map_err(at(format!("{path}.jwks_url")))?;
        source.prefetch();
        Ok(slot.with_jwks(source))
    }

    #[cfg(not(feature = "jwks"))]
    fn remote(
        &self,
        path: &str,
        _: TransactionSlot,
        _: &str,
        _: Option<&Client>,
    ) -> Result<TransactionSlot, ConfigError> {
        Err(invalid(
            format!("{path}.jwks_url"),
            "jwks_url needs the feature `jwks`",
        ))
    }
}
