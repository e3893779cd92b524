//! What the decision point answered: the decision, the policies its
//! contexts name, the audit event's `policy_context`, and the cache.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::super::decision::{PolicyDecision, SubjectDecision, SubjectRole};
use super::{Outcome, wire};

/// Decisions by the request that was sent.
pub(super) struct DecisionCache {
    pub(super) ttl: Duration,
    pub(super) entries: quick_cache::sync::Cache<String, (Instant, PolicyDecision)>,
}

impl DecisionCache {
    pub(super) fn new(ttl: Duration, capacity: usize) -> Self {
        DecisionCache {
            ttl,
            entries: quick_cache::sync::Cache::new(capacity),
        }
    }

    pub(super) fn get(&self, key: &str) -> Option<PolicyDecision> {
        let (at, decision) = self.entries.get(key)?;
        if at.elapsed() < self.ttl {
            Some(decision)
        } else {
            self.entries.remove(key);
            None
        }
    }
}

pub(super) fn answer(
    subject: &wire::Subject<'_>,
    decision: Option<wire::Decision>,
) -> SubjectDecision {
    let (decision, context) = match decision {
        Some(d) => (Some(d.decision), d.context),
        None => (None, None),
    };
    SubjectDecision {
        role: subject.role,
        id: subject.id.clone(),
        decision,
        context,
    }
}

/// The decision from the answers, in the order of `subjects`.
pub(super) fn decided(
    subjects: &[wire::Subject<'_>],
    answers: Vec<wire::Decision>,
    action: &str,
) -> PolicyDecision {
    let allowed = answers.len() == subjects.len() && answers.iter().all(|a| a.decision);
    let mut answers = answers.into_iter();
    let subjects: Vec<SubjectDecision> =
        subjects.iter().map(|s| answer(s, answers.next())).collect();
    let mut policies = Vec::new();
    for context in subjects.iter().filter_map(|s| s.context.as_ref()) {
        for policy in policies_named(context, action) {
            if !policies.contains(&policy) {
                policies.push(policy);
            }
        }
    }
    PolicyDecision {
        allowed,
        policies,
        subjects,
        ..PolicyDecision::default()
    }
}

/// The policies a decision context names: its `id` (as in the AuthZEN
/// examples), and in Cerbos's `cerbos.response` (with
/// `"cerbos.includeMeta": true`) the matched policy and, for each rule
/// output for `action`, its value when it is a string, else its `src`.
pub(super) fn policies_named(context: &Value, action: &str) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(id) = context.get("id").and_then(Value::as_str) {
        names.push(id.to_owned());
    }
    let results = context
        .pointer("/cerbos.response/results")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    for result in results {
        if let Some(matched) = result
            .get("meta")
            .and_then(|m| m.get("actions"))
            .and_then(|a| a.get(action))
            .and_then(|a| a.get("matchedPolicy"))
            .and_then(Value::as_str)
            .filter(|m| *m != "NO_MATCH")
        {
            names.push(matched.to_owned());
        }
        for output in result
            .get("outputs")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice)
        {
            if output.get("action").and_then(Value::as_str) != Some(action) {
                continue;
            }
            // A rule whose output is a string names itself by it; else its
            // `src` (`resource.image.vdefault#rule`).
            if let Some(name) = output
                .get("val")
                .and_then(Value::as_str)
                .or_else(|| output.get("src").and_then(Value::as_str))
            {
                names.push(name.to_owned());
            }
        }
    }
    names
}

pub(super) fn role_name(role: SubjectRole) -> &'static str {
    match role {
        SubjectRole::User => "user",
        SubjectRole::Service => "service",
        SubjectRole::Actor => "actor",
    }
}

/// The audit event's `policy_context`: each subject's answer and context,
/// and the error of a failed decision.
pub(super) fn audit_context(decision: &PolicyDecision, outcome: &Outcome) -> String {
    let subjects: Vec<Value> = decision
        .subjects
        .iter()
        .map(|s| {
            serde_json::json!({
                "role": role_name(s.role),
                "id": format!("{}#{}", s.id.issuer(), s.id.subject()),
                "decision": s.decision,
                "context": s.context,
            })
        })
        .collect();
    let mut value = serde_json::json!({ "subjects": subjects });
    if let Outcome::Failed(error) = outcome {
        value["error"] = error.clone().into();
    }
    value.to_string()
}
