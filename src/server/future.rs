//! [`ResponseFuture`]: one request's way through the layer, as a state
//! enum — authenticating (while a key is fetched), checking revocation,
//! calling the inner service, or a ready refusal.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::service::{Before, Finish, Proof};
use super::{Config, Progress, RejectionBody};
use crate::caller::Scoped;
use crate::metrics;
use crate::revocation::RevocationCheck;
use crate::token::{Head, Scheme};
use crate::verify::Verify;
use crate::{Caller, server::SlotKind};

/// What a request still needs once authenticated: the inner service (a
/// ready clone), the request and the layer's configuration.
struct Call<S, B> {
    inner: S,
    req: Request<B>,
    config: Arc<Config>,
    /// The request's DPoP proof, once verified.
    proof: Proof,
}

pin_project! {
    /// The response future of [`Mandate`](super::Mandate).
    #[must_use = "futures do nothing unless polled"]
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
        // The request's span, entered on every poll (when spans are collected).
        span: Option<tracing::Span>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        // The waiting states are boxed: the common one (`Calling`) keeps
        // the future small, which every poll and move of it pays for.
        /// A slot's key is being fetched; verification resumes from the
        /// parsed token.
        Authenticating {
            verify: Pin<Box<Verify>>,
            slot: SlotKind,
            scheme: Scheme,
            before: Option<Box<Before>>,
            call: Option<Box<Call<S, ReqBody>>>,
        },
        /// The application's hook is asked for permissions.
        Enriching {
            pending: Pin<Box<crate::server::enrich::Pending>>,
            call: Option<Box<Call<S, ReqBody>>>,
        },
        /// The revocation store is asked about the verified tokens.
        CheckingRevocation {
            check: Pin<Box<RevocationCheck>>,
            caller: Option<Caller>,
            call: Option<Box<Call<S, ReqBody>>>,
        },
        /// The inner service runs with the caller as `Caller::current`.
        Calling {
            #[pin]
            future: Scoped<S::Future>,
            finish: Finish,
        },
        Rejected {
            response: Option<S::Response>,
        },
        /// A request let through unauthenticated.
        Skipped {
            #[pin]
            future: S::Future,
        },
    }
}

impl<S, ReqBody, ResBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: RejectionBody,
{
    /// Call the inner service for an authenticated request.
    #[inline]
    pub(super) fn call(
        inner: &mut S,
        req: Request<ReqBody>,
        config: &Config,
        caller: Caller,
        span: Option<tracing::Span>,
    ) -> Self {
        ResponseFuture {
            state: calling(inner, req, config, caller, &None, span.as_ref()),
            span,
        }
    }

    pub(super) fn skipped(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Skipped { future },
            span: None,
        }
    }

    pub(super) fn rejected(response: Response<ResBody>, span: Option<tracing::Span>) -> Self {
        ResponseFuture {
            state: State::Rejected {
                response: Some(response),
            },
            span,
        }
    }

    /// Go on from `progress`, with the request and an owned inner service.
    pub(super) fn next(
        progress: Progress,
        inner: S,
        req: Request<ReqBody>,
        config: Arc<Config>,
        span: Option<tracing::Span>,
    ) -> Self {
        let call = Box::new(Call {
            inner,
            req,
            config,
            proof: None,
        });
        ResponseFuture {
            state: next(progress, call, span.as_ref()),
            span,
        }
    }
}

#[inline]
fn calling<S, ReqBody, ResBody>(
    inner: &mut S,
    mut req: Request<ReqBody>,
    config: &Config,
    caller: Caller,
    proof: &Proof,
    span: Option<&tracing::Span>,
) -> State<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    let finish = config.finish(proof);
    let caller = config.accept(&mut req, caller, span);
    State::Calling {
        future: caller.scope(inner.call(req)),
        finish,
    }
}

