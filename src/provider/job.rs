//! Jobs: work done later on a user's behalf, or by the service alone.
//!
//! [`OnBehalfOf`] keeps the user's access token for a job that runs within
//! its lifetime; [`AsService`] runs with no user. For a durable, queueable
//! delegation see [`job`](crate::job).

use std::fmt;
use std::sync::Arc;

use super::{AccessToken, ProviderError, TokenProvider, TokenRequest};
use crate::Caller;

/// Work a service does later on a user's behalf (an async job, a queue
/// consumer).
///
/// Captured while the user's request is handled; when the job runs, it
/// obtains a **delegated** token by token exchange (RFC 8693) — the subject
/// is the user, and the `act` claim records this service — instead of
/// replaying the user's token or using a broad service token. Use a
/// [`TokenExchange`](crate::provider::TokenExchange) as the provider. The
/// captured token must still be valid when the job runs, and `OnBehalfOf`
/// lives in memory only: for a job that waits on a queue, or may outlive
/// the process, use a [`Delegation`](crate::job::Delegation), whose
/// sealed handle survives both.
///
/// See `examples/jobs.rs` for a runnable job against a token exchange
/// endpoint.
#[derive(Clone)]
pub struct OnBehalfOf {
    user: String,
    subject_token: Arc<str>,
    provider: Arc<dyn TokenProvider>,
    request: TokenRequest,
}

impl OnBehalfOf {
    /// Capture the user of `caller`; `None` when the caller has no user.
    /// `request` names the audience and scopes the job will need.
    pub fn capture(
        caller: &Caller,
        provider: impl TokenProvider,
        request: TokenRequest,
    ) -> Option<Self> {
        let user = caller.user()?;
        Some(OnBehalfOf {
            user: user.subject().to_owned(),
            subject_token: user.token().into(),
            provider: Arc::new(provider),
            request,
        })
    }

    /// The user the job acts for.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// A delegated token, obtained now.
    ///
    /// # Errors
    ///
    /// When the token exchange fails (for example, the captured token expired).
    pub async fn token(&self) -> Result<AccessToken, ProviderError> {
        let request = self
            .request
            .clone()
            .with_subject_token(self.subject_token.clone());
        self.provider.token(request).await
    }
}

impl fmt::Debug for OnBehalfOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnBehalfOf")
            .field("user", &self.user)
            .field("subject_token", &"<redacted>")
            .field("request", &self.request)
            .finish()
    }
}

/// Work the service does with no user: it acts as its own principal, with
/// the narrow scopes `request` asks for (from
/// [`ClientCredentials`](crate::provider::ClientCredentials) or
/// [`SelfSigned`](crate::provider::SelfSigned)).
#[derive(Clone)]
pub struct AsService {
    provider: Arc<dyn TokenProvider>,
    request: TokenRequest,
}

impl AsService {
    /// A job using `provider` for tokens as described by `request`.
    pub fn new(provider: impl TokenProvider, request: TokenRequest) -> Self {
        AsService {
            provider: Arc::new(provider),
            request,
        }
    }

    /// The service's own token, from the provider's cache when fresh.
    ///
    /// # Errors
    ///
    /// When the provider cannot obtain one.
    pub async fn token(&self) -> Result<AccessToken, ProviderError> {
        self.provider.token(self.request.clone()).await
    }
}

impl fmt::Debug for AsService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsService")
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}
