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
//! | `service` | the calling service's subject, or empty |
//! | `actors` | the actor chain, current actor first, comma-separated |
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
    tracing::info!(
        target: TARGET,
        decision = if allowed { "allow" } else { "deny" },
        reason,
        permission,
        resource = resource.unwrap_or(""),
        user = user.map_or("", Principal::subject),
        service = service.map_or("", Principal::subject),
        actors = actors.as_str(),
        token_id = token.as_str(),
        "authorization decision"
    );
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use tracing::field::{Field, Visit};
    use tracing_subscriber::layer::{Context, SubscriberExt};

    /// Collects the fields of audit events.
    #[derive(Clone, Default)]
    pub(crate) struct Capture(pub(crate) Arc<Mutex<Vec<HashMap<String, String>>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            if event.metadata().target() != super::TARGET {
                return;
            }
            struct V(HashMap<String, String>);
            impl Visit for V {
                fn record_str(&mut self, f: &Field, v: &str) {
                    self.0.insert(f.name().into(), v.into());
                }
                fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
                    self.0.insert(f.name().into(), format!("{v:?}"));
                }
            }
            let mut v = V(HashMap::new());
            event.record(&mut v);
            self.0.lock().unwrap().push(v.0);
        }
    }

    #[test]
    fn one_event_per_decision_with_every_field() {
        use crate::caller::tests::principal;
        use crate::{Caller, permission};
        permission! {
            Read = "images:read";
        }
        let alice = Caller::new(
            Some(principal("alice", &["images:read"])),
            Some(principal("archiver", &["images:read", "images:read:any"])),
        );
        let bob = Caller::new(Some(principal("bob", &["images:read"])), None);
        let ((), events) = capture(|| {
            assert!(alice.require_owner_of::<Read>("img-1", "alice").is_ok());
            assert!(bob.require_owner_of::<Read>("img-1", "alice").is_err());
            assert!(bob.require::<Read>().is_ok());
        });
        assert_eq!(events.len(), 3, "{events:?}");
        let get = |i: usize, k: &str| events[i].get(k).cloned().unwrap_or_default();
        assert_eq!(get(0, "decision"), "allow");
        assert_eq!(get(0, "reason"), "owner");
        assert_eq!(get(0, "permission"), "images:read");
        assert_eq!(get(0, "resource"), "img-1");
        assert_eq!(get(0, "user"), "alice");
        assert_eq!(get(0, "service"), "archiver");
        assert!(get(0, "token_id").starts_with("sha256:"), "{:?}", events[0]);
        assert_eq!(get(1, "decision"), "deny");
        assert_eq!(get(1, "reason"), "not owner");
        assert_eq!(get(1, "permission"), "images:read");
        assert_eq!(get(1, "user"), "bob");
        assert_eq!(get(2, "reason"), "permission held");
        for e in &events {
            assert!(e.values().all(|v| !v.contains("signature-secret")), "{e:?}");
        }
    }

    /// Run `f` with audit events captured.
    pub(crate) fn capture<R>(f: impl FnOnce() -> R) -> (R, Vec<HashMap<String, String>>) {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        let r = tracing::subscriber::with_default(subscriber, f);
        let events = capture.0.lock().unwrap().clone();
        (r, events)
    }
}
