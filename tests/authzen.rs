//! The AuthZEN backend against a real Cerbos PDP and against decision
//! points that misbehave (small axum servers: no real PDP answers garbage
//! on demand): failures deny with 503, the service authenticates to the
//! decision point, decisions are cached by everything sent, discovery, and
//! the image_store example configured with `[policy]`.

mod support;

use support::World;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tower_mandate::keys::{Algorithm, KeySet};
use tower_mandate::mint::SigningKey;
use tower_mandate::policy::{AuthZen, Resource, Semantic};
use tower_mandate::provider::{SelfSigned, TokenRequest};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{AuthErrorKind, Caller, Issuer, PrincipalId, Verifier};

/// The suite's world, with the callers these tests ask about.
trait Callers {
    fn user(&self, sub: &str) -> Caller;
    fn user_and_service(&self, sub: &str, service: &str) -> Caller;
}

impl Callers for World {
    fn user(&self, sub: &str) -> Caller {
        self.caller(
            Some(self.users.token(sub).scope("images:read images:delete")),
            None,
        )
    }

    fn user_and_service(&self, sub: &str, service: &str) -> Caller {
        self.caller(
            Some(self.users.token(sub).scope("images:read")),
            Some(self.services.token(service).scope("images:read")),
        )
    }
}

fn image(owner: &str) -> Resource {
    Resource::new("Image", "img-1").with_owner(&PrincipalId::new("https://users", owner))
}

/// A decision point that answers every evaluation request with `status`
/// and `body` after `delay`, counting requests.
async fn fake_pdp(
    status: u16,
    body: &'static str,
    delay: Duration,
) -> (support::Server, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let answer = move || {
        let seen = seen.clone();
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            (
                StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                body,
            )
        }
    };
    let app = axum::Router::new()
        .route("/access/v1/evaluations", post(answer.clone()))
        .route("/access/v1/evaluation", post(answer));
    (support::Server::start(app).await, count)
}

