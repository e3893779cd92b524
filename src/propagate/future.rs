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

/// A token to attach, with the DPoP key it is bound to.
struct Attach {
    value: String,
    #[cfg(feature = "_aws-lc")]
    dpop: Option<crate::binding::DpopKey>,
}

impl Attach {
    fn bearer(value: String) -> Self {
        Attach {
            value,
            #[cfg(feature = "_aws-lc")]
            dpop: None,
        }
    }

    fn of(token: &crate::provider::AccessToken) -> Self {
        Attach {
            value: token.secret().to_owned(),
            #[cfg(feature = "_aws-lc")]
            dpop: token.dpop_key().cloned(),
        }
    }
}

/// One token for one header: at hand, or being fetched.
enum Token {
    Ready(Attach),
    Fetch(TokenFuture),
}

impl Token {
    fn from(provider: &Arc<dyn TokenProvider>, request: TokenRequest) -> Token {
        match provider.cached(&request) {
            Some(token) => Token::Ready(Attach::of(&token)),
            None => Token::Fetch(provider.token(request)),
        }
    }

    /// Poll a fetch to its end; a ready token stays ready.
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        if let Token::Fetch(future) = self {
            let token = ready!(future.as_mut().poll(cx)).map_err(box_provider)?;
            *self = Token::Ready(Attach::of(&token));
        }
        Poll::Ready(Ok(()))
    }
}

/// The tokens a destination gets for one request.
pub(super) struct Tokens {
    user: Option<Token>,
    service: Option<Token>,
    /// The request's Transaction Token, forwarded as received, or one
    /// obtained for the user's token at the edge.
    transaction: Option<Token>,
}

impl Tokens {
    /// What `destination` gets, from cached tokens where possible.
    ///
    /// # Errors
    ///
    /// When the user's token is bound to the caller (DPoP, a client
    /// certificate) and the destination would get it forwarded: it must
    /// be exchanged.
    pub(super) fn plan(
        destination: &Destination,
        caller: Option<&crate::Caller>,
    ) -> Result<Tokens, BoxError> {
        let user = caller.and_then(crate::Caller::user);
        let incoming = caller.and_then(crate::Caller::transaction);
        let transaction = match (&destination.transaction_from, user, incoming) {
            // At the edge, a user's request always gets a transaction of
            // its own: a Txn-Token that came with it (perhaps another
            // user's, leaked) is never what is sent on.
            (Some((p, r)), Some(user), _) => {
                Some(Token::from(p, r.clone().with_subject_token(user.token())))
            }
            (_, _, Some(t)) => destination
                .transaction
                .then(|| Token::Ready(Attach::bearer(t.token().to_owned()))),
            _ => None,
        };
        let user = match (user, &destination.user) {
            (None, _) | (_, UserToken::Drop) => None,
            (Some(p), UserToken::Forward) => {
                if p.confirmation().is_some() {
                    return Err("the user's token is bound to the caller (DPoP or a client \
                        certificate) and cannot be forwarded: set Destination::exchange_user_token \
                        (or drop_user_token) for this destination"
                        .into());
                }
                Some(Token::Ready(Attach::bearer(p.token().to_owned())))
            }
            (Some(p), UserToken::Exchange(provider, request)) => Some(Token::from(
                provider,
                request.clone().with_subject_token(p.token()),
            )),
        };
        let service = destination
            .service
            .as_ref()
            .map(|(provider, request)| Token::from(provider, request.clone()));
        Ok(Tokens {
            user,
            service,
            transaction,
        })
    }

    pub(super) fn ready(&self) -> bool {
        [&self.user, &self.service, &self.transaction]
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
        let transaction = self
            .transaction
            .as_mut()
            .map_or(Poll::Ready(Ok(())), |t| t.poll(cx));
        match (user, service, transaction) {
            (Poll::Ready(Err(e)), _, _)
            | (_, Poll::Ready(Err(e)), _)
            | (_, _, Poll::Ready(Err(e))) => Poll::Ready(Err(e)),
            (Poll::Ready(Ok(())), Poll::Ready(Ok(())), Poll::Ready(Ok(()))) => Poll::Ready(Ok(())),
            _ => Poll::Pending,
        }
    }

    /// Whether a ready token is DPoP-bound: the request's method and URI
    /// are then needed for its proof (and only then read).
    pub(super) fn proves(&self) -> bool {
        #[cfg(feature = "_aws-lc")]
        return [&self.user, &self.service]
            .into_iter()
            .flatten()
            .any(|t| matches!(t, Token::Ready(Attach { dpop: Some(_), .. })));
        #[cfg(not(feature = "_aws-lc"))]
        false
    }

