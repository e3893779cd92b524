//! The service: verify the slots of a request at once, and hand it on, or
//! to the response future when keys must be fetched or a store asked.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, Request, Response};
use tower_layer::Layer as _;
use tower_service::Service;
use tracing::Span;
use tracing::field::Empty;

use super::{RejectionBody, Renderer, ResponseFuture, SlotKind, TokenSource};
use crate::audit;
use crate::clock::unix_now;
use crate::metrics::{self, Outcome};
use crate::verify::Step;
use crate::{AuthError, Caller, MandateLayer, Principal, Slot};

pub(crate) struct SlotConfig {
    pub(super) slot: Slot,
    pub(super) source: TokenSource,
    /// The other slot's rules: tokens that satisfy them all are not ours.
    pub(super) excluded: Vec<crate::verify::rules::ClaimRule>,
}

pub(crate) struct Config {
    pub(super) user: Option<SlotConfig>,
    pub(super) service: Option<SlotConfig>,
    pub(super) renderer: Renderer,
    pub(super) revocation: Option<crate::revocation::Revocation>,
    /// Requests let through unauthenticated.
    pub(super) skips: Vec<super::skip::Skip>,
    /// The application's permissions hook.
    pub(super) enrichment: Option<Arc<super::enrich::Enrichment>>,
}

/// Where the authentication of one request stands. `Waiting` holds the
/// parsed token by value (the rare path; see `verify::Step`).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Progress {
    Done(Caller),
    /// The application's hook is asked for permissions.
    Enriching(super::enrich::Pending),
    Refused(AuthError),
    /// The key of `slot`'s token is being fetched; `user` verified before.
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    Waiting {
        slot: SlotKind,
        user: Option<Principal>,
        verify: crate::verify::Verify,
    },
}

impl Config {
    /// Verify the slots of a request from `from` on (`user` is the user
    /// when the service slot is next), without waiting.
    pub(super) fn progress(
        &self,
        head: (&HeaderMap, &http::Uri),
        from: SlotKind,
        mut user: Option<Principal>,
    ) -> Progress {
        let now = unix_now();
        let slots = [
            (SlotKind::User, &self.user),
            (SlotKind::Service, &self.service),
        ];
        let mut service = None;
        for (kind, config) in slots {
            if from == SlotKind::Service && kind == SlotKind::User {
                continue;
            }
            let Some(c) = config else { continue };
            let principal = match c.slot.authenticate(kind, &c.source, head, now) {
                Ok(None) => None,
                Ok(Some(p)) => match c.slot.admit(kind, &c.excluded, p) {
                    Ok(p) => Some(p),
                    Err(e) => return Progress::Refused(e),
                },
                Err(Step::Refused(e)) => return Progress::Refused(e),
                #[cfg(feature = "jwks")]
                Err(Step::Fetch(pending)) => {
                    return Progress::Waiting {
                        slot: kind,
                        user,
                        verify: crate::verify::Verify::waiting(&c.slot.verifier, pending),
                    };
                }
            };
            match kind {
                SlotKind::User => user = principal,
                _ => service = principal,
            }
        }
        Progress::Done(Caller::new(user, service))
    }

    /// A principal verified after a key fetch, checked against the slot's rules.
    pub(super) fn admit(
        &self,
        kind: SlotKind,
        principal: Principal,
    ) -> Result<Principal, AuthError> {
        let config = match kind {
            SlotKind::User => &self.user,
            _ => &self.service,
        };
        match config {
            Some(c) => c.slot.admit(kind, &c.excluded, principal),
            None => Ok(principal),
        }
    }

    /// `caller` with the application's permissions, from the cache, or the
    /// work that asks the hook.
    pub(super) fn enriched(&self, caller: Caller) -> Result<Caller, super::enrich::Pending> {
        match &self.enrichment {
            Some(enrichment) if !caller.is_anonymous() => enrichment.caller(caller),
            _ => Ok(caller),
        }
    }

    /// Whether `caller` must be checked against the revocation store.
    pub(super) fn checks_revocation(&self, caller: &Caller) -> bool {
        self.revocation.is_some() && !caller.is_anonymous()
    }

    /// Put the caller into the request; returns it for the task-local scope.
    pub(super) fn accept<B>(&self, req: &mut Request<B>, caller: Caller) -> Caller {
        let reason = if caller.is_anonymous() {
            "anonymous: every slot optional and empty"
        } else {
            "authenticated"
        };
        let caller = caller.with_origin(audit::Origin::of(req));
        record_caller(&Span::current(), &caller);
        caller.audit(true, reason, "authenticate", None);
        req.extensions_mut().insert(caller.clone());
        caller
    }

