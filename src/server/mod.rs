//! The server middleware: [`MandateLayer`] verifies the user and service
//! tokens of every request and puts the [`Caller`] into its extensions, or
//! answers by itself (RFC 6750 §3).
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_mandate::{Caller, Issuer, MandateLayer, Slot, Verifier};
//! # use tower_mandate::testing::TestIssuer;
//! # let users = TestIssuer::rs256("https://id.example");
//! # let services = TestIssuer::es256("https://services.example");
//!
//! let layer = MandateLayer::builder()
//!     .user(Slot::required(Verifier::new([
//!         Issuer::new("https://id.example", "image-store").with_keys(users.key_set()),
//!     ])?))
//!     .service(Slot::optional(Verifier::new([
//!         Issuer::new("https://services.example", "image-store").with_keys(services.key_set()),
//!     ])?))
//!     .build()?;
//!
//! async fn me(caller: Caller) -> String {
//!     caller.user().map(|u| u.subject().to_owned()).unwrap_or_default()
//! }
//!
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     // route_layer: only matched routes are authenticated, so an unknown
//!     // path stays a 404 and never reveals what needs a token.
//!     .route_layer(layer)
//!     .route("/healthz", get(|| async { "ok" }));
//! # Ok::<(), tower_mandate::ConfigError>(())
//! ```
//!
//! # Layer order
//!
//! Put the `MandateLayer` on `route_layer`, after routing: unknown paths
//! answer 404 without touching tokens, and routes added after the
//! `route_layer` call (health checks) stay public. Layers that must see
//! every request (tracing, request ids, timeouts) go outside, with `layer`.
//! The rejection is a ready response, not an error, so the layer satisfies
//! axum's `Error: Into<Infallible>` bound.

mod future;
mod reject;

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderMap, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

pub use future::ResponseFuture;
pub(crate) use reject::Renderer;
#[cfg(feature = "axum")]
pub(crate) use reject::behind_layer;
pub use reject::{DefaultRejection, MakeRejection, RejectionBody};

use crate::clock::unix_now;
use crate::verify::Step;
use crate::{AuthError, Caller, ConfigError, Principal, SlotKind, TokenSource, Verifier};

/// Whether a slot must carry a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Required,
    Optional,
}

/// One credential slot: where its token comes from, how it is verified, and
/// whether it is required.
#[derive(Debug, Clone)]
pub struct Slot {
    verifier: Verifier,
    mode: Mode,
    source: Option<TokenSource>,
}

impl Slot {
    /// Every request must carry a valid token in this slot.
    pub fn required(verifier: Verifier) -> Self {
        Slot {
            verifier,
            mode: Mode::Required,
            source: None,
        }
    }

    /// A token in this slot is verified when present; its absence is fine.
    /// A present but invalid token is always refused.
    pub fn optional(verifier: Verifier) -> Self {
        Slot {
            verifier,
            mode: Mode::Optional,
            source: None,
        }
    }

    /// Read the token from `source` instead of the slot's default header.
    pub fn with_source(mut self, source: TokenSource) -> Self {
        self.source = Some(source);
        self
    }

    fn token<'h>(
        &self,
        kind: SlotKind,
        source: &TokenSource,
        headers: &'h HeaderMap,
    ) -> Result<Option<&'h str>, AuthError> {
        match source.extract(headers).map_err(|e| e.with_slot(kind))? {
            None if self.mode == Mode::Required => {
                Err(AuthError::missing_credentials().with_slot(kind))
            }
            token => Ok(token),
        }
    }

    /// Without waiting: `Err(Step::Fetch)` when keys must be fetched first.
    #[allow(clippy::result_large_err)]
    fn authenticate(
        &self,
        kind: SlotKind,
        source: &TokenSource,
        headers: &HeaderMap,
        now: u64,
    ) -> Result<Option<Principal>, Step> {
        match self.token(kind, source, headers)? {
            None => Ok(None),
            Some(token) => match self.verifier.verify_step(token, now, true) {
                Ok(p) => Ok(Some(p)),
                Err(Step::Refused(e)) => Err(Step::Refused(e.with_slot(kind))),
                #[cfg(feature = "jwks")]
                Err(fetch) => Err(fetch),
            },
        }
    }
}

