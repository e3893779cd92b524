//! One outgoing request's tokens — at hand, or being fetched — and the
//! [`ResponseFuture`] of [`Propagate`](super::Propagate).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::Request;
use pin_project_lite::pin_project;
use tower_service::Service;

use super::destination::UserToken;
use super::policy::{Policy, set};
use super::{BoxError, Destination};
use crate::provider::{ProviderError, TokenFuture, TokenProvider, TokenRequest};

/// One token for one header: at hand, or being fetched.
enum Token {
    Ready(String),
    Fetch(TokenFuture),
}

impl Token {
    fn from(provider: &Arc<dyn TokenProvider>, request: TokenRequest) -> Token {
        match provider.cached(&request) {
            Some(token) => Token::Ready(token.secret().to_owned()),
            None => Token::Fetch(provider.token(request)),
        }
    }

    /// Poll a fetch to its end; a ready token stays ready.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if let Token::Fetch(future) = self {
            let token = ready!(future.as_mut().poll(cx)).map_err(box_provider)?;
            *self = Token::Ready(token.secret().to_owned());
        }
        Poll::Ready(Ok(()))
    }
}

/// The tokens a destination gets for one request.
pub(super) struct Tokens {
    user: Option<Token>,
    service: Option<Token>,
}

impl Tokens {
    /// What `destination` gets, from cached tokens where possible.
    pub(super) fn plan(destination: &Destination, user: Option<String>) -> Tokens {
        let user = user.and_then(|token| match &destination.user {
            UserToken::Forward => Some(Token::Ready(token)),
            UserToken::Exchange(provider, request) => Some(Token::from(
                provider,
                request.clone().with_subject_token(token),
            )),
            UserToken::Drop => None,
        });
        let service = destination
            .service
            .as_ref()
            .map(|(provider, request)| Token::from(provider, request.clone()));
        Tokens { user, service }
    }

    pub(super) fn ready(&self) -> bool {
        [&self.user, &self.service]
            .into_iter()
            .flatten()
            .all(|t| matches!(t, Token::Ready(_)))
    }

    /// Poll every fetch; ready when all are.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        let user = self
            .user
            .as_mut()
            .map_or(Poll::Ready(Ok(())), |t| t.poll(cx));
        let service = self
            .service
            .as_mut()
            .map_or(Poll::Ready(Ok(())), |t| t.poll(cx));
        match (user, service) {
            (Poll::Ready(Err(e)), _) | (_, Poll::Ready(Err(e))) => Poll::Ready(Err(e)),
            (Poll::Ready(Ok(())), Poll::Ready(Ok(()))) => Poll::Ready(Ok(())),
            _ => Poll::Pending,
        }
    }

    /// Put the tokens into `headers`, once all are ready.
    pub(super) fn set(&self, p: &Policy, headers: &mut http::HeaderMap) -> Result<(), BoxError> {
        if let Some(Token::Ready(token)) = &self.user {
            set(headers, &p.user_header, token, p.overwrite)?;
        }
        if let Some(Token::Ready(token)) = &self.service {
            set(headers, &p.service_header, token, p.overwrite)?;
        }
        Ok(())
    }

    /// Wait for every fetch, then put the tokens into `headers`.
    #[cfg(feature = "reqwest")]
    pub(super) async fn attach(
        mut self,
        p: &Policy,
        headers: &mut http::HeaderMap,
    ) -> Result<(), BoxError> {
        std::future::poll_fn(|cx| self.poll(cx)).await?;
        self.set(p, headers)
    }
}

fn box_provider(e: ProviderError) -> BoxError {
    Box::new(e)
}

pin_project! {
    /// The response future of [`Propagate`]: fetching a token (when none is
    /// cached), then the inner client's future.
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, B>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, B>
    where
        S: Service<Request<B>>,
    {
        Attaching {
            tokens: Tokens,
            call: Option<(S, Request<B>)>,
            policy: Arc<Policy>,
        },
        Calling { #[pin] future: S::Future },
        Failed { error: Option<BoxError> },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    pub(super) fn calling(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Calling { future },
        }
    }

    pub(super) fn failed(error: BoxError) -> Self {
        ResponseFuture {
            state: State::Failed { error: Some(error) },
        }
    }

    pub(super) fn attaching(
        tokens: Tokens,
        inner: S,
        req: Request<B>,
        policy: Arc<Policy>,
    ) -> Self {
        ResponseFuture {
            state: State::Attaching {
                tokens,
                call: Some((inner, req)),
                policy,
            },
        }
    }
}

impl<S, B> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<S::Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let following = match state.as_mut().project() {
                StateProj::Attaching {
                    tokens,
                    call,
                    policy,
                } => {
                    let attached = ready!(tokens.poll(cx)).and_then(|()| {
                        let (inner, req) = call
                            .as_mut()
                            .expect("ResponseFuture polled after completion");
                        tokens.set(policy, req.headers_mut()).map(|()| inner)
                    });
                    match attached {
                        Ok(_) => {
                            let (mut inner, req) =
                                call.take().expect("ResponseFuture polled after completion");
                            State::Calling {
                                future: inner.call(req),
                            }
                        }
                        Err(error) => State::Failed { error: Some(error) },
                    }
                }
                StateProj::Calling { future } => return future.poll(cx).map_err(Into::into),
                StateProj::Failed { error } => {
                    return Poll::Ready(Err(error
                        .take()
                        .expect("ResponseFuture polled after completion")));
                }
            };
            state.set(following);
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
