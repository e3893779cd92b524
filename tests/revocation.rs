//! Revocation and replay guard through the layer: the in-memory store, and a
//! real `redis-server` on 127.0.0.1 shared by two replicas; Redis
//! unreachable fails closed (503) by default, open when so configured.

mod support;

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tower_mandate::revocation::{MemoryStore, RedisStore, Revocation};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{Caller, Issuer, MandateLayer, Slot, Verifier};

use support::Redis;

const AUD: &str = "a";

/// A CA and a server certificate for 127.0.0.1, written to `dir`: (CA PEM,
/// certificate path, key path, CA path).
fn tls_files(dir: &std::path::Path) -> (String, String, String, String) {
    let tls = support::PrivateCa::new(dir);
    (tls.ca_pem, tls.cert_path, tls.key_path, tls.ca_path)
}

async fn replica(idp: &TestIssuer, revocation: Revocation) -> support::Server {
    async fn me(caller: Caller) -> String {
        caller.user().unwrap().subject().to_owned()
    }
    let verifier =
        Verifier::new([Issuer::new(idp.issuer(), AUD).with_keys(idp.key_set())]).unwrap();
    let layer = MandateLayer::builder()
        .user(Slot::required(verifier))
        .with_revocation(revocation)
        .build()
        .unwrap();
    support::Server::start(Router::new().route("/me", get(me)).route_layer(layer)).await
}