    /// Put the tokens into the request's `headers`, once all are ready; a
    /// DPoP-bound token with a fresh proof for `head`, the request's
    /// method and URI (given when [`proves`](Self::proves)).
    pub(super) fn set(
        &self,
        p: &Policy,
        head: Option<(&http::Method, &http::Uri)>,
        headers: &mut http::HeaderMap,
    ) -> Result<(), BoxError> {
        if let Some(Token::Ready(txn)) = &self.transaction
            && (p.overwrite || !headers.contains_key(crate::transaction::HEADER))
        {
            let mut value = http::HeaderValue::from_str(&txn.value)
                .map_err(|_| "a transaction token is not a valid header value")?;
            value.set_sensitive(true);
            headers.insert(crate::transaction::HEADER, value);
        }
        let mut proofs = 0;
        for (token, header) in [
            (&self.user, &p.user_header),
            (&self.service, &p.service_header),
        ] {
            let Some(Token::Ready(token)) = token else {
                continue;
            };
            #[cfg(feature = "_aws-lc")]
            if let Some(key) = &token.dpop {
                proofs += 1;
                if proofs > 1 {
                    return Err(
                        "two DPoP-bound tokens for one request, which has one DPoP header".into(),
                    );
                }
                let head = head.ok_or("a DPoP proof needs the request's method and URI")?;
                dpop(headers, header, &token.value, key, head, p.overwrite)?;
                continue;
            }
            let _ = (head, &mut proofs);
            set(headers, header, &token.value, p.overwrite)?;
        }
        Ok(())
    }

    /// A new proof for the DPoP-bound token this middleware put into
    /// `headers` (a retry with the server's nonce).
    #[cfg(all(feature = "reqwest", feature = "_aws-lc"))]
    pub(super) fn reprove(
        &self,
        p: &Policy,
        (method, uri): (&http::Method, &http::Uri),
        headers: &mut http::HeaderMap,
    ) -> Result<(), BoxError> {
        for (token, header) in [
            (&self.user, &p.user_header),
            (&self.service, &p.service_header),
        ] {
            if let Some(Token::Ready(Attach {
                value,
                dpop: Some(key),
            })) = token
            {
                let ours = headers
                    .get(header)
                    .is_some_and(|v| v.as_bytes() == format!("DPoP {value}").as_bytes());
                if ours {
                    dpop(headers, header, value, key, (method, uri), true)?;
                }
            }
        }
        Ok(())
    }

    /// The DPoP key of a token of this request, when one is bound.
    #[cfg(all(feature = "reqwest", feature = "_aws-lc"))]
    pub(super) fn dpop_key(&self) -> Option<&crate::binding::DpopKey> {
        [&self.user, &self.service]
            .into_iter()
            .flatten()
            .find_map(|t| match t {
                Token::Ready(a) => a.dpop.as_ref(),
                Token::Fetch(_) => None,
            })
    }

    /// Wait for every fetch.
    #[cfg(feature = "reqwest")]
    pub(super) async fn fetch(&mut self) -> Result<(), BoxError> {
        std::future::poll_fn(|cx| self.poll(cx)).await
    }
}

/// `<header>: DPoP <token>` and `DPoP: <a fresh proof>` (RFC 9449 §7.1).
#[cfg(feature = "_aws-lc")]
fn dpop(
    headers: &mut http::HeaderMap,
    header: &http::HeaderName,
    token: &str,
    key: &crate::binding::DpopKey,
    (method, uri): (&http::Method, &http::Uri),
    overwrite: bool,
) -> Result<(), BoxError> {
    if !overwrite && headers.contains_key(header) {
        return Ok(());
    }
    let nonce = key.nonce_for(uri);
    let proof = key.proof(method, uri, Some(token), nonce.as_deref())?;
    let mut value = http::HeaderValue::from_str(&format!("DPoP {token}"))
        .map_err(|_| "a token is not a valid header value")?;
    value.set_sensitive(true);
    headers.insert(header.clone(), value);
    let mut proof =
        http::HeaderValue::from_str(&proof).map_err(|_| "a proof is not a valid header value")?;
    proof.set_sensitive(true);
    headers.insert(http::HeaderName::from_static("dpop"), proof);
    Ok(())
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
                        let head = tokens
                            .proves()
                            .then(|| (req.method().clone(), req.uri().clone()));
                        let head = head.as_ref().map(|(m, u)| (m, u));
                        tokens.set(policy, head, req.headers_mut()).map(|()| inner)
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
