//! [`Verify`]: verification as a future that waits for keys by itself.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::Step;
use crate::Verifier;
use crate::{AuthError, Principal};

/// A token parsed up to the choice of its key, waiting for the key source
/// to fetch: verification resumes from here, without parsing it again.
#[cfg(feature = "jwks")]
pub(crate) struct Pending {
    pub(super) source: crate::keys::JwksSource,
    pub(super) token: Box<str>,
    /// `token[..signing_len]` is the signing input; the signature follows the dot.
    pub(super) signing_len: usize,
    pub(super) header: super::jws::Header<'static>,
    pub(super) claims: super::jws::Claims<'static>,
    pub(super) json: String,
    pub(super) issuer: usize,
    /// The slot label of the metrics.
    pub(super) slot: &'static str,
}

/// Without the `jwks` feature nothing is ever fetched.
#[cfg(not(feature = "jwks"))]
pub(crate) enum Pending {}

#[cfg(feature = "jwks")]
type KeyWait = crate::keys::KeyWait;

#[cfg(not(feature = "jwks"))]
type KeyWait = std::future::Ready<bool>;

pin_project! {
    /// The future of [`Verifier::verify_async`]: ready at once unless the
    /// token's key must be fetched; then it waits for the fetch (bounded by
    /// the key source's wait) and resumes from the token as parsed.
    #[must_use = "futures do nothing unless polled"]
    pub struct Verify {
        #[pin]
        state: State,
        // Refuse a token bound to a key or a certificate (`cnf`).
        bearer_only: bool,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Done { result: Option<Result<Principal, AuthError>> },
        Waiting {
            #[pin]
            wait: KeyWait,
            verifier: Verifier,
            pending: Option<Pending>,
        },
    }
}

impl Verify {
    /// A verification waiting for `pending`'s key source.
    #[cfg(feature = "jwks")]
    pub(crate) fn waiting(verifier: &Verifier, pending: Pending) -> Self {
        Verify::new(verifier, Err(Step::Fetch(pending)))
    }

    pub(crate) fn new(verifier: &Verifier, step: Result<Principal, Step>) -> Self {
        let state = match step {
            Ok(principal) => State::Done {
                result: Some(Ok(principal)),
            },
            Err(Step::Refused(error)) => State::Done {
                result: Some(Err(error)),
            },
            #[cfg(feature = "jwks")]
            Err(Step::Fetch(pending)) => State::Waiting {
                wait: pending.source.fetch_and_wait(),
                verifier: verifier.clone(),
                pending: Some(pending),
            },
        };
        #[cfg(not(feature = "jwks"))]
        let _ = verifier;
        Verify {
            state,
            bearer_only: false,
        }
    }

    /// Refuse tokens bound to a key or a certificate: without their proof
    /// they are stolen tokens.
    pub(crate) fn bearer_only(mut self) -> Self {
        self.bearer_only = true;
        self
    }
}

/// A bound token verified without its proof: refused.
pub(crate) fn unbound(result: Result<Principal, AuthError>) -> Result<Principal, AuthError> {
    match result {
        Ok(p) if p.confirmation().is_some() => Err(AuthError::invalid_token(
            "token bound to a key or certificate (cnf) verified without its proof",
        )),
        other => other,
    }
}

impl Future for Verify {
    type Output = Result<Principal, AuthError>;

    // Without `jwks`, `Pending` is uninhabited and the waiting arm unreachable.
    #[cfg_attr(not(feature = "jwks"), allow(unreachable_code, unused_variables))]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let bearer_only = *this.bearer_only;
        let mut state = this.state;
        let result = match state.as_mut().project() {
            StateProj::Done { result } => result.take(),
            StateProj::Waiting {
                wait,
                verifier,
                pending,
            } => {
                let Poll::Ready(landed) = wait.poll(cx) else {
                    return Poll::Pending;
                };
                pending
                    .take()
                    .map(|pending| resume(verifier, pending, landed))
            }
        };
        state.set(State::Done { result: None });
        let result = result.expect("Verify polled after completion");
        Poll::Ready(if bearer_only { unbound(result) } else { result })
    }
}

/// Resume after the wait; `landed`: the fetch ended (else the wait ran
/// out while it was still in flight).
#[cfg(feature = "jwks")]
fn resume(verifier: &Verifier, pending: Pending, landed: bool) -> Result<Principal, AuthError> {
    verifier.resume(pending, landed)
}

#[cfg(not(feature = "jwks"))]
fn resume(_: &Verifier, pending: Pending, _: bool) -> Result<Principal, AuthError> {
    match pending {}
}

impl fmt::Debug for Verify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verify").finish_non_exhaustive()
    }
}