async fn status(server: &support::Server, token: &str) -> u16 {
    support::http_client()
        .get(server.url("/me"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn memory_store_revokes_at_once_even_for_cached_tokens() {
    let idp = TestIssuer::rs256("https://id.example").with_audience(AUD);
    let store = MemoryStore::new();
    let server = replica(&idp, Revocation::new(store.clone())).await;
    let token = idp.token("alice").sign();
    assert_eq!(status(&server, &token).await, 200);
    assert_eq!(
        status(&server, &token).await,
        200,
        "reused: no replay guard"
    );
    let jti = serde_json::from_slice::<serde_json::Value>(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').nth(1).unwrap(),
        )
        .unwrap(),
    )
    .unwrap()["jti"]
        .as_str()
        .unwrap()
        .to_owned();
    store.revoke_token(idp.issuer(), &jti, now() + 600).unwrap();
    assert_eq!(
        status(&server, &token).await,
        401,
        "revoked, though in the verified-token cache"
    );
    // By subject: everything bob got before now.
    let bob = idp.token("bob").sign();
    assert_eq!(status(&server, &bob).await, 200);
    store.revoke_subject(idp.issuer(), "bob", now() + 1);
    assert_eq!(status(&server, &bob).await, 401);
}

#[tokio::test]
async fn two_replicas_share_one_view_through_redis() {
    let redis = Redis::start();
    let idp = TestIssuer::es256("https://id.example").with_audience(AUD);
    let store_a = RedisStore::new(&redis.url).unwrap();
    let store_b = RedisStore::new(&redis.url).unwrap();
    let a = replica(
        &idp,
        Revocation::new(RedisStore::new(&redis.url).unwrap()).guard_replay(),
    )
    .await;
    let b = replica(
        &idp,
        Revocation::new(RedisStore::new(&redis.url).unwrap()).guard_replay(),
    )
    .await;

    // Replay guard: a one-time token used at A cannot be used at B.
    let once = idp.token("svc").sign();
    assert_eq!(status(&a, &once).await, 200);
    assert_eq!(status(&b, &once).await, 401, "replayed at another replica");
    assert_eq!(status(&a, &once).await, 401, "replayed at the same replica");
    // Without jti, refused while the guard is on.
    assert_eq!(
        status(&a, &idp.token("svc").without_claim("jti").sign()).await,
        401
    );

    // Revocation by subject through one store is seen by both replicas.
    // The tokens exist before the revocation (`iat` is whole seconds: one
    // minted after it may be a second later, and not revoked).
    let (mallory_a, mallory_b) = (idp.token("mallory").sign(), idp.token("mallory").sign());
    store_a
        .revoke_subject(idp.issuer(), "mallory", now() + 1)
        .await
        .unwrap();
    assert_eq!(status(&a, &mallory_a).await, 401);
    assert_eq!(status(&b, &mallory_b).await, 401);
    // By token id.
    let t = idp
        .token("alice")
        .claim("jti", serde_json::json!("jti-42"))
        .sign();
    store_b
        .revoke_token(idp.issuer(), "jti-42", now() + 600)
        .await
        .unwrap();
    assert_eq!(status(&a, &t).await, 401);
    assert_eq!(
        status(&a, &idp.token("alice").sign()).await,
        200,
        "others are untouched"
    );
}

#[tokio::test]
async fn redis_unreachable_fails_closed_by_default_and_open_when_asked() {
    let idp = TestIssuer::eddsa("https://id.example").with_audience(AUD);
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("redis://{dead}/");
    let closed = replica(
        &idp,
        Revocation::new(
            RedisStore::new(&url)
                .unwrap()
                .with_timeout(Duration::from_millis(200)),
        ),
    )
    .await;
    let open = replica(
        &idp,
        Revocation::new(
            RedisStore::new(&url)
                .unwrap()
                .with_timeout(Duration::from_millis(200)),
        )
        .insecure_fail_open(),
    )
    .await;
    let token = idp.token("alice").sign();
    let res = support::http_client()
        .get(closed.url("/me"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(status(&open, &token).await, 200);
}

#[tokio::test]
async fn a_one_time_token_cannot_be_replayed_inside_the_leeway() {
    // exp = now + 2 and a 60 s leeway: the verifier accepts the token for
    // about a minute after exp, so its replay record must live as long.
    let redis = Redis::start();
    let idp = TestIssuer::es256("https://id.example").with_audience(AUD);
    let memory = replica(&idp, Revocation::new(MemoryStore::new()).guard_replay()).await;
    let shared = replica(
        &idp,
        Revocation::new(RedisStore::new(&redis.url).unwrap()).guard_replay(),
    )
    .await;
    let for_memory = idp
        .token("svc")
        .claim("exp", serde_json::json!(now() + 2))
        .sign();
    let for_redis = idp
        .token("svc")
        .claim("exp", serde_json::json!(now() + 2))
        .sign();
    assert_eq!(status(&memory, &for_memory).await, 200);
    assert_eq!(status(&shared, &for_redis).await, 200);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        status(&memory, &for_memory).await,
        401,
        "replayed after exp (memory)"
    );
    assert_eq!(
        status(&shared, &for_redis).await,
        401,
        "replayed after exp (Redis)"
    );
}

#[tokio::test]
async fn a_full_memory_store_fails_closed() {
    let idp = TestIssuer::es256("https://id.example").with_audience(AUD);
    let server = replica(
        &idp,
        Revocation::new(MemoryStore::with_capacity(2)).guard_replay(),
    )
    .await;
    assert_eq!(status(&server, &idp.token("a").sign()).await, 200);
    assert_eq!(status(&server, &idp.token("b").sign()).await, 200);
    assert_eq!(
        status(&server, &idp.token("c").sign()).await,
        503,
        "no room for a record"
    );
}

#[tokio::test]
async fn rediss_with_a_private_ca() {
    let dir = support::temp_dir("redis-tls");
    let (ca_pem, cert, key, ca) = tls_files(&dir);
    let redis = Redis::start_tls(&cert, &key, &ca);
    let idp = TestIssuer::es256("https://id.example").with_audience(AUD);
    let trusted = replica(
        &idp,
        Revocation::new(
            RedisStore::new_with_root_ca(&redis.url, ca_pem.as_bytes())
                .unwrap()
                .with_timeout(Duration::from_secs(2)),
        )
        .guard_replay(),
    )
    .await;
    let once = idp.token("svc").sign();
    assert_eq!(status(&trusted, &once).await, 200, "over TLS");
    assert_eq!(status(&trusted, &once).await, 401, "the record is in Redis");
    // The same server with the system's roots: its certificate is not trusted.
    let untrusted = replica(
        &idp,
        Revocation::new(
            RedisStore::new(&redis.url)
                .unwrap()
                .with_timeout(Duration::from_millis(500)),
        ),
    )
    .await;
    assert_eq!(status(&untrusted, &idp.token("x").sign()).await, 503);
    assert!(RedisStore::new_with_root_ca("redis://127.0.0.1:1/", ca_pem.as_bytes()).is_err());
}

#[tokio::test]
async fn a_revoked_token_stays_revoked_inside_the_leeway() {
    // Revoked "until its exp" (exp = now + 2), presented after exp while
    // the 60 s leeway still accepts it.
    let redis = Redis::start();
    let idp = TestIssuer::es256("https://id.example").with_audience(AUD);
    let memory_store = MemoryStore::new();
    let redis_store = RedisStore::new(&redis.url).unwrap();
    let memory = replica(&idp, Revocation::new(memory_store.clone())).await;
    let shared = replica(&idp, Revocation::new(RedisStore::new(&redis.url).unwrap())).await;
    let exp = now() + 2;
    let token = idp
        .token("alice")
        .claim("jti", serde_json::json!("short-lived"))
        .claim("exp", serde_json::json!(exp))
        .sign();
    memory_store
        .revoke_token(idp.issuer(), "short-lived", exp)
        .unwrap();
    redis_store
        .revoke_token(idp.issuer(), "short-lived", exp)
        .await
        .unwrap();
    assert_eq!(status(&memory, &token).await, 401);
    assert_eq!(status(&shared, &token).await, 401);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        status(&memory, &token).await,
        401,
        "still revoked after exp (memory)"
    );
    assert_eq!(
        status(&shared, &token).await,
        401,
        "still revoked after exp (Redis)"
    );
}

#[tokio::test]
async fn records_of_the_old_key_format_are_still_read() {
    // 0.1 wrote `{prefix}rs:{iss}:{sub}` and `{prefix}seen:{iss}:{jti}`:
    // after an upgrade those revocations and replay records still count.
    let redis = Redis::start();
    let idp = TestIssuer::es256("https://id.example").with_audience(AUD);
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let old_subject = format!("tower-mandate:rs:{}:mallory", idp.issuer());
    let old_seen = format!("tower-mandate:seen:{}:used-once", idp.issuer());
    redis::cmd("SET")
        .arg(&old_subject)
        .arg(now() + 1)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    redis::cmd("SET")
        .arg(&old_seen)
        .arg(1)
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let server = replica(
        &idp,
        Revocation::new(RedisStore::new(&redis.url).unwrap()).guard_replay(),
    )
    .await;
    assert_eq!(status(&server, &idp.token("mallory").sign()).await, 401);
    let used = idp
        .token("svc")
        .claim("jti", serde_json::json!("used-once"))
        .sign();
    assert_eq!(
        status(&server, &used).await,
        401,
        "replayed across the upgrade"
    );
    assert_eq!(status(&server, &idp.token("svc").sign()).await, 200);
}

/// A TCP proxy in front of redis-server that counts the writes the client
/// makes (a pipelined request is one write, so one round trip).
async fn counting_proxy(upstream: u16) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let writes = std::sync::Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let counter = writes.clone();
    tokio::spawn(async move {
        for _ in 0..8 {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let server = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                .await
                .unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            });
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut sr, &mut cw).await;
            });
        }
    });
    (port, writes)
}

