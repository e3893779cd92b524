//! Cedar policies (feature `cedar`).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression,
};
use serde_json::Value;

use super::{PolicyDecision, Resource};
use crate::bounded::Bounded;
use crate::{Caller, ConfigError, Principal, audit};

/// A Cedar policy set and how a [`Caller`] maps onto Cedar entities.
///
/// Identities are issuer and subject together, written `<issuer>#<subject>`
/// (an issuer identifier has no fragment, so the first `#` separates them):
///
/// - principal: `User::"<issuer>#<sub>"` with its roles (read through its
///   issuer's [`PermissionMapping`](crate::permission::PermissionMapping), see
///   [`Principal::roles`]) as parent entities `Role::"<issuer>#<role>"` — a
///   role means what its issuer says, so another issuer's `admin` is
///   another role — and the attributes `sub` and `iss`; or, for a caller
///   with no user, `Service::"<issuer>#<sub>"`;
/// - action: `Action::"<permission>"` (e.g. `Action::"images:read"`);
/// - resource: the handler's [`Resource`], its [owner](Resource::with_owner)
///   as the entity attribute `owner`;
/// - context: `permission` (the action as a string), `principal_holds`
///   (the principal holds that permission — or the scope the action is
///   mapped to with [`with_action_scope`](CedarPolicy::with_action_scope)
///   — through the same mapping as `Require<P>`), `service` (the calling
///   service's `<issuer>#<sub>`, or `""`), `service_holds` (it holds the
///   permission too, or there is no service), `has_user`, and `actor` (the current actor of a delegated
///   token, `<issuer>#<sub>` with the token's issuer when `act` names none,
///   or `""`). Earlier actors of the chain are for audit only and are not
///   given to policies.
///
/// ```
/// # #[cfg(feature = "test-util")] {
/// use tower_mandate::policy::{CedarPolicy, Resource};
/// # use tower_mandate::{Caller, Issuer, Verifier, testing::TestIssuer};
///
/// let policy = CedarPolicy::from_text(r#"
///     @id("owners")
///     permit(principal is User, action, resource is Image)
///     when { resource.owner == principal };
/// "#)?;
/// # let idp = TestIssuer::es256("https://id").with_audience("a");
/// # let v = Verifier::new([Issuer::new("https://id", "a").with_keys(idp.key_set())])?;
/// # let caller = Caller::new(Some(v.verify(&idp.token("alice").sign())?), None);
/// let owner = caller.user().unwrap().id();
/// let image = Resource::new("Image", "img-1").with_owner(&owner);
/// let decision = policy.authorize(&caller, "images:read", &image);
/// assert!(decision.is_allowed());
/// assert_eq!(decision.policies(), ["owners"]);
/// // The same subject from another issuer is not the owner.
/// let theirs = Resource::new("Image", "img-2")
///     .with_owner(&tower_mandate::PrincipalId::new("https://other", "alice"));
/// assert!(!policy.authorize(&caller, "images:read", &theirs).is_allowed());
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct CedarPolicy {
    policies: PolicySet,
    /// Resource type names, parsed once each (parsing runs Cedar's parser).
    resource_types: Bounded<String, EntityTypeName>,
    authorizer: Authorizer,
    user_type: EntityTypeName,
    role_type: EntityTypeName,
    service_type: EntityTypeName,
    action_type: EntityTypeName,
    action_scopes: super::ActionScopes,
}

/// Resource type names kept parsed.
const RESOURCE_TYPES: usize = 256;

fn type_name(name: &str) -> EntityTypeName {
    EntityTypeName::from_str(name).expect("a valid Cedar type name")
}

fn uid(kind: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(kind.clone(), EntityId::new(id))
}

/// The Cedar id of an identity: `<issuer>#<subject>`.
fn cedar_id(issuer: &str, subject: &str) -> String {
    format!("{issuer}#{subject}")
}

