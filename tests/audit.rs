//! The audit trail's fields, captured by a global subscriber in this test
//! binary (a per-thread subscriber races with other test threads over
//! tracing's callsite cache).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tower_mandate::policy::{CedarPolicy, Resource};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{Caller, Issuer, Verifier, permission};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

type Event = HashMap<String, String>;

struct Capture;

static EVENTS: Mutex<Vec<Event>> = Mutex::new(Vec::new());
/// The layer's request spans, by id, with the fields recorded so far.
static SPANS: Mutex<Vec<(u64, Event)>> = Mutex::new(Vec::new());

struct V(Event);
impl Visit for V {
    fn record_str(&mut self, f: &Field, v: &str) {
        self.0.insert(f.name().into(), v.into());
    }
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        self.0.insert(f.name().into(), format!("{v:?}"));
    }
}
static SERIAL: Mutex<()> = Mutex::new(());

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        if attrs.metadata().target() != "tower_mandate::server" {
            return;
        }
        let mut v = V(HashMap::new());
        attrs.record(&mut v);
        SPANS.lock().unwrap().push((id.into_u64(), v.0));
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: Context<'_, S>,
    ) {
        let mut spans = SPANS.lock().unwrap();
        if let Some((_, fields)) = spans.iter_mut().rev().find(|(i, _)| *i == id.into_u64()) {
            let mut v = V(HashMap::new());
            values.record(&mut v);
            fields.extend(v.0);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "tower_mandate::audit" {
            return;
        }
        let mut v = V(HashMap::new());
        event.record(&mut v);
        EVENTS.lock().unwrap().push(v.0);
    }
}

/// Run `f` alone and return the audit events it produced.
fn capture(f: impl FnOnce()) -> Vec<Event> {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture))
            .unwrap();
    });
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    EVENTS.lock().unwrap().clear();
    SPANS.lock().unwrap().clear();
    f();
    std::mem::take(&mut *EVENTS.lock().unwrap())
}

permission! {
    Read = "images:read";
}

fn callers() -> (Caller, Caller) {
    let users = TestIssuer::rs256("https://users").with_audience("a");
    let services = TestIssuer::es256("https://services").with_audience("a");
    let uv = Verifier::new([Issuer::new("https://users", "a").with_keys(users.key_set())]).unwrap();
    let sv = Verifier::new([Issuer::new("https://services", "a").with_keys(services.key_set())])
        .unwrap();
    let alice = Caller::new(
        Some(
            uv.verify(
                &users
                    .token("alice")
                    .scope("images:read")
                    .actor("tagger")
                    .sign(),
            )
            .unwrap(),
        ),
        Some(
            sv.verify(
                &services
                    .token("archiver")
                    .scope("images:read images:read:any")
                    .sign(),
            )
            .unwrap(),
        ),
    );
    let bob = Caller::new(
        Some(
            uv.verify(
                &users
                    .token("bob")
                    .scope("images:read")
                    .without_claim("jti")
                    .sign(),
            )
            .unwrap(),
        ),
        None,
    );
    (alice, bob)
}

#[test]
fn one_event_per_decision_with_every_field() {
    let (alice, bob) = callers();
    let events = capture(|| {
        let owner = tower_mandate::PrincipalId::new("https://users", "alice");
        assert!(alice.require_owner_of::<Read>("img-1", &owner).is_ok());
        assert!(bob.require_owner_of::<Read>("img-1", &owner).is_err());
        assert!(bob.require::<Read>().is_ok());
    });
    assert_eq!(events.len(), 3, "{events:?}");
    let get = |i: usize, k: &str| events[i].get(k).cloned().unwrap_or_default();
    assert_eq!(get(0, "decision"), "allow");
    assert_eq!(get(0, "reason"), "owner");
    assert_eq!(get(0, "permission"), "images:read");
    assert_eq!(get(0, "resource"), "img-1");
    assert_eq!(get(0, "user"), "alice");
    assert_eq!(get(0, "user_issuer"), "https://users");
    assert_eq!(get(0, "service"), "archiver");
    assert_eq!(get(0, "service_issuer"), "https://services");
    assert_eq!(
        get(0, "actor"),
        "https://users#tagger",
        "the token's issuer when act names none"
    );
    assert_eq!(get(0, "actors"), "tagger");
    assert_eq!(
        get(0, "token_id"),
        alice.user().unwrap().token_id().unwrap()
    );
    assert_eq!(get(1, "decision"), "deny");
    assert_eq!(get(1, "reason"), "not owner");
    assert_eq!(get(1, "user"), "bob");
    // No jti: a short digest stands in.
    assert!(get(1, "token_id").starts_with("sha256:"), "{:?}", events[1]);
    assert_eq!(get(2, "reason"), "permission held");
    for (i, token) in [alice.user().unwrap().token(), bob.user().unwrap().token()]
        .iter()
        .enumerate()
    {
        for e in &events {
            assert!(
                e.values().all(|v| !v.contains(&token[token.len() - 20..])),
                "{i}: {e:?}"
            );
        }
    }
}

