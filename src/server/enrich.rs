//! Permissions from the application: a hook that adds permissions to a
//! verified principal (from its database, say), asked once per token and
//! kept for the token's lifetime in a bounded cache.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::bounded::Bounded;
use crate::clock::unix_now;
use crate::{AuthError, Caller, Principal};

/// The future an [`Enrich`] hook returns.
pub type EnrichFuture = Pin<Box<dyn Future<Output = Result<Vec<String>, EnrichError>> + Send>>;

/// Adds permissions to a verified principal: the application's own (roles
/// in its database, a tenant's plan). Asked once per token; the principal
/// with the added permissions is kept until the token expires. A closure
/// `Fn(&Principal) -> Vec<String>` is a hook that answers at once.
///
/// ```
/// use tower_mandate::{Issuer, MandateLayer, Slot, Verifier};
/// use tower_mandate::server::{Enrich, EnrichError, EnrichFuture};
/// use tower_mandate::Principal;
/// # let idp = tower_mandate::testing::TestIssuer::rs256("https://id.example");
/// # let users = Verifier::new([Issuer::new("https://id.example", "a").with_keys(idp.key_set())])?;
///
/// /// Permissions granted in the application's database.
/// struct Grants;
///
/// impl Enrich for Grants {
///     fn permissions(&self, principal: &Principal) -> EnrichFuture {
///         let subject = principal.subject().to_owned();
///         Box::pin(async move {
///             // A query would go here.
///             Ok::<_, EnrichError>(if subject == "alice" { vec!["images:delete".into()] } else { vec![] })
///         })
///     }
/// }
///
/// let layer = MandateLayer::builder()
///     .user(Slot::required(users))
///     .with_enrichment(Grants)
///     .build()?;
/// # let _ = layer;
/// # Ok::<(), tower_mandate::ConfigError>(())
/// ```
pub trait Enrich: Send + Sync + 'static {
    /// The permissions to add to `principal`.
    fn permissions(&self, principal: &Principal) -> EnrichFuture;
}

impl<F> Enrich for F
where
    F: Fn(&Principal) -> Vec<String> + Send + Sync + 'static,
{
    fn permissions(&self, principal: &Principal) -> EnrichFuture {
        let permissions = self(principal);
        Box::pin(std::future::ready(Ok(permissions)))
    }
}

/// Why a hook could not answer (its store is down): the request is
/// refused with 503, never let through without the permissions.
#[derive(Debug, Clone)]
pub struct EnrichError {
    message: String,
}

impl EnrichError {
    /// An error saying `message` (logged; never shown to the client).
    pub fn new(message: impl Into<String>) -> Self {
        EnrichError {
            message: message.into(),
        }
    }
}

impl fmt::Display for EnrichError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EnrichError {}

/// Default number of enriched principals kept.
pub(crate) const DEFAULT_ENRICHED: usize = 10_000;

/// The hook and the principals it enriched, by token.
pub(crate) struct Enrichment {
    hook: Arc<dyn Enrich>,
    /// The enriched principals, by token; each used while its token is accepted.
    cache: Bounded<Box<str>, Principal>,
}

/// Enrichment still to be asked: resolves to the enriched caller.
pub(crate) type Pending = Pin<Box<dyn Future<Output = Result<Caller, AuthError>> + Send>>;

impl Enrichment {
    pub(crate) fn new(hook: impl Enrich) -> Self {
        Enrichment {
            hook: Arc::new(hook),
            cache: Bounded::new(DEFAULT_ENRICHED),
        }
    }

    fn cached(&self, principal: &Principal, now: u64) -> Option<Principal> {
        self.cache
            .get(principal.token())
            .filter(|p| now <= p.accepted_until())
    }

    /// The caller with every principal enriched from the cache, or the
    /// work that asks the hook.
    pub(crate) fn caller(self: &Arc<Self>, caller: Caller) -> Result<Caller, Pending> {
        let now = unix_now();
        let cached = |p: Option<&Principal>| match p {
            None => Some(None),
            Some(p) => self.cached(p, now).map(Some),
        };
        match (cached(caller.user()), cached(caller.service())) {
            (Some(user), Some(service)) => Ok(caller.with_principals(user, service)),
            _ => {
                let this = self.clone();
                Err(Box::pin(async move {
                    let user = this.enrich(caller.user()).await?;
                    let service = this.enrich(caller.service()).await?;
                    Ok(caller.with_principals(user, service))
                }))
            }
        }
    }

    async fn enrich(&self, principal: Option<&Principal>) -> Result<Option<Principal>, AuthError> {
        let Some(principal) = principal else {
            return Ok(None);
        };
        if let Some(p) = self.cached(principal, unix_now()) {
            return Ok(Some(p));
        }
        let added = self.hook.permissions(principal).await.map_err(|e| {
            tracing::warn!(target: "tower_mandate::server", error = %e, "enrichment failed: refusing");
            AuthError::keys_unavailable("enrichment unavailable", 1)
        })?;
        let enriched = principal.with_permissions_added(added.clone());
        Caller::new(Some(enriched.clone()), None).audit(
            true,
            "permissions added by the application",
            &added.join(" "),
            None,
        );
        self.cache
            .insert(principal.token().into(), enriched.clone());
        Ok(Some(enriched))
    }
}