fn expression(value: &Value) -> Option<RestrictedExpression> {
    Some(match value {
        Value::String(s) => RestrictedExpression::new_string(s.clone()),
        Value::Bool(b) => RestrictedExpression::new_bool(*b),
        Value::Number(n) => RestrictedExpression::new_long(n.as_i64()?),
        Value::Array(items) => {
            RestrictedExpression::new_set(items.iter().map(expression).collect::<Option<Vec<_>>>()?)
        }
        _ => return None,
    })
}

impl CedarPolicy {
    /// Policies in Cedar's text form.
    ///
    /// # Errors
    ///
    /// When the text does not parse.
    pub fn from_text(text: &str) -> Result<Self, ConfigError> {
        let policies = PolicySet::from_str(text)
            .map_err(|e| ConfigError::InvalidPolicy(format!("Cedar policies: {e}")))?;
        Ok(CedarPolicy {
            policies,
            resource_types: Bounded::new(RESOURCE_TYPES),
            authorizer: Authorizer::new(),
            user_type: type_name("User"),
            role_type: type_name("Role"),
            service_type: type_name("Service"),
            action_type: type_name("Action"),
            action_scopes: super::ActionScopes::default(),
        })
    }

    /// Policies read from a file.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or does not parse.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_text(&text)
    }

    /// The scope (permission) `action` stands for, by default the action's
    /// own name: for action names that are not scopes, such as `read` for
    /// `images:read`. Inside a transaction, `action` is denied unless the
    /// transaction's scope holds it; `context.principal_holds` and
    /// `context.service_holds` say whether the principal and the service
    /// hold it.
    #[must_use]
    pub fn with_action_scope(
        mut self,
        action: impl Into<String>,
        scope: impl Into<String>,
    ) -> Self {
        self.action_scopes.insert(action.into(), scope.into());
        self
    }

    fn principal_entity(&self, principal: &Principal, is_user: bool) -> (EntityUid, Vec<Entity>) {
        let kind = if is_user {
            &self.user_type
        } else {
            &self.service_type
        };
        let me = uid(kind, &cedar_id(principal.issuer(), principal.subject()));
        let roles: Vec<EntityUid> = principal
            .roles()
            .map(|r| uid(&self.role_type, &cedar_id(principal.issuer(), r)))
            .collect();
        let attrs = HashMap::from([
            (
                "sub".to_owned(),
                RestrictedExpression::new_string(principal.subject().to_owned()),
            ),
            (
                "iss".to_owned(),
                RestrictedExpression::new_string(principal.issuer().to_owned()),
            ),
        ]);
        let mut entities: Vec<Entity> = roles.iter().map(|r| Entity::with_uid(r.clone())).collect();
        let parents: HashSet<EntityUid> = roles.into_iter().collect();
        if let Ok(entity) = Entity::new(me.clone(), attrs, parents) {
            entities.push(entity);
        }
        (me, entities)
    }

    fn resource_type(&self, kind: &str) -> Option<EntityTypeName> {
        if let Some(t) = self.resource_types.get(kind) {
            return Some(t);
        }
        let parsed = EntityTypeName::from_str(kind).ok()?;
        self.resource_types.insert(kind.to_owned(), parsed.clone());
        Some(parsed)
    }

    /// Evaluate `action` on `resource` for `caller`. One audit event records
    /// the decision and the policies that decided.
    pub fn authorize(&self, caller: &Caller, action: &str, resource: &Resource) -> PolicyDecision {
        let decision = self.evaluate(caller, action, resource);
        if audit::enabled() {
            let reason = if decision.policies.is_empty() {
                "cedar: no policy applies".to_owned()
            } else {
                format!("cedar: {}", decision.policies.join(","))
            };
            caller.audit(decision.allowed, &reason, action, Some(&resource.id));
        }
        decision
    }

    fn evaluate(&self, caller: &Caller, action: &str, resource: &Resource) -> PolicyDecision {
        let deny = |error: String| PolicyDecision {
            allowed: false,
            errors: vec![error],
            ..PolicyDecision::default()
        };
        // A transaction's purpose bounds every decision made inside it.
        if !self.action_scopes.covers(caller, action) {
            return deny("the transaction's scope does not cover the action".into());
        }
        // Whom the request is for: the user, else the transaction's subject.
        let (principal, is_user) = match (caller.on_behalf_of(), caller.service()) {
            (Some(user), _) => (user, true),
            (None, Some(service)) => (service, false),
            (None, None) => return deny("anonymous caller".into()),
        };
        let (principal_uid, mut entities) = self.principal_entity(principal, is_user);
        let Some(resource_type) = self.resource_type(&resource.kind) else {
            return deny(format!("{:?} is not a Cedar entity type", resource.kind));
        };
        let resource_uid = uid(&resource_type, &resource.id);
        let mut attrs: HashMap<String, RestrictedExpression> = resource
            .attrs
            .iter()
            .filter_map(|(k, v)| expression(v).map(|e| (k.clone(), e)))
            .collect();
        if let Some(owner) = &resource.owner {
            let owner = uid(&self.user_type, &cedar_id(owner.issuer(), owner.subject()));
            attrs.insert(
                "owner".to_owned(),
                RestrictedExpression::new_entity_uid(owner),
            );
        }
        match Entity::new(resource_uid.clone(), attrs, HashSet::new()) {
            Ok(entity) => entities.push(entity),
            Err(e) => return deny(e.to_string()),
        }
        let service = caller.service();
        // Permission checks are answered here, on sorted sets, rather than
        // by building Cedar sets on every request.
        let needed = self.action_scopes.scope_for(action);
        let principal_holds = principal.permissions().contains(needed);
        let service_holds = service.is_none_or(|s| s.permissions().contains(needed));
        let service_id = service.map_or_else(String::new, |s| cedar_id(s.issuer(), s.subject()));
        let actor_id = caller
            .actor_id()
            .map_or_else(String::new, |a| cedar_id(a.issuer(), a.subject()));
        let context = Context::from_pairs([
            (
                "service".to_owned(),
                RestrictedExpression::new_string(service_id),
            ),
            (
                "principal_holds".to_owned(),
                RestrictedExpression::new_bool(principal_holds),
            ),
            (
                "service_holds".to_owned(),
                RestrictedExpression::new_bool(service_holds),
            ),
            (
                "has_user".to_owned(),
                RestrictedExpression::new_bool(is_user),
            ),
            (
                "actor".to_owned(),
                RestrictedExpression::new_string(actor_id),
            ),
            (
                "permission".to_owned(),
                RestrictedExpression::new_string(action.to_owned()),
            ),
        ]);
        let context = match context {
            Ok(c) => c,
            Err(e) => return deny(e.to_string()),
        };
        let request = match Request::new(
            principal_uid,
            uid(&self.action_type, action),
            resource_uid,
            context,
            None,
        ) {
            Ok(r) => r,
            Err(e) => return deny(e.to_string()),
        };
        let entities = match Entities::from_entities(entities, None) {
            Ok(e) => e,
            Err(e) => return deny(e.to_string()),
        };
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &entities);
        let policies = response
            .diagnostics()
            .reason()
            .map(|id| {
                self.policies
                    .policy(id)
                    .and_then(|p| p.annotation("id").map(str::to_owned))
                    .unwrap_or_else(|| id.to_string())
            })
            .collect();
        PolicyDecision {
            allowed: response.decision() == Decision::Allow,
            policies,
            errors: response
                .diagnostics()
                .errors()
                .map(ToString::to_string)
                .collect(),
            ..PolicyDecision::default()
        }
    }
}