#[test]
fn cedar_decisions_name_the_deciding_policies() {
    let (alice, bob) = callers();
    let policy = CedarPolicy::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/policies/images.cedar"
    ))
    .unwrap();
    let image = Resource::new("Image", "img-7")
        .with_owner(&tower_mandate::PrincipalId::new("https://users", "alice"));
    let events = capture(|| {
        assert!(policy.authorize(&alice, "images:read", &image).is_allowed());
        assert!(!policy.authorize(&bob, "images:delete", &image).is_allowed());
    });
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["reason"], "cedar: owner-crud");
    assert_eq!(events[0]["resource"], "img-7");
    assert_eq!(events[0]["permission"], "images:read");
    assert_eq!(events[1]["decision"], "deny");
    assert_eq!(events[1]["reason"], "cedar: no policy applies");
}

#[test]
fn require_user_is_audited() {
    permission! { Delete = "images:delete"; }
    let (alice, _) = callers();
    let events = capture(|| {
        assert!(alice.require_user::<Read>().is_ok());
        assert!(alice.require_user::<Delete>().is_err());
        assert!(
            Caller::new(None, alice.service().cloned())
                .require_user::<Read>()
                .is_err()
        );
    });
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0]["decision"], "allow");
    assert_eq!(events[0]["user"], "alice");
    assert_eq!(events[1]["decision"], "deny");
    assert_eq!(events[1]["permission"], "images:delete");
    assert_eq!(events[1]["reason"], "user lacks permission");
    assert_eq!(events[2]["reason"], "no user");
}

#[test]
fn refusals_after_verification_name_who_was_refused() {
    use tower::{Service, ServiceExt};
    use tower_mandate::revocation::{MemoryStore, Revocation};
    use tower_mandate::{MandateLayer, Slot};

    let users = TestIssuer::es256("https://users").with_audience("a");
    let verifier =
        Verifier::new([Issuer::new("https://users", "a").with_keys(users.key_set())]).unwrap();
    let layer = MandateLayer::builder()
        .user(Slot::required(verifier))
        .with_revocation(Revocation::new(MemoryStore::new()).guard_replay())
        .build()
        .unwrap();
    let inner = tower::service_fn(|_: http::Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    });
    let mut service = tower::Layer::layer(&layer, inner);
    let token = users.token("alice").sign();
    let jti = {
        let v =
            Verifier::new([Issuer::new("https://users", "a").with_keys(users.key_set())]).unwrap();
        v.verify(&token).unwrap().token_id().unwrap().to_owned()
    };
    let events = capture(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for want in [200, 401] {
                let req = http::Request::get("/x")
                    .header("authorization", format!("Bearer {token}"))
                    .body(())
                    .unwrap();
                let res = service.ready().await.unwrap().call(req).await.unwrap();
                assert_eq!(res.status().as_u16(), want);
            }
        });
    });
    let refusal = events
        .iter()
        .find(|e| e["decision"] == "deny")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(refusal["reason"], "token replayed");
    assert_eq!(refusal["user"], "alice");
    assert_eq!(refusal["user_issuer"], "https://users");
    assert_eq!(refusal["token_id"], jti);
}

