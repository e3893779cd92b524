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
//!
//! Token text never appears. Route the target to durable storage with your
//! subscriber, e.g. `tower_mandate::audit=info`.

use crate::{Caller, Principal};

pub(crate) const TARGET: &str = "tower_mandate::audit";

/// The `jti`, else the first 8 bytes of the token's SHA-256, hex.
pub(crate) fn token_id(principal: &Principal) -> String {
    if let Some(jti) = principal.token_id() {
        return jti.to_owned();
    }
    digest(principal.token())
}

#[cfg(any(feature = "aws-lc-rs", feature = "test-util"))]
fn digest(token: &str) -> String {
    use std::fmt::Write as _;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = String::from("sha256:");
    for b in &d.as_ref()[..8] {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(not(any(feature = "aws-lc-rs", feature = "test-util")))]
fn digest(_: &str) -> String {
    String::from("-")
}

/// Whether audit events are being collected (to skip building their fields).
pub(crate) fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

/// Record one decision about `caller`.
pub(crate) fn decision(
    caller: Option<&Caller>,
    allowed: bool,
    reason: &str,
    permission: &str,
    resource: Option<&str>,
) {
    if !enabled() {
        return;
    }
    let user = caller.and_then(Caller::user);
    let service = caller.and_then(Caller::service);
    let actors = caller
        .map(|c| {
            c.actors()
                .iter()
                .map(|a| a.subject())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    let token = user.or(service).map(token_id).unwrap_or_default();
    let actor = caller
        .and_then(Caller::actor_id)
        .map(|a| format!("{}#{}", a.issuer(), a.subject()))
        .unwrap_or_default();
    tracing::info!(
        target: TARGET,
        decision = if allowed { "allow" } else { "deny" },
        reason,
        permission,
        resource = resource.unwrap_or(""),
        user = user.map_or("", Principal::subject),
        user_issuer = user.map_or("", Principal::issuer),
        service = service.map_or("", Principal::subject),
        service_issuer = service.map_or("", Principal::issuer),
        actor = actor.as_str(),
        actors = actors.as_str(),
        token_id = token.as_str(),
        "authorization decision"
    );
}
