//! The `[policy]` table: an external policy decision point (AuthZEN 1.0).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Client, Providers, at, invalid};
use crate::ConfigError;
use crate::policy::{AuthZen, Semantic};
use crate::provider::TokenRequest;

/// An AuthZEN 1.0 policy decision point (see [`AuthZen`]).
///
/// ```toml
/// [policy]
/// authzen_url = "https://pdp.internal"  # the decision point's identifier
/// timeout = "2s"                        # per request (default 2 s); past it: 503
/// discovery = true                      # endpoints from /.well-known/authzen-configuration
/// semantic = "deny_on_first_deny"       # or "execute_all"
/// cache_ttl = "5s"                      # decisions kept (off by default)
/// cache_capacity = 10000
/// token_provider = "pdp"                # a [providers.pdp] entry: Authorization: Bearer …
/// token_audience = "pdp"
/// [policy.context]                      # added to every request's context
/// "cerbos.includeMeta" = true
/// [policy.action_scopes]                # inside a transaction, `read` needs images:read
/// read = "images:read"
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyConfig {
    /// The decision point's identifier (base URL).
    pub authzen_url: String,
    /// How long one request may take (default 2 s).
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Read the endpoints from the decision point's metadata.
    #[serde(default)]
    pub discovery: bool,
    /// `deny_on_first_deny` (default) or `execute_all`.
    #[serde(default)]
    pub semantic: Semantic,
    /// How long decisions are kept (off when absent).
    #[serde(default, with = "humantime_serde")]
    pub cache_ttl: Option<Duration>,
    /// How many decisions are kept (default 10,000).
    #[serde(default)]
    pub cache_capacity: Option<usize>,
    /// The provider (of `[providers]`) of this service's token for the
    /// decision point.
    #[serde(default)]
    pub token_provider: Option<String>,
    /// The audience of that token.
    #[serde(default)]
    pub token_audience: Option<String>,
    /// The scopes of that token, space-delimited.
    #[serde(default)]
    pub token_scope: Option<String>,
    /// Members added to every request's `context`.
    #[serde(default)]
    pub context: Map<String, Value>,
    /// Allow a plain-http decision point (loopback tests).
    #[serde(default)]
    pub insecure_allow_http: bool,
    /// The scope a transaction must hold for an action, by action name
    /// (see [`AuthZenBuilder::with_action_scope`](crate::policy::AuthZenBuilder::with_action_scope)).
    #[serde(default)]
    pub action_scopes: std::collections::BTreeMap<String, String>,
}

impl PolicyConfig {
    pub(super) fn build(
        &self,
        path: &str,
        providers: &Providers,
        client: Option<&Client>,
    ) -> Result<AuthZen, ConfigError> {
        let mut builder = AuthZen::builder(&self.authzen_url).with_semantic(self.semantic);
        if let Some(timeout) = self.timeout {
            if timeout.is_zero() {
                return Err(invalid(format!("{path}.timeout"), "must not be zero"));
            }
            builder = builder.with_timeout(timeout);
        }
        if self.discovery {
            builder = builder.with_discovery();
        }
        match (self.cache_ttl, self.cache_capacity) {
            (Some(ttl), capacity) => {
                builder = builder.with_cache(ttl, capacity.unwrap_or(10_000));
            }
            (None, Some(_)) => {
                return Err(invalid(
                    format!("{path}.cache_capacity"),
                    "applies with cache_ttl only",
                ));
            }
            (None, None) => {}
        }
        match &self.token_provider {
            Some(name) => {
                let provider = providers.get(name).ok_or_else(|| {
                    invalid(
                        format!("{path}.token_provider"),
                        format!("no provider {name:?} in [providers]"),
                    )
                })?;
                let request = TokenRequest {
                    audience: self.token_audience.clone(),
                    scope: self.token_scope.clone(),
                    ..TokenRequest::default()
                };
                builder = builder.with_token(provider, request);
            }
            None if self.token_audience.is_some() || self.token_scope.is_some() => {
                return Err(invalid(
                    format!("{path}.token_provider"),
                    "token_audience and token_scope need a token_provider",
                ));
            }
            None => {}
        }
        for (name, value) in &self.context {
            builder = builder.with_context(name, value.clone());
        }
        for (action, scope) in &self.action_scopes {
            if scope.is_empty() || scope.contains(char::is_whitespace) {
                return Err(invalid(
                    format!("{path}.action_scopes.{action}"),
                    "one scope, not empty and without spaces",
                ));
            }
            builder = builder.with_action_scope(action, scope);
        }
        if let Some(client) = client {
            builder = builder.with_client(client.builder());
        }
        if self.insecure_allow_http {
            builder = builder.insecure_allow_http();
        }
        builder.build().map_err(at(format!("{path}.authzen_url")))
    }
}
