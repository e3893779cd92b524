//! Building an [`AuthZen`]: every setting is made before it is shared.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use super::answer::DecisionCache;
use super::{AuthZen, Inner, Semantic, discovery};
use crate::ConfigError;
use crate::provider::{TokenProvider, TokenRequest};

/// Builds an [`AuthZen`].
#[must_use]
pub struct AuthZenBuilder {
    url: String,
    timeout: Duration,
    semantic: Semantic,
    discovery: bool,
    allow_http: bool,
    client: Option<reqwest::ClientBuilder>,
    token: Option<(Arc<dyn TokenProvider>, TokenRequest)>,
    context: Map<String, Value>,
    cache: Option<(Duration, usize)>,
    action_scopes: super::super::ActionScopes,
}

impl AuthZen {
    /// A decision point whose identifier (base URL) is `url`; its
    /// endpoints are at the default paths unless
    /// [`with_discovery`](AuthZenBuilder::with_discovery).
    pub fn builder(url: impl Into<String>) -> AuthZenBuilder {
        AuthZenBuilder {
            url: url.into(),
            timeout: Duration::from_secs(2),
            semantic: Semantic::default(),
            discovery: false,
            allow_http: false,
            client: None,
            token: None,
            context: Map::new(),
            cache: None,
            action_scopes: super::super::ActionScopes::default(),
        }
    }
}

impl fmt::Debug for AuthZenBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthZenBuilder")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("semantic", &self.semantic)
            .field("discovery", &self.discovery)
            .finish_non_exhaustive()
    }
}

impl AuthZenBuilder {
    /// How long one request to the decision point may take, connection
    /// included (default 2 s); past it the decision fails with 503.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The evaluations semantic (default [`Semantic::DenyOnFirstDeny`]).
    pub fn with_semantic(mut self, semantic: Semantic) -> Self {
        self.semantic = semantic;
        self
    }

    /// Read the endpoints from the decision point's metadata at
    /// `/.well-known/authzen-configuration` (§9), on the first decision
    /// rather than when building, so that the service may start before
    /// the decision point. The metadata's `policy_decision_point` must be
    /// this identifier (§9.2.3); a failed discovery fails decisions with
    /// 503 and is tried again after 2 s.
    pub fn with_discovery(mut self) -> Self {
        self.discovery = true;
        self
    }

    /// Send requests with the application's own HTTP client (a private
    /// CA, a proxy, a client certificate). The crate builds it with no
    /// redirects (the bearer token would follow them) and its timeout,
    /// whatever the builder says.
    pub fn with_client(mut self, client: reqwest::ClientBuilder) -> Self {
        self.client = Some(client);
        self
    }

    /// Authenticate to the decision point with this service's own token
    /// from `provider` (for `request`): `Authorization: Bearer …` on every
    /// request. A token that cannot be had fails the decision with 503.
    pub fn with_token(mut self, provider: impl TokenProvider, request: TokenRequest) -> Self {
        self.token = Some((Arc::new(provider), request));
        self
    }

    /// Add a member to every request's `context`: for example Cerbos's
    /// `"cerbos.includeMeta": true`, which makes it return the matched
    /// policies and rule outputs (then in [`PolicyDecision::policies`](crate::policy::PolicyDecision::policies)).
    pub fn with_context(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.context.insert(name.into(), value.into());
        self
    }

    /// Keep decisions for `ttl`, at most `capacity` of them (off by
    /// default). The key is the whole request as sent — every subject with
    /// its issuer, permissions and roles, the action, the resource and its
    /// properties, the context — so a decision is never reused for another
    /// user, another service or another owner. Failures are not kept. A
    /// policy change at the decision point takes up to `ttl` to apply.
    pub fn with_cache(mut self, ttl: Duration, capacity: usize) -> Self {
        self.cache = (!ttl.is_zero() && capacity > 0).then_some((ttl, capacity));
        self
    }

    /// Inside a transaction, `action` needs `scope` in the transaction's
    /// scope (by default the action's own name), else it is denied here
    /// without asking: for action names that are not scopes, such as
    /// `read` for `images:read`.
    pub fn with_action_scope(
        mut self,
        action: impl Into<String>,
        scope: impl Into<String>,
    ) -> Self {
        self.action_scopes.insert(action.into(), scope.into());
        self
    }

    /// Accept a plain-http decision point (and plain-http endpoints in
    /// its metadata). The bearer token and every decision then cross the
    /// network unprotected: for loopback and tests only.
    pub fn insecure_allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// The decision point.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] for a URL that does not parse, has
    /// credentials, a query or a fragment, or is plain http without
    /// [`insecure_allow_http`](Self::insecure_allow_http); and when the
    /// HTTP client cannot be built.
    pub fn build(self) -> Result<AuthZen, ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidUrl {
            url: self.url.clone(),
            reason,
        };
        let base = reqwest::Url::parse(&self.url).map_err(|e| invalid(e.to_string()))?;
        if !base.username().is_empty() || base.password().is_some() {
            return Err(ConfigError::InvalidUrl {
                url: "<with credentials>".into(),
                reason: "a decision point identifier has no credentials; use with_token".into(),
            });
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid(
                "a decision point identifier has no query or fragment".into(),
            ));
        }
        discovery::check_scheme(&base, self.allow_http).map_err(invalid)?;
        let endpoints = OnceCell::new();
        if !self.discovery {
            let _ = endpoints.set(discovery::defaults(&base).map_err(invalid)?);
        }
        let client = self
            .client
            .unwrap_or_default()
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(2)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| invalid(format!("the HTTP client: {e}")))?;
        Ok(AuthZen(Arc::new(Inner {
            base,
            endpoints,
            failed_at: Mutex::new(None),
            allow_http: self.allow_http,
            client,
            semantic: self.semantic,
            token: self.token,
            context: self.context,
            cache: self
                .cache
                .map(|(ttl, capacity)| DecisionCache::new(ttl, capacity)),
            retry_after: self.timeout.as_secs().clamp(1, 30),
            action_scopes: self.action_scopes,
        })))
    }
}