    /// Refuse; `caller` is who verified before the refusal (a revoked or
    /// replayed token), for the audit event.
    pub(super) fn refuse<B: RejectionBody, ReqBody>(
        &self,
        error: AuthError,
        req: &Request<ReqBody>,
        caller: Option<&Caller>,
    ) -> Response<B> {
        let span = Span::current();
        let outcome = Outcome::of(error.kind());
        metrics::request(outcome);
        if !span.is_disabled() {
            span.record("outcome", outcome.as_str());
            span.record("mandate.slot", error.slot().map(SlotKind::as_str));
            if let Some(caller) = caller {
                record_caller(&span, caller);
            }
        }
        let caller = caller
            .cloned()
            .unwrap_or_default()
            .with_origin(audit::Origin::of(req));
        caller.audit(false, error.reason(), "authenticate", None);
        tracing::debug!(
            target: "tower_mandate::server",
            kind = ?error.kind(),
            slot = error.slot().map(SlotKind::as_str),
            reason = error.reason(),
            "request refused"
        );
        self.renderer.render(error, req.headers())
    }
}

/// The request's span: one per request, INFO, target
/// `tower_mandate::server`; the fields are filled in as they are known.
pub(super) fn request_span() -> Span {
    if !tracing::enabled!(target: "tower_mandate::server", tracing::Level::INFO) {
        return Span::none();
    }
    tracing::info_span!(
        target: "tower_mandate::server",
        "mandate",
        outcome = Empty,
        "mandate.slot" = Empty,
        "enduser.id" = Empty,
        "mandate.user.issuer" = Empty,
        "mandate.service.id" = Empty,
        "mandate.service.issuer" = Empty,
        "mandate.actor" = Empty,
    )
}

/// Who is calling, on the request's span (subjects and issuers: never a
/// token).
fn record_caller(span: &Span, caller: &Caller) {
    if span.is_disabled() {
        return;
    }
    if let Some(user) = caller.user() {
        span.record("enduser.id", user.subject());
        span.record("mandate.user.issuer", user.issuer());
    }
    if let Some(service) = caller.service() {
        span.record("mandate.service.id", service.subject());
        span.record("mandate.service.issuer", service.issuer());
    }
    if let Some(actor) = caller.actor_id() {
        span.record(
            "mandate.actor",
            tracing::field::display(format_args!("{}#{}", actor.issuer(), actor.subject())),
        );
    }
}

/// The service made by [`MandateLayer`].
#[derive(Clone)]
pub struct Mandate<S> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
}

impl<S> Mandate<S> {
    /// Wrap `inner` with the configuration of `layer`.
    pub fn new(inner: S, layer: &MandateLayer) -> Self {
        layer.layer(inner)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwrap the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for Mandate<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mandate")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Mandate<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    ResBody: RejectionBody,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        if super::skip::skips(&self.config.skips, &req) {
            req.extensions_mut().insert(super::skip::Skipped);
            return ResponseFuture::skipped(self.inner.call(req));
        }
        let span = request_span();
        let entered = span.enter();
        let progress = self
            .config
            .progress((req.headers(), req.uri()), SlotKind::User, None);
        match progress {
            // The common case: every token verified at once, nothing to ask.
            Progress::Done(caller) => match self.config.enriched(caller) {
                // The inner service is called in the span.
                Ok(caller) if !self.config.checks_revocation(&caller) => {
                    let future = ResponseFuture::call(
                        &mut self.inner,
                        req,
                        &self.config,
                        caller,
                        span.clone(),
                    );
                    drop(entered);
                    future
                }
                enriched => {
                    drop(entered);
                    let progress = match enriched {
                        Ok(caller) => Progress::Done(caller),
                        Err(pending) => Progress::Enriching(pending),
                    };
                    let clone = self.inner.clone();
                    let inner = std::mem::replace(&mut self.inner, clone);
                    ResponseFuture::next(progress, inner, req, self.config.clone(), span)
                }
            },
            Progress::Refused(error) => {
                let response = self.config.refuse(error, &req, None);
                drop(entered);
                ResponseFuture::rejected(response, span)
            }
            // Keys to fetch or a store to ask: the inner service is called
            // later, so the future takes a ready clone of it (tower's way).
            progress => {
                drop(entered);
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::next(progress, inner, req, self.config.clone(), span)
            }
        }
    }
}