fn pdp(url: &str) -> AuthZen {
    AuthZen::builder(url)
        .insecure_allow_http()
        .with_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_failing_decision_point_denies_with_503() {
    let w = World::new();
    let two = w.user_and_service("alice", "archiver");
    let big: &'static str = Box::leak(
        format!(
            r#"{{"evaluations":[{{"decision":true,"context":{{"pad":"{}"}}}}]}}"#,
            "x".repeat(70_000)
        )
        .into_boxed_str(),
    );
    let cases: [(&str, u16, &'static str, u64); 10] = [
        ("not JSON", 200, "<html>oops</html>", 0),
        (
            "no decision",
            200,
            r#"{"evaluations":[{"context":{}},{"context":{}}]}"#,
            0,
        ),
        (
            "decision as text",
            200,
            r#"{"evaluations":[{"decision":"true"},{"decision":"true"}]}"#,
            0,
        ),
        ("no evaluations", 200, r#"{"decision":true}"#, 0),
        (
            "an error status",
            500,
            r#"{"evaluations":[{"decision":true},{"decision":true}]}"#,
            0,
        ),
        (
            "fewer allows than subjects",
            200,
            r#"{"evaluations":[{"decision":true}]}"#,
            0,
        ),
        (
            "more answers than subjects",
            200,
            r#"{"evaluations":[{"decision":true},{"decision":true},{"decision":true}]}"#,
            0,
        ),
        ("an answer too large", 200, big, 0),
        (
            "an error echoing lines",
            400,
            "bad\ndecision=\"allow\" injected",
            0,
        ),
        (
            "slower than the timeout",
            200,
            r#"{"evaluations":[{"decision":true},{"decision":true}]}"#,
            2000,
        ),
    ];
    for (name, status, body, delay) in cases {
        let (server, count) = fake_pdp(status, body, Duration::from_millis(delay)).await;
        let d = pdp(&server.url(""))
            .authorize(&two, "images:read", &image("alice"))
            .await;
        assert!(!d.is_allowed(), "{name}: {d:?}");
        assert!(d.is_unavailable(), "{name}: {d:?}");
        assert!(!d.errors().is_empty(), "{name}");
        let error = d.require("images:read").unwrap_err();
        assert_eq!(error.kind(), AuthErrorKind::PolicyUnavailable, "{name}");
        assert_eq!(error.status(), 503, "{name}");
        assert!(error.retry_after().is_some_and(|s| s >= 1), "{name}");
        assert_eq!(count.load(Ordering::SeqCst), 1, "{name}: asked once");
        assert!(
            d.errors().iter().all(|e| !e.contains('\n')),
            "{name}: {d:?}"
        );
    }
    // Nothing listening at all.
    let port = support::free_port();
    let d = pdp(&format!("http://127.0.0.1:{port}"))
        .authorize(&two, "images:read", &image("alice"))
        .await;
    assert!(d.is_unavailable() && !d.is_allowed(), "{d:?}");
}

#[tokio::test]
async fn a_short_answer_ending_in_a_denial_is_a_denial() {
    let w = World::new();
    let two = w.user_and_service("alice", "archiver");
    let (server, _) = fake_pdp(
        200,
        r#"{"evaluations":[{"decision":false}]}"#,
        Duration::ZERO,
    )
    .await;
    let d = pdp(&server.url(""))
        .authorize(&two, "images:read", &image("alice"))
        .await;
    assert!(!d.is_allowed() && !d.is_unavailable(), "{d:?}");
    assert_eq!(d.subjects()[0].decision(), Some(false));
    assert_eq!(d.subjects()[1].decision(), None, "not evaluated");
    assert_eq!(d.require("images:read").unwrap_err().status(), 403);
    // Under execute_all every subject must be answered.
    let all = AuthZen::builder(server.url(""))
        .insecure_allow_http()
        .with_semantic(Semantic::ExecuteAll)
        .build()
        .unwrap();
    assert!(
        all.authorize(&two, "images:read", &image("alice"))
            .await
            .is_unavailable()
    );
}

#[tokio::test]
async fn plain_http_and_bad_identifiers_are_refused_when_building() {
    assert!(AuthZen::builder("http://pdp.example").build().is_err());
    assert!(
        AuthZen::builder("https://pdp.example/?tenant=1")
            .build()
            .is_err()
    );
    assert!(AuthZen::builder("not a url").build().is_err());
    let e = AuthZen::builder("https://pep:s3cret@pdp.example")
        .build()
        .unwrap_err();
    assert!(!e.to_string().contains("s3cret"), "{e}");
    assert!(AuthZen::builder("https://pdp.example").build().is_ok());
}

/// A proxy in front of Cerbos that lets through only requests bearing a
/// token this verifier accepts, and counts what it forwards.
async fn guarded_proxy(
    cerbos: &str,
    verifier: Verifier,
) -> (support::Server, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
    let forwarded = Arc::new(AtomicUsize::new(0));
    let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
    let (count, seen) = (forwarded.clone(), bodies.clone());
    let upstream = format!("{cerbos}/access/v1/evaluations");
    let client = reqwest::Client::new();
    let app = axum::Router::new().route(
        "/access/v1/evaluations",
        post(move |headers: HeaderMap, body: String| {
            let (verifier, upstream, client) = (verifier.clone(), upstream.clone(), client.clone());
            let (count, seen) = (count.clone(), seen.clone());
            async move {
                let token = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "));
                if token.is_none_or(|t| verifier.verify(t).is_err()) {
                    return (StatusCode::UNAUTHORIZED, String::new());
                }
                count.fetch_add(1, Ordering::SeqCst);
                seen.lock().unwrap().push(body.clone());
                let answer = client
                    .post(&upstream)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                (StatusCode::OK, answer.text().await.unwrap())
            }
        }),
    );
    (support::Server::start(app).await, forwarded, bodies)
}

fn service_token() -> (SelfSigned, Verifier) {
    let key = SigningKey::generate(Algorithm::EdDSA, "store-1");
    let verifier = Verifier::new([Issuer::new("https://store.internal", "pdp")
        .with_keys(KeySet::from_jwks(&key.jwks()).unwrap())])
    .unwrap();
    (
        SelfSigned::new("https://store.internal", key).unwrap(),
        verifier,
    )
}

#[tokio::test]
async fn the_service_authenticates_to_the_decision_point_and_decisions_are_cached() {
    let cerbos = support::Cerbos::start();
    let (me, verifier) = service_token();
    let (proxy, forwarded, bodies) = guarded_proxy(&cerbos.url, verifier).await;
    let w = World::new();
    let alice = w.user("alice");

    // Without the service's token the decision point refuses: 503, not an allow.
    let anonymous = pdp(&proxy.url(""));
    let d = anonymous
        .authorize(&alice, "images:read", &image("alice"))
        .await;
    assert!(d.is_unavailable(), "{d:?}");
    assert!(d.errors()[0].contains("401"), "{d:?}");

    let cached = AuthZen::builder(proxy.url(""))
        .insecure_allow_http()
        .with_token(me, TokenRequest::for_audience("pdp"))
        .with_cache(Duration::from_millis(800), 100)
        .build()
        .unwrap();
    let ask = |caller: Caller, resource: Resource| {
        let cached = cached.clone();
        async move { cached.authorize(&caller, "images:read", &resource).await }
    };
    assert!(ask(alice.clone(), image("alice")).await.is_allowed());
    assert_eq!(forwarded.load(Ordering::SeqCst), 1);
    // The same request again: from the cache.
    assert!(ask(alice.clone(), image("alice")).await.is_allowed());
    assert_eq!(forwarded.load(Ordering::SeqCst), 1);
    // Another user, another owner, other permissions: asked again.
    assert!(!ask(w.user("bob"), image("alice")).await.is_allowed());
    assert_eq!(forwarded.load(Ordering::SeqCst), 2);
    assert!(!ask(alice.clone(), image("bob")).await.is_allowed());
    assert_eq!(forwarded.load(Ordering::SeqCst), 3);
    let fewer = Caller::new(
        Some(
            w.uv.verify(&w.users.token("alice").scope("images:delete").sign())
                .unwrap(),
        ),
        None,
    );
    assert!(
        !ask(fewer, image("alice")).await.is_allowed(),
        "the same user with other permissions"
    );
    assert_eq!(forwarded.load(Ordering::SeqCst), 4);
    // A denial is cached too, for the same request only.
    assert!(!ask(w.user("bob"), image("alice")).await.is_allowed());
    assert_eq!(forwarded.load(Ordering::SeqCst), 4);
    // Past the TTL: asked again.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(ask(alice, image("alice")).await.is_allowed());
    assert_eq!(forwarded.load(Ordering::SeqCst), 5);

    // What arrived: the documented wire shape.
    let sent: Value = serde_json::from_str(&bodies.lock().unwrap()[0]).unwrap();
    assert_eq!(
        sent,
        json!({
            "action": {"name": "images:read"},
            "resource": {"type": "Image", "id": "img-1",
                "properties": {"owner": "alice", "owner_issuer": "https://users"}},
            "options": {"evaluations_semantic": "deny_on_first_deny"},
            "evaluations": [{"subject": {"type": "user", "id": "alice", "properties": {
                "issuer": "https://users",
                "permissions": ["images:delete", "images:read"],
                "roles": [],
            }}}],
        })
    );
}

#[tokio::test]
async fn redirects_are_not_followed_with_the_token() {
    let sniffer = support::Sniffer::start(4).await;
    let target = format!("http://{}/access/v1/evaluations", sniffer.addr);
    let app = axum::Router::new().route(
        "/access/v1/evaluations",
        post(move || {
            let target = target.clone();
            async move { (StatusCode::TEMPORARY_REDIRECT, [("location", target)]) }
        }),
    );
    let redirector = support::Server::start(app).await;
    let (me, _) = service_token();
    let pdp = AuthZen::builder(redirector.url(""))
        .insecure_allow_http()
        .with_token(me, TokenRequest::for_audience("pdp"))
        .build()
        .unwrap();
    let w = World::new();
    let d = pdp
        .authorize(&w.user("alice"), "images:read", &image("alice"))
        .await;
    assert!(d.is_unavailable(), "{d:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        sniffer.heads().is_empty(),
        "followed: {:?}",
        sniffer.heads()
    );
}

#[tokio::test]
async fn discovery_reads_the_metadata_and_refuses_another_decision_points() {
    let w = World::new();
    let alice = w.user("alice");
    // A decision point that comes up after the service.
    let port = support::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let discovered = AuthZen::builder(&url)
        .insecure_allow_http()
        .with_discovery()
        .build()
        .unwrap();
    let d = discovered
        .authorize(&alice, "images:read", &image("alice"))
        .await;
    assert!(d.is_unavailable(), "{d:?}");
    let _cerbos = support::Cerbos::start_on(port);
    // Tried again after the 2 s pause, then the endpoints are kept.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let d = discovered
        .authorize(&alice, "images:read", &image("alice"))
        .await;
    assert!(d.is_allowed(), "{d:?}");

    // Metadata naming another decision point is not used (mix-up).
    let app = axum::Router::new().route(
        "/.well-known/authzen-configuration",
        get(move || async move {
            axum::Json(json!({
                "policy_decision_point": "https://pdp.evil.example",
                "access_evaluation_endpoint": "https://pdp.evil.example/access/v1/evaluation",
            }))
        }),
    );
    let mixed = support::Server::start(app).await;
    let d = AuthZen::builder(mixed.url(""))
        .insecure_allow_http()
        .with_discovery()
        .build()
        .unwrap()
        .authorize(&alice, "images:read", &image("alice"))
        .await;
    assert!(d.is_unavailable(), "{d:?}");
    assert!(d.errors()[0].contains("pdp.evil.example"), "{d:?}");
}

/// image_store with `[policy]` pointing at `pdp`; its users' and services'
/// keys in files; `more` appended to its config file.
async fn store_with_policy(
    dir: &std::path::Path,
    users: &TestIssuer,
    services: &TestIssuer,
    pdp: &str,
    timeout: &str,
    more: &str,
) -> support::Example {
    let users_jwks = dir.join("users.json");
    let services_jwks = dir.join("services.json");
    std::fs::write(&users_jwks, users.jwks()).unwrap();
    std::fs::write(&services_jwks, services.jwks()).unwrap();
    let file = dir.join("store.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[user]
mode = "optional"
[[user.issuers]]
issuer = "https://users"
audiences = ["image-store"]
jwks_file = "{}"
[service]
mode = "optional"
[[service.issuers]]
issuer = "https://services"
audiences = ["image-store"]
jwks_file = "{}"

[policy]
authzen_url = "{pdp}"
timeout = "{timeout}"
{more}
"#,
            users_jwks.display(),
            services_jwks.display()
        ),
    )
    .unwrap();
    support::Example::spawn(
        "image_store",
        &[
            ("MANDATE_CONFIG", file.to_str().unwrap()),
            ("RUST_LOG", "warn,tower_mandate::audit=info"),
        ],
    )
    .await
}

#[tokio::test]
async fn image_store_asks_cerbos_and_fails_closed_when_it_goes() {
    let mut cerbos = support::Cerbos::start();
    let users = TestIssuer::es256("https://users").with_audience("image-store");
    let services = TestIssuer::es256("https://services").with_audience("image-store");
    let dir = support::temp_dir("authzen-store");
    let store = store_with_policy(&dir, &users, &services, &cerbos.url, "2s", "").await;
    let client = support::http_client();
    let alice = users
        .token("alice")
        .scope("images:read images:write images:delete")
        .sign();
    let bob = users
        .token("bob")
        .scope("images:read images:write images:delete")
        .sign();

    let (status, created) = store
        .call(&client, "POST", "/images", Some(&alice), None)
        .await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/images/{}", created["id"].as_str().unwrap());
    let (status, _) = store.call(&client, "GET", &path, Some(&alice), None).await;
    assert_eq!(status, 200);
    let (status, _) = store.call(&client, "GET", &path, Some(&bob), None).await;
    assert_eq!(status, 403, "not the owner");
    let (status, _) = store.call(&client, "DELETE", &path, Some(&bob), None).await;
    assert_eq!(status, 403, "not the owner");
    // The archiver reads any image: its `:any` permission.
    let archiver = services
        .token("archiver")
        .scope("images:read images:read:any")
        .sign();
    let (status, _) = store
        .call(&client, "GET", &path, None, Some(&archiver))
        .await;
    assert_eq!(status, 200);
    // Calling for alice with only images:read, the archiver cannot delete.
    let (status, _) = store
        .call(&client, "DELETE", &path, Some(&alice), Some(&archiver))
        .await;
    assert_eq!(status, 403);

    // The decision point goes down: 503 with Retry-After, never an allow.
    cerbos.stop();
    let res = client
        .get(format!("{}{path}", store.base))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().get("retry-after").is_some());
    let (status, _) = store
        .call(&client, "DELETE", &path, Some(&alice), None)
        .await;
    assert_eq!(status, 503);
}

