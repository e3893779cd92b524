//! [`PropagateLayer`]: attach identity to outgoing `http::Request`s.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::AUTHORIZATION;
use http::{HeaderName, Request};
use tower_layer::Layer;
use tower_service::Service;

use super::future::{ResponseFuture, Tokens};
use super::policy::Policy;
use super::{BoxError, Destination};
use crate::Caller;

/// Attaches the current user's token and this service's own token to
/// outgoing requests, for allowed destinations only.
///
/// The user comes from [`Caller::current`] (set by the server layer for the
/// request being handled). A request to a destination that is not on the
/// list leaves without any token added. A header the application set
/// itself is kept unless [`PropagateBuilder::overwrite_existing`]. Values are
/// marked sensitive, so HTTP/2 never indexes them and `Debug` hides them.
///
/// # Security: redirects
///
/// hyper-util's client and tonic's `Channel` never follow redirects. A
/// redirect-following layer (tower-http's `FollowRedirect`) must sit
/// **outside** this layer, so that every hop passes through it and is
/// matched against the destinations again: a hop off the list then leaves
/// with no token attached.
///
/// ```text
/// ServiceBuilder::new()
///     .layer(FollowRedirectLayer::new())   // outside: each hop is a new request below
///     .layer(propagate_layer)              // attaches per hop, for listed hops only
///     .service(client)
/// ```
///
/// The other order (`FollowRedirect` inside) would resend the headers this
/// layer attached to wherever `Location` points.
///
/// ```
/// use tower_mandate::propagate::{Destination, PropagateLayer};
/// use tower_mandate::provider::{SelfSigned, TokenRequest};
/// use tower_mandate::{keys::Algorithm, mint::SigningKey};
///
/// let me = SelfSigned::new("https://relay.internal", SigningKey::generate(Algorithm::ES256, "relay-1"))?;
/// let layer = PropagateLayer::builder().add_destination(
///     Destination::https("images.internal")
///         .forward_user_token()
///         .with_service_token(me, TokenRequest::for_audience("image-store")),
/// ).build();
/// # let _ = layer;
/// # Ok::<(), tower_mandate::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct PropagateLayer {
    pub(crate) policy: Arc<Policy>,
}

impl Default for PropagateLayer {
    fn default() -> Self {
        Self::new()
    }
}

/// Builds a [`PropagateLayer`]: the destinations and what to attach are
/// set before the layer is shared; [`PropagateMiddleware`](super::PropagateMiddleware)
/// is made from the same layer.
///
/// ```
/// use http::HeaderName;
/// use tower_mandate::propagate::{Destination, PropagateLayer};
///
/// let layer = PropagateLayer::builder()
///     .add_destination(Destination::https("images.internal"))
///     .with_headers(HeaderName::from_static("x-user-token"), HeaderName::from_static("x-service-token"))
///     .build();
/// # let _ = layer;
/// ```
#[must_use]
pub struct PropagateBuilder {
    policy: Policy,
}

impl fmt::Debug for PropagateBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PropagateBuilder")
            .field("destinations", &self.policy.destinations)
            .field("overwrite", &self.policy.overwrite)
            .finish()
    }
}

impl PropagateBuilder {
    /// Allow a destination.
    pub fn add_destination(mut self, destination: Destination) -> Self {
        self.policy.destinations.push(destination);
        self
    }

    /// Headers for the user's and the service's token (defaults:
    /// `Authorization`, `Service-Authorization`), each `Bearer <token>`.
    pub fn with_headers(mut self, user: HeaderName, service: HeaderName) -> Self {
        self.policy.user_header = user;
        self.policy.service_header = service;
        self
    }

    /// Replace token headers the application set itself.
    pub fn overwrite_existing(mut self) -> Self {
        self.policy.overwrite = true;
        self
    }

    /// The layer.
    pub fn build(self) -> PropagateLayer {
        PropagateLayer {
            policy: Arc::new(self.policy),
        }
    }
}