/// The state that follows `progress`.
fn next<S, ReqBody, ResBody>(
    progress: Progress,
    mut call: Box<Call<S, ReqBody>>,
    span: Option<&tracing::Span>,
) -> State<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: RejectionBody,
{
    match progress {
        Progress::Refused(error) => State::Rejected {
            response: Some(call.config.refuse(error, &call.req, None, span)),
        },
        Progress::Waiting {
            slot,
            scheme,
            before,
            verify,
        } => State::Authenticating {
            verify,
            slot,
            scheme,
            before: Some(before),
            call: Some(call),
        },
        Progress::Enriching(pending, proof) => {
            call.proof = proof;
            State::Enriching {
                pending: Box::pin(pending),
                call: Some(call),
            }
        }
        Progress::Done(caller, proof) => {
            call.proof = proof;
            match call.config.enriched(caller) {
                Ok(caller) => checking(caller, call, span),
                Err(pending) => State::Enriching {
                    pending: Box::pin(pending),
                    call: Some(call),
                },
            }
        }
    }
}

/// After enrichment: the revocation check, or the call.
fn checking<S, ReqBody, ResBody>(
    caller: Caller,
    call: Box<Call<S, ReqBody>>,
    span: Option<&tracing::Span>,
) -> State<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: RejectionBody,
{
    if call.config.asks_store(&caller, &call.proof) {
        State::CheckingRevocation {
            check: Box::pin(call.config.store_check(&caller, &call.proof)),
            caller: Some(caller),
            call: Some(call),
        }
    } else {
        let call = *call;
        let mut inner = call.inner;
        calling(
            &mut inner,
            call.req,
            &call.config,
            caller,
            &call.proof,
            span,
        )
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: RejectionBody,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.as_ref().map(tracing::Span::enter);
        let mut state = this.state;
        loop {
            let following = match state.as_mut().project() {
                StateProj::Authenticating {
                    verify,
                    slot,
                    scheme,
                    before,
                    call,
                } => {
                    let verified = ready!(verify.as_mut().poll(cx));
                    let call = call.take().expect("ResponseFuture polled after completion");
                    let mut before = before.take().unwrap_or_default();
                    let head = Head::of(&call.req);
                    let verified = verified
                        .map_err(|e| call.config.refusal(*slot, *scheme, e))
                        .and_then(|p| call.config.admit(*slot, (p, *scheme), &head));
                    let progress = match verified {
                        Err(error) => Progress::Refused(error),
                        Ok((principal, bound)) => {
                            before.set(*slot, Some(principal));
                            before.bound = before.bound.or(bound);
                            call.config.after(&head, *slot, *before)
                        }
                    };
                    next(progress, call, this.span.as_ref())
                }
                StateProj::Enriching { pending, call } => {
                    let enriched = ready!(pending.as_mut().poll(cx));
                    let call = call.take().expect("ResponseFuture polled after completion");
                    match enriched {
                        Ok(caller) => checking(caller, call, this.span.as_ref()),
                        Err(error) => State::Rejected {
                            response: Some(call.config.refuse(
                                error,
                                &call.req,
                                None,
                                this.span.as_ref(),
                            )),
                        },
                    }
                }
                StateProj::CheckingRevocation {
                    check,
                    caller,
                    call,
                } => {
                    let checked = ready!(check.as_mut().poll(cx));
                    let call = *call.take().expect("ResponseFuture polled after completion");
                    let caller = caller
                        .take()
                        .expect("ResponseFuture polled after completion");
                    match checked {
                        Ok(()) => {
                            let mut inner = call.inner;
                            calling(
                                &mut inner,
                                call.req,
                                &call.config,
                                caller,
                                &call.proof,
                                this.span.as_ref(),
                            )
                        }
                        Err(error) => State::Rejected {
                            response: Some(call.config.refuse(
                                error,
                                &call.req,
                                Some(&caller),
                                this.span.as_ref(),
                            )),
                        },
                    }
                }
                // Refusals made behind the layer are rendered here, like the layer's own.
                StateProj::Calling { future, finish } => {
                    let span = this.span.as_ref();
                    return future.poll(cx).map_ok(|mut response| {
                        let outcome = finish.apply(&mut response);
                        metrics::request(outcome);
                        if let Some(span) = span {
                            span.record("outcome", outcome.as_str());
                        }
                        response
                    });
                }
                StateProj::Skipped { future } => return future.poll(cx),
                StateProj::Rejected { response } => {
                    return Poll::Ready(Ok(response
                        .take()
                        .expect("ResponseFuture polled after completion")));
                }
            };
            state.set(following);
        }
    }
}

impl<S, ReqBody> fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