/// Inside a transaction (Transaction Tokens minted by PyJWT,
/// `tests/support/txn_tokens.py`), image_store's actions need its routes'
/// permissions in the transaction's scope, and Cerbos decides the rest: a
/// transaction holding `images:read` reads. (Before `action_scopes`, the
/// bound compared `read` with `images:read` and refused every request.)
#[tokio::test]
async fn inside_a_transaction_cerbos_decides_what_its_scope_holds() {
    let cerbos = support::Cerbos::start();
    let users = TestIssuer::es256("https://users").with_audience("image-store");
    let services = TestIssuer::es256("https://services").with_audience("image-store");
    let dir = support::temp_dir("authzen-txn");
    let minted: Value = serde_json::from_str(&support::python(&[
        "tests/support/txn_tokens.py",
        "images.example",
        "images:read images:write",
    ]))
    .unwrap();
    let tts = dir.join("tts.json");
    std::fs::write(&tts, minted["jwks"].to_string()).unwrap();
    let more = format!(
        "[transaction]\nmode = \"optional\"\ntrust_domain = \"images.example\"\njwks_file = {:?}\n",
        tts.to_str().unwrap()
    );
    let store = store_with_policy(&dir, &users, &services, &cerbos.url, "2s", &more).await;
    let client = support::http_client();
    let send = |method: reqwest::Method, path: String, txn: &str| {
        client
            .request(method, format!("{}{path}", store.base))
            .header("txn-token", minted["tokens"][txn].as_str().unwrap())
            .send()
    };

    // The transaction alone creates (`create`: images:write); its subject owns it.
    let res = send(reqwest::Method::POST, "/images".into(), "valid")
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["owner"], minted["body"]["sub"]);
    let path = format!("/images/{}", created["id"].as_str().unwrap());
    // A narrowed replacement (images:read only) reads, asked of Cerbos.
    let res = send(reqwest::Method::GET, path.clone(), "narrow")
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let asked = store
        .printed_eventually("permission=\"read\"")
        .await
        .expect("an audit event of the read decision");
    let txn = format!("txn=\"{}\"", minted["body"]["txn"].as_str().unwrap());
    for field in ["decision=\"allow\"", "policy_context=\"{\\\"subjects", &txn] {
        assert!(asked.contains(field), "{field} in {asked}");
    }
    // But not delete, which the transaction's scope does not hold.
    let res = send(reqwest::Method::DELETE, path.clone(), "valid")
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // A denial of the decision point names the route's permission: bob,
    // not the owner, is refused by Cerbos with scope "images:read".
    let bob = users.token("bob").scope("images:read").sign();
    let res = client
        .get(format!("{}{path}", store.base))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("scope=\"images:read\""), "{challenge}");
}