impl PropagateLayer {
    /// No destination: nothing is attached (see [`PropagateLayer::builder`]).
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Start a layer: add destinations, then [`build`](PropagateBuilder::build).
    pub fn builder() -> PropagateBuilder {
        PropagateBuilder {
            policy: Policy {
                destinations: Vec::new(),
                single: false,
                user_header: AUTHORIZATION,
                service_header: HeaderName::from_static("service-authorization"),
                overwrite: false,
            },
        }
    }

    /// For a client bound to one destination, such as a tonic `Channel`
    /// (whose requests carry only a path): every request goes to
    /// `destination`. Requests with an absolute URI must still match it.
    ///
    /// ```
    /// use tower_mandate::propagate::{Destination, PropagateLayer};
    ///
    /// let layer = PropagateLayer::single_destination(Destination::https("images.internal"));
    /// // let channel = tower::ServiceBuilder::new().layer(layer).service(channel);
    /// # let _ = layer;
    /// ```
    pub fn single_destination(destination: Destination) -> Self {
        let mut builder = Self::builder().add_destination(destination);
        builder.policy.single = true;
        builder.build()
    }
}

impl fmt::Debug for PropagateLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PropagateLayer")
            .field("destinations", &self.policy.destinations)
            .field("overwrite", &self.policy.overwrite)
            .finish()
    }
}

impl<S> Layer<S> for PropagateLayer {
    type Service = Propagate<S>;

    fn layer(&self, inner: S) -> Propagate<S> {
        Propagate {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// The service made by [`PropagateLayer`].
#[derive(Clone)]
pub struct Propagate<S> {
    inner: S,
    policy: Arc<Policy>,
}

impl<S> Propagate<S> {
    /// The inner client.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner client, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwrap the inner client.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for Propagate<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Propagate")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<Request<B>> for Propagate<S>
where
    S: Service<Request<B>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let policy = &self.policy;
        let Some(destination) = policy.destination_for(req.uri()) else {
            // Off the list: leaves without any token added.
            return ResponseFuture::calling(self.inner.call(req));
        };
        let caller = Caller::current();
        let tokens = match Tokens::plan(destination, caller.as_ref()) {
            Ok(tokens) => tokens,
            Err(e) => return ResponseFuture::failed(e),
        };
        if tokens.ready() {
            // Forwarded or cached tokens: attached now, no future to wait for.
            let head = tokens
                .proves()
                .then(|| (req.method().clone(), req.uri().clone()));
            let head = head.as_ref().map(|(m, u)| (m, u));
            if let Err(e) = tokens.set(policy, head, req.headers_mut()) {
                return ResponseFuture::failed(e);
            }
            return ResponseFuture::calling(self.inner.call(req));
        }
        // A token must be fetched: the inner client is called after, so the
        // future takes a ready clone of it (tower's way).
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::attaching(tokens, inner, req, policy.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::TokenRequest;

    #[cfg(feature = "test-util")]
    #[tokio::test(flavor = "current_thread")]
    async fn the_client_need_not_be_send() {
        // A client and a body holding an Rc: Propagate asks only Clone of
        // it. The first call fetches the service token; the second finds
        // it cached and attaches it without a future of its own.
        use std::rc::Rc;
        use tower_service::Service as _;
        let me = crate::provider::SelfSigned::new(
            "https://me.internal",
            crate::mint::SigningKey::generate(crate::keys::Algorithm::ES256, "me-1"),
        )
        .unwrap();
        let layer = PropagateLayer::builder()
            .add_destination(
                Destination::https("images.internal")
                    .with_service_token(me, TokenRequest::for_audience("images")),
            )
            .build();
        let seen: Rc<std::cell::RefCell<Vec<bool>>> = Rc::default();
        let record = seen.clone();
        let mut client = layer.layer(tower::service_fn(move |req: Request<Rc<()>>| {
            record
                .borrow_mut()
                .push(req.headers().contains_key("service-authorization"));
            std::future::ready(Ok::<_, std::convert::Infallible>(()))
        }));
        for _ in 0..2 {
            let req = Request::get("https://images.internal/x")
                .body(Rc::new(()))
                .unwrap();
            client.call(req).await.unwrap();
        }
        assert_eq!(*seen.borrow(), [true, true]);
    }
}
