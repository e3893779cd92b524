//! An external policy decision point that speaks the OpenID AuthZEN
//! Authorization API 1.0 (feature `authzen`).

mod answer;
mod builder;
mod client;
mod discovery;
mod wire;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use super::decision::{PolicyDecision, Resource};
use crate::provider::{TokenProvider, TokenRequest};
use crate::{Caller, audit};
use answer::{DecisionCache, answer, audit_context, decided, role_name};
pub use builder::AuthZenBuilder;
use discovery::Endpoints;

/// How the decision point evaluates the batch of a request's subjects
/// (§7.1.2.1 `evaluations_semantic`). Either way a decision is allowed
/// only when every subject is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Semantic {
    /// `deny_on_first_deny`: the decision point may stop at the first
    /// denial (the default; the fewest evaluations).
    #[default]
    DenyOnFirstDeny,
    /// `execute_all`: every subject is evaluated, so that
    /// [`PolicyDecision::subjects`] has each one's answer for the audit
    /// trail.
    ExecuteAll,
}

impl Semantic {
    fn wire(self) -> &'static str {
        match self {
            Semantic::DenyOnFirstDeny => "deny_on_first_deny",
            Semantic::ExecuteAll => "execute_all",
        }
    }
}

/// Asks an AuthZEN 1.0 policy decision point (Cerbos, OPA/Topaz,
/// OpenFGA, Keycloak, Axiomatics, …) instead of evaluating policies in
/// the process, with the call shape of
/// [`CedarPolicy::authorize`](super::CedarPolicy::authorize) (awaited).
///
/// Every principal on the request is a subject of **one batch request**
/// (`/access/v1/evaluations`, §7): the user, the calling service, and the
/// current actor of a delegated token when it is not the calling service.
/// The decision is allowed only when the decision point allows each of
/// them. What arrives:
///
/// | member | value |
/// |---|---|
/// | `subject.type` | `user` for the user (or the subject of the request's Transaction Token when there is no user), `service` for the calling service and for an actor |
/// | `subject.id` | the principal's `sub` |
/// | `subject.properties.issuer` | its `iss` (a `sub` is unique only within its issuer) |
/// | `subject.properties.permissions` | what it holds, through its issuer's [`PermissionMapping`](crate::permission::PermissionMapping) (`[]` for an actor, which did not authenticate on this request) |
/// | `subject.properties.roles` | its roles ([`Principal::roles`](crate::Principal::roles)) |
/// | `subject.properties.on_behalf_of`, `on_behalf_of_issuer` | for a service or actor calling for a user: the user's `sub` and `iss` |
/// | `subject.properties.actor` | for a service or actor: whether it is the current actor (`act`) of the user's delegated token |
/// | `action.name` | the action the handler names (e.g. `images:read`) |
/// | `resource.type`, `resource.id` | the handler's [`Resource`] |
/// | `resource.properties` | its attributes, and for an owned resource `owner` (the owner's `sub`) and `owner_issuer` |
/// | `context.service`, `context.actor` | `<issuer>#<subject>` of the calling service and of the current actor, when there is one |
/// | `context.txn` | the Transaction Token's `txn`, when there is one |
///
/// A request with a Transaction Token is first bounded by it here: an
/// action its scope does not cover is denied without asking.
///
/// Two subjects with the same `id` (a user and a service both called
/// `alice`, of different issuers) are never put into one batch: Cerbos
/// groups batch items by `subject.id` and would answer both with the
/// first one's decision. They are asked one by one at
/// `/access/v1/evaluation` instead, as with a decision point whose
/// metadata names no batch endpoint.
///
/// Anything but an answer of `true` for each subject denies: an
/// unreachable or slow decision point, an answer that is not an AuthZEN
/// answer, or fewer answers than subjects (except under
/// `deny_on_first_deny`, where a shorter answer ending in a denial is a
/// denial). A failure makes [`PolicyDecision::require`] answer 503 with
/// `Retry-After`. Every decision is one audit event whose
/// `policy_context` holds each subject's answer and decision context.
///
/// ```
/// # #[cfg(feature = "test-util")]
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// use std::time::Duration;
/// use tower_mandate::policy::{AuthZen, Resource};
/// # use tower_mandate::{Caller, Issuer, Verifier, testing::TestIssuer};
/// # let idp = TestIssuer::es256("https://id.example").with_audience("a");
/// # let v = Verifier::new([Issuer::new("https://id.example", "a").with_keys(idp.key_set())])?;
/// # let caller = Caller::new(Some(v.verify(&idp.token("alice").scope("images:read").sign())?), None);
///
/// // Nothing listens here: the decision fails closed.
/// let pdp = AuthZen::builder("http://127.0.0.1:9")
///     .insecure_allow_http()
///     .with_timeout(Duration::from_millis(500))
///     .build()?;
/// let owner = caller.user().unwrap().id();
/// let image = Resource::new("image", "img-1").with_owner(&owner);
/// let decision = pdp.authorize(&caller, "read", &image).await;
/// assert!(!decision.is_allowed() && decision.is_unavailable());
/// let refusal = decision.require("read").unwrap_err();
/// assert_eq!(refusal.status(), 503);
/// assert!(refusal.retry_after().is_some());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct AuthZen(Arc<Inner>);

