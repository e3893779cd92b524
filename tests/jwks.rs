//! The JWKS key source against a real JWKS endpoint served by axum on
//! 127.0.0.1: rotation, outage (server stopped), a hanging server, an
//! oversized document, a flood of unknown kids, ETag and Cache-Control,
//! OIDC discovery, and the answers of the layer over HTTP.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower_mandate::testing::TestIssuer;
use tower_mandate::{AuthErrorKind, Issuer, MandateLayer, Verifier, keys::JwksSource};

const AUD: &str = "image-store";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Normal,
    Hang,
    Oversized,
}

struct Ctl {
    doc: Mutex<String>,
    mode: Mutex<Mode>,
    max_age: Mutex<Option<u64>>,
    issuer: Mutex<String>,
    hits: AtomicUsize,
    not_modified: AtomicUsize,
}

async fn jwks(State(ctl): State<Arc<Ctl>>, headers: HeaderMap) -> Response {
    ctl.hits.fetch_add(1, Ordering::SeqCst);
    let mode = *ctl.mode.lock().unwrap();
    match mode {
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            StatusCode::OK.into_response()
        }
        Mode::Oversized => {
            let big = format!(r#"{{"keys":[],"pad":"{}"}}"#, "x".repeat(2 << 20));
            big.into_response()
        }
        Mode::Normal => {
            let doc = ctl.doc.lock().unwrap().clone();
            let etag = {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                doc.hash(&mut h);
                format!("\"{:x}\"", h.finish())
            };
            if headers
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| v.to_str().unwrap() == etag)
            {
                ctl.not_modified.fetch_add(1, Ordering::SeqCst);
                return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
            }
            let mut res = ([(header::ETAG, etag)], doc).into_response();
            if let Some(age) = *ctl.max_age.lock().unwrap() {
                res.headers_mut().insert(
                    header::CACHE_CONTROL,
                    format!("public, max-age={age}").parse().unwrap(),
                );
            }
            res
        }
    }
}

async fn discovery(State(ctl): State<Arc<Ctl>>, headers: HeaderMap) -> Json<serde_json::Value> {
    let host = headers[header::HOST].to_str().unwrap().to_owned();
    Json(json!({
        "issuer": *ctl.issuer.lock().unwrap(),
        "jwks_uri": format!("http://{host}/jwks"),
    }))
}

/// A JWKS endpoint that can be stopped and started again on the same port.
struct JwksServer {
    addr: SocketAddr,
    ctl: Arc<Ctl>,
    server: Option<support::Server>,
}

impl JwksServer {
    async fn start(idp: &TestIssuer) -> JwksServer {
        let ctl = Arc::new(Ctl {
            doc: Mutex::new(idp.jwks()),
            mode: Mutex::new(Mode::Normal),
            max_age: Mutex::new(None),
            issuer: Mutex::new(String::new()),
            hits: AtomicUsize::new(0),
            not_modified: AtomicUsize::new(0),
        });
        let server = support::Server::start(Self::app(&ctl)).await;
        *ctl.issuer.lock().unwrap() = format!("http://{}", server.addr);
        JwksServer {
            addr: server.addr,
            ctl,
            server: Some(server),
        }
    }

    fn app(ctl: &Arc<Ctl>) -> Router {
        Router::new()
            .route("/jwks", get(jwks))
            .route("/.well-known/openid-configuration", get(discovery))
            .with_state(ctl.clone())
    }

