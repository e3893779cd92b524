//! An external policy decision point that speaks the OpenID AuthZEN
//! Authorization API 1.0 (feature `authzen`).

mod discovery;
mod wire;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use super::decision::{PolicyDecision, Resource, SubjectDecision, SubjectRole};
use crate::provider::{TokenProvider, TokenRequest};
use crate::{Caller, ConfigError, audit};
use discovery::Endpoints;

/// The largest answer read from a decision point.
const MAX_ANSWER: usize = 64 * 1024;
/// After a failed discovery, the next one waits this long (and a client
/// is told to retry after it).
const RETRY_AFTER: Duration = Duration::from_secs(2);

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
/// ```no_run
/// # async fn f(caller: tower_mandate::Caller) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use tower_mandate::policy::{AuthZen, Resource};
///
/// let pdp = AuthZen::builder("https://pdp.internal")
///     .with_timeout(Duration::from_secs(2))
///     .build()?;
/// let owner = tower_mandate::PrincipalId::new("https://id.example", "alice");
/// let image = Resource::new("image", "img-1").with_owner(&owner);
/// pdp.authorize(&caller, "read", &image).await.require("read")?;
/// # Ok(()) }
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
}

/// Builds an [`AuthZen`].
#[must_use]
pub struct AuthZenBuilder {
    url: String,
    timeout: Duration,
    semantic: Semantic,
    discovery: bool,
    allow_http: bool,
    client: Option<reqwest::ClientBuilder>,
    token: Option<(Arc<dyn TokenProvider>, TokenRequest)>,
    context: Map<String, Value>,
    cache: Option<(Duration, usize)>,
}

impl AuthZen {
    /// A decision point whose identifier (base URL) is `url`; its
    /// endpoints are at the default paths unless
    /// [`with_discovery`](AuthZenBuilder::with_discovery).
    pub fn builder(url: impl Into<String>) -> AuthZenBuilder {
        AuthZenBuilder {
            url: url.into(),
            timeout: Duration::from_secs(2),
            semantic: Semantic::default(),
            discovery: false,
            allow_http: false,
            client: None,
            token: None,
            context: Map::new(),
            cache: None,
        }
    }
}

impl fmt::Debug for AuthZenBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthZenBuilder")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("semantic", &self.semantic)
            .field("discovery", &self.discovery)
            .finish_non_exhaustive()
    }
}

impl AuthZenBuilder {
    /// How long one request to the decision point may take, connection
    /// included (default 2 s); past it the decision fails with 503.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The evaluations semantic (default [`Semantic::DenyOnFirstDeny`]).
    pub fn with_semantic(mut self, semantic: Semantic) -> Self {
        self.semantic = semantic;
        self
    }

    /// Read the endpoints from the decision point's metadata at
    /// `/.well-known/authzen-configuration` (§9), on the first decision
    /// rather than when building, so that the service may start before
    /// the decision point. The metadata's `policy_decision_point` must be
    /// this identifier (§9.2.3); a failed discovery fails decisions with
    /// 503 and is tried again after 2 s.
    pub fn with_discovery(mut self) -> Self {
        self.discovery = true;
        self
    }

    /// Send requests with the application's own HTTP client (a private
    /// CA, a proxy, a client certificate). The crate builds it with no
    /// redirects (the bearer token would follow them) and its timeout,
    /// whatever the builder says.
    pub fn with_client(mut self, client: reqwest::ClientBuilder) -> Self {
        self.client = Some(client);
        self
    }

    /// Authenticate to the decision point with this service's own token
    /// from `provider` (for `request`): `Authorization: Bearer …` on every
    /// request. A token that cannot be had fails the decision with 503.
    pub fn with_token(mut self, provider: impl TokenProvider, request: TokenRequest) -> Self {
        self.token = Some((Arc::new(provider), request));
        self
    }

    /// Add a member to every request's `context`: for example Cerbos's
    /// `"cerbos.includeMeta": true`, which makes it return the matched
    /// policies and rule outputs (then in [`PolicyDecision::policies`]).
    pub fn with_context(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.context.insert(name.into(), value.into());
        self
    }

    /// Keep decisions for `ttl`, at most `capacity` of them (off by
    /// default). The key is the whole request as sent — every subject with
    /// its issuer, permissions and roles, the action, the resource and its
    /// properties, the context — so a decision is never reused for another
    /// user, another service or another owner. Failures are not kept. A
    /// policy change at the decision point takes up to `ttl` to apply.
    pub fn with_cache(mut self, ttl: Duration, capacity: usize) -> Self {
        self.cache = (!ttl.is_zero() && capacity > 0).then_some((ttl, capacity));
        self
    }

    /// Accept a plain-http decision point (and plain-http endpoints in
    /// its metadata). The bearer token and every decision then cross the
    /// network unprotected: for loopback and tests only.
    pub fn insecure_allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// The decision point.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidUrl`] for a URL that does not parse, has a
    /// query or fragment, or is plain http without
    /// [`insecure_allow_http`](Self::insecure_allow_http); and when the
    /// HTTP client cannot be built.
    pub fn build(self) -> Result<AuthZen, ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidUrl {
            url: self.url.clone(),
            reason,
        };
        let base = reqwest::Url::parse(&self.url).map_err(|e| invalid(e.to_string()))?;
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid(
                "a decision point identifier has no query or fragment".into(),
            ));
        }
        discovery::check_scheme(&base, self.allow_http).map_err(invalid)?;
        let endpoints = OnceCell::new();
        if !self.discovery {
            let _ = endpoints.set(discovery::defaults(&base).map_err(invalid)?);
        }
        let client = self
            .client
            .unwrap_or_default()
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(2)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| invalid(format!("the HTTP client: {e}")))?;
        Ok(AuthZen(Arc::new(Inner {
            base,
            endpoints,
            failed_at: Mutex::new(None),
            allow_http: self.allow_http,
            client,
            semantic: self.semantic,
            token: self.token,
            context: self.context,
            cache: self
                .cache
                .map(|(ttl, capacity)| DecisionCache::new(ttl, capacity)),
            retry_after: self.timeout.as_secs().clamp(1, 30),
        })))
    }
}

