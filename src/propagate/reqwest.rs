//! The same propagation for reqwest, as a `reqwest-middleware` middleware
//! (feature `reqwest`).

use std::sync::Arc;

use http::Extensions;
use reqwest_middleware::{Middleware, Next};

use super::PropagateLayer;
use super::layer::{Policy, attach};
use crate::Caller;

/// A [`reqwest_middleware::Middleware`] applying a [`PropagateLayer`]'s
/// policy: the same destinations, tokens and rules.
///
/// ```
/// use tower_mandate::propagate::{Destination, PropagateLayer, PropagateMiddleware};
///
/// let policy = PropagateLayer::new().add_destination(Destination::https("images.internal"));
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(PropagateMiddleware::new(&policy))
///     .build();
/// # let _ = client;
/// ```
#[derive(Clone)]
pub struct PropagateMiddleware {
    policy: Arc<Policy>,
}

impl PropagateMiddleware {
    /// The middleware for `layer`'s policy.
    pub fn new(layer: &PropagateLayer) -> Self {
        PropagateMiddleware {
            policy: layer.policy.clone(),
        }
    }
}

impl std::fmt::Debug for PropagateMiddleware {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PropagateMiddleware")
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Middleware for PropagateMiddleware {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let uri: Option<http::Uri> = req.url().as_str().parse().ok();
        if let Some(destination) = uri.as_ref().and_then(|u| self.policy.destination_for(u)) {
            let user = Caller::current().and_then(|c| c.user().map(|u| u.token().to_owned()));
            attach(&self.policy, destination, user, req.headers_mut())
                .await
                .map_err(|e| reqwest_middleware::Error::Middleware(anyhow_free(e)))?;
        }
        next.run(req, extensions).await
    }
}

fn anyhow_free(e: super::BoxError) -> anyhow::Error {
    anyhow::Error::msg(e.to_string())
}
