//! Protected resource metadata (RFC 9728): what a client needs to find the
//! authorization server of this resource, published at
//! `/.well-known/oauth-protected-resource` and named in every challenge.

use std::fmt;

use serde_json::{Value, json};

use crate::ConfigError;

/// The resource's metadata document (RFC 9728 §2), given to
/// [`MandateBuilder::with_resource_metadata`](super::MandateBuilder::with_resource_metadata).
///
/// ```
/// use tower_mandate::server::ResourceMetadata;
///
/// let metadata = ResourceMetadata::new("https://images.example")
///     .add_authorization_server("https://id.example")
///     .with_scopes(["images:read", "images:write"]);
/// assert_eq!(
///     metadata.url()?,
///     "https://images.example/.well-known/oauth-protected-resource"
/// );
/// # Ok::<(), tower_mandate::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct ResourceMetadata {
    resource: String,
    authorization_servers: Vec<String>,
    scopes: Vec<String>,
    name: Option<String>,
    /// Filled in by the layer from its slots.
    pub(crate) dpop: Option<(bool, Vec<String>)>,
}

impl ResourceMetadata {
    /// Metadata of the resource identified by `resource` (an `https` URL
    /// without query or fragment, RFC 9728 §1.2).
    pub fn new(resource: impl Into<String>) -> Self {
        ResourceMetadata {
            resource: resource.into(),
            authorization_servers: Vec::new(),
            scopes: Vec::new(),
            name: None,
            dpop: None,
        }
    }

    /// An authorization server (its issuer identifier) that issues tokens
    /// for this resource. Without any, the layer names the issuers of its
    /// user slot (else its service slot).
    pub fn add_authorization_server(mut self, issuer: impl Into<String>) -> Self {
        self.authorization_servers.push(issuer.into());
        self
    }

    pub(crate) fn authorization_servers_is_empty(&self) -> bool {
        self.authorization_servers.is_empty()
    }

    /// The scopes (permissions) the resource understands.
    pub fn with_scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// A human-readable name (`resource_name`).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Where the document is published (RFC 9728 §3.1): the well-known
    /// path inserted between the resource's host and its path.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] when the resource is not an absolute
    /// `https` (or loopback `http`) URL without query and fragment.
    pub fn url(&self) -> Result<String, ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidUrl {
            url: self.resource.clone(),
            reason: reason.to_owned(),
        };
        let url = url::Url::parse(&self.resource).map_err(|e| invalid(&e.to_string()))?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
            return Err(invalid("the resource must be https"));
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            return Err(invalid(
                "no query, fragment or user info in a resource identifier",
            ));
        }
        let path = url.path().trim_end_matches('/');
        let origin = url.origin().ascii_serialization();
        Ok(format!(
            "{origin}/.well-known/oauth-protected-resource{path}"
        ))
    }

    /// The document (RFC 9728 §2).
    pub fn document(&self) -> Value {
        let mut doc = json!({
            "resource": self.resource,
            "authorization_servers": self.authorization_servers,
            "bearer_methods_supported": ["header"],
        });
        if !self.scopes.is_empty() {
            doc["scopes_supported"] = json!(self.scopes);
        }
        if let Some(name) = &self.name {
            doc["resource_name"] = json!(name);
        }
        if let Some((required, algs)) = &self.dpop {
            doc["dpop_signing_alg_values_supported"] = json!(algs);
            doc["dpop_bound_access_tokens_required"] = json!(required);
        }
        doc
    }

    /// An axum route answering the document; mount it at the path of
    /// [`url`](Self::url), outside the `route_layer` (it needs no token).
    #[cfg(feature = "axum")]
    pub fn route<S: Clone + Send + Sync + 'static>(&self) -> axum::routing::MethodRouter<S> {
        let body: std::sync::Arc<str> = self.document().to_string().into();
        axum::routing::get(move || {
            let body = body.clone();
            async move {
                (
                    [
                        (http::header::CONTENT_TYPE, "application/json"),
                        (http::header::CACHE_CONTROL, "max-age=300"),
                    ],
                    body.to_string(),
                )
            }
        })
    }
}

impl fmt::Debug for ResourceMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResourceMetadata")
            .field("resource", &self.resource)
            .field("authorization_servers", &self.authorization_servers)
            .finish_non_exhaustive()
    }
}
