//! What a handler asks a policy about, and what it answered: shared by the
//! Cedar and AuthZEN backends so that a handler can swap one for the other.

use serde_json::Value;

use crate::{AuthError, PrincipalId};

/// A resource a handler asks about: its type (the Cedar entity type, the
/// AuthZEN `resource.type`, e.g. `Image`), its id, its owner, and
/// attributes policies may read.
#[derive(Debug, Clone)]
pub struct Resource {
    pub(super) kind: String,
    pub(super) id: String,
    pub(super) owner: Option<PrincipalId>,
    pub(super) attrs: Vec<(String, Value)>,
}

impl Resource {
    /// A resource of type `kind` with `id`. A resource about to be
    /// created is named by the id it will have (AuthZEN decision points
    /// such as Cerbos refuse an empty id).
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Resource {
            kind: kind.into(),
            id: id.into(),
            owner: None,
            attrs: Vec::new(),
        }
    }

    /// The user who owns it. Cedar sees the attribute `owner`, the entity
    /// `User::"<issuer>#<subject>"`, so that a policy compares it with
    /// `principal` (`resource.owner == principal`) and an `alice` of
    /// another issuer is someone else; an AuthZEN decision point sees the
    /// properties `owner` (the subject) and `owner_issuer`.
    pub fn with_owner(mut self, owner: &PrincipalId) -> Self {
        self.owner = Some(owner.clone());
        self
    }

    /// Add an attribute: a string, boolean, integer, or array of those
    /// (an AuthZEN decision point also gets objects and floats).
    pub fn with_attr(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.attrs.push((name.into(), value.into()));
        self
    }

    /// The resource type.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The resource id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The owner, when [`with_owner`](Resource::with_owner) named one.
    pub fn owner(&self) -> Option<&PrincipalId> {
        self.owner.as_ref()
    }
}

/// Which principal of the request an AuthZEN subject stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SubjectRole {
    /// The end user (or, with no user token, the subject of the request's
    /// Transaction Token): subject type `user`.
    User,
    /// The calling service, by its own token: subject type `service`.
    Service,
    /// The current actor of the user's delegated token (`act`), when it is
    /// not the calling service: subject type `service`, with no
    /// permissions (it did not authenticate on this request).
    Actor,
}

/// What the decision point answered for one principal of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectDecision {
    pub(super) role: SubjectRole,
    pub(super) id: PrincipalId,
    pub(super) decision: Option<bool>,
    pub(super) context: Option<Value>,
}

impl SubjectDecision {
    /// Which principal this is.
    pub fn role(&self) -> SubjectRole {
        self.role
    }

    /// Its issuer and subject.
    pub fn id(&self) -> &PrincipalId {
        &self.id
    }

    /// The decision point's answer; `None` when it was not evaluated
    /// (under `deny_on_first_deny` the decision point stops at the first
    /// denial).
    pub fn decision(&self) -> Option<bool> {
        self.decision
    }

    /// The decision context the decision point returned (reasons, policy
    /// ids), as it sent it.
    pub fn context(&self) -> Option<&Value> {
        self.context.as_ref()
    }
}

/// What a policy evaluation decided, and which policies decided it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyDecision {
    pub(super) allowed: bool,
    pub(super) policies: Vec<String>,
    pub(super) errors: Vec<String>,
    /// Per principal, in the order sent (AuthZEN).
    pub(super) subjects: Vec<SubjectDecision>,
    /// The decision point could not be asked or gave no usable answer: the
    /// seconds after which a retry may succeed.
    pub(super) unavailable: Option<u64>,
}

impl PolicyDecision {
    /// Whether the request is allowed.
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    /// The ids of the policies that decided: for Cedar the `@id`
    /// annotation (or Cedar's `policy0`, `policy1`, …); for an AuthZEN
    /// decision point what its decision context names (see
    /// [`AuthZen`](super::AuthZen)).
    pub fn policies(&self) -> &[String] {
        &self.policies
    }

    /// Errors met while evaluating (a Cedar policy that errors does not
    /// apply), or why the decision point could not decide.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// The decision point's answer for each principal of the request, in
    /// the order sent (empty for Cedar, and when it was not asked).
    pub fn subjects(&self) -> &[SubjectDecision] {
        &self.subjects
    }

    /// The decision point could not be reached, timed out, or answered
    /// something unusable: the request is denied, with 503.
    pub fn is_unavailable(&self) -> bool {
        self.unavailable.is_some()
    }

    /// `Ok` when allowed; else 403 naming `action`, or 503 with
    /// `Retry-After` when the decision point could not decide.
    ///
    /// # Errors
    ///
    /// [`AuthErrorKind::InsufficientScope`](crate::AuthErrorKind::InsufficientScope)
    /// when denied,
    /// [`AuthErrorKind::PolicyUnavailable`](crate::AuthErrorKind::PolicyUnavailable)
    /// when the decision point failed.
    pub fn require(&self, action: &str) -> Result<(), AuthError> {
        match (self.allowed, self.unavailable) {
            (true, _) => Ok(()),
            (false, Some(secs)) => Err(AuthError::policy_unavailable(secs)),
            (false, None) => Err(AuthError::insufficient_scope(action.to_owned())),
        }
    }
}