    fn url(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn stop(&mut self) {
        self.server = None;
    }

    async fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match support::Server::start_on(self.addr, Self::app(&self.ctl)).await {
                Ok(server) => {
                    self.server = Some(server);
                    return;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "rebind {}: {e}", self.addr);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn set(&self, mode: Mode) {
        *self.ctl.mode.lock().unwrap() = mode;
    }

    fn publish(&self, idp: &TestIssuer) {
        *self.ctl.doc.lock().unwrap() = idp.jwks();
    }

    fn hits(&self) -> usize {
        self.ctl.hits.load(Ordering::SeqCst)
    }
}

fn source_builder(server: &JwksServer) -> tower_mandate::keys::JwksBuilder {
    JwksSource::builder(server.url())
        .insecure_allow_http()
        .with_cooldown(Duration::from_millis(300))
        .with_timeouts(Duration::from_millis(300), Duration::from_millis(500))
        .with_max_wait(Duration::from_secs(2))
}

fn source(server: &JwksServer) -> JwksSource {
    source_builder(server).build().unwrap()
}

fn verifier(idp: &TestIssuer, source: JwksSource) -> Verifier {
    Verifier::new([Issuer::new(idp.issuer(), AUD).with_jwks(source)]).unwrap()
}

fn uncached_verifier(idp: &TestIssuer, source: JwksSource) -> Verifier {
    Verifier::builder([Issuer::new(idp.issuer(), AUD).with_jwks(source)])
        .without_cache()
        .build()
        .unwrap()
}

#[tokio::test]
async fn startup_with_the_idp_down_then_keys_arrive() {
    let idp = TestIssuer::rs256("https://id.example").with_audience(AUD);
    let mut server = JwksServer::start(&idp).await;
    server.stop();
    // Building never touches the network.
    let keys = source(&server);
    let v = verifier(&idp, keys.clone());
    let token = idp.token("alice").sign();
    let err = v.verify_async(&token).await.unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
    assert!(err.retry_after().is_some());
    server.restart().await;
    tokio::time::sleep(Duration::from_millis(350)).await; // the cooldown after a failure
    let p = v.verify_async(&token).await.unwrap();
    assert_eq!(p.subject(), "alice");
    assert_eq!(keys.stats().failures, 1);
}

#[tokio::test]
async fn rotation_is_picked_up_and_outage_serves_known_keys() {
    let idp = TestIssuer::es256("https://id.example").with_audience(AUD);
    let mut server = JwksServer::start(&idp).await;
    let keys = source(&server);
    let v = uncached_verifier(&idp, keys.clone());
    let old = idp.token("alice").sign();
    assert!(v.verify_async(&old).await.is_ok());
    assert_eq!(server.hits(), 1);

    // Rotation: a token with the new kid triggers one refetch and is accepted.
    idp.rotate();
    server.publish(&idp);
    let new = idp.token("alice").sign();
    assert!(v.verify_async(&new).await.is_ok(), "rotated key picked up");
    assert_eq!(server.hits(), 2);

    // Outage: the server is stopped. Known kids keep verifying...
    server.stop();
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(v.verify_async(&old).await.is_ok());
    assert!(v.verify_async(&new).await.is_ok());
    // ...and an unknown kid is 503 with Retry-After, not 401.
    idp.rotate();
    let unknown = idp.token("alice").sign();
    let err = v.verify_async(&unknown).await.unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable, "{err}");
    assert!(err.retry_after().unwrap() >= 1);
    assert!(keys.stats().failures >= 1);

    // Back up: the new key is found.
    server.publish(&idp);
    server.restart().await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(v.verify_async(&unknown).await.is_ok());

    // With a healthy source, a kid that stays unknown is 401 invalid_token.
    let stranger = TestIssuer::es256("https://id.example").with_audience(AUD);
    stranger.rotate();
    stranger.rotate();
    stranger.rotate();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let err = v
        .verify_async(&stranger.token("mallory").sign())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::InvalidToken);
    assert_eq!(err.reason(), "unknown key");
}

#[tokio::test]
async fn a_hanging_server_times_out() {
    let idp = TestIssuer::eddsa("https://id.example").with_audience(AUD);
    let server = JwksServer::start(&idp).await;
    server.set(Mode::Hang);
    let keys = source(&server);
    let v = verifier(&idp, keys.clone());
    let started = Instant::now();
    let err = v
        .verify_async(&idp.token("alice").sign())
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
    assert_eq!(keys.stats().failures, 1);
}

