//! Building the layer: the slots, the renderer, the revocation check, and
//! the RFC 8725 §3.12 check that the slots cannot stand in for each other.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::service::{Config, SlotConfig};
use super::{MakeRejection, Mandate, Renderer, TokenSource};
use crate::{ConfigError, Slot, Verifier};

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
/// [module docs](crate::server).
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
