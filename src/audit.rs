//! The audit trail: one `tracing` event per authorization decision, allow
//! and deny, under the target `tower_mandate::audit`.
//!
//! Every event carries:
//!
//! | field | what |
//! |---|---|
//! | `decision` | `allow` or `deny` |
//! | `reason` | why (`permission held`, `owner`, `not owner`, `token expired`, …) |
//! | `permission` | the permission or action decided on (`authenticate` at the layer) |
//! | `resource` | the resource id, when the decision names one |
//! | `user` | the user's subject, or empty |
//! | `user_issuer` | the user's issuer (a subject is unique only within it), or empty |
//! | `service` | the calling service's subject, or empty |
//! | `service_issuer` | the calling service's issuer, or empty |
//! | `actor` | the current actor of a delegated token, `<issuer>#<subject>`, or empty |
//! | `actors` | the actor chain, current actor first, comma-separated subjects |
//! | `token_id` | the user's (else the service's) `jti`, or a short digest of the token |
//! | `method` | the request's HTTP method (`POST` for gRPC), or empty outside a request |
//! | `route` | the matched route (axum's `MatchedPath`), else the path — the gRPC method (`/pkg.Service/Method`) for tonic |
//! | `txn` | the Transaction Token's `txn` (one id across the call chain), or empty |
//! | `dpop_jkt` | the thumbprint of the DPoP key the caller proved (RFC 9449), or empty |
//! | `x5t_s256` | the thumbprint of the client certificate a token is bound to (RFC 8705), or empty |
//! | `request_id` | the request's `X-Request-Id` ([`Caller::request_id`](crate::Caller::request_id)); for a job, the request that captured it; or empty |
//! | `policy_context` | what an external decision point said ([`AuthZen`](crate::policy)): per subject, its decision and decision context, as compact JSON; or empty |
//!
//! Token text never appears. Route the target to durable storage with your
//! subscriber, e.g. `tower_mandate::audit=info`.

/// The `tracing` target of every audit event, for filters:
/// `EnvFilter::new(format!("{}=info", tower_mandate::audit::TARGET))`.
pub const TARGET: &str = "tower_mandate::audit";

/// Who a decision is about, as the audit trail writes it. Built by the
/// [`Caller`](crate::Caller) (this module knows no principal types).
#[derive(Default)]
pub(crate) struct Who<'a> {
    pub(crate) user: &'a str,
    pub(crate) user_issuer: &'a str,
    pub(crate) service: &'a str,
    pub(crate) service_issuer: &'a str,
    /// The current actor, `<issuer>#<subject>`.
    pub(crate) actor: String,
    /// The chain's subjects, current actor first, comma-separated.
    pub(crate) actors: String,
    pub(crate) token_id: String,
    /// The request the decision is made in, when the layer saw it.
    pub(crate) origin: Option<&'a Origin>,
    pub(crate) txn: &'a str,
    pub(crate) dpop_jkt: &'a str,
    pub(crate) x5t_s256: &'a str,
    /// The request's id, or empty.
    pub(crate) request_id: &'a str,
}

/// The request a decision is made in: its method and route.
#[derive(Debug)]
pub(crate) struct Origin {
    method: http::Method,
    route: Box<str>,
}

impl Origin {
    /// The origin of `req`, when audit events are collected.
    pub(crate) fn of<B>(req: &http::Request<B>) -> Option<std::sync::Arc<Origin>> {
        if !enabled() {
            return None;
        }
        #[cfg(feature = "axum")]
        let matched = req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map(axum::extract::MatchedPath::as_str);
        #[cfg(not(feature = "axum"))]
        let matched = None;
        Some(std::sync::Arc::new(Origin {
            method: req.method().clone(),
            route: matched.unwrap_or_else(|| req.uri().path()).into(),
        }))
    }
}

/// The longest request id kept.
const MAX_REQUEST_ID: usize = 128;

/// `id` when it is usable as a request id in audit events: 1 to 128
/// characters of `A–Z a–z 0–9 - _ . : / + = @` (a UUID, a ULID, a trace id,
/// base64). Anything else — spaces, quotes, control characters that could
/// forge a field of a log line — is not kept.
pub fn request_id(id: &str) -> Option<&str> {
    let usable = !id.is_empty()
        && id.len() <= MAX_REQUEST_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b));
    usable.then_some(id)
}

/// The header a request id travels in.
pub const REQUEST_ID_HEADER: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The `jti`, else the first 8 bytes of the token's SHA-256, hex.
pub(crate) fn token_id(jti: Option<&str>, token: &str) -> String {
    match jti {
        Some(jti) => jti.to_owned(),
        None => digest(token),
    }
}

#[cfg(feature = "_aws-lc")]
fn digest(token: &str) -> String {
    use std::fmt::Write as _;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = String::from("sha256:");
    for b in &d.as_ref()[..8] {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(not(feature = "_aws-lc"))]
fn digest(_: &str) -> String {
    String::from("-")
}

/// Whether audit events are being collected (to skip building their fields).
pub(crate) fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

/// Record one decision about `who`.
pub(crate) fn decision(
    who: &Who<'_>,
    allowed: bool,
    reason: &str,
    permission: &str,
    resource: Option<&str>,
    policy_context: &str,
) {
    tracing::info!(
        target: TARGET,
        decision = if allowed { "allow" } else { "deny" },
        reason,
        permission,
        resource = resource.unwrap_or(""),
        user = who.user,
        user_issuer = who.user_issuer,
        service = who.service,
        service_issuer = who.service_issuer,
        actor = who.actor.as_str(),
        actors = who.actors.as_str(),
        token_id = who.token_id.as_str(),
        method = who.origin.map_or("", |o| o.method.as_str()),
        route = who.origin.map_or("", |o| &*o.route),
        txn = who.txn,
        dpop_jkt = who.dpop_jkt,
        x5t_s256 = who.x5t_s256,
        request_id = who.request_id,
        policy_context,
        "authorization decision"
    );
}

#[cfg(test)]
mod tests {
    use super::request_id;

    #[test]
    fn request_ids_that_could_forge_a_log_field_are_not_kept() {
        for good in [
            "req-1",
            "0191d1c2-7f3a-7c1e-9b1a-2f3c4d5e6f70",
            "a/b+c=d@e:f.g_h",
        ] {
            assert_eq!(request_id(good), Some(good));
        }
        let long = "a".repeat(129);
        for bad in ["", "a b", "a\"b", "a\nb", "a=b c=d", "é", long.as_str()] {
            assert_eq!(request_id(bad), None, "{bad:?}");
        }
        assert_eq!(request_id(&"a".repeat(128)).map(str::len), Some(128));
    }
}
