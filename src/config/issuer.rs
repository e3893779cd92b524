//! One trusted issuer in a configuration file: a provider's preset, the
//! issuer and its audiences, the keys (one source), and the rules.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{Client, at, invalid};
use crate::keys::{Algorithm, KeySet};
use crate::{ConfigError, Issuer};

/// A provider whose documented token shape an issuer takes (see
/// [`Issuer::keycloak`] and its siblings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Preset {
    /// [`Issuer::keycloak`]: needs `issuer` and `client_id`.
    Keycloak,
    /// [`Issuer::auth0`]: needs `issuer` and `audiences`.
    Auth0,
    /// [`Issuer::entra`] and [`Issuer::entra_v1`] (both token versions):
    /// needs `audiences`, and `tenants` (a list, or `"any"`).
    Entra,
    /// [`Issuer::cognito`]: needs `issuer` and `client_ids`.
    Cognito,
    /// [`Issuer::google`] (both issuer forms): needs `audiences`.
    Google,
    /// [`Issuer::okta`]: needs `issuer` and `audiences`.
    Okta,
}

/// The tenants of a multi-tenant issuer: `"any"` or a list of `tid`s.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tenants {
    /// Every tenant (each token's `iss` still matches its own `tid`).
    Any,
    /// These tenants only.
    Only(Vec<String>),
}

impl<'de> Deserialize<'de> for Tenants {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            List(Vec<String>),
        }
        match Raw::deserialize(deserializer)
            .map_err(|_| serde::de::Error::custom("expected \"any\" or a list of tenant ids"))?
        {
            Raw::Word(w) if w == "any" => Ok(Tenants::Any),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "expected \"any\" or a list of tenant ids, not {w:?}"
            ))),
            Raw::List(list) => Ok(Tenants::Only(list)),
        }
    }
}

/// One trusted issuer: its keys (at most one of `jwks_file`, `jwks_url`,
/// `discovery = true`; without a preset, exactly one) and its rules. An
/// `issuer` holding `{tid}` is a multi-tenant template
/// ([`Issuer::for_tenants`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct IssuerConfig {
    /// A provider's documented token shape, refined by the keys below.
    #[serde(default)]
    pub preset: Option<Preset>,
    /// The `iss` value, matched exactly (or a `{tid}` template).
    #[serde(default)]
    pub issuer: Option<String>,
    /// Accepted audiences.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The Keycloak client (its audience, and where its roles are).
    #[serde(default)]
    pub client_id: Option<String>,
    /// The Cognito app clients (`client_id`).
    #[serde(default)]
    pub client_ids: Vec<String>,
    /// The tenants of a template issuer: a list of `tid`s or `"any"`.
    #[serde(default)]
    pub tenants: Option<Tenants>,
    /// Read the audience from this claim instead of `aud`.
    #[serde(default)]
    pub audience_claim: Option<String>,
    /// Claims that must have exactly this value.
    #[serde(default)]
    pub claims_equal: BTreeMap<String, Value>,
    /// Claims that must have one of these values.
    #[serde(default)]
    pub claims_one_of: BTreeMap<String, Vec<Value>>,
    /// The algorithm allow-list (default RS256, ES256, EdDSA; a preset's own).
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
    /// Claims holding permissions: names, or JSON Pointers (`/a/b`).
    #[serde(default)]
    pub permission_claims: Option<Vec<String>>,
    /// Claims holding roles: names, or JSON Pointers (`/realm_access/roles`).
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