#[tokio::test]
async fn user_and_service_tokens_are_checked_in_one_round_trip() {
    use std::sync::atomic::Ordering;
    let redis = Redis::start();
    let redis_port: u16 = redis
        .url
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let (proxy, writes) = counting_proxy(redis_port).await;
    let users = TestIssuer::es256("https://users.example").with_audience(AUD);
    let services = TestIssuer::rs256("https://services.example").with_audience(AUD);
    let store = RedisStore::new(&format!("redis://127.0.0.1:{proxy}/")).unwrap();
    let admin = RedisStore::new(&redis.url).unwrap();
    let layer = MandateLayer::builder()
        .user(Slot::required(
            Verifier::new([Issuer::new(users.issuer(), AUD).with_keys(users.key_set())]).unwrap(),
        ))
        .service(Slot::required(
            Verifier::new([Issuer::new(services.issuer(), AUD).with_keys(services.key_set())])
                .unwrap(),
        ))
        .with_revocation(Revocation::new(store).guard_replay())
        .build()
        .unwrap();
    async fn me(caller: Caller) -> String {
        caller.user().unwrap().subject().to_owned()
    }
    let server =
        support::Server::start(Router::new().route("/me", get(me)).route_layer(layer)).await;
    let call = |user: String, service: String| {
        support::http_client()
            .get(server.url("/me"))
            .header("authorization", format!("Bearer {user}"))
            .header("service-authorization", format!("Bearer {service}"))
            .send()
    };
    // The first request also sets the connection up.
    let first = call(users.token("alice").sign(), services.token("svc").sign());
    assert_eq!(first.await.unwrap().status(), 200);
    let before = writes.load(Ordering::SeqCst);
    let user = users.token("alice").sign();
    let service = services.token("svc").sign();
    assert_eq!(
        call(user.clone(), service.clone()).await.unwrap().status(),
        200
    );
    assert_eq!(
        writes.load(Ordering::SeqCst) - before,
        1,
        "both tokens' reads and replay records in one pipeline"
    );
    // Each token's verdict still counts: the service token replayed with a
    // fresh user token is refused, and so is a revoked user.
    assert_eq!(
        call(users.token("alice").sign(), service)
            .await
            .unwrap()
            .status(),
        401
    );
    let mallory = users.token("mallory").sign(); // issued before the revocation
    admin
        .revoke_subject(users.issuer(), "mallory", now() + 1)
        .await
        .unwrap();
    assert_eq!(
        call(mallory, services.token("svc").sign())
            .await
            .unwrap()
            .status(),
        401
    );
}
