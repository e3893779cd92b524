//! Jobs that act for a user later (#16), against the real identity
//! provider of the suite (panva's oidc-provider with the token exchange for
//! refresh tokens and the JWT-bearer grant), a real redis-server list as
//! the queue and as the revocation store, and the `image_store` example as
//! the service the job calls.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use redis::AsyncCommands as _;
use serde_json::Value;
use tower_mandate::job::{Delegation, Grant, JobErrorKind, JobHandle, SealingKeys};
use tower_mandate::keys::{Algorithm, JwksSource};
use tower_mandate::mint::SigningKey;
use tower_mandate::provider::{ClientAuth, TokenRequest};
use tower_mandate::revocation::RedisStore;
use tower_mandate::testing::TestIssuer;
use tower_mandate::{Caller, Issuer, MandateLayer, Verifier};

const TAGGER_SECRET: &str = "tagger-secret-0123456789abcdef0123456789abcdef";
const KEY_NOW: [u8; 32] = [0x42; 32];
const KEY_BEFORE: [u8; 32] = [0x17; 32];
const PURPOSE: &str = "tag-image";

fn tagger_auth() -> ClientAuth {
    ClientAuth::SecretBasic(TAGGER_SECRET.into())
}

fn keys() -> SealingKeys {
    SealingKeys::new("k2", &KEY_NOW).unwrap()
}

/// The refresh-token route at the suite's IdP, checking `store` when given.
fn refresh_delegation(
    idp: &support::Idp,
    store: Option<impl tower_mandate::revocation::TokenStore>,
) -> Delegation {
    let builder = Delegation::builder(
        Grant::refresh_token(
            format!("{}/token", idp.issuer),
            "tagger",
            tagger_auth(),
            idp.issuer.clone(),
        ),
        keys(),
    )
    .insecure_allow_http(); // loopback only
    match store {
        Some(store) => builder.with_revocation(store),
        None => builder,
    }
    .build()
}

/// Seconds since the epoch, as tokens and revocations count them.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn job_request() -> TokenRequest {
    TokenRequest::default()
        .with_resource("urn:image-store")
        .with_scope("images:read images:write")
}

