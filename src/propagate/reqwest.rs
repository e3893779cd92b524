//! The same propagation for reqwest, as a `reqwest-middleware` middleware
//! (feature `reqwest`), and the redirect policy that keeps its tokens on
//! the allow-list.

use std::sync::Arc;

use http::Extensions;
use reqwest::Url;
use reqwest_middleware::{Middleware, Next};

use super::Destination;
use super::PropagateLayer;
use super::future::Tokens;
use super::policy::Policy;
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
/// [`redirect_policy`]: it follows a redirect only to the origin the
/// request went to (same scheme, host and port), and refuses every other
/// hop with an error before connecting.
///
/// As a second line, the middleware checks where the answer came from: a
/// request that carried tokens and was answered from anywhere but its
/// destination (a client built without [`redirect_policy`]) fails with an
/// error instead of handing that answer to the application, and is logged
/// at `error` level. That check sees only the last hop — a chain that
/// leaves and comes back passes it — and the tokens have left by then:
/// only the redirect policy keeps them from being sent. Use it with every
/// client this middleware is on.
///
/// ```
/// use tower_mandate::propagate::{Destination, PropagateLayer, PropagateMiddleware, redirect_policy};
///
/// let policy = PropagateLayer::builder().add_destination(Destination::https("images.internal")).build();
/// let client = reqwest::Client::builder()
///     .redirect(redirect_policy())
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

/// Whether two URLs have the same origin: scheme, host and port (the port
/// defaulted from the scheme).
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

/// A redirect may be followed when every URL of the chain, `next` included,
/// has the origin of the first one.
fn may_follow(previous: &[Url], next: &Url) -> bool {
    previous.iter().all(|p| same_origin(p, next))
}

/// A reqwest redirect policy for clients under [`PropagateMiddleware`]: a
/// redirect is followed (at most 10 in a chain) only to the origin the
/// chain started at — same scheme, host and port. Any other hop (another
/// host, another port, `https` to `http`) fails the request with an error
/// before anything is sent there, so a token the middleware attached for
/// a destination never reaches another one, whatever the destinations are
/// and however the layer changes later.
///
/// ```
/// use tower_mandate::propagate::redirect_policy;
///
/// let client = reqwest::Client::builder().redirect(redirect_policy()).build()?;
/// # let _ = client;
/// # Ok::<(), reqwest::Error>(())
/// ```
pub fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error("too many redirects");
        }
        if may_follow(attempt.previous(), attempt.url()) {
            return attempt.follow();
        }
        let from = attempt.previous().first().map(origin).unwrap_or_default();
        tracing::warn!(
            target: "tower_mandate::propagate",
            %from,
            to = %origin(attempt.url()),
            "refusing a redirect to another origin: it could carry tokens off their destination"
        );
        attempt.error(
            "redirect to another origin refused (it could carry tokens off their destination)",
        )
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
        let caller = Caller::current();
        let failed = |e: super::BoxError| {
            reqwest_middleware::Error::Middleware(anyhow::Error::msg(e.to_string()))
        };
        let mut tokens = Tokens::plan(destination, caller.as_ref()).map_err(failed)?;
        tokens.fetch().await.map_err(failed)?;
        let method = req.method().clone();
        // The URL as a URI only for a DPoP proof (and its nonce).
        let uri: Option<http::Uri> = if tokens.proves() {
            let uri = req.url().as_str().parse();
            Some(uri.map_err(|_| failed("the request URL is not a valid URI".into()))?)
        } else {
            None
        };
        let head = uri.as_ref().map(|u| (&method, u));
        tokens
            .set(&self.policy, head, req.headers_mut())
            .map_err(failed)?;
        #[cfg(feature = "_aws-lc")]
        let (dpop, retry) = match tokens.dpop_key() {
            // A body that cannot be cloned (a stream) is sent once.
            Some(key) => (Some(key.clone()), req.try_clone()),
            None => (None, None),
        };
        #[allow(unused_mut)]
        let mut res = next.clone().run(req, extensions).await?;
        #[cfg(feature = "_aws-lc")]
        if let (Some(key), Some(uri)) = (&dpop, &uri) {
            // RFC 9449 §9: the resource server's nonce, for the next proofs,
            // and one retry when it refused this one for want of it.
            let nonce = res
                .headers()
                .get("dpop-nonce")
                .and_then(|v| v.to_str().ok());
            if let Some(nonce) = nonce {
                key.remember_nonce(uri, nonce);
            }
            let asked = res.status() == reqwest::StatusCode::UNAUTHORIZED
                && nonce.is_some()
                && res
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|c| c.contains("use_dpop_nonce"));
            if let (true, Some(mut again)) = (asked, retry) {
                tokens
                    .reprove(&self.policy, (&method, uri), again.headers_mut())
                    .map_err(failed)?;
                res = next.run(again, extensions).await?;
                if let Some(nonce) = res
                    .headers()
                    .get("dpop-nonce")
                    .and_then(|v| v.to_str().ok())
                {
                    key.remember_nonce(uri, nonce);
                }
            }
        }
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
    fn hops_stay_on_the_origin() {
        struct Case {
            name: &'static str,
            chain: &'static [&'static str],
            next: &'static str,
            follow: bool,
        }
        let cases = [
            Case {
                name: "same origin, other path",
                chain: &["https://images.internal/a"],
                next: "https://images.internal/b?x=1",
                follow: true,
            },
            Case {
                name: "explicit default port",
                chain: &["https://images.internal/a"],
                next: "https://images.internal:443/b",
                follow: true,
            },
            Case {
                name: "host case",
                chain: &["https://images.internal/a"],
                next: "https://IMAGES.internal/b",
                follow: true,
            },
            Case {
                name: "another host",
                chain: &["https://images.internal/a"],
                next: "https://evil.example/",
                follow: false,
            },
            Case {
                name: "https to http, same host",
                chain: &["https://images.internal/a"],
                next: "http://images.internal/a",
                follow: false,
            },
            Case {
                name: "same host, other port",
                chain: &["http://127.0.0.1:8080/a"],
                next: "http://127.0.0.1:8081/a",
                follow: false,
            },
            Case {
                name: "http to https, same host and port",
                chain: &["http://127.0.0.1:8080/a"],
                next: "https://127.0.0.1:8080/a",
                follow: false,
            },
            Case {
                name: "userinfo trick",
                chain: &["https://images.internal/a"],
                next: "https://images.internal@evil.example/",
                follow: false,
            },
            Case {
                name: "IPv6 loopback to IPv4",
                chain: &["http://[::1]:8080/a"],
                next: "http://127.0.0.1:8080/a",
                follow: false,
            },
            Case {
                name: "a chain that already left",
                chain: &["https://images.internal/a", "https://evil.example/b"],
                next: "https://images.internal/c",
                follow: false,
            },
            Case {
                name: "a chain that carries no token goes nowhere else either",
                chain: &["https://public.example/"],
                next: "https://anywhere.example/",
                follow: false,
            },
        ];
        for c in cases {
            let chain: Vec<Url> = c.chain.iter().map(|u| Url::parse(u).unwrap()).collect();
            let next = Url::parse(c.next).unwrap();
            assert_eq!(may_follow(&chain, &next), c.follow, "{}", c.name);
        }
    }
}
