//! The AuthZEN 1.0 wire: the batch request the crate sends (§7.1) and the
//! answers it accepts (§6.2, §7.2).
//!
//! Written here rather than taken from a crate: the one AuthZEN crate on
//! crates.io is an alpha (0.1.0-alpha.1) with its own HTTP client, and the
//! wire is two borrowed `serde` structs each way. Building and parsing one
//! batch request of three subjects takes microseconds (BENCHMARKS.md,
//! "External decision points").

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::super::decision::{Resource, SubjectRole};
use crate::{Caller, Principal, PrincipalId};

/// One subject of the request, with what the decision point needs to know.
pub(super) struct Subject<'a> {
    pub(super) role: SubjectRole,
    pub(super) id: PrincipalId,
    /// The principal, when it authenticated on this request (an actor
    /// named only inside a token did not).
    principal: Option<&'a Principal>,
    /// The user the service or actor calls for.
    on_behalf_of: Option<&'a Principal>,
    /// The service is the current actor of the user's delegated token.
    is_actor: bool,
}

/// The subjects of `caller`'s request: the user (or the transaction's
/// subject), the calling service, and the current actor of a delegated
/// token when it is not the calling service. Empty for an anonymous caller.
pub(super) fn subjects(caller: &Caller) -> Vec<Subject<'_>> {
    let mut subjects = Vec::with_capacity(3);
    let user = caller.on_behalf_of();
    if let Some(u) = user {
        subjects.push(Subject {
            role: SubjectRole::User,
            id: u.id(),
            principal: Some(u),
            on_behalf_of: None,
            is_actor: false,
        });
    }
    let actor = caller.actor_id();
    if let Some(s) = caller.service() {
        let id = s.id();
        subjects.push(Subject {
            role: SubjectRole::Service,
            is_actor: actor.as_ref() == Some(&id),
            id,
            principal: Some(s),
            on_behalf_of: user,
        });
    }
    // The actor is folded into the calling service only: an actor that
    // names the user (or anyone else) is a subject of its own.
    if let Some(a) = actor
        && !subjects
            .iter()
            .any(|s| s.role == SubjectRole::Service && s.id == a)
    {
        subjects.push(Subject {
            role: SubjectRole::Actor,
            id: a,
            principal: None,
            on_behalf_of: user,
            is_actor: true,
        });
    }
    subjects
}

/// The semantics asked for (§7.1.2.1).
#[derive(Serialize)]
struct Options {
    evaluations_semantic: &'static str,
}

#[derive(Serialize)]
struct Batch<'a> {
    action: Action<'a>,
    resource: ResourceOut<'a>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    context: Map<String, Value>,
    options: Options,
    evaluations: Vec<Item<'a>>,
}

#[derive(Serialize)]
struct Single<'a> {
    subject: SubjectOut<'a>,
    action: Action<'a>,
    resource: ResourceOut<'a>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    context: Map<String, Value>,
}

#[derive(Serialize)]
struct Item<'a> {
    subject: SubjectOut<'a>,
}

#[derive(Serialize)]
struct Action<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct ResourceOut<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
    #[serde(skip_serializing_if = "Map::is_empty")]
    properties: Map<String, Value>,
}

#[derive(Serialize)]
struct SubjectOut<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    properties: SubjectProperties<'a>,
}

#[derive(Serialize)]
struct SubjectProperties<'a> {
    issuer: &'a str,
    permissions: Vec<&'a str>,
    roles: Vec<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_behalf_of: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_behalf_of_issuer: Option<&'a str>,
    /// Only for services: whether it is the current actor of the user's
    /// delegated token.
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<bool>,
}

