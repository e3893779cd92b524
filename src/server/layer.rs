//! Building the layer: the slots, the renderer, the revocation check, and
//! the RFC 8725 §3.12 check that the slots cannot stand in for each other.

use std::fmt;
use std::sync::Arc;

use tower_layer::Layer;

use super::service::{Config, SlotConfig};
use super::skip::Skip;
use super::{MakeRejection, Mandate, Renderer, TokenSource};
use crate::{ConfigError, Slot, Verifier};

/// Builds a [`MandateLayer`] with a user slot, a service slot, or both.
#[must_use]
pub struct MandateBuilder {
    user: Option<Slot>,
    service: Option<Slot>,
    transaction: Option<crate::transaction::TransactionSlot>,
    metadata: Option<super::ResourceMetadata>,
    renderer: Renderer,
    interchangeable_ok: bool,
    revocation: Option<crate::revocation::Revocation>,
    skips: Vec<Skip>,
    enrichment: Option<super::enrich::Enrichment>,
    certificates: crate::binding::Certificates,
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

    /// The transaction's slot (`Txn-Token: …`): see
    /// [`transaction`](crate::transaction). Its principal takes part in every
    /// guard: a permission must be within the transaction's `scope` too.
    pub fn transaction(mut self, slot: crate::transaction::TransactionSlot) -> Self {
        self.transaction = Some(slot);
        self
    }

    /// Check every verified token against a revocation list (and, if set, a
    /// replay guard) on every request; see [`revocation`](crate::revocation).
    pub fn with_revocation(mut self, revocation: crate::revocation::Revocation) -> Self {
        self.revocation = Some(revocation);
        self
    }

    /// Add the application's permissions to every verified principal (see
    /// [`Enrich`](super::Enrich)): asked once per token, kept for the
    /// token's lifetime (at most 10,000 principals), audited. A hook that
    /// fails refuses the request with 503.
    pub fn with_enrichment(mut self, hook: impl super::Enrich) -> Self {
        self.enrichment = Some(super::enrich::Enrichment::new(hook));
        self
    }

    /// Where a request's TLS client certificate comes from, for tokens
    /// bound to one (RFC 8705): the connection by default; a proxy's header
    /// only when named here. See [`binding`](crate::binding).
    #[cfg(feature = "_aws-lc")]
    pub fn with_client_certificates(mut self, source: crate::binding::CertificateSource) -> Self {
        self.certificates = crate::binding::Certificates(Some(source));
        self
    }

    /// Publish protected-resource metadata (RFC 9728) and name it in every
    /// challenge (`resource_metadata="…"`): serve
    /// [`MandateLayer::resource_metadata`]'s [`route`](super::ResourceMetadata::route)
    /// at its [`url`](super::ResourceMetadata::url)'s path. The layer adds
    /// the DPoP settings of its slots to the document.
    pub fn with_resource_metadata(mut self, metadata: super::ResourceMetadata) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// Replace the renderer of refused requests.
    pub fn with_rejection(mut self, renderer: impl MakeRejection) -> Self {
        self.renderer = Renderer(Arc::new(renderer));
        self
    }

