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

use crate::bounded::Bounded;
use crate::{AuthError, Caller, ConfigError, Principal, PrincipalId, audit};

/// A resource a handler asks about: its Cedar entity type (e.g. `Image`),
/// its id, its owner, and attributes policies may read.
#[derive(Debug, Clone)]
pub struct Resource {
    kind: String,
    id: String,
    owner: Option<PrincipalId>,
    attrs: Vec<(String, Value)>,
}

impl Resource {
    /// A resource of entity type `kind` with `id`.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Resource {
            kind: kind.into(),
            id: id.into(),
            owner: None,
            attrs: Vec::new(),
        }
    }

    /// The user who owns it, as the attribute `owner`: the entity
    /// `User::"<issuer>#<subject>"`, so that a policy compares it with
    /// `principal` (`resource.owner == principal`) and an `alice` of
    /// another issuer is someone else.
    pub fn with_owner(mut self, owner: &PrincipalId) -> Self {
        self.owner = Some(owner.clone());
        self
    }

    /// Add an attribute: a string, boolean, integer, or array of those.
    pub fn with_attr(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attrs.push((name.into(), value.into()));
        self
    }

    /// The resource id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// What a policy evaluation decided, and which policies decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDecision {
    allowed: bool,
    policies: Vec<String>,
    errors: Vec<String>,
}

impl PolicyDecision {
    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// The ids of the policies that decided (the `@id` annotation, or
    /// Cedar's `policy0`, `policy1`, …).
    pub fn policies(&self) -> &[String] {
        &self.policies
    }

