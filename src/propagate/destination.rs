//! Where tokens may go: a destination (scheme, host, port) and what it
//! receives — the user's token forwarded, exchanged or dropped, and this
//! service's own token.

use std::fmt;
use std::sync::Arc;

use http::Uri;

use crate::provider::{TokenProvider, TokenRequest};

/// What happens to the user's token on the way to a destination.
#[derive(Clone)]
pub(super) enum UserToken {
    Forward,
    Exchange(Arc<dyn TokenProvider>, TokenRequest),
    Drop,
}

/// A destination that may receive tokens, and which ones.
///
/// Matched on scheme, host and port of the request URI. `https` only,
/// unless created with [`Destination::insecure_http`].
#[derive(Clone)]
pub struct Destination {
    scheme: &'static str,
    host: String,
    port: u16,
    pub(super) user: UserToken,
    pub(super) service: Option<(Arc<dyn TokenProvider>, TokenRequest)>,
    /// Forward the request's Transaction Token (the default).
    pub(super) transaction: bool,
    /// Without one, get a Transaction Token for the user's token from this
    /// provider (at the edge).
    pub(super) transaction_from: Option<(Arc<dyn TokenProvider>, TokenRequest)>,
}

impl Destination {
    /// `https://host` on port 443. By default the user's token is forwarded
    /// as received and no service token is attached.
    pub fn https(host: impl Into<String>) -> Self {
        Destination {
            scheme: "https",
            host: host.into().to_ascii_lowercase(),
            port: 443,
            user: UserToken::Forward,
            service: None,
            transaction: true,
            transaction_from: None,
        }
    }

    /// `http://host:port`.
    ///
    /// # Security
    ///
    /// Tokens cross the network in clear text: anyone on the path can
    /// replay them. Loopback hosts in tests only.
    pub fn insecure_http(host: impl Into<String>, port: u16) -> Self {
        Destination {
            scheme: "http",
            port,
            ..Self::https(host)
        }
    }

    /// Use another port than the scheme's default.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Send the user's token as received (the default).
    pub fn forward_user_token(mut self) -> Self {
        self.user = UserToken::Forward;
        self
    }

    /// Exchange the user's token (RFC 8693) for one made for this
    /// destination: `request` names its audience, resource and scope; the
    /// user's token is added as the subject token.
    pub fn exchange_user_token(
        mut self,
        provider: impl TokenProvider,
        request: TokenRequest,
    ) -> Self {
        self.user = UserToken::Exchange(Arc::new(provider), request);
        self
    }

    /// Send no user token to this destination.
    pub fn drop_user_token(mut self) -> Self {
        self.user = UserToken::Drop;
        self
    }

    /// Do not forward the request's Transaction Token (`Txn-Token`) to this
    /// destination; by default it goes, unmodified, to every destination
    /// on the list (draft-ietf-oauth-transaction-tokens-10 §12.2).
    pub fn drop_transaction(mut self) -> Self {
        self.transaction = false;
        self
    }

    /// At the edge: a request that came with a user token and no
    /// Transaction Token gets one for this destination from `provider`
    /// (a [`TransactionExchange`](crate::transaction::TransactionExchange)),
    /// the user's token as its subject and `request`'s scope its purpose,
    /// sent in `Txn-Token`. A request that has one forwards it instead.
    pub fn with_transaction_token(
        mut self,
        provider: impl TokenProvider,
        request: TokenRequest,
    ) -> Self {
        self.transaction_from = Some((Arc::new(provider), request));
        self
    }

    /// Attach this service's own token from `provider`.
    pub fn with_service_token(
        mut self,
        provider: impl TokenProvider,
        request: TokenRequest,
    ) -> Self {
        self.service = Some((Arc::new(provider), request));
        self
    }

    pub(super) fn matches(&self, uri: &Uri) -> bool {
        let Some(scheme) = uri.scheme_str() else {
            return false;
        };
        self.matches_origin(scheme, uri.host(), uri.port_u16())
    }

    /// Whether `scheme://host:port` (the port defaulted from the scheme) is
    /// this destination.
    pub(crate) fn matches_origin(
        &self,
        scheme: &str,
        host: Option<&str>,
        port: Option<u16>,
    ) -> bool {
        let default_port = match scheme {
            "https" => 443,
            "http" => 80,
            _ => return false,
        };
        scheme == self.scheme
            && host.is_some_and(|h| h.eq_ignore_ascii_case(&self.host))
            && port.unwrap_or(default_port) == self.port
    }
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = match self.user {
            UserToken::Forward => "forward",
            UserToken::Exchange(..) => "exchange",
            UserToken::Drop => "drop",
        };
        f.debug_struct("Destination")
            .field("scheme", &self.scheme)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user_token", &user)
            .field("service_token", &self.service.as_ref().map(|(_, r)| r))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_match_scheme_host_and_port() {
        struct Case {
            name: &'static str,
            uri: &'static str,
            ok: bool,
        }
        let d = Destination::https("Images.Internal");
        let cases = [
            Case {
                name: "exact",
                uri: "https://images.internal/x",
                ok: true,
            },
            Case {
                name: "explicit port",
                uri: "https://images.internal:443/x",
                ok: true,
            },
            Case {
                name: "case",
                uri: "https://IMAGES.internal/x",
                ok: true,
            },
            Case {
                name: "http",
                uri: "http://images.internal/x",
                ok: false,
            },
            Case {
                name: "other port",
                uri: "https://images.internal:8443/x",
                ok: false,
            },
            Case {
                name: "suffix",
                uri: "https://images.internal.evil.com/x",
                ok: false,
            },
            Case {
                name: "userinfo trick",
                uri: "https://images.internal@evil.com/x",
                ok: false,
            },
            Case {
                name: "relative",
                uri: "/x",
                ok: false,
            },
        ];
        for c in cases {
            assert_eq!(d.matches(&c.uri.parse().unwrap()), c.ok, "{}", c.name);
        }
        let local = Destination::insecure_http("127.0.0.1", 8080);
        assert!(local.matches(&"http://127.0.0.1:8080/".parse().unwrap()));
        assert!(!local.matches(&"http://127.0.0.1:8081/".parse().unwrap()));
    }
}
