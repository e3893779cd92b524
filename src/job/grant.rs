//! The routes by which a job gets its token later.

use std::fmt;

use crate::mint::SigningKey;
use crate::provider::ClientAuth;
use crate::provider::Endpoint;

/// How a job gets its token later: one of the standard routes an
/// authorization server offers for it.
pub struct Grant(pub(super) Route);

pub(super) enum Route {
    RefreshToken {
        endpoint: Endpoint,
        issuer: String,
    },
    JwtBearer {
        endpoint: Endpoint,
        issuer: String,
        key: SigningKey,
    },
    Transaction(crate::transaction::TransactionExchange),
}

impl Route {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Route::RefreshToken { .. } => "refresh_token",
            Route::JwtBearer { .. } => "jwt_bearer",
            Route::Transaction(_) => "transaction",
        }
    }

    pub(super) fn endpoint(&mut self) -> Option<&mut Endpoint> {
        match self {
            Route::RefreshToken { endpoint, .. } | Route::JwtBearer { endpoint, .. } => {
                Some(endpoint)
            }
            Route::Transaction(_) => None,
        }
    }

    /// The issuer whose users this route acts for (none: the Transaction
    /// Token Service's trust domain decides).
    pub(super) fn issuer(&self) -> Option<&str> {
        match self {
            Route::RefreshToken { issuer, .. } | Route::JwtBearer { issuer, .. } => Some(issuer),
            Route::Transaction(_) => None,
        }
    }

    /// What a handle is bound to besides its readable fields: the route,
    /// its endpoint, client and issuer. A handle sealed for one delegation
    /// does not open in another that shares the keys.
    pub(super) fn binding(&self) -> String {
        match self {
            Route::RefreshToken { endpoint, issuer }
            | Route::JwtBearer {
                endpoint, issuer, ..
            } => {
                format!(
                    "{}\n{}\n{}\n{issuer}",
                    self.name(),
                    endpoint.url(),
                    endpoint.client_id()
                )
            }
            Route::Transaction(exchange) => {
                let (url, domain) = exchange.binding();
                format!("transaction\n{url}\n{domain}")
            }
        }
    }
}

impl Grant {
    /// RFC 8693, then RFC 6749 §6. At capture, the user's access token is
    /// exchanged at `token_url` (as `subject_token`, this service
    /// authenticated as `client_id`) for a **refresh token**
    /// (`requested_token_type` `…:refresh_token`) narrowed to the job's
    /// audience and scopes, which the handle seals. When the job runs, the
    /// refresh token grant gives a fresh access token for the user, which
    /// the authorization server issues with this service as actor (`act`).
    /// Keycloak, Authlete, Ping and Curity offer this exchange; an
    /// answer with the refresh token in `access_token` (RFC 8693's
    /// `issued_token_type`) or in `refresh_token` (Keycloak) is read.
    ///
    /// Only users of `issuer` — the authorization server's own — are
    /// captured: another issuer's token is never sent to it.
    pub fn refresh_token(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        auth: ClientAuth,
        issuer: impl Into<String>,
    ) -> Self {
        Grant(Route::RefreshToken {
            endpoint: Endpoint::new(token_url.into(), client_id.into(), auth),
            issuer: issuer.into(),
        })
    }

    /// RFC 7523 §2.1. Nothing is asked at capture: the handle seals only
    /// who the user is. When the job runs, this service asserts "act for
    /// this user" with a JWT signed by `key` (`iss` the client id, `sub` the
    /// user, `aud` the token endpoint, 60 s, a fresh `jti`), at `token_url`,
    /// authenticated as `client_id`. The authorization server must know
    /// the key and allow the client this grant (Okta, Auth0 and Entra call
    /// it impersonation or a trusted-client grant); it records the client
    /// as actor.
    ///
    /// Since the service alone decides what it asserts, a capture must name
    /// its scope, every scope must be a permission the user's token holds,
    /// and a delegated token (one with `act`) is not captured: the job
    /// would lose its actor chain.
    ///
    /// Only users of `issuer` — the authorization server's own — are
    /// captured: the same `sub` from another issuer is another person, so
    /// a job for them is refused ([`JobErrorKind::NoUser`](super::JobErrorKind::NoUser)).
    pub fn jwt_bearer(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        auth: ClientAuth,
        issuer: impl Into<String>,
        key: SigningKey,
    ) -> Self {
        Grant(Route::JwtBearer {
            endpoint: Endpoint::new(token_url.into(), client_id.into(), auth),
            issuer: issuer.into(),
            key,
        })
    }

    /// draft-ietf-oauth-transaction-tokens-10 §13.15, inside a trust
    /// domain. At capture, the request's Transaction Token is replaced by
    /// one narrowed to the job's scope (same `txn` and `sub`), which the
    /// handle seals; when the job runs, it is sent as `Txn-Token` beside the
    /// service's own token. The handle lives no longer than the
    /// replacement, whose lifetime the Transaction Token Service decides:
    /// this route suits queues that drain within it.
    pub fn transaction(exchange: crate::transaction::TransactionExchange) -> Self {
        Grant(Route::Transaction(exchange))
    }
}

impl fmt::Debug for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Grant").field(&self.0.name()).finish()
    }
}
