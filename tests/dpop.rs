//! DPoP (RFC 9449) at a real axum server on 127.0.0.1, with proofs made by
//! jwcrypto (`tests/support/dpop_proofs.py`), an implementation independent
//! of the crate: a valid proof passes, and each broken one is refused with
//! the challenge of RFC 9449 §7.1. Replays are refused across two replicas
//! sharing one real redis-server; server nonces (§8) are handed out and
//! required.

mod support;

use std::collections::HashMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tower_mandate::binding::{Dpop, Nonces};
use tower_mandate::revocation::{RedisStore, Revocation};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{Caller, Issuer, MandateLayer, Slot, Verifier};

use support::{Redis, Server, free_port, http_client, manifest_dir};

const AUD: &str = "images";

/// Run the proof minter with `request` on stdin.
fn minter(request: &Value) -> Value {
    let python = std::env::var("MANDATE_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| manifest_dir().join(".venv/bin/python"));
    let mut child = Command::new(&python)
        .arg("tests/support/dpop_proofs.py")
        .current_dir(manifest_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; run scripts/test.sh", python.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dpop_proofs.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The minter's keys, kept between calls (tokens are bound to them).
struct Keys {
    keys: Value,
    jkt: String,
    rsa_jkt: String,
}

impl Keys {
    fn new() -> Keys {
        let out = minter(&json!({"cases": []}));
        Keys {
            keys: out["keys"].clone(),
            jkt: out["jkt"].as_str().unwrap().to_owned(),
            rsa_jkt: out["rsa_jkt"].as_str().unwrap().to_owned(),
        }
    }

    /// Proofs for `cases` (see the minter's docs), by name.
    fn proofs(&self, cases: Vec<Value>) -> HashMap<String, String> {
        let out = minter(&json!({"keys": self.keys, "cases": cases}));
        out["proofs"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn me(caller: Caller) -> String {
    json!({
        "sub": caller.user().map(|u| u.subject().to_owned()),
        "jkt": caller.dpop_jkt(),
    })
    .to_string()
}

/// An image store on `port` taking DPoP as `dpop` says.
async fn server(idp: &TestIssuer, port: u16, dpop: Dpop, revocation: Option<Revocation>) -> Server {
    let verifier =
        Verifier::new([Issuer::new(idp.issuer(), AUD).with_keys(idp.key_set())]).unwrap();
    let mut builder = MandateLayer::builder().user(Slot::required(verifier).with_dpop(dpop));
    if let Some(r) = revocation {
        builder = builder.with_revocation(r);
    }
    let app = Router::new()
        .route("/images/{id}", get(me).post(me))
        .route_layer(builder.build().unwrap());
    Server::start_on(([127, 0, 0, 1], port).into(), app)
        .await
        .unwrap()
}

struct Answer {
    status: StatusCode,
    challenge: String,
    nonce: Option<String>,
    body: String,
}

async fn send(
    method: reqwest::Method,
    url: &str,
    authorization: Option<String>,
    proofs: &[&str],
) -> Answer {
    let mut req = http_client().request(method, url);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    for p in proofs {
        req = req.header("dpop", *p);
    }
    let res = req.send().await.unwrap();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    Answer {
        status: res.status(),
        challenge: header("www-authenticate").unwrap_or_default(),
        nonce: header("dpop-nonce"),
        body: res.text().await.unwrap(),
    }
}

fn case(name: &str, htm: &str, htu: &str, token: &str) -> Value {
    json!({"name": name, "htm": htm, "htu": htu, "token": token})
}

fn with(mut case: Value, key: &str, value: Value) -> Value {
    case[key] = value;
    case
}

#[tokio::test]
async fn proofs_from_jwcrypto_pass_and_every_broken_one_is_refused() {
    let idp = TestIssuer::es256("https://id.example");
    let keys = Keys::new();
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let _server = server(&idp, port, Dpop::allowed().with_origin(&origin), None).await;
    let bound = idp
        .token("alice")
        .audience(AUD)
        .claim("cnf", json!({"jkt": keys.jkt}))
        .sign();
    let rsa_bound = idp
        .token("alice")
        .audience(AUD)
        .claim("cnf", json!({"jkt": keys.rsa_jkt}))
        .sign();
    let plain = idp.token("bob").audience(AUD).sign();
    let url = format!("{origin}/images/1");
    let t = now() as i64;
    let mut cases = vec![
        case("valid", "GET", &url, &bound),
        case("valid_query", "GET", &url, &bound),
        case("query_in_htu", "GET", &format!("{url}?size=9"), &bound),
        case(
            "upper_host",
            "GET",
            &format!("HTTP://127.0.0.1:{port}/images/1"),
            &bound,
        ),
        with(
            case("rs256", "GET", &url, &rsa_bound),
            "variant",
            json!("rs256"),
        ),
        with(
            case("ps256", "GET", &url, &rsa_bound),
            "variant",
            json!("ps256"),
        ),
        case("wrong_htm", "POST", &url, &bound),
        case(
            "other_host",
            "GET",
            &format!("http://other.example:{port}/images/1"),
            &bound,
        ),
        case(
            "other_port",
            "GET",
            &format!("http://127.0.0.1:{}/images/1", port + 1),
            &bound,
        ),
        case("other_path", "GET", &format!("{origin}/images/2"), &bound),
        case(
            "https",
            "GET",
            &format!("https://127.0.0.1:{port}/images/1"),
            &bound,
        ),
        with(case("stale", "GET", &url, &bound), "iat", json!(t - 600)),
        with(case("future", "GET", &url, &bound), "iat", json!(t + 600)),
        with(
            case("other_key", "GET", &url, &bound),
            "key",
            json!("other"),
        ),
        case("replayed", "GET", &url, &bound),
        case("two_a", "GET", &url, &bound),
        case("two_b", "GET", &url, &bound),
    ];
    for variant in [
        "alg_none",
        "hmac",
        "private_jwk",
        "wrong_typ",
        "no_typ",
        "no_jwk",
        "jwk_with_kid_only",
        "x5c",
        "no_ath",
        "wrong_ath",
        "bad_signature",
        "no_jti",
        "no_iat",
        "no_htm",
        "no_htu",
        "iat_string",
        "signed_by_other",
    ] {
        cases.push(with(
            case(variant, "GET", &url, &bound),
            "variant",
            json!(variant),
        ));
    }
    let proofs = keys.proofs(cases);
    let p = |name: &str| proofs[name].as_str();
    let dpop = |token: &str| Some(format!("DPoP {token}"));

    // A valid proof passes; the caller names the key's thumbprint.
    let ok = send(reqwest::Method::GET, &url, dpop(&bound), &[p("valid")]).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let body: Value = serde_json::from_str(&ok.body).unwrap();
    assert_eq!(body["jkt"], keys.jkt.as_str());
    // The query of the request, and of `htu`, is ignored; scheme and host
    // compare case-insensitively.
    for (name, path) in [
        ("valid_query", "/images/1?size=2"),
        ("query_in_htu", "/images/1"),
        ("upper_host", "/images/1"),
    ] {
        let a = send(
            reqwest::Method::GET,
            &format!("{origin}{path}"),
            dpop(&bound),
            &[p(name)],
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{name}: {}", a.body);
    }
    for name in ["rs256", "ps256"] {
        let a = send(reqwest::Method::GET, &url, dpop(&rsa_bound), &[p(name)]).await;
        assert_eq!(a.status, StatusCode::OK, "{name}: {}", a.body);
    }

    // The same proof twice: the second is a replay.
    let first = send(reqwest::Method::GET, &url, dpop(&bound), &[p("replayed")]).await;
    assert_eq!(first.status, StatusCode::OK);
    let again = send(reqwest::Method::GET, &url, dpop(&bound), &[p("replayed")]).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert!(
        again.challenge.starts_with("DPoP algs=")
            && again
                .challenge
                .contains(r#"error="invalid_dpop_proof", error_description="DPoP proof replayed""#),
        "{}",
        again.challenge
    );

    // Each broken proof: 401 with `DPoP algs="…", error="invalid_dpop_proof"`.
    let broken = [
        "wrong_htm",
        "other_host",
        "other_port",
        "other_path",
        "https",
        "stale",
        "future",
        "other_key",
        "alg_none",
        "hmac",
        "private_jwk",
        "wrong_typ",
        "no_typ",
        "no_jwk",
        "jwk_with_kid_only",
        "x5c",
        "no_ath",
        "wrong_ath",
        "bad_signature",
        "no_jti",
        "no_iat",
        "no_htm",
        "no_htu",
        "iat_string",
        "signed_by_other",
    ];
    for name in broken {
        let a = send(reqwest::Method::GET, &url, dpop(&bound), &[p(name)]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{name}: {}", a.body);
        assert!(
            a.challenge.starts_with("DPoP algs=\"ES256 ES384 EdDSA")
                && a.challenge.contains("error=\"invalid_dpop_proof\""),
            "{name}: {}",
            a.challenge
        );
        assert!(
            !a.body.contains(&bound) && !a.challenge.contains(p(name)),
            "{name} echoed"
        );
    }

    // Two DPoP headers.
    let two = send(
        reqwest::Method::GET,
        &url,
        dpop(&bound),
        &[p("two_a"), p("two_b")],
    )
    .await;
    assert_eq!(two.status, StatusCode::UNAUTHORIZED);
    assert!(
        two.challenge.contains("invalid_dpop_proof"),
        "{}",
        two.challenge
    );
    // No proof at all with the DPoP scheme.
    let none = send(reqwest::Method::GET, &url, dpop(&bound), &[]).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert!(
        none.challenge.contains("invalid_dpop_proof"),
        "{}",
        none.challenge
    );

    // A bound token sent as a bearer token is a stolen token.
    let stolen = send(
        reqwest::Method::GET,
        &url,
        Some(format!("Bearer {bound}")),
        &[],
    )
    .await;
    assert_eq!(stolen.status, StatusCode::UNAUTHORIZED);
    assert!(
        stolen
            .challenge
            .starts_with("Bearer error=\"invalid_token\"")
            && stolen.challenge.contains("DPoP algs=\""),
        "{}",
        stolen.challenge
    );
    // An unbound token: as bearer it passes; with the DPoP scheme it does not.
    let a = send(
        reqwest::Method::GET,
        &url,
        Some(format!("Bearer {plain}")),
        &[],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let a = send(reqwest::Method::GET, &url, dpop(&plain), &[p("valid")]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(
        a.challenge.contains("error=\"invalid_token\""),
        "{}",
        a.challenge
    );
    // No token: both schemes are offered (RFC 9449 §7.2).
    let a = send(reqwest::Method::GET, &url, None, &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(
        a.challenge.starts_with("Bearer, DPoP algs=\""),
        "{}",
        a.challenge
    );
}

#[tokio::test]
async fn a_slot_that_requires_dpop_refuses_bearer_tokens_and_asks_for_its_nonce() {
    let idp = TestIssuer::es256("https://id.example");
    let keys = Keys::new();
    let port = free_port();
    let origin = format!("http://127.0.0.1:{port}");
    let nonces = Nonces::new(b"a nonce secret of at least 32 bytes!").unwrap();
    let dpop = Dpop::required()
        .with_origin(&origin)
        .with_algorithms([tower_mandate::keys::Algorithm::ES256])
        .with_nonces(nonces);
    let _server = server(&idp, port, dpop, None).await;
    let bound = idp
        .token("alice")
        .audience(AUD)
        .claim("cnf", json!({"jkt": keys.jkt}))
        .sign();
    let plain = idp.token("bob").audience(AUD).sign();
    let url = format!("{origin}/images/7");

    // A bearer token, and a Bearer credential that is not even a JWT
    // (refused for the scheme before it is parsed): the same answer.
    for credential in [format!("Bearer {plain}"), "Bearer abc.def.ghi".into()] {
        let a = send(reqwest::Method::POST, &url, Some(credential), &[]).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            a.challenge,
            r#"DPoP algs="ES256", error="invalid_token", error_description="DPoP required""#
        );
    }
    let a = send(reqwest::Method::POST, &url, None, &[]).await;
    assert_eq!(a.challenge, r#"DPoP algs="ES256""#);

    // Without the nonce: `use_dpop_nonce` and a fresh `DPoP-Nonce`.
    let first = keys.proofs(vec![case("first", "POST", &url, &bound)]);
    let a = send(
        reqwest::Method::POST,
        &url,
        Some(format!("DPoP {bound}")),
        &[&first["first"]],
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(
        a.challenge.contains("error=\"use_dpop_nonce\""),
        "{}",
        a.challenge
    );
    let nonce = a.nonce.expect("a DPoP-Nonce header");
    // With it: accepted. A made-up nonce is not.
    let proofs = keys.proofs(vec![
        with(
            case("with_nonce", "POST", &url, &bound),
            "nonce",
            json!(nonce),
        ),
        with(
            case("forged", "POST", &url, &bound),
            "nonce",
            json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ),
    ]);
    let a = send(
        reqwest::Method::POST,
        &url,
        Some(format!("DPoP {bound}")),
        &[&proofs["with_nonce"]],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{} {}", a.challenge, a.body);
    let a = send(
        reqwest::Method::POST,
        &url,
        Some(format!("DPoP {bound}")),
        &[&proofs["forged"]],
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.challenge.contains("use_dpop_nonce") && a.nonce.is_some());
}

#[tokio::test]
async fn a_proof_replayed_at_another_replica_is_refused_through_redis() {
    let redis = Redis::start();
    let idp = TestIssuer::es256("https://id.example");
    let keys = Keys::new();
    // Two replicas behind one name: the same origin, one shared store.
    let (a_port, b_port) = (free_port(), free_port());
    let origin = "https://images.example";
    let store = || Revocation::new(RedisStore::new(&redis.url).unwrap());
    let _a = server(
        &idp,
        a_port,
        Dpop::allowed().with_origin(origin),
        Some(store()),
    )
    .await;
    let _b = server(
        &idp,
        b_port,
        Dpop::allowed().with_origin(origin),
        Some(store()),
    )
    .await;
    let bound = idp
        .token("alice")
        .audience(AUD)
        .claim("cnf", json!({"jkt": keys.jkt}))
        .sign();
    let proofs = keys.proofs(vec![
        case("once", "GET", &format!("{origin}/images/3"), &bound),
        case("other", "GET", &format!("{origin}/images/3"), &bound),
    ]);
    let at = |port: u16| format!("http://127.0.0.1:{port}/images/3");
    let auth = || Some(format!("DPoP {bound}"));
    let a = send(
        reqwest::Method::GET,
        &at(a_port),
        auth(),
        &[&proofs["once"]],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{} {}", a.challenge, a.body);
    let b = send(
        reqwest::Method::GET,
        &at(b_port),
        auth(),
        &[&proofs["once"]],
    )
    .await;
    assert_eq!(
        b.status,
        StatusCode::UNAUTHORIZED,
        "replayed at the other replica"
    );
    assert!(
        b.challenge.starts_with("DPoP algs=") && b.challenge.contains("DPoP proof replayed"),
        "{}",
        b.challenge
    );
    // A new proof is fine at either.
    let b = send(
        reqwest::Method::GET,
        &at(b_port),
        auth(),
        &[&proofs["other"]],
    )
    .await;
    assert_eq!(b.status, StatusCode::OK);
    // Redis holds the record until the proof could no longer be accepted.
    let mut conn = redis::Client::open(redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys_in_redis: Vec<String> = redis::cmd("KEYS")
        .arg("*seen*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys_in_redis.len(), 2, "{keys_in_redis:?}");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&keys_in_redis[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((60..=120).contains(&ttl), "ttl {ttl}");
}

#[tokio::test]
async fn grpc_carries_the_proof_in_dpop_metadata() {
    use tonic::transport::{Channel, Server};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let idp = TestIssuer::es256("https://id.example");
    let keys = Keys::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let origin = format!("http://{addr}");
    let verifier =
        Verifier::new([Issuer::new(idp.issuer(), AUD).with_keys(idp.key_set())]).unwrap();
    let layer = MandateLayer::builder()
        .user(Slot::required(verifier).with_dpop(Dpop::required().with_origin(&origin)))
        .build()
        .unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        Server::builder()
            .layer(layer)
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    let bound = idp
        .token("alice")
        .audience(AUD)
        .claim("cnf", json!({"jkt": keys.jkt}))
        .sign();
    // gRPC is POST to /package.Service/Method.
    let htu = format!("{origin}/grpc.health.v1.Health/Check");
    let proofs = keys.proofs(vec![
        case("ok", "POST", &htu, &bound),
        case("wrong_method", "GET", &htu, &bound),
    ]);
    let channel = Channel::from_shared(origin.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let check = |proof: Option<&str>| {
        let mut request = tonic::Request::new(HealthCheckRequest {
            service: String::new(),
        });
        let metadata = request.metadata_mut();
        metadata.insert("authorization", format!("DPoP {bound}").parse().unwrap());
        if let Some(p) = proof {
            metadata.insert("dpop", p.parse().unwrap());
        }
        let mut client = HealthClient::new(channel.clone());
        async move { client.check(request).await.map(|_| ()) }
    };
    check(Some(&proofs["ok"]))
        .await
        .expect("a valid proof in metadata");
    for proof in [
        Some(proofs["ok"].as_str()),
        Some(&proofs["wrong_method"]),
        None,
    ] {
        let status = check(proof).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
        let challenge = status
            .metadata()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap();
        assert!(
            challenge.starts_with("DPoP algs=") && challenge.contains("invalid_dpop_proof"),
            "{challenge}"
        );
    }
}

/// The image_store example from `MANDATE_CONFIG` with the DPoP keys of the
/// issue: every route answers DPoP requests as it answers bearer requests,
/// proofs checked against the address it listens on.
#[tokio::test]
async fn image_store_takes_dpop_from_its_config_file() {
    let users = TestIssuer::es256("https://idp.test").with_audience("image-store");
    let keys = Keys::new();
    let dir = support::temp_dir("dpop-config");
    let jwks = dir.join("users-jwks.json");
    std::fs::write(&jwks, users.jwks()).unwrap();
    let file = dir.join("mandate.toml");
    std::fs::write(
        &file,
        format!(
            r#"
[user]
mode = "required"
dpop = "allowed"          # "bearer" (the default), "allowed" or "required"
dpop_max_age = "60s"
[[user.issuers]]
issuer = "https://idp.test"
audiences = ["image-store"]
algorithms = ["ES256"]
jwks_file = {jwks:?}
"#
        ),
    )
    .unwrap();
    let store =
        support::Example::spawn("image_store", &[("MANDATE_CONFIG", file.to_str().unwrap())]).await;
    let all = "images:read images:write images:delete";
    let mut flavors = Vec::new();
    for dpop in [false, true] {
        let token = |sub: &str, scope: &str| {
            let t = users.token(sub).scope(scope);
            if dpop {
                t.claim("cnf", json!({"jkt": keys.jkt})).sign()
            } else {
                t.sign()
            }
        };
        let (alice, bob, weak) = (
            token("alice", all),
            token("bob", "images:read"),
            token("carol", "images:read"),
        );
        let send_as = |method: reqwest::Method, path: String, token: Option<String>| {
            let url = format!("{}{path}", store.base);
            let keys = &keys;
            async move {
                let Some(token) = token else {
                    return send(method, &url, None, &[]).await;
                };
                if !dpop {
                    return send(method, &url, Some(format!("Bearer {token}")), &[]).await;
                }
                let htu = url.split('?').next().unwrap().to_owned();
                let proofs = keys.proofs(vec![case("p", method.as_str(), &htu, &token)]);
                send(method, &url, Some(format!("DPoP {token}")), &[&proofs["p"]]).await
            }
        };
        let created = send_as(reqwest::Method::POST, "/images".into(), Some(alice.clone())).await;
        let id = serde_json::from_str::<Value>(&created.body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let image = format!("/images/{id}");
        let weak_upload = send_as(reqwest::Method::POST, "/images".into(), Some(weak)).await;
        let answers = [
            created.status,
            send_as(reqwest::Method::GET, image.clone(), Some(alice.clone()))
                .await
                .status,
            send_as(reqwest::Method::GET, image.clone(), Some(bob))
                .await
                .status,
            weak_upload.status,
            send_as(reqwest::Method::DELETE, image.clone(), Some(alice.clone()))
                .await
                .status,
            send_as(reqwest::Method::GET, image.clone(), Some(alice))
                .await
                .status,
            send_as(reqwest::Method::GET, image, None).await.status,
        ];
        // A guard's refusal after a DPoP request challenges with DPoP.
        let scheme = if dpop {
            "DPoP algs=\"ES256"
        } else {
            "Bearer error"
        };
        assert!(
            weak_upload.challenge.starts_with(scheme),
            "{}",
            weak_upload.challenge
        );
        assert!(
            weak_upload.challenge.contains("insufficient_scope"),
            "{}",
            weak_upload.challenge
        );
        flavors.push(answers.map(|s| s.as_u16()));
    }
    assert_eq!(flavors[0], [201, 200, 403, 403, 204, 404, 401]);
    assert_eq!(flavors[1], flavors[0], "DPoP answers as bearer does");
}