    /// Let requests whose path starts with `prefix`, on a segment boundary
    /// (`/health` and `/health/…`, not `/health-admin`), through
    /// unauthenticated (compared byte for byte on the path as received,
    /// never decoded). An empty prefix or `/` is refused by `build`.
    /// They carry no [`Caller`](crate::Caller): a guard on them refuses
    /// with 401.
    ///
    /// Behind axum's `route_layer` the path is the one that was routed; as
    /// a tonic server layer it is the gRPC method, `/package.Service/Method`:
    /// end a service prefix with `/` so that `/pkg.Health` does not also
    /// match `/pkg.HealthAdmin/…`.
    pub fn add_skip_path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.skips
            .push(Skip::PathPrefix(prefix.into().into_boxed_str()));
        self
    }

    /// Let gRPC health checks (`/grpc.health.v1.Health/`, as tonic-health
    /// serves them) through unauthenticated.
    pub fn add_skip_grpc_health(self) -> Self {
        self.add_skip_path_prefix(super::skip::GRPC_HEALTH)
    }

    /// Let gRPC server reflection (v1 and v1alpha) through unauthenticated.
    pub fn add_skip_grpc_reflection(self) -> Self {
        super::skip::GRPC_REFLECTION
            .into_iter()
            .fold(self, Self::add_skip_path_prefix)
    }

    /// Let CORS preflights (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`, and no body: no `Content-Type`,
    /// `Transfer-Encoding` or non-zero `Content-Length`) through
    /// unauthenticated: browsers send them without credentials. The inner
    /// service runs for them, without a `Caller`: a handler registered for
    /// `OPTIONS` (axum's `any`) that needs no extractor would run. Prefer
    /// tower-http's `CorsLayer` outside this layer, which answers preflights
    /// before they reach it.
    pub fn add_skip_cors_preflight(mut self) -> Self {
        self.skips.push(Skip::CorsPreflight);
        self
    }

    /// Let requests for which `predicate` holds through unauthenticated.
    ///
    /// ```
    /// # use tower_mandate::{Issuer, MandateLayer, Slot, Verifier};
    /// # let idp = tower_mandate::testing::TestIssuer::rs256("https://id.example");
    /// # let users = Verifier::new([Issuer::new("https://id.example", "a").with_keys(idp.key_set())])?;
    /// let layer = MandateLayer::builder()
    ///     .user(Slot::required(users))
    ///     .add_skip_if(|method, uri, _| method == http::Method::GET && uri.path() == "/version")
    ///     .build()?;
    /// # let _ = layer;
    /// # Ok::<(), tower_mandate::ConfigError>(())
    /// ```
    pub fn add_skip_if(
        mut self,
        predicate: impl Fn(&http::Method, &http::Uri, &http::HeaderMap) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.skips.push(Skip::custom(predicate));
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
    /// with an overlapping audience and neither a `typ` nor a claim rule on
    /// each slot ([`Slot::require_claim_eq`], one claim, disjoint values)
    /// tells them apart;
    /// [`ConfigError::SlotConflict`] when both slots read the same header.
    #[cfg_attr(not(feature = "_aws-lc"), allow(unused_mut))]
    pub fn build(mut self) -> Result<MandateLayer, ConfigError> {
        #[cfg(feature = "_aws-lc")]
        {
            let dpop_slots = [&mut self.user, &mut self.service]
                .into_iter()
                .flatten()
                .filter_map(|s| s.binding.dpop.as_mut())
                .collect::<Vec<_>>();
            if dpop_slots.len() > 1 {
                return Err(ConfigError::SlotConflict(
                    "both slots take DPoP, but a request has one DPoP header".into(),
                ));
            }
            for dpop in dpop_slots {
                dpop.prepare(self.revocation.as_ref())?;
                if let Some(metadata) = &mut self.metadata {
                    metadata.dpop = Some(dpop.metadata());
                }
            }
        }
        let metadata = match self.metadata.take() {
            Some(mut m) => {
                // By default, the issuers of the user slot (else the
                // service slot): where this resource's tokens come from.
                if m.authorization_servers_is_empty()
                    && let Some(slot) = [&self.user, &self.service].into_iter().flatten().next()
                {
                    for issuer in slot.verifier.issuers() {
                        if !issuer.name().contains(crate::verify::rules::TENANT) {
                            m = m.add_authorization_server(issuer.name());
                        }
                    }
                }
                Some((Arc::<str>::from(m.url()?), m))
            }
            None => None,
        };
        if let Some(prefix) = super::skip::too_broad(&self.skips) {
            return Err(ConfigError::InvalidSkip(format!(
                "the skip prefix {prefix:?} would let every request through unauthenticated"
            )));
        }
        let rules =
            |slot: &Option<Slot>| slot.as_ref().map(|s| s.rules.clone()).unwrap_or_default();
        let (user_rules, service_rules) = (rules(&self.user), rules(&self.service));
        // Told apart only by a positive rule on each slot: the same claim,
        // values that no token can have in both (a token without the claim
        // then fits neither slot).
        let distinguished = user_rules
            .iter()
            .any(|u| service_rules.iter().any(|s| u.excludes(s)));
        let user = self.user.map(|slot| SlotConfig {
            source: slot
                .source
                .clone()
                .unwrap_or_else(TokenSource::authorization),
            slot,
            excluded: service_rules,
        });
        let service = self.service.map(|slot| SlotConfig {
            source: slot
                .source
                .clone()
                .unwrap_or_else(TokenSource::service_authorization),
            slot,
            excluded: user_rules,
        });
        if let (Some(u), Some(s)) = (&user, &service) {
            if u.source.same_as(&s.source) {
                return Err(ConfigError::SlotConflict(format!(
                    "the user and service slots both read {:?}",
                    u.source
                )));
            }
            // A slot's claim rule tells the slots apart (Slot::require_claim_eq).
            if !self.interchangeable_ok && !distinguished {
                check_distinct(&u.slot.verifier, &s.slot.verifier)?;
            }
        }
        let transaction = self
            .transaction
            .map(|t| t.into_parts())
            .transpose()?
            .map(|(verifier, required, source)| {
                let slot = if required {
                    Slot::required(verifier)
                } else {
                    Slot::optional(verifier)
                };
                slot.with_source(source)
            })
            .map(|slot| SlotConfig {
                source: slot
                    .source
                    .clone()
                    .unwrap_or_else(|| TokenSource::raw_header(crate::transaction::HEADER)),
                slot,
                excluded: Vec::new(),
            });
        for other in [&user, &service].into_iter().flatten() {
            if let Some(t) = &transaction
                && t.source.same_as(&other.source)
            {
                return Err(ConfigError::SlotConflict(format!(
                    "the transaction slot and another slot both read {:?}",
                    t.source
                )));
            }
        }
        Ok(MandateLayer {
            config: Arc::new(Config {
                user,
                service,
                transaction,
                metadata,
                skips: self.skips,
                enrichment: self.enrichment.map(Arc::new),
                renderer: self.renderer,
                revocation: self.revocation,
                certificates: self.certificates,
            }),
        })
    }
}

