//! The same propagation for reqwest, as a `reqwest-middleware` middleware
//! (feature `reqwest`), and the redirect policy that keeps its tokens on
//! the allow-list.

use std::sync::Arc;

use http::Extensions;
use reqwest::Url;
use reqwest_middleware::{Middleware, Next};

use super::PropagateLayer;
use super::layer::{Destination, Policy, attach};
use crate::Caller;

/// Most redirects [`redirect_policy`] follows in one chain (reqwest's default).
const MAX_REDIRECTS: usize = 10;

/// A [`reqwest_middleware::Middleware`] applying a [`PropagateLayer`]'s
/// policy: the same destinations, tokens and rules.
///
/// # Security: redirects
///
/// reqwest follows redirects inside the client, after the middleware has
/// attached the tokens, and on a hop to another host it removes only
/// `Authorization`, `Cookie` and `Proxy-Authorization`: a
/// `Service-Authorization` header (or a user token under a custom header
/// name) would follow a `Location` anywhere. Build the client with
/// [`redirect_policy`]: it follows a redirect only when the next hop is
/// the destination the tokens were attached for (same scheme, host and
/// port), and refuses every other hop with an error before connecting.
///
/// As a second line, the middleware checks where the answer came from: a
/// request that carried tokens and was answered from anywhere but its
/// destination (a client built without [`redirect_policy`]) fails with an
/// error instead of handing that answer to the application, and is logged
/// at `error` level. Only the redirect policy keeps the token from being
/// sent: use it with every client this middleware is on.
///
/// ```
/// use tower_mandate::propagate::{Destination, PropagateLayer, PropagateMiddleware, redirect_policy};
///
/// let policy = PropagateLayer::new().add_destination(Destination::https("images.internal"));
/// let client = reqwest::Client::builder()
///     .redirect(redirect_policy(&policy))
///     .build()?;
/// let client = reqwest_middleware::ClientBuilder::new(client)
///     .with(PropagateMiddleware::new(&policy))
///     .build();
/// # let _ = client;
/// # Ok::<(), reqwest::Error>(())
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

fn destination_for_url<'p>(policy: &'p Policy, url: &Url) -> Option<&'p Destination> {
    policy
        .destinations()
        .iter()
        .find(|d| d.matches_origin(url.scheme(), url.host_str(), url.port_or_known_default()))
}

/// Whether a redirect from a chain that started at `first` may go to `next`:
/// a chain that started off the list carries no token of ours and may go
/// anywhere; one that started at a destination stays on that destination.
fn may_follow(policy: &Policy, first: &Url, next: &Url) -> bool {
    match destination_for_url(policy, first) {
        None => true,
        Some(d) => destination_for_url(policy, next).is_some_and(|n| std::ptr::eq(d, n)),
    }
}

/// A reqwest redirect policy for clients under [`PropagateMiddleware`]
/// with `layer`'s destinations: a redirect is followed (at most 10 in a
/// chain) only when the request that started the chain went to no
/// destination (so it carries no token of ours), or when the next hop is
/// that same destination: same scheme, host and port. Any other hop —
/// another host, another port, `https` to `http` — fails the request with
/// an error before anything is sent there.
///
/// ```
/// use tower_mandate::propagate::{Destination, PropagateLayer, redirect_policy};
///
/// let layer = PropagateLayer::new().add_destination(Destination::https("images.internal"));
/// let client = reqwest::Client::builder().redirect(redirect_policy(&layer)).build()?;
/// # let _ = client;
/// # Ok::<(), reqwest::Error>(())
/// ```
pub fn redirect_policy(layer: &PropagateLayer) -> reqwest::redirect::Policy {
    let policy = layer.policy.clone();
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error("too many redirects");
        }
        let Some(first) = attempt.previous().first() else {
            return attempt.follow();
        };
        if may_follow(&policy, first, attempt.url()) {
            attempt.follow()
        } else {
            tracing::warn!(
                target: "tower_mandate::propagate",
                from = %origin(first),
                to = %origin(attempt.url()),
                "refusing a redirect that would carry tokens off their destination"
            );
            attempt.error("redirect to a host that may not receive this request's tokens")
        }
    })
}

/// `scheme://host:port` of `url`, for logs (no path, no query, no userinfo).
fn origin(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

#[async_trait::async_trait]
impl Middleware for PropagateMiddleware {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let Some(destination) = destination_for_url(&self.policy, req.url()) else {
            return next.run(req, extensions).await;
        };
        let user = Caller::current().and_then(|c| c.user().map(|u| u.token().to_owned()));
        attach(&self.policy, destination, user, req.headers_mut())
            .await
            .map_err(|e| {
                reqwest_middleware::Error::Middleware(anyhow::Error::msg(e.to_string()))
            })?;
        let res = next.run(req, extensions).await?;
        let url = res.url();
        if !destination.matches_origin(url.scheme(), url.host_str(), url.port_or_known_default()) {
            tracing::error!(
                target: "tower_mandate::propagate",
                answered_by = %origin(url),
                "a redirect carried tokens off their destination: build the client with propagate::redirect_policy"
            );
            return Err(reqwest_middleware::Error::Middleware(anyhow::Error::msg(
                "the answer came from a host that may not receive this request's tokens \
                 (the client followed a redirect; use propagate::redirect_policy)",
            )));
        }
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_stay_on_the_destination() {
        struct Case {
            name: &'static str,
            first: &'static str,
            next: &'static str,
            follow: bool,
        }
        let layer = PropagateLayer::new()
            .add_destination(Destination::https("images.internal"))
            .add_destination(Destination::https("tags.internal"))
            .add_destination(Destination::insecure_http("127.0.0.1", 8080));
        let cases = [
            Case {
                name: "same destination, other path",
                first: "https://images.internal/a",
                next: "https://images.internal/b?x=1",
                follow: true,
            },
            Case {
                name: "explicit default port",
                first: "https://images.internal/a",
                next: "https://images.internal:443/b",
                follow: true,
            },
            Case {
                name: "off the list",
                first: "https://images.internal/a",
                next: "https://evil.example/",
                follow: false,
            },
            Case {
                name: "another listed destination",
                first: "https://images.internal/a",
                next: "https://tags.internal/",
                follow: false,
            },
            Case {
                name: "https to http, same host",
                first: "https://images.internal/a",
                next: "http://images.internal/a",
                follow: false,
            },
            Case {
                name: "same host, other port",
                first: "http://127.0.0.1:8080/a",
                next: "http://127.0.0.1:8081/a",
                follow: false,
            },
            Case {
                name: "http to https, same host",
                first: "http://127.0.0.1:8080/a",
                next: "https://127.0.0.1:8080/a",
                follow: false,
            },
            Case {
                name: "userinfo trick",
                first: "https://images.internal/a",
                next: "https://images.internal@evil.example/",
                follow: false,
            },
            Case {
                name: "a chain that carries no token",
                first: "https://public.example/",
                next: "https://anywhere.example/",
                follow: true,
            },
        ];
        for c in cases {
            let first = Url::parse(c.first).unwrap();
            let next = Url::parse(c.next).unwrap();
            assert_eq!(
                may_follow(&layer.policy, &first, &next),
                c.follow,
                "{}",
                c.name
            );
        }
    }
}
