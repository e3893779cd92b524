//! The service: verify the slots of a request at once, and hand it on, or
//! to the response future when keys must be fetched or a store asked.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer as _;
use tower_service::Service;
use tracing::Span;
use tracing::field::Empty;

use super::slot::Authenticated;
use super::{RejectionBody, Renderer, ResponseFuture, SlotKind, TokenSource};
use crate::audit;
use crate::clock::unix_now;
use crate::metrics::{self, Outcome};
use crate::token::{Head, Scheme};
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
    pub(super) transaction: Option<SlotConfig>,
    /// RFC 9728: the metadata's URL (named in challenges) and document.
    pub(super) metadata: Option<(Arc<str>, super::ResourceMetadata)>,
    pub(super) renderer: Renderer,
    pub(super) revocation: Option<crate::revocation::Revocation>,
    /// Requests let through unauthenticated.
    pub(super) skips: Vec<super::skip::Skip>,
    /// The application's permissions hook.
    pub(super) enrichment: Option<Arc<super::enrich::Enrichment>>,
    /// Where client certificates come from (RFC 8705).
    pub(super) certificates: crate::binding::Certificates,
}

/// Where the authentication of one request stands. `Waiting` holds the
/// parsed token by value (the rare path; see `verify::Step`).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Progress {
    /// Every slot verified; the DPoP proof whose `jti` is still to record.
    Done(Caller, Proof),
    /// The application's hook is asked for permissions.
    Enriching(super::enrich::Pending, Proof),
    Refused(AuthError),
    /// The key of `slot`'s token is being fetched; `user` verified before.
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    Waiting {
        slot: SlotKind,
        scheme: Scheme,
        before: Box<Before>,
        verify: std::pin::Pin<Box<crate::verify::Verify>>,
    },
}

/// A DPoP proof that passed, until its `jti` is recorded and the answer
/// has its nonce.
pub(crate) type Proof = Option<Arc<crate::binding::Bound>>;

/// What verified before a slot that waits for keys: the principals of the
/// slots before it, and the DPoP proof.
#[derive(Default)]
pub(crate) struct Before {
    pub(super) principals: [Option<Principal>; 3],
    pub(super) bound: Option<crate::binding::Bound>,
}

impl Before {
    /// `principal` verified in `kind`'s slot.
    pub(super) fn set(&mut self, kind: SlotKind, principal: Option<Principal>) {
        self.principals[slot_index(kind)] = principal;
    }

    fn into_progress(self) -> Progress {
        let [user, service, transaction] = self.principals;
        Progress::Done(
            Caller::new(user, service).with_transaction(transaction),
            self.bound.map(Arc::new),
        )
    }
}

/// The order slots are verified in.
const SLOTS: [SlotKind; 3] = [SlotKind::User, SlotKind::Service, SlotKind::Transaction];

fn slot_index(kind: SlotKind) -> usize {
    match kind {
        SlotKind::User => 0,
        SlotKind::Service => 1,
        _ => 2,
    }
}

/// The slot after `kind`, if any.
pub(super) fn next_slot(kind: SlotKind) -> Option<SlotKind> {
    SLOTS.get(slot_index(kind) + 1).copied()
}

impl Config {
    fn slot(&self, kind: SlotKind) -> &Option<SlotConfig> {
        match kind {
            SlotKind::User => &self.user,
            SlotKind::Service => &self.service,
            _ => &self.transaction,
        }
    }

    /// Verify the slots of a request from `from` on (`before` is what
    /// verified in the slots before it), without waiting.
    pub(super) fn progress(&self, head: &Head<'_>, from: SlotKind, mut before: Before) -> Progress {
        let now = unix_now();
        for kind in SLOTS.into_iter().skip(slot_index(from)) {
            let Some(c) = self.slot(kind) else { continue };
            let principal = match c.slot.authenticate(kind, &c.source, head, now) {
                Ok(Authenticated::Empty) => None,
                Ok(Authenticated::Verified(p, scheme)) => {
                    match c.slot.admit_bound(
                        kind,
                        &c.excluded,
                        (p, scheme),
                        head,
                        &self.certificates,
                        now,
                    ) {
                        Ok((p, b)) => {
                            before.bound = before.bound.or(b);
                            Some(p)
                        }
                        Err(e) => return Progress::Refused(e),
                    }
                }
                Err(e) => return Progress::Refused(e),
                #[cfg(feature = "jwks")]
                Ok(Authenticated::Fetch(pending, scheme)) => {
                    return Progress::Waiting {
                        slot: kind,
                        scheme,
                        before: Box::new(before),
                        verify: Box::pin(crate::verify::Verify::waiting(&c.slot.verifier, pending)),
                    };
                }
            };
            before.set(kind, principal);
        }
        before.into_progress()
    }