impl<'a> Subject<'a> {
    fn wire(&'a self) -> SubjectOut<'a> {
        let (permissions, roles) = match self.principal {
            Some(p) => (p.permissions().iter().collect(), p.roles().collect()),
            None => (Vec::new(), Vec::new()),
        };
        let service = self.role != SubjectRole::User;
        SubjectOut {
            kind: if service { "service" } else { "user" },
            id: self.id.subject(),
            properties: SubjectProperties {
                issuer: self.id.issuer(),
                permissions,
                roles,
                on_behalf_of: self.on_behalf_of.map(Principal::subject),
                on_behalf_of_issuer: self.on_behalf_of.map(Principal::issuer),
                actor: service.then_some(self.is_actor),
            },
        }
    }
}

/// Attribute names a handler's attributes may not set: the owner (only
/// [`Resource::with_owner`] does), and Cerbos's reserved `cerbos.*`
/// (`cerbos.scope` and `cerbos.policyVersion` choose which policy
/// decides).
fn reserved(name: &str) -> bool {
    name == "owner" || name == "owner_issuer" || name.starts_with("cerbos.")
}

fn resource(resource: &Resource) -> ResourceOut<'_> {
    let mut properties: Map<String, Value> = resource
        .attrs
        .iter()
        .filter(|(k, _)| !reserved(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // Set last: an attribute of the same name cannot forge the owner.
    if let Some(owner) = &resource.owner {
        properties.insert("owner".into(), owner.subject().into());
        properties.insert("owner_issuer".into(), owner.issuer().into());
    }
    ResourceOut {
        kind: &resource.kind,
        id: &resource.id,
        properties,
    }
}

/// The request's context: the application's members, then the calling
/// service, the current actor and the transaction, each
/// `<issuer>#<subject>` (or the `txn`), when there is one.
fn context(caller: &Caller, extra: &Map<String, Value>) -> Map<String, Value> {
    let mut context = extra.clone();
    if let Some(s) = caller.service() {
        context.insert(
            "service".into(),
            format!("{}#{}", s.issuer(), s.subject()).into(),
        );
    }
    if let Some(a) = caller.actor_id() {
        context.insert(
            "actor".into(),
            format!("{}#{}", a.issuer(), a.subject()).into(),
        );
    }
    if let Some(t) = caller.transaction() {
        context.insert("txn".into(), t.txn().into());
    }
    context
}

/// The body of one batch request (§7.1): action, resource and context as
/// the top-level defaults, one evaluation per subject.
pub(super) fn batch(
    caller: &Caller,
    subjects: &[Subject<'_>],
    action: &str,
    target: &Resource,
    semantic: &'static str,
    extra: &Map<String, Value>,
) -> String {
    let body = Batch {
        action: Action { name: action },
        resource: resource(target),
        context: context(caller, extra),
        options: Options {
            evaluations_semantic: semantic,
        },
        evaluations: subjects
            .iter()
            .map(|s| Item { subject: s.wire() })
            .collect(),
    };
    serde_json::to_string(&body).unwrap_or_default()
}

/// The body of one single evaluation (§6.1), for a decision point with no
/// batch endpoint.
pub(super) fn single(
    caller: &Caller,
    subject: &Subject<'_>,
    action: &str,
    target: &Resource,
    extra: &Map<String, Value>,
) -> String {
    let body = Single {
        subject: subject.wire(),
        action: Action { name: action },
        resource: resource(target),
        context: context(caller, extra),
    };
    serde_json::to_string(&body).unwrap_or_default()
}

/// One decision (§5.5): `decision` is required and must be a boolean.
#[derive(Debug, Deserialize)]
pub(super) struct Decision {
    pub(super) decision: bool,
    #[serde(default)]
    pub(super) context: Option<Value>,
}

#[derive(Deserialize)]
struct Evaluations {
    evaluations: Vec<Decision>,
}

/// The decisions of a batch answer (§7.2), in the order sent.
///
/// # Errors
///
/// A body that is not JSON, has no `evaluations` array, or an evaluation
/// without a boolean `decision`.
pub(super) fn parse_batch(body: &[u8]) -> Result<Vec<Decision>, String> {
    serde_json::from_slice::<Evaluations>(body)
        .map(|e| e.evaluations)
        .map_err(|e| format!("the decision point's answer is not an AuthZEN batch answer: {e}"))
}

/// The decision of a single answer (§6.2).
///
/// # Errors
///
/// A body that is not JSON or has no boolean `decision`.
pub(super) fn parse_single(body: &[u8]) -> Result<Decision, String> {
    serde_json::from_slice::<Decision>(body)
        .map_err(|e| format!("the decision point's answer is not an AuthZEN decision: {e}"))
}
