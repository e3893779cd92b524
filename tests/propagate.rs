//! Propagation against real servers on 127.0.0.1: a three-hop chain
//! (edge → A → B) through hyper-util's client under `PropagateLayer`, a
//! listener off the allow-list that must see no token, and a counting token
//! endpoint for the single-flight claim.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_mandate::mint::SigningKey;
use tower_mandate::propagate::{Destination, PropagateLayer};
use tower_mandate::provider::{
    ClientAuth, ClientCredentials, SelfSigned, TokenProvider, TokenRequest,
};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{
    Caller, Issuer, MandateLayer, Slot, Verifier,
    keys::{Algorithm, JwksSource},
};

const AUD: &str = "platform";

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn hyper_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn get_json<S>(client: &mut S, url: &str) -> (StatusCode, Value)
where
    S: Service<http::Request<Full<Bytes>>, Response = http::Response<hyper::body::Incoming>>,
    S::Error: std::fmt::Debug,
{
    let req = http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = client.ready().await.unwrap().call(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn me(caller: Caller) -> Json<Value> {
    Json(json!({
        "user": caller.user().map(|u| u.subject().to_owned()),
        "service": caller.service().map(|s| s.subject().to_owned()),
        "actors": caller.actors().iter().map(|a| a.subject().to_owned()).collect::<Vec<_>>(),
    }))
}

#[tokio::test]
async fn three_hops_forward_the_user_and_add_each_service() {
    let users = TestIssuer::rs256("https://users.example").with_audience(AUD);
    let user_rules = || Issuer::new(users.issuer(), AUD).with_keys(users.key_set());

    // A signs its own tokens and publishes its JWKS; B trusts A's tokens for audience "b".
    let a_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a_addr = a_listener.local_addr().unwrap();
    let a_issuer = format!("http://{a_addr}");
    let a_identity = SelfSigned::new(
        a_issuer.clone(),
        SigningKey::generate(Algorithm::ES256, "a-1"),
    )
    .unwrap();

    let b_keys = JwksSource::builder(format!("{a_issuer}/.well-known/jwks.json"))
        .insecure_allow_http()
        .build()
        .unwrap();
    let b_layer = MandateLayer::builder()
        .user(Slot::required(Verifier::new([user_rules()]).unwrap()))
        .service(Slot::required(
            Verifier::new([Issuer::new(a_issuer.clone(), "b").with_jwks(b_keys)]).unwrap(),
        ))
        .build()
        .unwrap();
    let b = support::Server::start(Router::new().route("/me", get(me)).route_layer(b_layer)).await;

    // A: verifies the user, then calls B with propagation.
    let client = ServiceBuilder::new()
        .layer(
            PropagateLayer::builder()
                .add_destination(
                    Destination::insecure_http("127.0.0.1", b.addr.port())
                        .forward_user_token()
                        .with_service_token(a_identity.clone(), TokenRequest::for_audience("b")),
                )
                .build(),
        )
        .service(hyper_client());
    let b_url = b.url("/me");
    let a_app = Router::new()
        .route(
            "/me",
            get(move || {
                let mut client = client.clone();
                let url = b_url.clone();
                async move {
                    let (status, body) = get_json(&mut client, &url).await;
                    (status, Json(body))
                }
            }),
        )
        .route_layer(MandateLayer::new(Verifier::new([user_rules()]).unwrap()))
        .route("/.well-known/jwks.json", a_identity.jwks_route());
    tokio::spawn(async move { axum::serve(a_listener, a_app).await });

    // The edge calls A with alice's token only.
    let token = users.token("alice").scope("images:read").sign();
    let res = support::http_client()
        .get(format!("{a_issuer}/me"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["user"], "alice", "{body}");
    assert_eq!(body["service"], a_issuer.as_str(), "{body}");

    // Without a user, A refuses; B is never called with A's token alone.
    let res = support::http_client()
        .get(format!("{a_issuer}/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

/// A plain TCP listener that records the first request's head.
async fn recording_listener() -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
            .await
            .unwrap();
        String::from_utf8_lossy(&head).into_owned()
    });
    (addr, handle)
}

#[tokio::test]
async fn a_listener_off_the_allow_list_receives_no_token() {
    let users = TestIssuer::rs256("https://users.example").with_audience(AUD);
    let verifier =
        Verifier::new([Issuer::new(users.issuer(), AUD).with_keys(users.key_set())]).unwrap();
    let principal = verifier.verify(&users.token("alice").sign()).unwrap();
    let me = SelfSigned::new(
        "https://me.internal",
        SigningKey::generate(Algorithm::EdDSA, "me-1"),
    )
    .unwrap();

    let (allowed_addr, allowed) = recording_listener().await;
    let (other_addr, other) = recording_listener().await;
    let client = ServiceBuilder::new()
        .layer(
            PropagateLayer::builder()
                .add_destination(
                    Destination::insecure_http("127.0.0.1", allowed_addr.port())
                        .with_service_token(me, TokenRequest::for_audience("allowed")),
                )
                .build(),
        )
        .service(hyper_client());
    Caller::new(Some(principal), None)
        .scope(async move {
            let mut c = client.clone();
            let (s, _) = get_json(&mut c, &format!("http://{allowed_addr}/x")).await;
            assert_eq!(s, 200);
            let mut c = client.clone();
            let (s, _) = get_json(&mut c, &format!("http://{other_addr}/x")).await;
            assert_eq!(s, 200);
        })
        .await;
    let allowed = allowed.await.unwrap().to_ascii_lowercase();
    let other = other.await.unwrap().to_ascii_lowercase();
    assert!(allowed.contains("authorization: bearer "), "{allowed}");
    assert!(
        allowed.contains("service-authorization: bearer "),
        "{allowed}"
    );
    assert!(
        !other.contains("authorization"),
        "a token leaked off the list: {other}"
    );
}

#[derive(Clone, Default)]
struct Counter {
    posts: Arc<AtomicUsize>,
    last_body: Arc<std::sync::Mutex<String>>,
    last_auth: Arc<std::sync::Mutex<Option<String>>>,
}

async fn token_endpoint(State(c): State<Counter>, headers: HeaderMap, body: String) -> Json<Value> {
    c.posts.fetch_add(1, Ordering::SeqCst);
    *c.last_body.lock().unwrap() = body;
    *c.last_auth.lock().unwrap() = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    // Slow enough that concurrent callers overlap.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Json(json!({"access_token": "opaque-token-value", "token_type": "Bearer", "expires_in": 300}))
}

#[tokio::test]
async fn a_thousand_concurrent_calls_make_one_token_request() {
    let counter = Counter::default();
    let server = support::Server::start(
        Router::new()
            .route("/token", post(token_endpoint))
            .with_state(counter.clone()),
    )
    .await;
    let provider = ClientCredentials::builder(
        server.url("/token"),
        "relay",
        ClientAuth::SecretBasic("s3cret with space".into()),
    )
    .insecure_allow_http()
    .build();
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let provider = provider.clone();
        tasks.push(tokio::spawn(async move {
            provider
                .token(
                    TokenRequest::default()
                        .with_scope("images:read")
                        .with_resource("urn:image-store"),
                )
                .await
                .map(|t| t.secret().to_owned())
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), "opaque-token-value");
    }
    assert_eq!(counter.posts.load(Ordering::SeqCst), 1);
    let body = counter.last_body.lock().unwrap().clone();
    assert!(body.contains("grant_type=client_credentials"), "{body}");
    assert!(body.contains("scope=images%3Aread"), "{body}");
    assert!(body.contains("resource=urn%3Aimage-store"), "{body}");
    // client_secret_basic, form-encoded first (RFC 6749 §2.3.1).
    use base64::Engine as _;
    let auth = counter.last_auth.lock().unwrap().clone().unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.strip_prefix("Basic ").unwrap())
        .unwrap();
    assert_eq!(decoded, b"relay:s3cret+with+space");
}

#[tokio::test]
async fn private_key_jwt_assertions_verify_with_the_clients_jwks() {
    let counter = Counter::default();
    let server = support::Server::start(
        Router::new()
            .route("/token", post(token_endpoint))
            .with_state(counter.clone()),
    )
    .await;
    let key = SigningKey::generate(Algorithm::ES256, "relay-key");
    let jwks = key.jwks();
    let provider = ClientCredentials::builder(
        server.url("/token"),
        "relay",
        ClientAuth::PrivateKeyJwt(key),
    )
    .insecure_allow_http()
    .build();
    provider.token(TokenRequest::default()).await.unwrap();
    let body = counter.last_body.lock().unwrap().clone();
    let assertion = body
        .split('&')
        .find_map(|kv| kv.strip_prefix("client_assertion="))
        .unwrap();
    // The server's view: the assertion is a JWT by the client, for the token endpoint.
    let verifier = Verifier::new([Issuer::new("relay", server.url("/token"))
        .with_keys(tower_mandate::keys::KeySet::from_jwks(&jwks).unwrap())])
    .unwrap();
    let p = verifier.verify(assertion).unwrap();
    assert_eq!(p.subject(), "relay");
    assert!(counter.last_auth.lock().unwrap().is_none());
}

#[tokio::test]
async fn provider_errors_are_clear_and_tokens_are_not_echoed() {
    let server = support::Server::start(Router::new().route(
        "/token",
        post(|| async {
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "invalid_client", "error_description": "secret abc"})),
            )
        }),
    ))
    .await;
    let provider = ClientCredentials::builder(
        server.url("/token"),
        "relay",
        ClientAuth::SecretPost("x".into()),
    )
    .insecure_allow_http()
    .build();
    let err = provider.token(TokenRequest::default()).await.unwrap_err();
    assert_eq!(
        err.kind(),
        tower_mandate::provider::ProviderErrorKind::Rejected
    );
    let text = err.to_string();
    assert!(
        text.contains("invalid_client") && !text.contains("secret abc"),
        "{text}"
    );
    // https is required unless opted out.
    let strict = ClientCredentials::new(
        server.url("/token"),
        "relay",
        ClientAuth::SecretPost("x".into()),
    );
    assert!(strict.token(TokenRequest::default()).await.is_err());
}