struct SlotConfig {
    slot: Slot,
    source: TokenSource,
}

struct Config {
    user: Option<SlotConfig>,
    service: Option<SlotConfig>,
    renderer: Renderer,
    revocation: Option<crate::revocation::Revocation>,
}

/// Where the authentication of one request stands. `Waiting` holds the
/// parsed token by value (the rare path; see `verify::Step`).
#[allow(clippy::large_enum_variant)]
pub(crate) enum Progress {
    Done(Caller),
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
    fn progress(
        &self,
        headers: &HeaderMap,
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
            let principal = match c.slot.authenticate(kind, &c.source, headers, now) {
                Ok(p) => p,
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

    /// Whether `caller` must be checked against the revocation store.
    fn checks_revocation(&self, caller: &Caller) -> bool {
        self.revocation.is_some() && !caller.is_anonymous()
    }

    /// Put the caller into the request; returns it for the task-local scope.
    fn accept<B>(&self, req: &mut Request<B>, caller: Caller) -> Caller {
        let reason = if caller.is_anonymous() {
            "anonymous: every slot optional and empty"
        } else {
            "authenticated"
        };
        caller.audit(true, reason, "authenticate", None);
        req.extensions_mut().insert(caller.clone());
        caller
    }

    /// Refuse; `caller` is who verified before the refusal (a revoked or
    /// replayed token), for the audit event.
    fn refuse<B: RejectionBody>(
        &self,
        error: AuthError,
        headers: &HeaderMap,
        caller: Option<&Caller>,
    ) -> Response<B> {
        match caller {
            Some(caller) => caller.audit(false, error.reason(), "authenticate", None),
            None => Caller::default().audit(false, error.reason(), "authenticate", None),
        }
        tracing::debug!(
            target: "tower_mandate::server",
            kind = ?error.kind(),
            slot = error.slot().map(SlotKind::as_str),
            reason = error.reason(),
            "request refused"
        );
        self.renderer.render(error, headers)
    }
}

/// Builds a [`MandateLayer`] with a user slot, a service slot, or both.
#[must_use]
pub struct MandateBuilder {
    user: Option<Slot>,
    service: Option<Slot>,
    renderer: Renderer,
    interchangeable_ok: bool,
    revocation: Option<crate::revocation::Revocation>,
}

impl MandateBuilder {
    /// The end user's slot (default source `Authorization: Bearer …`).
    pub fn user(mut self, slot: Slot) -> Self {
        self.user = Some(slot);
        self
    }

    /// The calling service's slot (default source `Service-Authorization: Bearer …`).
    pub fn service(mut self, slot: Slot) -> Self {
        self.service = Some(slot);
        self
    }

    /// Check every verified token against a revocation list (and, if set, a
    /// replay guard) on every request; see [`revocation`](crate::revocation).
    pub fn with_revocation(mut self, revocation: crate::revocation::Revocation) -> Self {
        self.revocation = Some(revocation);
        self
    }

    /// Replace the renderer of refused requests.
    pub fn with_rejection(mut self, renderer: impl MakeRejection) -> Self {
        self.renderer = Renderer(Arc::new(renderer));
        self
    }

    /// Allow the user and service slots to accept the same tokens.
    ///
    /// # Security
    ///
    /// RFC 8725 §3.12: a user token then also passes as a service token, and
    /// the other way round, which defeats checking both. Prefer distinct
    /// audiences, a `typ`, or distinct issuers.
    pub fn insecure_allow_interchangeable_slots(mut self) -> Self {
        self.interchangeable_ok = true;
        self
    }

    /// Check the configuration and build the layer.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InterchangeableSlots`] when both slots trust an issuer
    /// with an overlapping audience and no `typ` that tells them apart;
    /// [`ConfigError::SlotConflict`] when both slots read the same header.
    pub fn build(self) -> Result<MandateLayer, ConfigError> {
        let user = self.user.map(|slot| SlotConfig {
            source: slot
                .source
                .clone()
                .unwrap_or_else(TokenSource::authorization),
            slot,
        });
        let service = self.service.map(|slot| SlotConfig {
            source: slot
                .source
                .clone()
                .unwrap_or_else(TokenSource::service_authorization),
            slot,
        });
        if let (Some(u), Some(s)) = (&user, &service) {
            if u.source.header_name() == s.source.header_name() {
                return Err(ConfigError::SlotConflict(format!(
                    "the user and service slots both read {}",
                    u.source.header_name()
                )));
            }
            if !self.interchangeable_ok {
                check_distinct(&u.slot.verifier, &s.slot.verifier)?;
            }
        }
        Ok(MandateLayer {
            config: Arc::new(Config {
                user,
                service,
                renderer: self.renderer,
                revocation: self.revocation,
            }),
        })
    }
}

/// RFC 8725 §3.12: for an issuer both slots trust, the audiences must be
/// disjoint or the required `typ`s must differ.
fn check_distinct(user: &Verifier, service: &Verifier) -> Result<(), ConfigError> {
    for u in user.issuers() {
        for s in service.issuers().iter().filter(|s| s.name() == u.name()) {
            let shared_aud = u.audiences().iter().any(|a| s.audiences().contains(a));
            let distinct_typ = matches!((u.typ(), s.typ()), (Some(a), Some(b)) if a != b);
            if shared_aud && !distinct_typ {
                return Err(ConfigError::InterchangeableSlots {
                    issuer: u.name().to_owned(),
                });
            }
        }
    }
    Ok(())
}

impl fmt::Debug for MandateBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MandateBuilder")
            .field("user", &self.user)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

/// Verifies the user and service tokens of each request; see the
/// [module docs](self).
///
/// Cloning is cheap: the configuration is shared.
#[derive(Clone)]
#[must_use]
pub struct MandateLayer {
    config: Arc<Config>,
}

impl MandateLayer {
    /// A layer with one required user slot and no service slot.
    pub fn new(user: Verifier) -> Self {
        MandateLayer::builder()
            .user(Slot::required(user))
            .build()
            .expect("a single slot cannot conflict")
    }

    /// Start a layer with several slots.
    pub fn builder() -> MandateBuilder {
        MandateBuilder {
            user: None,
            service: None,
            renderer: Renderer::default(),
            interchangeable_ok: false,
            revocation: None,
        }
    }
}

impl<S> Layer<S> for MandateLayer {
    type Service = Mandate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Mandate {
            inner,
            config: self.config.clone(),
        }
    }
}

impl fmt::Debug for MandateLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MandateLayer")
            .field("user", &self.config.user.as_ref().map(|c| &c.slot))
            .field("service", &self.config.service.as_ref().map(|c| &c.slot))
            .finish()
    }
}

/// The service made by [`MandateLayer`].
#[derive(Clone)]
pub struct Mandate<S> {
    inner: S,
    config: Arc<Config>,
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

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let progress = self.config.progress(req.headers(), SlotKind::User, None);
        match progress {
            // The common case: every token verified at once, nothing to ask.
            Progress::Done(caller) if !self.config.checks_revocation(&caller) => {
                ResponseFuture::call(&mut self.inner, req, &self.config, caller)
            }
            Progress::Refused(error) => {
                ResponseFuture::rejected(self.config.refuse(error, req.headers(), None))
            }
            // Keys to fetch or a store to ask: the inner service is called
            // later, so the future takes a ready clone of it (tower's way).
            progress => {
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::next(progress, inner, req, self.config.clone())
            }
        }
    }
}

#[cfg(all(test, feature = "test-util"))]
mod tests;