#[tokio::test]
async fn an_oversized_document_is_refused() {
    let idp = TestIssuer::rs256("https://id.example").with_audience(AUD);
    let server = JwksServer::start(&idp).await;
    server.set(Mode::Oversized);
    let keys = source_builder(&server)
        .with_max_response_size(64 * 1024)
        .build()
        .unwrap();
    let v = verifier(&idp, keys.clone());
    let err = v
        .verify_async(&idp.token("alice").sign())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
    assert_eq!(keys.stats().failures, 1);
    assert!(keys.refresh().await.is_err());
}

#[tokio::test]
async fn a_flood_of_unknown_kids_does_not_flood_the_idp() {
    let idp = TestIssuer::rs256("https://id.example").with_audience(AUD);
    let server = JwksServer::start(&idp).await;
    let keys = source_builder(&server)
        .with_cooldown(Duration::from_secs(30))
        .build()
        .unwrap();
    let v = verifier(&idp, keys.clone());
    assert!(v.verify_async(&idp.token("alice").sign()).await.is_ok());
    assert_eq!(server.hits(), 1);

    let mut tasks = Vec::new();
    for i in 0..500 {
        let token = idp
            .token("mallory")
            .header("kid", json!(format!("random-{i}")))
            .sign();
        let v = v.clone();
        tasks.push(tokio::spawn(async move { v.verify_async(&token).await }));
    }
    for task in tasks {
        let err = task.await.unwrap().unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::InvalidToken, "{err}");
    }
    // One shared refetch for the whole flood, then the cooldown holds.
    assert_eq!(server.hits(), 2, "fetches during the flood");
    assert_eq!(keys.stats().refetches_on_miss, 1);
    // Known tokens still verify throughout.
    assert!(v.verify_async(&idp.token("alice").sign()).await.is_ok());
}