impl fmt::Debug for CedarPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CedarPolicy")
            .field("policies", &self.policies.policies().count())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    // The tests mint tokens with the test kit.
    #[cfg(feature = "test-util")]
    mod with_test_kit {

        use super::super::*;
        use crate::PrincipalId;
        use crate::testing::TestIssuer;
        use crate::{Issuer, Verifier};

        const POLICIES: &str = include_str!("../../examples/policies/images.cedar");

        /// The users' issuer and the slot's rules.
        struct World {
            users: TestIssuer,
            uv: Verifier,
        }

        impl World {
            fn new() -> Self {
                let users = TestIssuer::es256("https://users").with_audience("a");
                let uv =
                    Verifier::new([Issuer::new("https://users", "a").with_keys(users.key_set())])
                        .unwrap();
                World { users, uv }
            }

            fn caller(&self, user: crate::testing::TokenBuilder) -> Caller {
                Caller::new(Some(self.uv.verify(&user.sign()).unwrap()), None)
            }
        }

        // The image-sharing story's case table is tests/policies.rs, run
        // against Cedar and a real Cerbos PDP.

        #[test]
        fn a_transaction_bounds_the_decision() {
            // Regression (SECURITY.md): the policy saw the service alone.
            let w = World::new();
            let policy = CedarPolicy::from_text(POLICIES).unwrap();
            let image = Resource::new("Image", "img-1")
                .with_owner(&PrincipalId::new("https://users", "alice"));
            let alice = w.caller(w.users.token("alice").scope("images:read images:delete"));
            assert!(
                policy
                    .authorize(&alice, "images:delete", &image)
                    .is_allowed()
            );
            let narrow =
                w.uv.verify(&w.users.token("alice").scope("images:read").sign())
                    .unwrap();
            let inside = alice.clone().with_transaction(Some(narrow));
            assert!(
                policy
                    .authorize(&inside, "images:read", &image)
                    .is_allowed()
            );
            let denied = policy.authorize(&inside, "images:delete", &image);
            assert!(!denied.is_allowed());
        }

        #[test]
        fn actions_that_are_not_scopes_map_to_the_scope_a_transaction_needs() {
            let w = World::new();
            let image = Resource::new("Image", "img-1")
                .with_owner(&PrincipalId::new("https://users", "alice"));
            let narrow =
                w.uv.verify(&w.users.token("alice").scope("images:read").sign())
                    .unwrap();
            let inside = w
                .caller(w.users.token("alice").scope("images:read images:delete"))
                .with_transaction(Some(narrow));
            let everything = "permit(principal, action, resource);";
            // Unmapped, `read` is compared with the scope as it is: denied.
            let plain = CedarPolicy::from_text(everything).unwrap();
            assert!(!plain.authorize(&inside, "read", &image).is_allowed());
            let mapped = CedarPolicy::from_text(everything)
                .unwrap()
                .with_action_scope("read", "images:read")
                .with_action_scope("delete", "images:delete");
            assert!(mapped.authorize(&inside, "read", &image).is_allowed());
            let denied = mapped.authorize(&inside, "delete", &image);
            assert!(!denied.is_allowed());
            assert_eq!(
                denied.errors,
                ["the transaction's scope does not cover the action"]
            );
            // The context's `principal_holds` reads the mapped scope too.
            let holds = CedarPolicy::from_text(
                "permit(principal, action, resource) when { context.principal_holds };",
            )
            .unwrap()
            .with_action_scope("read", "images:read");
            let reader = w.caller(w.users.token("alice").scope("images:read"));
            assert!(holds.authorize(&reader, "read", &image).is_allowed());
            assert!(!holds.authorize(&reader, "write", &image).is_allowed());
            // An unmapped action keeps its own name; outside a transaction
            // nothing is bounded.
            assert!(
                mapped
                    .authorize(&inside, "images:read", &image)
                    .is_allowed()
            );
            let outside = w.caller(w.users.token("alice").scope("images:read"));
            assert!(mapped.authorize(&outside, "delete", &image).is_allowed());
        }

        #[test]
        fn bad_policies_are_refused_and_anonymous_callers_denied() {
            let policy = CedarPolicy::from_text(POLICIES).unwrap();
            let image = Resource::new("Image", "img-1")
                .with_owner(&PrincipalId::new("https://users", "alice"));
            assert!(CedarPolicy::from_text("permit(principal, action, resource").is_err());
            assert!(CedarPolicy::from_file("/nonexistent.cedar").is_err());
            let anonymous = policy.authorize(&Caller::default(), "images:read", &image);
            assert!(!anonymous.is_allowed());
            assert!(anonymous.require("images:read").is_err());
        }
    }
}