    /// What follows a slot that verified after a key fetch: the next
    /// slots, or the caller.
    pub(super) fn after(&self, head: &Head<'_>, kind: SlotKind, before: Before) -> Progress {
        match next_slot(kind) {
            Some(next) => self.progress(head, next, before),
            None => before.into_progress(),
        }
    }

    /// `error` about `kind`'s token, presented with `scheme`, as that slot
    /// answers it (its challenge).
    pub(super) fn refusal(&self, kind: SlotKind, scheme: Scheme, error: AuthError) -> AuthError {
        let config = self.slot(kind);
        let error = error.with_slot(kind);
        match config {
            Some(c) => error.with_challenge(c.slot.binding.challenge(Some(scheme))),
            None => error,
        }
    }

    /// A principal verified after a key fetch, checked against the slot's
    /// rules and binding.
    pub(super) fn admit(
        &self,
        kind: SlotKind,
        verified: (Principal, Scheme),
        head: &Head<'_>,
    ) -> Result<(Principal, Option<crate::binding::Bound>), AuthError> {
        let config = self.slot(kind);
        match config {
            Some(c) => c.slot.admit_bound(
                kind,
                &c.excluded,
                verified,
                head,
                &self.certificates,
                unix_now(),
            ),
            None => Ok((verified.0, None)),
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

    /// Whether a store must be asked about `caller`: the revocation list,
    /// or the replay record of its DPoP proof.
    pub(super) fn asks_store(&self, caller: &Caller, proof: &Proof) -> bool {
        (self.revocation.is_some() && !caller.is_anonymous()) || proof.is_some()
    }

    /// The store checks of `caller`: revocation, then its proof's `jti`.
    pub(super) fn store_check(
        &self,
        caller: &Caller,
        proof: &Proof,
    ) -> crate::revocation::RevocationCheck {
        let revocation = match &self.revocation {
            Some(r) if !caller.is_anonymous() => r.check(caller),
            _ => crate::revocation::RevocationCheck::Ready(Some(Ok(()))),
        };
        match proof {
            Some(bound) => revocation.then(bound.replay.check()),
            None => revocation,
        }
    }

    /// What the response of `caller`'s request gets on its way out: a
    /// refusal made behind the layer rendered with this layer's renderer
    /// (and the `DPoP` challenge after a DPoP request), a new `DPoP-Nonce`.
    pub(super) fn finish(&self, proof: &Proof) -> Finish {
        let metadata = self.metadata.as_ref().map(|(url, _)| url.clone());
        let Some(bound) = proof else {
            return Finish {
                renderer: self.renderer.clone(),
                metadata,
                extra: None,
            };
        };
        let challenge = [&self.user, &self.service]
            .into_iter()
            .flatten()
            .find(|c| c.slot.binding.takes_dpop())
            .map(|c| c.slot.binding.challenge(Some(Scheme::Dpop)));
        let nonce = bound
            .next_nonce
            .as_deref()
            .and_then(|n| http::HeaderValue::from_str(n).ok());
        Finish {
            renderer: self.renderer.clone(),
            metadata,
            extra: Some(Box::new((challenge, nonce))),
        }
    }

    /// Put the caller into the request; returns it for the task-local scope.
    /// `span` is the request's span, when spans are collected.
    pub(super) fn accept<B>(
        &self,
        req: &mut Request<B>,
        caller: Caller,
        span: Option<&Span>,
    ) -> Caller {
        let reason = if caller.is_anonymous() {
            "anonymous: every slot optional and empty"
        } else {
            "authenticated"
        };
        let caller = with_request(caller, req);
        if let Some(span) = span {
            record_caller(span, &caller);
        }
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
        span: Option<&Span>,
    ) -> Response<B> {
        let outcome = Outcome::of(error.kind());
        metrics::request(outcome);
        if let Some(span) = span {
            span.record("outcome", outcome.as_str());
            span.record("mandate.slot", error.slot().map(SlotKind::as_str));
            if let Some(caller) = caller {
                record_caller(span, caller);
            }
        }
        let caller = with_request(caller.cloned().unwrap_or_default(), req);
        caller.audit(false, error.reason(), "authenticate", None);
        tracing::debug!(
            target: "tower_mandate::server",
            kind = ?error.kind(),
            slot = error.slot().map(SlotKind::as_str),
            reason = error.reason(),
            "request refused"
        );
        let error =
            error.with_resource_metadata(self.metadata.as_ref().map(|(url, _)| url.clone()));
        self.renderer.render(error, req.headers())
    }
}

/// The way out of an accepted request: see [`Config::finish`].
pub(crate) struct Finish {
    renderer: Renderer,
    /// RFC 9728: named in the challenge of a refusal behind the layer.
    metadata: Option<Arc<str>>,
    /// After a DPoP request: its challenge, and a new nonce to hand out.
    #[allow(clippy::type_complexity)]
    extra: Option<Box<(Option<crate::error::Challenge>, Option<http::HeaderValue>)>>,
}

impl Finish {
    /// The response, with a refusal made behind the layer rendered again.
    pub(super) fn apply<B: RejectionBody>(&self, response: &mut Response<B>) -> metrics::Outcome {
        let Some(extra) = &self.extra else {
            return self.renderer.finish(response, None, self.metadata.as_ref());
        };
        let (challenge, nonce) = &**extra;
        let outcome = self
            .renderer
            .finish(response, challenge.as_ref(), self.metadata.as_ref());
        if let Some(nonce) = nonce {
            response
                .headers_mut()
                .insert(super::reject::DPOP_NONCE, nonce.clone());
        }
        outcome
    }
}

/// Whether the request span is made (a static check of the callsite's
/// interest).
fn spans_enabled() -> bool {
    tracing::enabled!(target: "tower_mandate::server", tracing::Level::INFO)
}

/// The request's span: one per request, INFO, target
/// `tower_mandate::server`; the fields are filled in as they are known.
/// `None` when spans are not collected (it costs nothing to carry, enter or
/// drop then).
pub(super) fn request_span() -> Option<Span> {
    if !spans_enabled() {
        return None;
    }
    Some(tracing::info_span!(
        target: "tower_mandate::server",
        "mandate",
        outcome = Empty,
        "mandate.slot" = Empty,
        "enduser.id" = Empty,
        "mandate.user.issuer" = Empty,
        "mandate.service.id" = Empty,
        "mandate.service.issuer" = Empty,
        "mandate.actor" = Empty,
    ))
}

/// `caller` in the request `req`: its origin (when audit events are
/// collected) and its `X-Request-Id`.
fn with_request<B>(caller: Caller, req: &Request<B>) -> Caller {
    let caller = caller.with_origin(audit::Origin::of(req));
    match req
        .headers()
        .get(audit::REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        Some(id) => caller.with_request_id(id),
        None => caller,
    }
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
        let entered = span.as_ref().map(Span::enter);
        let progress = self
            .config
            .progress(&Head::of(&req), SlotKind::User, Before::default());
        match progress {
            // The common case: every token verified at once, nothing to ask.
            Progress::Done(caller, proof) => match self.config.enriched(caller) {
                // The inner service is called in the span.
                Ok(caller) if !self.config.asks_store(&caller, &proof) => {
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
                        Ok(caller) => Progress::Done(caller, proof),
                        Err(pending) => Progress::Enriching(pending, proof),
                    };
                    let clone = self.inner.clone();
                    let inner = std::mem::replace(&mut self.inner, clone);
                    ResponseFuture::next(progress, inner, req, self.config.clone(), span)
                }
            },
            Progress::Refused(error) => {
                let response = self.config.refuse(error, &req, None, span.as_ref());
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