    /// Errors met while evaluating (a policy that errors does not apply).
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// `Ok` when allowed; else 403 naming `action`.
    ///
    /// # Errors
    ///
    /// [`AuthErrorKind::InsufficientScope`](crate::AuthErrorKind::InsufficientScope)
    /// when denied.
    pub fn require(&self, action: &str) -> Result<(), AuthError> {
        if self.allowed {
            Ok(())
        } else {
            Err(AuthError::insufficient_scope(action.to_owned()))
        }
    }
}

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
///   (the principal holds that permission, through the same mapping as
///   `Require<P>`), `service` (the calling service's `<issuer>#<sub>`, or
///   `""`), `service_holds` (it holds the permission too, or there is no
///   service), `has_user`, and `actor` (the current actor of a delegated
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
            policies: Vec::new(),
            errors: vec![error],
        };
        // A transaction's purpose bounds every decision made inside it.
        if caller
            .transaction()
            .is_some_and(|t| !t.principal().permissions().contains(action))
        {
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
        let principal_holds = principal.permissions().contains(action);
        let service_holds = service.is_none_or(|s| s.permissions().contains(action));
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

        use serde_json::json;

        use super::super::*;
        use crate::testing::TestIssuer;
        use crate::{Issuer, Verifier};

        const POLICIES: &str = include_str!("../../examples/policies/images.cedar");

        struct World {
            users: TestIssuer,
            /// A second users' issuer trusted by the same slot.
            others: TestIssuer,
            services: TestIssuer,
            uv: Verifier,
            sv: Verifier,
        }

        impl World {
            fn new() -> Self {
                let users = TestIssuer::es256("https://users").with_audience("a");
                let others = TestIssuer::es256("https://users-b").with_audience("a");
                let services = TestIssuer::es256("https://services").with_audience("a");
                let uv = Verifier::new([
                    Issuer::new("https://users", "a").with_keys(users.key_set()),
                    Issuer::new("https://users-b", "a").with_keys(others.key_set()),
                ])
                .unwrap();
                let sv = Verifier::new([
                    Issuer::new("https://services", "a").with_keys(services.key_set())
                ])
                .unwrap();
                World {
                    users,
                    others,
                    services,
                    uv,
                    sv,
                }
            }

            fn caller(
                &self,
                user: Option<crate::testing::TokenBuilder>,
                service: Option<crate::testing::TokenBuilder>,
            ) -> Caller {
                Caller::new(
                    user.map(|t| self.uv.verify(&t.sign()).unwrap()),
                    service.map(|t| self.sv.verify(&t.sign()).unwrap()),
                )
            }
        }

        #[test]
        fn the_image_sharing_rules() {
            let w = World::new();
            let policy = CedarPolicy::from_text(POLICIES).unwrap();
            let all = "images:read images:write images:delete tags:write";
            let alice = w.caller(Some(w.users.token("alice").scope(all)), None);
            let bob = w.caller(Some(w.users.token("bob").scope(all)), None);
            // alice's token exchanged for the tagger: the actor is the services'
            // tagger, which calls with its own token.
            let tagger_for_alice = w.caller(
                Some(
                    w.users
                        .token("alice")
                        .scope(all)
                        .claim("act", json!({"sub": "tagger", "iss": "https://services"})),
                ),
                Some(w.services.token("tagger").scope("tags:write")),
            );
            let archiver = w.caller(
                None,
                Some(w.services.token("archiver").scope("images:read")),
            );
            let admin = w.caller(
                Some(w.users.token("root").claim("roles", json!(["image-admin"]))),
                None,
            );
            let weak_service = w.caller(
                Some(w.users.token("alice").scope(all)),
                Some(w.services.token("thumbnailer").scope("images:write")),
            );
            // alice of the other issuer, with every plain permission and the
            // admin role's name in her own `roles` claim.
            let other_alice = w.caller(
                Some(
                    w.others
                        .token("alice")
                        .scope(all)
                        .claim("roles", json!(["image-admin"])),
                ),
                None,
            );
            let tagger_chain = json!({
                "sub": "gateway",
                "iss": "https://services",
                "act": {"sub": "tagger", "iss": "https://services"},
            });
            // A delegated token whose chain names the tagger, but not as the
            // current actor, and no service token: the tagger is not calling.
            let chain_names_tagger = w.caller(
                Some(
                    w.users
                        .token("alice")
                        .scope(all)
                        .claim("act", tagger_chain.clone()),
                ),
                None,
            );
            // The tagger calls for alice, but the token's current actor is the gateway.
            let tagger_not_actor = w.caller(
                Some(w.users.token("alice").scope(all).claim("act", tagger_chain)),
                Some(w.services.token("tagger").scope("tags:write")),
            );
            // The tagger calls with a delegated token that names it as actor,
            // but the user lacks tags:write: every principal must hold it.
            let tagger_user_lacks = w.caller(
                Some(
                    w.users
                        .token("alice")
                        .scope("images:read")
                        .claim("act", json!({"sub": "tagger", "iss": "https://services"})),
                ),
                Some(w.services.token("tagger").scope("tags:write")),
            );
            let alices = Resource::new("Image", "img-1")
                .with_owner(&PrincipalId::new("https://users", "alice"));
            let bobs = Resource::new("Image", "img-2")
                .with_owner(&PrincipalId::new("https://users", "bob"));

            struct Case<'a> {
                name: &'a str,
                caller: &'a Caller,
                action: &'a str,
                resource: &'a Resource,
                allowed: bool,
                policy: &'a str,
            }
            let cases = [
                Case {
                    name: "owner reads",
                    caller: &alice,
                    action: "images:read",
                    resource: &alices,
                    allowed: true,
                    policy: "owner-crud",
                },
                Case {
                    name: "owner deletes",
                    caller: &alice,
                    action: "images:delete",
                    resource: &alices,
                    allowed: true,
                    policy: "owner-crud",
                },
                Case {
                    name: "other user reads",
                    caller: &bob,
                    action: "images:read",
                    resource: &alices,
                    allowed: false,
                    policy: "",
                },
                Case {
                    name: "other user deletes",
                    caller: &bob,
                    action: "images:delete",
                    resource: &alices,
                    allowed: false,
                    policy: "",
                },
                Case {
                    name: "tagger for the owner",
                    caller: &tagger_for_alice,
                    action: "tags:write",
                    resource: &alices,
                    allowed: true,
                    policy: "tagger-acts-for-owner",
                },
                Case {
                    name: "tagger for an owner who lacks tags:write",
                    caller: &tagger_user_lacks,
                    action: "tags:write",
                    resource: &alices,
                    allowed: false,
                    policy: "",
                },
                Case {
                    name: "tagger on another user's image",
                    caller: &tagger_for_alice,
                    action: "tags:write",
                    resource: &bobs,
                    allowed: false,
                    policy: "tagger-only-for-owner",
                },
                Case {
                    name: "tagger cannot delete",
                    caller: &tagger_for_alice,
                    action: "images:delete",
                    resource: &alices,
                    allowed: false,
                    policy: "",
                },
                Case {
                    name: "archiver reads any",
                    caller: &archiver,
                    action: "images:read",
                    resource: &bobs,
                    allowed: true,
                    policy: "archiver-reads-any",
                },
                Case {
                    name: "archiver deletes none",
                    caller: &archiver,
                    action: "images:delete",
                    resource: &bobs,
                    allowed: false,
                    policy: "archiver-deletes-none",
                },
                Case {
                    name: "admin role reads any",
                    caller: &admin,
                    action: "images:read",
                    resource: &bobs,
                    allowed: true,
                    policy: "admins-read-any",
                },
                Case {
                    name: "another issuer's alice reads",
                    caller: &other_alice,
                    action: "images:read",
                    resource: &alices,
                    allowed: false,
                    policy: "",
                },
                Case {
                    name: "another issuer's alice writes",
                    caller: &other_alice,
                    action: "images:write",
                    resource: &alices,
                    allowed: false,
                    policy: "",
                },
                Case {
                    name: "another issuer's alice deletes",
                    caller: &other_alice,
                    action: "images:delete",
                    resource: &alices,
                    allowed: false,
                    policy: "",
                },
                Case {
                    name: "another issuer's image-admin role reads any",
                    caller: &other_alice,
                    action: "images:read",
                    resource: &bobs,
                    allowed: false,
                    policy: "",
                },
                Case {
                    name: "the chain names the tagger, no service token",
                    caller: &chain_names_tagger,
                    action: "tags:write",
                    resource: &alices,
                    allowed: false,
                    policy: "",
                },
                Case {
                    name: "the tagger calls, the current actor is another",
                    caller: &tagger_not_actor,
                    action: "tags:write",
                    resource: &alices,
                    allowed: false,
                    policy: "",
                },
                Case {
                    name: "owner through a weak service",
                    caller: &weak_service,
                    action: "images:read",
                    resource: &alices,
                    allowed: false,
                    policy: "",
                },
            ];
            for c in cases {
                let d = policy.authorize(c.caller, c.action, c.resource);
                assert_eq!(d.is_allowed(), c.allowed, "{}: {d:?}", c.name);
                if !c.policy.is_empty() {
                    assert!(
                        d.policies().iter().any(|p| p == c.policy),
                        "{}: {d:?}",
                        c.name
                    );
                }
                assert!(d.errors().is_empty(), "{}: {d:?}", c.name);
            }
        }

        #[test]
        fn a_transaction_bounds_the_decision() {
            // Regression (SECURITY.md): the policy saw the service alone.
            let w = World::new();
            let policy = CedarPolicy::from_text(POLICIES).unwrap();
            let image = Resource::new("Image", "img-1")
                .with_owner(&PrincipalId::new("https://users", "alice"));
            let alice = w.caller(
                Some(w.users.token("alice").scope("images:read images:delete")),
                None,
            );
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