#[tokio::test]
async fn concurrent_first_requests_share_one_fetch() {
    let idp = TestIssuer::rs256("https://id.example").with_audience(AUD);
    let server = JwksServer::start(&idp).await;
    let v = verifier(&idp, source(&server));
    let token = idp.token("alice").sign();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (v, token) = (v.clone(), token.clone());
        tasks.push(tokio::spawn(
            async move { v.verify_async(&token).await.is_ok() },
        ));
    }
    for task in tasks {
        assert!(task.await.unwrap());
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn etag_and_refresh_ahead() {
    let idp = TestIssuer::rs256("https://id.example").with_audience(AUD);
    let server = JwksServer::start(&idp).await;
    *server.ctl.max_age.lock().unwrap() = Some(1);
    let keys = source_builder(&server)
        .with_refresh_bounds(
            Duration::from_secs(1),
            Duration::from_secs(60),
            Duration::from_secs(10),
        )
        .build()
        .unwrap();
    let v = uncached_verifier(&idp, keys.clone());
    let token = idp.token("alice").sign();
    assert!(v.verify_async(&token).await.is_ok());
    assert_eq!(server.hits(), 1);
    // max-age=1: refreshed ahead of expiry by traffic, answered 304.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(v.verify_async(&token).await.is_ok());
    let deadline = Instant::now() + Duration::from_secs(3);
    while keys.stats().not_modified == 0 {
        assert!(
            Instant::now() < deadline,
            "no background refresh: {:?}",
            keys.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.ctl.not_modified.load(Ordering::SeqCst), 1);
    assert!(server.hits() >= 2);
}

#[tokio::test]
async fn cached_tokens_are_dropped_when_their_key_leaves() {
    let idp = TestIssuer::rs256("https://id.example").with_audience(AUD);
    let server = JwksServer::start(&idp).await;
    let keys = source(&server);
    let v = verifier(&idp, keys.clone());
    let old = idp.token("alice").sign();
    assert!(v.verify_async(&old).await.is_ok());
    assert!(v.verify_async(&old).await.is_ok());
    assert_eq!(v.cache_stats().hits, 1);
    idp.rotate();
    idp.retire_old_keys();
    server.publish(&idp);
    keys.refresh().await.unwrap();
    let err = v.verify_async(&old).await.unwrap_err();
    assert_eq!(err.reason(), "unknown key");
}

#[tokio::test]
async fn discovery_finds_the_jwks_and_checks_the_issuer() {
    let idp_placeholder = TestIssuer::rs256("placeholder");
    let server = JwksServer::start(&idp_placeholder).await;
    let idp = TestIssuer::rs256(server.base()).with_audience(AUD);
    server.publish(&idp);
    let keys = JwksSource::discovery(server.base())
        .insecure_allow_http()
        .build()
        .unwrap();
    let v = verifier(&idp, keys.clone());
    assert!(v.verify_async(&idp.token("alice").sign()).await.is_ok());

    // A discovery document naming another issuer is refused.
    *server.ctl.issuer.lock().unwrap() = format!("{}/", server.base());
    let keys = JwksSource::discovery(server.base())
        .insecure_allow_http()
        .build()
        .unwrap();
    let v = verifier(&idp, keys.clone());
    let err = v
        .verify_async(&idp.token("alice").sign())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
    assert_eq!(keys.stats().failures, 1);
}

#[tokio::test]
async fn plain_http_needs_the_insecure_opt_in() {
    let idp = TestIssuer::rs256("https://id.example").with_audience(AUD);
    let server = JwksServer::start(&idp).await;
    let keys = JwksSource::new(server.url()).unwrap();
    let v = verifier(&idp, keys.clone());
    let err = v
        .verify_async(&idp.token("alice").sign())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
    assert_eq!(server.hits(), 0, "nothing was fetched over http");
}

#[tokio::test]
async fn the_layer_answers_503_during_an_outage_and_401_when_healthy() {
    let idp = TestIssuer::rs256("https://id.example").with_audience(AUD);
    let mut server = JwksServer::start(&idp).await;
    let layer = MandateLayer::new(verifier(&idp, source(&server)));
    let app = Router::new()
        .route(
            "/me",
            get(|c: tower_mandate::Caller| async move { c.user().unwrap().subject().to_owned() }),
        )
        .route_layer(layer);
    let api = support::Server::start(app).await;
    let client = support::http_client();
    let call = |token: String| {
        let client = client.clone();
        let url = api.url("/me");
        async move {
            client
                .get(url)
                .header("authorization", format!("Bearer {token}"))
                .send()
                .await
                .unwrap()
        }
    };
    let res = call(idp.token("alice").sign()).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "alice");

    let res = call(idp.token("mallory").header("kid", json!("nope")).sign()).await;
    assert_eq!(res.status(), 401);

    server.stop();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let first = idp.current_key();
    idp.rotate();
    let res = call(idp.token("alice").sign()).await;
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert!(res.headers().get("www-authenticate").is_none());
    // The key known before the outage still works.
    let res = call(
        idp.token("alice")
            .header("kid", json!(first.kid()))
            .sign_with(&first),
    )
    .await;
    assert_eq!(res.status(), 200);
}

/// Ask until `token` (alice's) verifies, refused only as unavailable
/// meanwhile, and within `bound` of now (the endpoint just came up).
async fn accepted_within(v: &Verifier, token: &str, bound: Duration) {
    let up = Instant::now();
    loop {
        match v.verify_async(token).await {
            Ok(p) => return assert_eq!(p.subject(), "alice"),
            Err(e) => {
                assert_eq!(e.kind(), AuthErrorKind::KeysUnavailable);
                assert!(
                    up.elapsed() < bound,
                    "still refused {:?} after the endpoint came up",
                    up.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test]
async fn keys_that_appear_late_are_used_within_a_second() {
    // Services start in any order: the first fetch fails, the endpoint comes
    // up, and a request is accepted within a second, with the default 10 s
    // cooldown.
    let idp = TestIssuer::es256("https://id.example").with_audience(AUD);
    let mut server = JwksServer::start(&idp).await;
    server.stop();
    let keys = JwksSource::builder(server.url())
        .insecure_allow_http()
        .with_timeouts(Duration::from_millis(300), Duration::from_millis(500))
        .build()
        .unwrap();
    let v = verifier(&idp, keys.clone());
    let token = idp.token("alice").sign();
    let err = v.verify_async(&token).await.unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
    server.restart().await;
    accepted_within(&v, &token, Duration::from_secs(1)).await;
    // Healthy again: a flood of unknown kids costs at most one fetch per cooldown.
    let before = keys.stats().fetches;
    for i in 0..200 {
        let t = idp
            .token("x")
            .header("kid", json!(format!("flood-{i}")))
            .sign();
        assert_eq!(
            v.verify_async(&t).await.unwrap_err().kind(),
            AuthErrorKind::InvalidToken
        );
    }
    assert!(keys.stats().fetches - before <= 1, "{:?}", keys.stats());
}

#[tokio::test]
async fn an_endpoint_that_stays_down_is_asked_with_backoff() {
    let idp = TestIssuer::es256("https://id.example").with_audience(AUD);
    let mut server = JwksServer::start(&idp).await;
    server.stop();
    let keys = JwksSource::builder(server.url())
        .insecure_allow_http()
        .with_cooldown(Duration::from_secs(10))
        .with_timeouts(Duration::from_millis(300), Duration::from_millis(500))
        .build()
        .unwrap();
    let v = verifier(&idp, keys.clone());
    // 2.2 s of requests: fetches at 0, ≥0.25, ≥0.75, ≥1.75 s at most.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2200) {
        let t = idp.token("a").sign();
        assert_eq!(
            v.verify_async(&t).await.unwrap_err().kind(),
            AuthErrorKind::KeysUnavailable
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fetches = keys.stats().fetches;
    assert!((2..=4).contains(&fetches), "{fetches} fetches in 2.2 s");
}

#[tokio::test]
async fn cached_tokens_do_not_outlive_max_staleness() {
    let idp = TestIssuer::es256("https://id.example").with_audience(AUD);
    let mut server = JwksServer::start(&idp).await;
    let keys = source_builder(&server)
        .with_refresh_bounds(
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .with_max_staleness(Duration::from_secs(1))
        .build()
        .unwrap();
    let v = verifier(&idp, keys);
    let token = idp.token("alice").sign();
    assert!(v.verify_async(&token).await.is_ok());
    assert!(v.verify(&token).is_ok());
    assert_eq!(v.cache_stats().hits, 1, "answered from the cache");
    // The endpoint goes away; the keys expire after 1 s and may serve
    // stale for 1 s more. Past that, the cache must not answer either.
    server.stop();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let err = v.verify_async(&token).await.unwrap_err();
    assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
}

#[tokio::test]
async fn keys_that_appear_after_a_long_outage_are_used_within_a_second() {
    // Under steady traffic for 5 s with no keys at all, the backoff would
    // have grown to seconds; while no key is usable it stays under a second.
    let idp = TestIssuer::es256("https://id.example").with_audience(AUD);
    let mut server = JwksServer::start(&idp).await;
    server.stop();
    let keys = JwksSource::builder(server.url())
        .insecure_allow_http()
        .with_timeouts(Duration::from_millis(300), Duration::from_millis(500))
        .build()
        .unwrap();
    let v = verifier(&idp, keys.clone());
    let token = idp.token("alice").sign();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        let err = v.verify_async(&token).await.unwrap_err();
        assert_eq!(err.kind(), AuthErrorKind::KeysUnavailable);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.restart().await;
    accepted_within(&v, &token, Duration::from_millis(1500)).await;
    assert!(
        keys.stats().failures <= 9,
        "at most about one fetch a second: {:?}",
        keys.stats()
    );
}

#[tokio::test]
async fn keys_keep_being_refreshed_ahead_in_the_background() {
    // max-age 1 s: each refresh ahead runs in the background with nobody
    // waiting for it; every one must land so that the next one can start.
    let idp = TestIssuer::es256("https://id.example").with_audience(AUD);
    let server = JwksServer::start(&idp).await;
    *server.ctl.max_age.lock().unwrap() = Some(1);
    let keys = source_builder(&server)
        .with_refresh_bounds(
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .build()
        .unwrap();
    let v = uncached_verifier(&idp, keys.clone());
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(3500) {
        assert!(v.verify_async(&idp.token("alice").sign()).await.is_ok());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(server.hits() >= 4, "{} fetches in 3.5 s", server.hits());
}

#[tokio::test]
async fn a_wait_that_runs_out_is_unavailable_not_unknown() {
    // The endpoint hangs longer than a request may wait: a token whose key
    // it may still bring is 503 with Retry-After, not 401, and its kid is
    // not remembered as unknown (the next request waits again).
    let idp = TestIssuer::es256("https://id.example").with_audience(AUD);
    let server = JwksServer::start(&idp).await;
    let keys = JwksSource::builder(server.url())
        .insecure_allow_http()
        .with_timeouts(Duration::from_millis(300), Duration::from_secs(20))
        .with_max_wait(Duration::from_millis(300))
        .build()
        .unwrap();
    let v = uncached_verifier(&idp, keys.clone());
    assert!(v.verify_async(&idp.token("alice").sign()).await.is_ok());
    server.set(Mode::Hang);
    idp.rotate();
    let rotated = idp.token("alice").sign();
    for attempt in 0..2 {
        let err = v.verify_async(&rotated).await.unwrap_err();
        assert_eq!(
            err.kind(),
            AuthErrorKind::KeysUnavailable,
            "attempt {attempt}"
        );
        assert!(err.retry_after().is_some());
    }
}

#[tokio::test]
async fn readiness_follows_the_keys_late_start_and_staleness() {
    let idp = TestIssuer::rs256("https://id.example").with_audience(AUD);
    let mut server = JwksServer::start(&idp).await;
    // The endpoint is down when the service starts.
    server.stop();
    let source = source_builder(&server)
        .with_refresh_bounds(
            Duration::from_secs(1),
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .with_max_staleness(Duration::from_secs(1))
        .build()
        .unwrap();
    let verifier =
        Verifier::new([Issuer::new("https://id.example", AUD).with_jwks(source.clone())]).unwrap();
    let layer = MandateLayer::new(verifier.clone());
    source.prefetch();
    assert!(!layer.is_ready() && !verifier.is_ready() && !source.is_ready());
    assert_eq!(source.age(), None);
    // `ready()` waits for the endpoint to come up, retrying.
    let waiting = tokio::spawn({
        let layer = layer.clone();
        async move { layer.ready().await }
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!waiting.is_finished(), "ready before any key");
    server.restart().await;
    tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("ready once the endpoint is up")
        .unwrap();
    assert!(layer.is_ready() && verifier.is_ready());
    assert!(source.age().is_some_and(|a| a < Duration::from_secs(2)));
    // The endpoint stops for good: past expiry and staleness, not ready.
    server.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while layer.is_ready() {
        assert!(Instant::now() < deadline, "still ready with stale keys");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(source.age().is_some_and(|a| a >= Duration::from_secs(2)));
    // An optional slot does not gate readiness.
    let optional = MandateLayer::builder()
        .user(tower_mandate::Slot::optional(verifier))
        .build()
        .unwrap();
    assert!(optional.is_ready());
}