/// Every event of this test binary, every target and level: one global
/// subscriber (scoped ones race on callsite interest when tests run in
/// parallel). Tests look for their own request ids and users.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn global() -> &'static Logs {
        static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Logs::default();
            let sink = logs.clone();
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
                .with_writer(move || sink.clone())
                .with_ansi(false)
                .init();
            logs
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn lines_with(&self, needle: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

/// The upload service: verifies the user's token, captures a job for the
/// tagging worker and queues its handle, and answers at once.
struct Uploads {
    jobs: Delegation,
    redis: redis::Client,
}

async fn upload(State(up): State<Arc<Uploads>>, caller: Caller) -> (StatusCode, String) {
    let handle = match up
        .jobs
        .capture(&caller, PURPOSE, job_request(), Duration::from_secs(3600))
        .await
    {
        Ok(handle) => handle,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    };
    let mut conn = up.redis.get_multiplexed_async_connection().await.unwrap();
    let text = serde_json::to_string(&handle).unwrap();
    let _: () = conn.rpush("jobs:tag", text).await.unwrap();
    (StatusCode::ACCEPTED, "queued".into())
}

async fn uploads_service(idp: &support::Idp, up: Uploads) -> support::Server {
    let keys = JwksSource::discovery(idp.issuer.clone())
        .insecure_allow_http()
        .build()
        .unwrap();
    let users = Verifier::new([Issuer::new(idp.issuer.clone(), "image-store")
        .require_typ("at+jwt")
        .with_jwks(keys)])
    .unwrap();
    support::Server::start(
        axum::Router::new()
            .route("/upload", post(upload))
            .route_layer(MandateLayer::new(users))
            .with_state(Arc::new(up)),
    )
    .await
}

async fn image_store(idp: &support::Idp) -> support::Example {
    support::Example::spawn(
        "image_store",
        &[
            ("USER_ISSUER", &idp.issuer),
            ("USER_JWKS_URL", &format!("{}/jwks", idp.issuer)),
            ("LEEWAY_SECS", "0"),
            ("RUST_LOG", "warn,tower_mandate::audit=info"),
            ("NO_COLOR", "1"),
        ],
    )
    .await
}

async fn user_token(idp: &support::Idp, sub: &str, ttl: u64) -> String {
    idp.user_token_living(
        &support::http_client(),
        sub,
        "images:read images:write",
        ttl,
    )
    .await
}

async fn stats(idp: &support::Idp, grant: &str) -> u64 {
    let json: Value = support::http_client()
        .get(format!("{}/__stats", idp.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    json[grant].as_u64().unwrap_or(0)
}

async fn pop(redis: &redis::Client) -> JobHandle {
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let (_, text): (String, String) = conn.blpop("jobs:tag", 10.0).await.unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn a_queued_job_runs_after_the_users_token_expired() {
    let idp = support::Idp::start();
    let redis_server = support::Redis::start();
    let redis = redis::Client::open(redis_server.url.as_str()).unwrap();
    let store = image_store(&idp).await;
    let uploads = uploads_service(
        &idp,
        Uploads {
            jobs: refresh_delegation(&idp, None::<RedisStore>),
            redis: redis.clone(),
        },
    )
    .await;
    let http = support::http_client();

    // alice uploads with a token that lives 2 s; the upload answers at once.
    let alice = user_token(&idp, "alice", 2).await;
    let res = http
        .post(uploads.url("/upload"))
        .bearer_auth(&alice)
        .header("x-request-id", "req-7f3a")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());

    // The handle waits on the queue until alice's token has expired.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, _) = store.call(&http, "GET", "/me", Some(&alice), None).await;
    assert_eq!(status, 401, "alice's own token has expired by now");

    // The worker: a fresh delegation (as in another process), the same keys.
    let refreshes = stats(&idp, "refresh_token").await;
    let handle = pop(&redis).await;
    assert_eq!(handle.purpose(), PURPOSE);
    let job = refresh_delegation(&idp, None::<RedisStore>)
        .open(&handle, PURPOSE)
        .unwrap();
    assert_eq!(job.user().subject(), "alice");
    assert_eq!(job.request_id(), "req-7f3a");
    let token = job.token().await.unwrap();
    assert_eq!(stats(&idp, "refresh_token").await, refreshes + 1);

    // image_store sees alice as the user and the tagger as the actor.
    let res = http
        .get(format!("{}/me", store.base))
        .headers(token.headers())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let me: Value = res.json().await.unwrap();
    assert_eq!(me["user"]["sub"], "alice");
    assert_eq!(me["actors"], serde_json::json!(["tagger"]));
    assert_eq!(
        me["user"]["permissions"],
        serde_json::json!(["images:read", "images:write"])
    );
    let created = http
        .post(format!("{}/images", store.base))
        .headers(token.headers())
        .body("tagged bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["owner"], "alice");

    // Its audit trail ties the call to the capturing request.
    let line = store
        .printed_eventually("route=\"/images\"")
        .await
        .unwrap_or_else(|| {
            panic!(
                "no audit event of the upload: {:?}",
                store.printed_containing("audit")
            )
        });
    for field in [
        "request_id=\"req-7f3a\"",
        "user=\"alice\"",
        "#tagger\"",
        "actors=\"tagger\"",
    ] {
        assert!(line.contains(field), "{field} in {line}");
    }
}

#[tokio::test]
async fn a_revoked_users_job_is_refused_before_any_call() {
    let idp = support::Idp::start();
    let redis_server = support::Redis::start();
    let revocations = RedisStore::new(&redis_server.url).unwrap();
    let jobs = refresh_delegation(&idp, Some(RedisStore::new(&redis_server.url).unwrap()));
    let users = user_verifier(&idp);
    let bob_token = user_token(&idp, "bob", 600).await;
    let bob = Caller::new(Some(users.verify_async(&bob_token).await.unwrap()), None)
        .with_request_id("req-bob-1");
    let handle = jobs
        .capture(&bob, PURPOSE, job_request(), Duration::from_secs(3600))
        .await
        .unwrap();

    // bob is revoked after the capture (every token issued until now).
    revocations
        .revoke_subject(&idp.issuer, "bob", now() + 1)
        .await
        .unwrap();

    let logs = Logs::global();
    let before = stats(&idp, "refresh_token").await;
    let job = jobs.open(&handle, PURPOSE).unwrap();
    let err = job.token().await.unwrap_err();
    assert_eq!(err.kind(), JobErrorKind::Revoked, "{err}");
    assert_eq!(
        stats(&idp, "refresh_token").await,
        before,
        "the authorization server was called for a revoked user"
    );
    // This test's own refusal (the tests share one log; others revoke too).
    let denied: Vec<String> = logs
        .lines_with("user revoked since the job was captured")
        .into_iter()
        .filter(|l| l.contains("request_id=\"req-bob-1\""))
        .collect();
    assert_eq!(denied.len(), 1, "{}", logs.text());
    for field in [
        "decision=\"deny\"",
        "user=\"bob\"",
        "request_id=\"req-bob-1\"",
        "actor=\"http://127.0.0.1",
    ] {
        assert!(denied[0].contains(field), "{field} in {}", denied[0]);
    }

    // Another user, not revoked, still runs.
    let carol_token = user_token(&idp, "carol", 600).await;
    let carol = Caller::new(Some(users.verify_async(&carol_token).await.unwrap()), None);
    let handle = jobs
        .capture(&carol, PURPOSE, job_request(), Duration::from_secs(3600))
        .await
        .unwrap();
    jobs.open(&handle, PURPOSE).unwrap().token().await.unwrap();

    // A store that cannot answer refuses the job (fail closed).
    drop(redis_server);
    let err = jobs
        .open(&handle, PURPOSE)
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), JobErrorKind::StoreUnavailable, "{err}");
}

fn user_verifier(idp: &support::Idp) -> Verifier {
    let keys = JwksSource::discovery(idp.issuer.clone())
        .insecure_allow_http()
        .build()
        .unwrap();
    Verifier::new([Issuer::new(idp.issuer.clone(), "image-store").with_jwks(keys)]).unwrap()
}

/// A request of `sub`, whose token from `idp` lives `ttl` seconds, as the
/// layer would have verified it.
async fn user_caller(idp: &support::Idp, sub: &str, ttl: u64) -> Caller {
    let token = user_token(idp, sub, ttl).await;
    Caller::new(
        Some(user_verifier(idp).verify_async(&token).await.unwrap()),
        None,
    )
}

/// `[jobs.tagging]` of a configuration file: the client from `[providers]`,
/// sealing keys from files (a rotation: the old key opens what it sealed),
/// and the `[revocation]` store shared with the application.
#[tokio::test]
async fn a_delegation_from_the_config_file_rotates_keys_and_checks_the_store() {
    use base64::Engine as _;
    let idp = support::Idp::start();
    let redis_server = support::Redis::start();
    let dir = support::temp_dir("jobs-config");
    let file = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let b64 = |key: &[u8]| base64::engine::general_purpose::STANDARD.encode(key);
    let config = format!(
        r#"
[providers.tagger]
kind = "client_credentials"
token_url = "{issuer}/token"
client_id = "tagger"
client_secret_file = {secret:?}
insecure_allow_http = true   # loopback only

[revocation]
store = "redis"
url = "{redis}"

[jobs.tagging]
grant = "refresh_token"
client = "tagger"
issuer = "{issuer}"
max_lifetime = "2h"
# revocation: on by default, with the [revocation] table's redis store
sealing_key = {{ id = "k3", file = {now:?} }}
previous_sealing_keys = [{{ id = "k2", file = {before:?} }}]
"#,
        issuer = idp.issuer,
        redis = redis_server.url,
        secret = file("secret", &format!("{TAGGER_SECRET}\n")),
        now = file("k3", &b64(&[0x99; 32])),
        before = file("k2", &b64(&KEY_NOW)),
    );
    let config = tower_mandate::config::MandateConfig::from_toml(&config).unwrap();
    let jobs = config.delegation("tagging").unwrap().build();
    let dave = user_caller(&idp, "dave", 600).await;

    // A handle sealed before the rotation (key k2, in code) opens and runs.
    let old = refresh_delegation(&idp, None::<RedisStore>)
        .capture(&dave, PURPOSE, job_request(), Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(old.key_id(), "k2");
    let before = stats(&idp, "refresh_token").await;
    jobs.open(&old, PURPOSE).unwrap().token().await.unwrap();
    assert_eq!(stats(&idp, "refresh_token").await, before + 1);

    // New handles are sealed under k3, which the code's delegation lacks.
    let new = jobs
        .capture(&dave, PURPOSE, job_request(), Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(new.key_id(), "k3");
    let err = refresh_delegation(&idp, None::<RedisStore>)
        .open(&new, PURPOSE)
        .unwrap_err();
    assert_eq!(err.kind(), JobErrorKind::UnknownKey, "{err}");
    // max_lifetime = "2h" caps a capture that asks for ten (the IdP's
    // refresh tokens live 14 days).
    let long = jobs
        .capture(
            &dave,
            PURPOSE,
            job_request(),
            Duration::from_secs(10 * 3600),
        )
        .await
        .unwrap();
    let at = now();
    assert!(
        (at + 7190..=at + 7210).contains(&long.expires_at()),
        "{} for now {at}",
        long.expires_at()
    );

    // dave revoked (not bob: the tests share one log) in the store the
    // configuration names: refused, and nothing is asked of the IdP.
    RedisStore::new(&redis_server.url)
        .unwrap()
        .revoke_subject(&idp.issuer, "dave", now() + 1)
        .await
        .unwrap();
    let before = stats(&idp, "refresh_token").await;
    let err = jobs.open(&new, PURPOSE).unwrap().token().await.unwrap_err();
    assert_eq!(err.kind(), JobErrorKind::Revoked, "{err}");
    assert_eq!(stats(&idp, "refresh_token").await, before);
}

#[tokio::test]
async fn jwt_bearer_job_acts_for_the_user_of_its_issuer_only() {
    let key = SigningKey::generate(Algorithm::ES256, "tagger-1");
    let idp = support::Idp::start_with(&[("IDP_ASSERTION_JWKS", &key.jwks())]);
    let store = image_store(&idp).await;
    let jobs = Delegation::builder(
        Grant::jwt_bearer(
            format!("{}/token", idp.issuer),
            "tagger",
            tagger_auth(),
            idp.issuer.clone(),
            key,
        ),
        keys(),
    )
    .insecure_allow_http()
    .build();
    let alice = user_caller(&idp, "alice", 2).await;
    let before = stats(&idp, "urn:ietf:params:oauth:grant-type:jwt-bearer").await;
    let handle = jobs
        .capture(
            &alice,
            PURPOSE,
            TokenRequest::for_audience("image-store").with_scope("images:read"),
            Duration::from_secs(600),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = serde_json::to_string(&handle).unwrap();
    let job = jobs
        .open(&serde_json::from_str(&text).unwrap(), PURPOSE)
        .unwrap();
    let token = job.token().await.unwrap();
    assert_eq!(
        stats(&idp, "urn:ietf:params:oauth:grant-type:jwt-bearer").await,
        before + 1,
        "nothing asked at capture, one grant when run"
    );
    let me: Value = support::http_client()
        .get(format!("{}/me", store.base))
        .headers(token.headers())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"]["sub"], "alice");
    assert_eq!(me["actors"], serde_json::json!(["tagger"]));
    assert_eq!(
        me["user"]["permissions"],
        serde_json::json!(["images:read"])
    );

    // A user named alice at another issuer is another person: refused.
    let other = TestIssuer::es256("https://partner.example").with_audience("image-store");
    let partner = Verifier::new([
        Issuer::new("https://partner.example", "image-store").with_keys(other.key_set())
    ])
    .unwrap();
    let impostor = Caller::new(
        Some(partner.verify(&other.token("alice").sign()).unwrap()),
        None,
    );
    let err = jobs
        .capture(&impostor, PURPOSE, job_request(), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), JobErrorKind::NoUser, "{err}");
}

/// A caller whose user token from `idp` has `scope`.
fn caller_of(idp: &TestIssuer, sub: &str, scope: &str) -> Caller {
    let users =
        Verifier::new([Issuer::new(idp.issuer(), "image-store").with_keys(idp.key_set())]).unwrap();
    Caller::new(
        Some(users.verify(&idp.token(sub).scope(scope).sign()).unwrap()),
        None,
    )
}

/// A jwt-bearer delegation for users of `issuer`, sealed under `keys`
/// (the route needs no server at capture).
fn offline(issuer: &TestIssuer, keys: SealingKeys) -> Delegation {
    Delegation::builder(
        Grant::jwt_bearer(
            "https://id.example/token",
            "tagger",
            tagger_auth(),
            issuer.issuer(),
            SigningKey::generate(Algorithm::ES256, "t"),
        ),
        keys,
    )
    .build()
}

#[tokio::test]
async fn edited_retired_and_moved_handles_are_refused() {
    let logs = Logs::global();
    let idp = TestIssuer::es256("https://id.example").with_audience("image-store");
    let alice = caller_of(&idp, "alice", "images:read images:write");
    let old = SealingKeys::new("k1", &KEY_BEFORE).unwrap();
    let handle = offline(&idp, old)
        .capture(&alice, PURPOSE, job_request(), Duration::from_secs(600))
        .await
        .unwrap();

    // Rotation: k2 seals, k1 still opens.
    let rotated = offline(&idp, keys().with_previous("k1", &KEY_BEFORE).unwrap());
    let job = rotated.open(&handle, PURPOSE).unwrap();
    assert_eq!(job.user().subject(), "alice");
    let resealed = job.reseal();
    assert_eq!(resealed.key_id(), "k2");

    // Retired: k1 dropped.
    let retired = offline(&idp, keys());
    let err = retired.open(&handle, PURPOSE).unwrap_err();
    assert_eq!(err.kind(), JobErrorKind::UnknownKey, "{err}");
    retired.open(&resealed, PURPOSE).unwrap();

    // Another key under the same id.
    let impostor = offline(&idp, SealingKeys::new("k2", &[0x99; 32]).unwrap());
    assert_eq!(
        impostor.open(&resealed, PURPOSE).unwrap_err().kind(),
        JobErrorKind::Tampered
    );

    // Another delegation with the same keys (another issuer, endpoint or
    // client): the handle is bound to the one that sealed it.
    let partner = TestIssuer::es256("https://partner.example");
    assert_eq!(
        offline(&partner, keys())
            .open(&resealed, PURPOSE)
            .unwrap_err()
            .kind(),
        JobErrorKind::Tampered
    );

    // Every byte of the serialized handle matters.
    let text = serde_json::to_string(&resealed).unwrap();
    let mut refused = 0;
    for i in 0..text.len() {
        let mut bytes = text.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let Ok(edited) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let Ok(edited) = serde_json::from_str::<JobHandle>(edited) else {
            refused += 1; // no longer a handle at all
            continue;
        };
        if edited == resealed {
            refused += 1; // the edit changed nothing (an A stays an A)
            continue;
        }
        let purpose = edited.purpose().to_owned();
        assert!(
            retired.open(&edited, &purpose).is_err(),
            "byte {i} edited and the handle still opens: {}",
            String::from_utf8_lossy(&bytes)
        );
        refused += 1;
    }
    assert_eq!(refused, text.len());

    // Each refusal is an audit event, without the handle's text.
    let refusals = logs.lines_with("job handle does not authenticate");
    assert!(!refusals.is_empty());
    assert!(refusals.iter().all(|l| !l.contains(&text[40..60])));

    // Moved to another purpose: the purpose is authenticated.
    let moved = text.replace("\"tag-image\"", "\"delete-image\"");
    let moved: JobHandle = serde_json::from_str(&moved).unwrap();
    assert_eq!(
        retired.open(&moved, "delete-image").unwrap_err().kind(),
        JobErrorKind::Tampered
    );
    // An authentic handle opened for another purpose.
    assert_eq!(
        retired.open(&resealed, "delete-image").unwrap_err().kind(),
        JobErrorKind::WrongPurpose
    );
    // A later expiry is an edit too.
    let later = text.replace(
        &format!("\"exp\":{}", resealed.expires_at()),
        &format!("\"exp\":{}", resealed.expires_at() + 86_400),
    );
    assert_ne!(later, text);
    let later: JobHandle = serde_json::from_str(&later).unwrap();
    assert_eq!(
        retired.open(&later, PURPOSE).unwrap_err().kind(),
        JobErrorKind::Tampered
    );
    // A handle of a future version, and garbage, are refused cleanly.
    let future: JobHandle = serde_json::from_str(&text.replace("\"v\":1", "\"v\":2")).unwrap();
    assert_eq!(
        retired.open(&future, PURPOSE).unwrap_err().kind(),
        JobErrorKind::Malformed
    );
    assert!(serde_json::from_str::<JobHandle>("{\"v\":1}").is_err());

    // Expired: a handle whose lifetime has passed.
    let short = offline(&idp, keys())
        .capture(&alice, PURPOSE, job_request(), Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        retired.open(&short, PURPOSE).unwrap_err().kind(),
        JobErrorKind::Expired
    );
}

#[tokio::test]
async fn a_request_without_a_user_or_audience_captures_nothing() {
    let idp = TestIssuer::es256("https://id.example").with_audience("image-store");
    let jobs = offline(&idp, keys());
    let nobody = Caller::new(None, None);
    let err = jobs
        .capture(&nobody, PURPOSE, job_request(), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), JobErrorKind::NoUser);
    let alice = caller_of(&idp, "alice", "images:read images:write");
    for (purpose, request) in [
        ("tag image", job_request()),
        ("", job_request()),
        (PURPOSE, TokenRequest::default().with_scope("images:read")),
    ] {
        let err = jobs
            .capture(&alice, purpose, request, Duration::from_secs(60))
            .await
            .unwrap_err();
        assert_eq!(
            err.kind(),
            JobErrorKind::InvalidRequest,
            "{purpose:?}: {err}"
        );
    }
}

#[tokio::test]
async fn a_job_handle_never_appears_in_a_log() {
    let idp = support::Idp::start();
    let logs = Logs::global();
    let jobs = refresh_delegation(&idp, None::<RedisStore>);
    let users = user_verifier(&idp);
    let user = user_token(&idp, "alice", 600).await;
    let alice = Caller::new(Some(users.verify_async(&user).await.unwrap()), None);
    let handle = jobs
        .capture(&alice, PURPOSE, job_request(), Duration::from_secs(600))
        .await
        .unwrap();
    let job = jobs.open(&handle, PURPOSE).unwrap();
    let token = job.token().await.unwrap();
    let text = serde_json::to_string(&handle).unwrap();
    let sealed: Value = serde_json::from_str(&text).unwrap();
    let debug = format!("{handle:?} {job:?} {token:?} {jobs:?} {:?}", keys());
    tracing::info!(handle = ?handle, job = ?job, token = ?token, "debug of the job's types");
    let secrets = [
        sealed["sealed"].as_str().unwrap(),
        sealed["nonce"].as_str().unwrap(),
        token.access_token().unwrap().secret(),
        user.as_str(),
    ];
    let logged = logs.text();
    assert!(
        logs.lines_with("job token obtained")
            .iter()
            .any(|l| l.contains(&format!("request_id=\"{}\"", job.request_id()))),
        "no audit event of the job"
    );
    for secret in secrets {
        assert!(!logged.contains(secret), "a secret in the logs");
        assert!(!debug.contains(secret), "a secret in Debug: {debug}");
    }
    assert!(debug.contains("<redacted>"), "{debug}");
}

#[tokio::test]
async fn a_jwt_bearer_capture_asserts_only_what_the_user_holds() {
    let idp = TestIssuer::es256("https://id.example").with_audience("image-store");
    let users =
        Verifier::new([Issuer::new(idp.issuer(), "image-store").with_keys(idp.key_set())]).unwrap();
    let jobs = offline(&idp, keys());
    let reader = Caller::new(
        Some(
            users
                .verify(&idp.token("alice").scope("images:read").sign())
                .unwrap(),
        ),
        None,
    );
    let delegated = Caller::new(
        Some(
            users
                .verify(
                    &idp.token("alice")
                        .scope("images:read images:write")
                        .actor("gateway")
                        .sign(),
                )
                .unwrap(),
        ),
        None,
    );
    for (caller, request, why) in [
        (&reader, job_request(), "images:write is not alice's"),
        (
            &reader,
            TokenRequest::for_audience("image-store"),
            "no scope named",
        ),
        (&delegated, job_request(), "a delegated token"),
    ] {
        let err = jobs
            .capture(caller, PURPOSE, request, Duration::from_secs(60))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), JobErrorKind::InvalidRequest, "{why}: {err}");
    }
    jobs.capture(
        &reader,
        PURPOSE,
        TokenRequest::for_audience("image-store").with_scope("images:read"),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn one_job_or_the_captured_token_can_be_revoked() {
    use tower_mandate::revocation::MemoryStore;
    let idp = support::Idp::start();
    let users = user_verifier(&idp);
    let store = MemoryStore::new();
    let jobs = refresh_delegation(&idp, Some(store.clone()));
    let token = user_token(&idp, "dave", 600).await;
    let dave = Caller::new(Some(users.verify_async(&token).await.unwrap()), None);
    let capture = || jobs.capture(&dave, PURPOSE, job_request(), Duration::from_secs(600));
    let (first, second, third) = (
        capture().await.unwrap(),
        capture().await.unwrap(),
        capture().await.unwrap(),
    );

    // One job, by the id its audit events carry as token_id.
    let job = jobs.open(&first, PURPOSE).unwrap();
    store
        .revoke_token(&idp.issuer, &job.id(), first.expires_at())
        .unwrap();
    assert_eq!(job.token().await.unwrap_err().kind(), JobErrorKind::Revoked);
    jobs.open(&second, PURPOSE).unwrap().token().await.unwrap();

    // The captured token, by its jti: every job captured with it.
    let jti = users
        .verify_async(&token)
        .await
        .unwrap()
        .token_id()
        .unwrap()
        .to_owned();
    store
        .revoke_token(&idp.issuer, &jti, first.expires_at())
        .unwrap();
    for handle in [&second, &third] {
        let err = jobs
            .open(handle, PURPOSE)
            .unwrap()
            .token()
            .await
            .unwrap_err();
        assert_eq!(err.kind(), JobErrorKind::Revoked);
    }
}

#[tokio::test]
async fn the_authorization_servers_lifetime_and_rotation_are_kept() {
    let idp =
        support::Idp::start_with(&[("IDP_JOB_REFRESH_TTL", "60"), ("IDP_ROTATE_REFRESH", "1")]);
    let users = user_verifier(&idp);
    let jobs = refresh_delegation(&idp, None::<RedisStore>);
    let token = user_token(&idp, "erin", 600).await;
    let erin = Caller::new(Some(users.verify_async(&token).await.unwrap()), None);
    let now = now();
    let handle = jobs
        .capture(&erin, PURPOSE, job_request(), Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(
        handle.expires_at() <= now + 61,
        "the handle outlives the refresh token: {} > {}",
        handle.expires_at(),
        now + 60
    );

    // Each refresh rotates: the job keeps the new refresh token.
    let job = jobs.open(&handle, PURPOSE).unwrap();
    job.token().await.unwrap();
    job.token().await.unwrap();
    // Concurrent runs of one job take turns (a rotated token is used once).
    let (a, b) = tokio::join!(job.token(), job.token());
    a.unwrap();
    b.unwrap();
    // Resealed, the rotated token goes back on the queue and works.
    let resealed = job.reseal();
    jobs.open(&resealed, PURPOSE)
        .unwrap()
        .token()
        .await
        .unwrap();
    // The original handle's refresh token was used: refused (and oidc-provider
    // revokes the grant on reuse).
    let err = jobs
        .open(&handle, PURPOSE)
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), JobErrorKind::Token, "{err}");
}

/// The transaction route: the crate's own Transaction Token Service, a
/// tagging service behind the layer's Transaction Token slot that captures
/// a job, and the job's Txn-Token afterwards.
#[tokio::test]
async fn a_job_inside_a_transaction_carries_a_narrowed_replacement() {
    use support::txn::{DOMAIN, domain, exchange};
    use tower_mandate::Slot;
    use tower_mandate::keys::KeySet;
    use tower_mandate::provider::TokenProvider as _;
    use tower_mandate::revocation::MemoryStore;
    use tower_mandate::transaction::TransactionSlot;

    let d = domain().await;
    let (users, services) = (&d.users, &d.services);
    let tts_keys = KeySet::from_jwks(&d.jwks).unwrap();
    let exchange = |workload: &str| exchange(&d, workload);
    // The edge: alice's token for a transaction of purpose images:read images:write.
    let txn_token = exchange("gateway")
        .token(
            TokenRequest::default()
                .with_scope("images:read images:write")
                .with_subject_token(
                    users
                        .token("alice")
                        .scope("images:read images:write")
                        .sign(),
                ),
        )
        .await
        .unwrap();
    let store = MemoryStore::new();
    let jobs = Delegation::builder(Grant::transaction(exchange("tagger")), keys())
        .with_revocation(store.clone())
        .build();

    // The tagging service captures a job inside the transaction.
    let layer = MandateLayer::builder()
        .service(Slot::required(
            Verifier::new(
                [Issuer::new(services.issuer(), "tagging").with_keys(services.key_set())],
            )
            .unwrap(),
        ))
        .transaction(TransactionSlot::required(DOMAIN).with_keys(tts_keys.clone()))
        .build()
        .unwrap();
    let capture_jobs = jobs.clone();
    let tagging = support::Server::start(
        axum::Router::new()
            .route(
                "/later",
                post(move |caller: Caller| {
                    let jobs = capture_jobs.clone();
                    async move {
                        let request = TokenRequest::for_audience(DOMAIN).with_scope("images:read");
                        match jobs
                            .capture(&caller, PURPOSE, request, Duration::from_secs(600))
                            .await
                        {
                            Ok(h) => (StatusCode::OK, serde_json::to_string(&h).unwrap()),
                            Err(e) => (StatusCode::BAD_REQUEST, e.to_string()),
                        }
                    }
                }),
            )
            .route_layer(layer),
    )
    .await;
    let res = support::http_client()
        .post(tagging.url("/later"))
        .header("txn-token", txn_token.secret())
        .header(
            "service-authorization",
            format!(
                "Bearer {}",
                services.token("gateway").audience("tagging").sign()
            ),
        )
        .header("x-request-id", "req-txn-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let handle: JobHandle = serde_json::from_str(&res.text().await.unwrap()).unwrap();

    // Later: the job's Txn-Token is the replacement: same txn and sub,
    // the job's scope only.
    let job = jobs.open(&handle, PURPOSE).unwrap();
    let token = job.token().await.unwrap();
    assert!(token.access_token().is_none());
    let replacement = token.transaction_token().unwrap();
    assert_ne!(replacement, txn_token.secret());
    let payload: Value = {
        use base64::Engine as _;
        let part = replacement.split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    let original: Value = {
        use base64::Engine as _;
        let part = txn_token.secret().split('.').nth(1).unwrap();
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(payload["txn"], original["txn"]);
    assert_eq!(job.txn().as_deref(), original["txn"].as_str());
    assert_eq!(payload["sub"], "https://id.example#alice");
    assert_eq!(payload["scope"], "images:read");
    assert_eq!(job.request_id(), "req-txn-1");
    let headers = token.headers();
    assert_eq!(headers["txn-token"], replacement);
    assert_eq!(headers["x-request-id"], "req-txn-1");
    assert!(headers.get("authorization").is_none());
    assert!(handle.expires_at() <= payload["exp"].as_u64().unwrap());

    // The transaction's subject revoked: the job is refused.
    // As the layer checks Transaction Tokens: by the principal of the transaction.
    assert_eq!(
        job.user().issuer(),
        format!("urn:txn-token-service:{DOMAIN}")
    );
    store.revoke_subject(job.user().issuer(), "https://id.example#alice", u64::MAX);
    assert_eq!(
        jobs.open(&handle, PURPOSE)
            .unwrap()
            .token()
            .await
            .unwrap_err()
            .kind(),
        JobErrorKind::Revoked
    );
}