struct Inner {
    base: reqwest::Url,
    endpoints: OnceCell<Endpoints>,
    /// When discovery last failed: the next attempt waits [`RETRY_AFTER`].
    failed_at: Mutex<Option<Instant>>,
    allow_http: bool,
    client: reqwest::Client,
    semantic: Semantic,
    token: Option<(Arc<dyn TokenProvider>, TokenRequest)>,
    context: Map<String, Value>,
    cache: Option<DecisionCache>,
    retry_after: u64,
    action_scopes: super::ActionScopes,
}

/// How a decision came about, for the audit event.
enum Outcome {
    /// Decided here, without asking.
    Local(&'static str),
    Asked {
        cached: bool,
    },
    Failed(String),
}

impl AuthZen {
    /// Ask the decision point whether `caller` may do `action` on
    /// `resource`. One audit event records the decision, each subject's
    /// answer and the decision point's decision contexts.
    pub async fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        resource: &Resource,
    ) -> PolicyDecision {
        let (decision, outcome) = self.decide(caller, action, resource).await;
        if let Outcome::Failed(error) = &outcome {
            tracing::warn!(
                target: "tower_mandate::policy",
                error = %error,
                "the policy decision point failed; the request is denied"
            );
        }
        if audit::enabled() {
            let reason = match &outcome {
                Outcome::Local(why) => format!("authzen: {why}"),
                Outcome::Failed(_) => "authzen: decision point unavailable".to_owned(),
                Outcome::Asked { cached } => {
                    let verdict = match decision.subjects.iter().find(|s| s.decision == Some(false))
                    {
                        None if decision.allowed => "allowed".to_owned(),
                        None => "denied".to_owned(),
                        Some(s) => format!(
                            "denied for {} {}#{}",
                            role_name(s.role),
                            s.id.issuer(),
                            s.id.subject()
                        ),
                    };
                    if *cached {
                        format!("authzen: {verdict} (cached)")
                    } else {
                        format!("authzen: {verdict}")
                    }
                }
            };
            let context = audit_context(&decision, &outcome);
            caller.audit_policy(
                decision.allowed,
                &reason,
                action,
                Some(&resource.id),
                &context,
            );
        }
        decision
    }

    /// The bodies this decision would send: one batch, or one request per
    /// subject when two subjects share an id (see the type's docs).
    fn bodies(
        &self,
        caller: &Caller,
        subjects: &[wire::Subject<'_>],
        action: &str,
        resource: &Resource,
        batch: bool,
    ) -> Vec<String> {
        let context = &self.0.context;
        if batch {
            vec![wire::batch(
                caller,
                subjects,
                action,
                resource,
                self.0.semantic.wire(),
                context,
            )]
        } else {
            subjects
                .iter()
                .map(|s| wire::single(caller, s, action, resource, context))
                .collect()
        }
    }

    async fn decide(
        &self,
        caller: &Caller,
        action: &str,
        resource: &Resource,
    ) -> (PolicyDecision, Outcome) {
        let local = |why: &'static str| {
            let decision = PolicyDecision {
                errors: vec![why.to_owned()],
                ..PolicyDecision::default()
            };
            (decision, Outcome::Local(why))
        };
        // A transaction's purpose bounds every decision made inside it.
        if !self.0.action_scopes.covers(caller, action) {
            return local("the transaction's scope does not cover the action");
        }
        let subjects = wire::subjects(caller);
        if subjects.is_empty() {
            return local("anonymous caller");
        }
        if resource.id.is_empty() || resource.kind.is_empty() || action.is_empty() {
            return local("the resource type, its id and the action must not be empty");
        }
        let shared_id = subjects.iter().enumerate().any(|(i, s)| {
            subjects[..i]
                .iter()
                .any(|t| t.id.subject() == s.id.subject())
        });
        let endpoints = match self.endpoints().await {
            Ok(e) => e,
            Err(error) => return self.failed(error, &subjects),
        };
        let batch = !shared_id && endpoints.evaluations.is_some();
        let bodies = self.bodies(caller, &subjects, action, resource, batch);
        let key = bodies.join("\n");
        if let Some(cached) = self.0.cache.as_ref().and_then(|c| c.get(&key)) {
            return (cached, Outcome::Asked { cached: true });
        }
        let bearer = match self.bearer().await {
            Ok(b) => b,
            Err(error) => return self.failed(error, &subjects),
        };
        let answers = if batch {
            let url = endpoints
                .evaluations
                .as_ref()
                .unwrap_or(&endpoints.evaluation);
            self.ask_batch(
                url,
                bodies.into_iter().next().unwrap_or_default(),
                bearer.as_deref(),
                subjects.len(),
            )
            .await
        } else {
            self.ask_each(&endpoints.evaluation, bodies, bearer.as_deref())
                .await
        };
        let answers = match answers {
            Ok(a) => a,
            Err(error) => return self.failed(error, &subjects),
        };
        let decision = decided(&subjects, answers, action);
        if let Some(cache) = &self.0.cache {
            cache
                .entries
                .insert(key, (Instant::now(), decision.clone()));
        }
        (decision, Outcome::Asked { cached: false })
    }