#[tokio::test]
async fn the_reqwest_middleware_applies_the_same_policy() {
    use tower_mandate::propagate::PropagateMiddleware;
    let users = TestIssuer::rs256("https://users.example").with_audience(AUD);
    let verifier =
        Verifier::new([Issuer::new(users.issuer(), AUD).with_keys(users.key_set())]).unwrap();
    let principal = verifier.verify(&users.token("alice").sign()).unwrap();
    let me = SelfSigned::new(
        "https://me.internal",
        SigningKey::generate(Algorithm::ES256, "me-1"),
    )
    .unwrap();
    let (allowed_addr, allowed) = recording_listener().await;
    let (other_addr, other) = recording_listener().await;
    let policy = PropagateLayer::builder()
        .add_destination(
            Destination::insecure_http("127.0.0.1", allowed_addr.port())
                .drop_user_token()
                .with_service_token(me, TokenRequest::for_audience("allowed")),
        )
        .build();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(PropagateMiddleware::new(&policy))
        .build();
    Caller::new(Some(principal), None)
        .scope(async move {
            let res = client
                .get(format!("http://{allowed_addr}/x"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            let res = client
                .get(format!("http://{other_addr}/x"))
                .header("x-app", "1")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
        })
        .await;
    let allowed = allowed.await.unwrap().to_ascii_lowercase();
    let other = other.await.unwrap().to_ascii_lowercase();
    assert!(
        allowed.contains("service-authorization: bearer "),
        "{allowed}"
    );
    assert!(
        !allowed.contains("\r\nauthorization:"),
        "the user token was to be dropped: {allowed}"
    );
    assert!(!other.contains("authorization"), "{other}");
}
