//! Sender-constrained tokens in a configuration file: a slot's DPoP
//! setting, certificate-bound tokens, where client certificates come from.

use std::time::Duration;

use serde::Deserialize;

use super::invalid;
use crate::{ConfigError, Slot};

/// Which tokens a slot takes: bearer only, DPoP too, DPoP only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DpopMode {
    /// Bearer tokens only (the default); a DPoP-bound token is refused.
    #[default]
    Bearer,
    /// Bearer tokens and DPoP-bound tokens with their proofs.
    Allowed,
    /// DPoP-bound tokens with their proofs only.
    Required,
}

/// The DPoP keys of a slot's table (`dpop = "allowed"`, `dpop_max_age`, …),
/// read by [`SlotConfig`](super::SlotConfig).
pub(super) struct DpopKeys<'a> {
    pub(super) mode: DpopMode,
    pub(super) max_age: Option<Duration>,
    pub(super) leeway: Option<Duration>,
    pub(super) origins: &'a [String],
    pub(super) algorithms: &'a [crate::keys::Algorithm],
    pub(super) nonce_secret_env: Option<&'a str>,
    pub(super) nonce_secret_file: Option<&'a str>,
    pub(super) nonce_rotation: Option<Duration>,
    pub(super) certificate_bound: bool,
}

impl DpopKeys<'_> {
    /// `slot` with these settings; `path` is the slot's key path.
    pub(super) fn apply(&self, path: &str, slot: Slot) -> Result<Slot, ConfigError> {
        let slot = if self.certificate_bound {
            slot.require_certificate_bound()
        } else {
            slot
        };
        let set = [
            ("dpop_max_age", self.max_age.is_some()),
            ("dpop_leeway", self.leeway.is_some()),
            ("dpop_origins", !self.origins.is_empty()),
            ("dpop_algorithms", !self.algorithms.is_empty()),
            ("dpop_nonce_secret_env", self.nonce_secret_env.is_some()),
            ("dpop_nonce_secret_file", self.nonce_secret_file.is_some()),
            ("dpop_nonce_rotation", self.nonce_rotation.is_some()),
        ];
        if self.mode == DpopMode::Bearer {
            return match set.iter().find(|(_, on)| *on) {
                Some((key, _)) => Err(invalid(
                    format!("{path}.{key}"),
                    "applies with dpop = \"allowed\" or \"required\" only",
                )),
                None => Ok(slot),
            };
        }
        self.dpop(path, slot)
    }

    #[cfg(feature = "_aws-lc")]
    fn dpop(&self, path: &str, slot: Slot) -> Result<Slot, ConfigError> {
        use crate::binding::{Dpop, Nonces};
        let mut dpop = match self.mode {
            DpopMode::Required => Dpop::required(),
            _ => Dpop::allowed(),
        };
        if self.origins.is_empty() {
            return Err(invalid(
                format!("{path}.dpop_origins"),
                "DPoP needs the origins clients reach the service at (\"https://host[:port]\")",
            ));
        }
        for origin in self.origins {
            dpop = dpop.with_origin(origin);
        }
        dpop.checked_origins()
            .map_err(super::at(format!("{path}.dpop_origins")))?;
        if let Some(max_age) = self.max_age {
            dpop = dpop.with_max_age(max_age);
        }
        if let Some(leeway) = self.leeway {
            dpop = dpop.with_leeway(leeway);
        }
        if !self.algorithms.is_empty() {
            dpop = dpop.with_algorithms(self.algorithms.iter().copied());
            dpop.checked_origins()
                .map_err(super::at(format!("{path}.dpop_algorithms")))?;
        }
        // Bytes, not text (a file may hold a binary secret): not `secret()`.
        let from_file = self.nonce_secret_file.is_some();
        let secret = match (self.nonce_secret_env, self.nonce_secret_file) {
            (None, None) => None,
            (Some(name), None) => {
                Some(std::env::var(name).map(String::into_bytes).map_err(|_| {
                    invalid(
                        format!("{path}.dpop_nonce_secret_env"),
                        format!("the environment variable {name:?} is not set"),
                    )
                })?)
            }
            (None, Some(file)) => Some(std::fs::read(file).map_err(|source| {
                super::at(format!("{path}.dpop_nonce_secret_file"))(ConfigError::Io {
                    path: file.into(),
                    source,
                })
            })?),
            (Some(_), Some(_)) => {
                return Err(invalid(
                    path,
                    "at most one of dpop_nonce_secret_env, dpop_nonce_secret_file",
                ));
            }
        };
        if let Some(secret) = secret {
            let key = if from_file {
                "dpop_nonce_secret_file"
            } else {
                "dpop_nonce_secret_env"
            };
            let mut nonces =
                Nonces::new(secret.trim_ascii_end()).map_err(super::at(format!("{path}.{key}")))?;
            if let Some(every) = self.nonce_rotation {
                nonces = nonces.with_rotation(every);
            }
            dpop = dpop.with_nonces(nonces);
        } else if self.nonce_rotation.is_some() {
            return Err(invalid(
                format!("{path}.dpop_nonce_rotation"),
                "needs dpop_nonce_secret_env or dpop_nonce_secret_file",
            ));
        }
        Ok(slot.with_dpop(dpop))
    }

    #[cfg(not(feature = "_aws-lc"))]
    fn dpop(&self, path: &str, _: Slot) -> Result<Slot, ConfigError> {
        Err(invalid(
            format!("{path}.dpop"),
            "DPoP needs the feature `aws-lc-rs`",
        ))
    }
}

/// Where the layer finds a request's client certificate, for tokens bound
/// to one (RFC 8705): `[client_certificates]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientCertificatesConfig {
    /// `connection` (default), `envoy_xfcc` or `pem_header`.
    #[serde(default)]
    pub source: CertificateSourceKind,
    /// The header of `source = "pem_header"`.
    #[serde(default)]
    pub header: Option<String>,
}

/// See [`CertificateSource`](crate::binding::CertificateSource).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CertificateSourceKind {
    /// The TLS connection.
    #[default]
    Connection,
    /// Envoy's `x-forwarded-client-cert`.
    EnvoyXfcc,
    /// A header with the certificate as (URL-encoded) PEM.
    PemHeader,
}

impl ClientCertificatesConfig {
    #[cfg(feature = "_aws-lc")]
    pub(super) fn build(
        &self,
        path: &str,
    ) -> Result<crate::binding::CertificateSource, ConfigError> {
        use crate::binding::CertificateSource;
        match (self.source, &self.header) {
            (CertificateSourceKind::PemHeader, Some(header)) => {
                let name = http::HeaderName::try_from(header.as_str()).map_err(|_| {
                    invalid(
                        format!("{path}.header"),
                        format!("invalid header name {header:?}"),
                    )
                })?;
                Ok(CertificateSource::pem_header(name))
            }
            (CertificateSourceKind::PemHeader, None) => Err(invalid(
                format!("{path}.header"),
                "source = \"pem_header\" needs a header",
            )),
            (_, Some(_)) => Err(invalid(
                format!("{path}.header"),
                "applies to source = \"pem_header\" only",
            )),
            (CertificateSourceKind::EnvoyXfcc, None) => Ok(CertificateSource::envoy_xfcc()),
            (CertificateSourceKind::Connection, None) => Ok(CertificateSource::connection()),
        }
    }
}