/// Decisions by the request that was sent.
struct DecisionCache {
    ttl: Duration,
    entries: quick_cache::sync::Cache<String, (Instant, PolicyDecision)>,
}

impl DecisionCache {
    fn new(ttl: Duration, capacity: usize) -> Self {
        DecisionCache {
            ttl,
            entries: quick_cache::sync::Cache::new(capacity),
        }
    }

    fn get(&self, key: &str) -> Option<PolicyDecision> {
        let (at, decision) = self.entries.get(key)?;
        if at.elapsed() < self.ttl {
            Some(decision)
        } else {
            self.entries.remove(key);
            None
        }
    }
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
        if caller
            .transaction()
            .is_some_and(|t| !t.principal().permissions().contains(action))
        {
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

    /// The endpoints: the default paths, or the metadata's, fetched once.
    async fn endpoints(&self) -> Result<&Endpoints, String> {
        if let Some(e) = self.0.endpoints.get() {
            return Ok(e);
        }
        if let Some(at) = *self.0.failed_at.lock().unwrap_or_else(|e| e.into_inner())
            && at.elapsed() < RETRY_AFTER
        {
            return Err(
                "the decision point's metadata could not be had; not asked again yet".into(),
            );
        }
        let result = self.0.endpoints.get_or_try_init(|| self.discover()).await;
        if result.is_err() {
            *self.0.failed_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
        result
    }

    async fn discover(&self) -> Result<Endpoints, String> {
        let url = discovery::metadata_url(&self.0.base)?;
        let response = self
            .0
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| format!("the decision point's metadata: {}", e.without_url()))?;
        let body = read(response).await?;
        discovery::parse_metadata(&self.0.base, &body, self.0.allow_http)
    }

    async fn bearer(&self) -> Result<Option<String>, String> {
        let Some((provider, request)) = &self.0.token else {
            return Ok(None);
        };
        let token = provider
            .token(request.clone())
            .await
            .map_err(|e| format!("no token for the decision point: {e}"))?;
        #[cfg(feature = "_aws-lc")]
        if token.dpop_key().is_some() {
            return Err("the decision point's token is DPoP-bound, which is not supported".into());
        }
        Ok(Some(token.secret().to_owned()))
    }

    async fn post(
        &self,
        url: &reqwest::Url,
        body: String,
        bearer: Option<&str>,
    ) -> Result<Vec<u8>, String> {
        let mut request = self
            .0
            .client
            .post(url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("the decision point: {}", e.without_url()))?;
        read(response).await
    }

    async fn ask_batch(
        &self,
        url: &reqwest::Url,
        body: String,
        bearer: Option<&str>,
        sent: usize,
    ) -> Result<Vec<wire::Decision>, String> {
        let answers = wire::parse_batch(&self.post(url, body, bearer).await?)?;
        let stopped_at_deny = self.0.semantic == Semantic::DenyOnFirstDeny
            && answers.last().is_some_and(|d| !d.decision);
        if answers.len() > sent || (answers.len() < sent && !stopped_at_deny) {
            return Err(format!(
                "the decision point answered {} evaluations for {sent} subjects",
                answers.len()
            ));
        }
        Ok(answers)
    }

    async fn ask_each(
        &self,
        url: &reqwest::Url,
        bodies: Vec<String>,
        bearer: Option<&str>,
    ) -> Result<Vec<wire::Decision>, String> {
        let mut answers = Vec::with_capacity(bodies.len());
        for body in bodies {
            let answer = wire::parse_single(&self.post(url, body, bearer).await?)?;
            let denied = !answer.decision;
            answers.push(answer);
            if denied && self.0.semantic == Semantic::DenyOnFirstDeny {
                break;
            }
        }
        Ok(answers)
    }
}

/// The body of a 200 answer, at most [`MAX_ANSWER`] bytes.
async fn read(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("the decision point's answer: {}", e.without_url()))?
    {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(format!(
                "the decision point's answer is over {MAX_ANSWER} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    if status != reqwest::StatusCode::OK {
        let excerpt: String = String::from_utf8_lossy(&body).chars().take(200).collect();
        return Err(format!("the decision point answered {status}: {excerpt}"));
    }
    Ok(body)
}

fn answer(subject: &wire::Subject<'_>, decision: Option<wire::Decision>) -> SubjectDecision {
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
fn decided(
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
fn policies_named(context: &Value, action: &str) -> Vec<String> {
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

fn role_name(role: SubjectRole) -> &'static str {
    match role {
        SubjectRole::User => "user",
        SubjectRole::Service => "service",
        SubjectRole::Actor => "actor",
    }
}

/// The audit event's `policy_context`: each subject's answer and context,
/// and the error of a failed decision.
fn audit_context(decision: &PolicyDecision, outcome: &Outcome) -> String {
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
        let d = pdp
            .authorize(&Caller::default(), "images:read", &image)
            .await;
        assert!(!d.is_allowed() && !d.is_unavailable(), "{d:?}");
        let d = pdp
            .authorize(&inside, "images:read", &Resource::new("Image", ""))
            .await;
        assert!(!d.is_allowed() && !d.is_unavailable(), "{d:?}");
        // Within the transaction's scope, the decision point is asked.
        let d = pdp.authorize(&inside, "images:read", &image).await;
        assert!(d.is_unavailable(), "{d:?}");
    }
}