    fn failed(&self, error: String, subjects: &[wire::Subject<'_>]) -> (PolicyDecision, Outcome) {
        let decision = PolicyDecision {
            errors: vec![error.clone()],
            subjects: subjects.iter().map(|s| answer(s, None)).collect(),
            unavailable: Some(self.0.retry_after),
            ..PolicyDecision::default()
        };
        (decision, Outcome::Failed(error))
    }
}

impl fmt::Debug for AuthZen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthZen")
            .field("decision_point", &self.0.base.as_str())
            .field("semantic", &self.0.semantic)
            .field("cache", &self.0.cache.as_ref().map(|c| c.ttl))
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, feature = "test-util"))]
mod tests {
    use super::*;
    use crate::testing::TestIssuer;
    use crate::{Issuer, PrincipalId, Verifier};

    #[tokio::test]
    async fn the_transaction_and_anonymous_callers_are_decided_without_asking() {
        // Nothing listens at the decision point: asking would fail with 503.
        let pdp = AuthZen::builder("http://127.0.0.1:9")
            .insecure_allow_http()
            .build()
            .unwrap();
        let users = TestIssuer::es256("https://users").with_audience("a");
        let v =
            Verifier::new([Issuer::new("https://users", "a").with_keys(users.key_set())]).unwrap();
        let image =
            Resource::new("Image", "img-1").with_owner(&PrincipalId::new("https://users", "alice"));
        let alice = Caller::new(
            Some(
                v.verify(&users.token("alice").scope("images:delete").sign())
                    .unwrap(),
            ),
            None,
        );
        let narrow = v
            .verify(&users.token("alice").scope("images:read").sign())
            .unwrap();
        let inside = alice.with_transaction(Some(narrow));
        let d = pdp.authorize(&inside, "images:delete", &image).await;
        assert!(!d.is_allowed() && !d.is_unavailable(), "{d:?}");
        assert_eq!(d.require("images:delete").unwrap_err().status(), 403);
        // An action named `read` is compared with the scope as it is...
        let d = pdp.authorize(&inside, "read", &image).await;
        assert!(!d.is_allowed() && !d.is_unavailable(), "{d:?}");
        // ... unless mapped: then the decision point is asked (and, since
        // nothing listens, cannot answer), and `delete` is still refused here.
        let mapped = AuthZen::builder("http://127.0.0.1:9")
            .insecure_allow_http()
            .with_action_scope("read", "images:read")
            .with_action_scope("delete", "images:delete")
            .build()
            .unwrap();
        let d = mapped.authorize(&inside, "read", &image).await;
        assert!(d.is_unavailable(), "{d:?}");
        let d = mapped.authorize(&inside, "delete", &image).await;
        assert!(!d.is_allowed() && !d.is_unavailable(), "{d:?}");
        let d = pdp
            .authorize(&Caller::default(), "images:read", &image)
            .await;
        assert!(!d.is_allowed() && !d.is_unavailable(), "{d:?}");
        let d = pdp
            .authorize(&inside, "images:read", &Resource::new("Image", ""))
            .await;
        assert!(!d.is_allowed() && !d.is_unavailable(), "{d:?}");
        // Attributes cannot set the owner or Cerbos's reserved names.
        let forged = Resource::new("Image", "img-2")
            .with_attr("owner", "alice")
            .with_attr("owner_issuer", "https://users")
            .with_attr("cerbos.scope", "tenant-b")
            .with_attr("tags", serde_json::json!(["cat"]));
        let subjects = wire::subjects(&inside);
        let body = pdp.bodies(&inside, &subjects, "images:read", &forged, true);
        let sent: Value = serde_json::from_str(&body[0]).unwrap();
        assert_eq!(
            sent["resource"]["properties"],
            serde_json::json!({"tags": ["cat"]})
        );
        // Within the transaction's scope, the decision point is asked.
        let d = pdp.authorize(&inside, "images:read", &image).await;
        assert!(d.is_unavailable(), "{d:?}");
    }
}