/// Where a preset's keys are when the file names no source.
enum DefaultKeys {
    Discovery,
    Url(&'static str),
}

const ENTRA_KEYS: &str = "https://login.microsoftonline.com/common/discovery/v2.0/keys";
const GOOGLE_KEYS: &str = "https://www.googleapis.com/oauth2/v3/certs";

impl IssuerConfig {
    fn need<'a>(value: &'a Option<String>, path: &str, key: &str) -> Result<&'a str, ConfigError> {
        value
            .as_deref()
            .ok_or_else(|| invalid(format!("{path}.{key}"), format!("{key} is needed")))
    }

    fn first_audience(&self, path: &str) -> Result<&str, ConfigError> {
        self.audiences.first().map(String::as_str).ok_or_else(|| {
            invalid(
                format!("{path}.audiences"),
                "at least one audience is needed",
            )
        })
    }

    /// The issuers this table stands for (two for the presets with two
    /// issuer forms), before the settings shared by all.
    fn base(&self, path: &str) -> Result<(Vec<Issuer>, Option<DefaultKeys>), ConfigError> {
        let rest = self.audiences.iter().skip(1);
        let with_rest = |mut issuer: Issuer| {
            for audience in rest.clone() {
                issuer = issuer.add_audience(audience);
            }
            issuer
        };
        let Some(preset) = self.preset else {
            let name = Self::need(&self.issuer, path, "issuer")?;
            let audience = self.first_audience(path)?;
            let issuer = if name.contains(crate::verify::TENANT_PLACEHOLDER) {
                Issuer::for_tenants(name, audience)
            } else {
                Issuer::new(name, audience)
            };
            return Ok((vec![with_rest(issuer)], None));
        };
        Ok(match preset {
            Preset::Keycloak => {
                let client = Self::need(&self.client_id, path, "client_id")?;
                let issuer = Issuer::keycloak(Self::need(&self.issuer, path, "issuer")?, client);
                (vec![with_rest(issuer)], Some(DefaultKeys::Discovery))
            }
            Preset::Auth0 => {
                let name = Self::need(&self.issuer, path, "issuer")?;
                let issuer = Issuer::auth0(name, self.first_audience(path)?);
                (vec![with_rest(issuer)], Some(DefaultKeys::Discovery))
            }
            Preset::Okta => {
                let name = Self::need(&self.issuer, path, "issuer")?;
                let issuer = Issuer::okta(name, self.first_audience(path)?);
                (vec![with_rest(issuer)], Some(DefaultKeys::Discovery))
            }
            Preset::Cognito => {
                if self.client_ids.is_empty() {
                    return Err(invalid(
                        format!("{path}.client_ids"),
                        "client_ids is needed",
                    ));
                }
                let name = Self::need(&self.issuer, path, "issuer")?;
                let issuer = Issuer::cognito(name, self.client_ids.iter().cloned());
                (vec![with_rest(issuer)], Some(DefaultKeys::Discovery))
            }
            Preset::Entra => {
                let audience = self.first_audience(path)?;
                let issuers = match &self.tenants {
                    None => {
                        return Err(invalid(
                            format!("{path}.tenants"),
                            "tenants is needed: a list of tenant ids, or \"any\"",
                        ));
                    }
                    Some(Tenants::Any) => vec![
                        with_rest(Issuer::entra_any_tenant(audience, false)),
                        with_rest(Issuer::entra_any_tenant(audience, true)),
                    ],
                    Some(Tenants::Only(list)) => vec![
                        with_rest(Issuer::entra(list.iter().cloned(), audience)),
                        with_rest(Issuer::entra_v1(list.iter().cloned(), audience)),
                    ],
                };
                (issuers, Some(DefaultKeys::Url(ENTRA_KEYS)))
            }
            Preset::Google => {
                let audience = self.first_audience(path)?;
                // Google's ID tokens name the issuer with or without the scheme.
                let plain = Issuer::google(audience);
                let bare = Issuer::google(audience).with_name("accounts.google.com");
                (
                    vec![with_rest(plain), with_rest(bare)],
                    Some(DefaultKeys::Url(GOOGLE_KEYS)),
                )
            }
        })
    }

    pub(super) fn build(
        &self,
        path: &str,
        client: Option<&Client>,
    ) -> Result<Vec<Issuer>, ConfigError> {
        let (issuers, default_keys) = self.base(path)?;
        if self.preset.is_some()
            && self.issuer.is_some()
            && matches!(self.preset, Some(Preset::Entra | Preset::Google))
        {
            return Err(invalid(
                format!("{path}.issuer"),
                "this preset names its issuers itself",
            ));
        }
        let mut built = Vec::with_capacity(issuers.len());
        for issuer in issuers {
            built.push(self.refine(issuer, path)?);
        }
        self.with_keys(built, path, client, default_keys)
    }

    /// The settings shared by every issuer of the table.
    fn refine(&self, mut issuer: Issuer, path: &str) -> Result<Issuer, ConfigError> {
        if let Some(tenants) = &self.tenants
            && self.preset != Some(Preset::Entra)
        {
            match tenants {
                Tenants::Any => {}
                Tenants::Only(list) => issuer = issuer.with_tenants(list.iter().cloned()),
            }
        }
        if self.preset.is_none() && !self.client_ids.is_empty() {
            return Err(invalid(
                format!("{path}.client_ids"),
                "applies to preset = \"cognito\" only",
            ));
        }
        if let Some(claim) = &self.audience_claim {
            issuer = issuer.with_audience_claim(claim);
        }
        for (claim, value) in &self.claims_equal {
            issuer = issuer.require_claim_eq(claim, value.clone());
        }
        for (claim, values) in &self.claims_one_of {
            issuer = issuer.require_claim_in(claim, values.iter().cloned());
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
        let mut mapping = issuer.mapping().clone();
        if let Some(claims) = &self.permission_claims {
            mapping = mapping.with_permission_claims(claims);
        }
        if let Some(claims) = &self.role_claims {
            mapping = mapping.with_role_claims(claims);
        }
        for (role, permissions) in &self.role_permissions {
            mapping = mapping.add_role(role, permissions.iter().cloned());
        }
        Ok(issuer.with_permissions(mapping))
    }

    fn with_keys(
        &self,
        issuers: Vec<Issuer>,
        path: &str,
        client: Option<&Client>,
        default_keys: Option<DefaultKeys>,
    ) -> Result<Vec<Issuer>, ConfigError> {
        let sources = [
            self.jwks_file.is_some(),
            self.jwks_url.is_some(),
            self.discovery,
        ];
        let named = sources.iter().filter(|s| **s).count();
        if named > 1 || (named == 0 && default_keys.is_none()) {
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
            return Ok(issuers
                .into_iter()
                .map(|i| i.with_keys(keys.clone()))
                .collect());
        }
        let location = match (&self.jwks_url, self.discovery, default_keys) {
            (Some(url), _, _) => Remote::Url(url.clone(), "jwks_url"),
            (None, true, _) | (None, false, Some(DefaultKeys::Discovery)) => Remote::Discovery,
            (None, false, Some(DefaultKeys::Url(url))) => Remote::Url(url.to_owned(), "preset"),
            (None, false, None) => unreachable!("checked above"),
        };
        self.with_remote_keys(issuers, path, client, location)
    }

    #[cfg(feature = "jwks")]
    fn with_remote_keys(
        &self,
        issuers: Vec<Issuer>,
        path: &str,
        client: Option<&Client>,
        location: Remote,
    ) -> Result<Vec<Issuer>, ConfigError> {
        use crate::keys::JwksSource;
        let (mut builder, key) = match location {
            Remote::Url(url, key) => (JwksSource::builder(url), key),
            Remote::Discovery => {
                let name = issuers
                    .first()
                    .map(|i| i.name().to_owned())
                    .unwrap_or_default();
                if name.contains(crate::verify::TENANT_PLACEHOLDER) {
                    return Err(invalid(
                        format!("{path}.discovery"),
                        "a tenant template has no discovery document: set jwks_url",
                    ));
                }
                (JwksSource::discovery(name), "discovery")
            }
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
            builder = builder.with_client(client.builder());
        }
        let source = builder.build().map_err(at(format!("{path}.{key}")))?;
        source.prefetch();
        Ok(issuers
            .into_iter()
            .map(|i| i.with_jwks(source.clone()))
            .collect())
    }

    #[cfg(not(feature = "jwks"))]
    fn with_remote_keys(
        &self,
        _: Vec<Issuer>,
        path: &str,
        _: Option<&Client>,
        location: Remote,
    ) -> Result<Vec<Issuer>, ConfigError> {
        let key = match location {
            Remote::Url(_, key) => key,
            Remote::Discovery => "discovery",
        };
        Err(invalid(
            format!("{path}.{key}"),
            "keys from the network need the feature `jwks`",
        ))
    }
}

/// Keys from the network: a JWKS URL (the key that named it), or discovery.
#[cfg_attr(not(feature = "jwks"), allow(dead_code))]
enum Remote {
    Url(String, &'static str),
    Discovery,
}