#[tokio::test]
async fn image_store_denies_on_a_broken_or_slow_answer_with_an_audit_event() {
    let users = TestIssuer::es256("https://users").with_audience("image-store");
    let services = TestIssuer::es256("https://services").with_audience("image-store");
    let alice = users.token("alice").scope("images:write").sign();
    let client = support::http_client();
    for (name, body, delay, timeout) in [
        ("not JSON", "not json", 0, "2s"),
        (
            "no decision",
            r#"{"evaluations":[{"context":{"id":"x"}}]}"#,
            0,
            "2s",
        ),
        (
            "slow",
            r#"{"evaluations":[{"decision":true}]}"#,
            3000,
            "300ms",
        ),
    ] {
        let (pdp, _) = fake_pdp(200, body, Duration::from_millis(delay)).await;
        let dir = support::temp_dir("authzen-broken");
        let store = store_with_policy(&dir, &users, &services, &pdp.url(""), timeout, "").await;
        let (status, answer) = store
            .call(&client, "POST", "/images", Some(&alice), None)
            .await;
        assert_eq!(status, 503, "{name}: {answer}");
        // The audit event of the refusal, with the decision point's error.
        let event = store
            .printed_eventually("decision point unavailable")
            .await
            .unwrap_or_else(|| panic!("{name}: no audit event"));
        assert!(event.contains("decision=\"deny\""), "{name}: {event}");
        assert!(event.contains("permission=\"create\""), "{name}: {event}");
        assert!(
            event.contains("policy_context=\"{\\\"subjects"),
            "{name}: {event}"
        );
        assert!(event.contains("\\\"error\\\""), "{name}: {event}");
        assert!(!event.contains(&alice), "{name}: a token in the log");
    }
}

#[tokio::test]
async fn decisions_behind_a_hanging_discovery_fail_together() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        for _ in 0..64 {
            match listener.accept().await {
                Ok((stream, _)) => open.push(stream),
                Err(_) => break,
            }
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(open);
    });
    let pdp = AuthZen::builder(&url)
        .insecure_allow_http()
        .with_discovery()
        .with_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let w = World::new();
    let alice = w.user("alice");
    let started = std::time::Instant::now();
    let decisions = futures_like_join((0..20).map(|_| {
        let (pdp, alice) = (pdp.clone(), alice.clone());
        tokio::spawn(async move { pdp.authorize(&alice, "images:read", &image("alice")).await })
    }))
    .await;
    assert!(
        decisions.iter().all(|d| d.is_unavailable()),
        "{decisions:?}"
    );
    // One discovery timed out; the others did not each wait their turn.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    held.abort();
}

async fn futures_like_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}