/// RFC 8725 §3.12: for an issuer both slots trust, the audiences must be
/// disjoint or the required `typ`s must differ.
fn check_distinct(user: &Verifier, service: &Verifier) -> Result<(), ConfigError> {
    for u in user.issuers() {
        for s in service.issuers().iter().filter(|s| s.may_overlap(u)) {
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

    /// Whether every required slot has usable keys now (see
    /// [`Verifier::is_ready`]); optional slots do not count. Never waits:
    /// serve it as a readiness probe.
    ///
    /// ```
    /// # use tower_mandate::{Issuer, MandateLayer, Verifier};
    /// # let idp = tower_mandate::testing::TestIssuer::rs256("https://id.example");
    /// let layer = MandateLayer::new(Verifier::new([
    ///     Issuer::new("https://id.example", "a").with_keys(idp.key_set()),
    /// ])?);
    /// assert!(layer.is_ready()); // static keys are there from the start
    /// # Ok::<(), tower_mandate::ConfigError>(())
    /// ```
    pub fn is_ready(&self) -> bool {
        self.required_slots().all(|s| s.verifier.is_ready())
    }

    /// Resolves once every required slot has usable keys, fetching them
    /// meanwhile. Nothing needs to wait for it: requests that come first
    /// wait for keys by themselves.
    pub async fn ready(&self) {
        for slot in self.required_slots() {
            slot.verifier.ready().await;
        }
    }

    fn required_slots(&self) -> impl Iterator<Item = &Slot> {
        [
            &self.config.user,
            &self.config.service,
            &self.config.transaction,
        ]
        .into_iter()
        .flatten()
        .map(|c| &c.slot)
        .filter(|s| s.is_required())
    }

    /// The protected-resource metadata (RFC 9728) the layer names in its
    /// challenges, when set with
    /// [`MandateBuilder::with_resource_metadata`]; serve its
    /// [`route`](super::ResourceMetadata::route).
    pub fn resource_metadata(&self) -> Option<&super::ResourceMetadata> {
        self.config.metadata.as_ref().map(|(_, m)| m)
    }

    /// Start a layer with several slots.
    pub fn builder() -> MandateBuilder {
        MandateBuilder {
            user: None,
            service: None,
            transaction: None,
            metadata: None,
            renderer: Renderer::default(),
            interchangeable_ok: false,
            revocation: None,
            skips: Vec::new(),
            enrichment: None,
            certificates: crate::binding::Certificates::default(),
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