#[test]
fn requests_have_a_span_and_their_decisions_name_method_and_route() {
    use axum::routing::get;
    use tower::ServiceExt;
    use tower_mandate::{MandateLayer, Require, Slot};

    permission! { Delete = "images:delete"; }
    let users = TestIssuer::rs256("https://users").with_audience("a");
    let services = TestIssuer::es256("https://services").with_audience("a");
    let layer = MandateLayer::builder()
        .user(Slot::required(
            Verifier::new([Issuer::new("https://users", "a").with_keys(users.key_set())]).unwrap(),
        ))
        .service(Slot::optional(
            Verifier::new([Issuer::new("https://services", "a").with_keys(services.key_set())])
                .unwrap(),
        ))
        .build()
        .unwrap();
    async fn read(_: Require<Read>) -> &'static str {
        "read"
    }
    async fn delete(_: Require<Delete>) -> &'static str {
        "deleted"
    }
    let app = axum::Router::new()
        .route("/images/{id}", get(read).delete(delete))
        .route_layer(layer);
    let alice = users.token("alice").scope("images:read").sign();
    let archiver = services.token("archiver").scope("images:read").sign();
    let events = capture(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for (method, want) in [("GET", 200), ("DELETE", 403)] {
                let req = http::Request::builder()
                    .method(method)
                    .uri("/images/img-7")
                    .header("authorization", format!("Bearer {alice}"))
                    .header("service-authorization", format!("Bearer {archiver}"))
                    .body(axum::body::Body::empty())
                    .unwrap();
                let res = app.clone().oneshot(req).await.unwrap();
                assert_eq!(res.status().as_u16(), want);
            }
        });
    });
    // Every decision (the layer's and the guards') names method and route.
    assert!(events.len() >= 4, "{events:?}");
    for e in &events {
        assert_eq!(e["route"], "/images/{id}", "{e:?}");
        assert!(e["method"] == "GET" || e["method"] == "DELETE", "{e:?}");
    }
    let denied = events
        .iter()
        .find(|e| e["decision"] == "deny")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(denied["method"], "DELETE");
    assert_eq!(denied["permission"], "images:delete");
    // One span per request, with who called and the request's outcome.
    let spans = SPANS.lock().unwrap().clone();
    assert_eq!(spans.len(), 2, "{spans:?}");
    let outcomes: Vec<&str> = spans.iter().map(|(_, s)| s["outcome"].as_str()).collect();
    assert_eq!(outcomes, ["allowed", "forbidden"]);
    for (_, span) in &spans {
        assert_eq!(span["enduser.id"], "alice");
        assert_eq!(span["mandate.user.issuer"], "https://users");
        assert_eq!(span["mandate.service.id"], "archiver");
        assert_eq!(span["mandate.service.issuer"], "https://services");
        for value in span.values() {
            assert!(
                !value.contains(&alice) && !value.contains(&archiver),
                "{span:?}"
            );
        }
    }
}

#[test]
fn a_dpop_request_names_the_proven_key() {
    use tower::{Service, ServiceExt};
    use tower_mandate::binding::{Dpop, DpopKey};
    use tower_mandate::{MandateLayer, Slot};

    let users = TestIssuer::es256("https://users").with_audience("a");
    let verifier =
        Verifier::new([Issuer::new("https://users", "a").with_keys(users.key_set())]).unwrap();
    let layer = MandateLayer::builder()
        .user(
            Slot::required(verifier).with_dpop(Dpop::allowed().with_origin("https://api.example")),
        )
        .build()
        .unwrap();
    let inner = tower::service_fn(|_: http::Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    });
    let mut service = tower::Layer::layer(&layer, inner);
    let key = DpopKey::generate();
    let token = users
        .token("alice")
        .claim("cnf", serde_json::json!({"jkt": key.thumbprint()}))
        .sign();
    let uri: http::Uri = "https://api.example/x".parse().unwrap();
    let events = capture(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let proof = key
                .proof(&http::Method::GET, &uri, Some(&token), None)
                .unwrap();
            let req = http::Request::get("/x")
                .header("authorization", format!("DPoP {token}"))
                .header("dpop", proof)
                .body(())
                .unwrap();
            let res = service.ready().await.unwrap().call(req).await.unwrap();
            assert_eq!(res.status().as_u16(), 200);
        });
    });
    let allowed = events
        .iter()
        .find(|e| e["decision"] == "allow")
        .unwrap_or_else(|| panic!("{events:?}"));
    assert_eq!(allowed["dpop_jkt"], key.thumbprint());
    assert_eq!(allowed["x5t_s256"], "");
}
