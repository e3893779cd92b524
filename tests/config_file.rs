//! `MANDATE_CONFIG`: the image_store example configured by the TOML file of
//! the "Run it in production" issue, verbatim but for paths and URLs, as a
//! real binary against a real JWKS endpoint; and files that must be refused
//! at start with a message naming the key.

mod support;

use axum::routing::get;
use serde_json::json;
use tower_mandate::testing::TestIssuer;

/// The file from the issue; `{users_jwks}` and `{service}` substituted.
const FILE: &str = r#"
[user]
mode = "required"                 # required | optional | off
[[user.issuers]]
issuer = "https://idp.test"
audiences = ["image-store"]
algorithms = ["RS256", "ES256"]
jwks_file = "{users_jwks}"   # exactly one of jwks_file, jwks_url, discovery = true
leeway = "30s"
permission_claims = ["scope", "permissions"]
role_claims = ["roles"]
[user.issuers.role_permissions]
image-admin = ["images:read:any", "images:delete:any"]

[service]
mode = "optional"
header = "service-authorization"
[[service.issuers]]
issuer = "{service}"
audiences = ["image-store"]
jwks_url = "{service}/.well-known/jwks.json"
insecure_allow_http = true
"#;

#[tokio::test]
async fn image_store_runs_from_the_issue_file() {
    let users = TestIssuer::rs256("https://idp.test").with_audience("image-store");
    let dir = support::temp_dir("config-file");
    let users_jwks = dir.join("users-jwks.json");
    std::fs::write(&users_jwks, users.jwks()).unwrap();

    // The service issuer's JWKS endpoint, a real server on 127.0.0.1.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let service_addr = listener.local_addr().unwrap();
    drop(listener);
    let service_iss = format!("http://{service_addr}");
    let services = TestIssuer::es256(service_iss.clone()).with_audience("image-store");
    let published = services.jwks();
    let _jwks = support::Server::start_on(
        service_addr,
        axum::Router::new().route(
            "/.well-known/jwks.json",
            get(move || {
                let body = published.clone();
                async move { ([("content-type", "application/json")], body) }
            }),
        ),
    )
    .await
    .unwrap();

    let file = dir.join("mandate.toml");
    std::fs::write(
        &file,
        FILE.replace("{users_jwks}", users_jwks.to_str().unwrap())
            .replace("{service}", &service_iss),
    )
    .unwrap();
    let store =
        support::Example::spawn("image_store", &[("MANDATE_CONFIG", file.to_str().unwrap())]).await;
    assert!(
        store.printed("ALICE=").is_none(),
        "no embedded issuers with a file"
    );
    let client = support::http_client();

    let alice = users
        .token("alice")
        .scope("images:write images:read")
        .sign();
    let (status, created) = store
        .call(&client, "POST", "/images", Some(&alice), None)
        .await;
    assert_eq!(status, 201, "{created}");
    let path = format!("/images/{}", created["id"].as_str().unwrap());

    // The role table of the file: image-admin reads anyone's image.
    let admin = users
        .token("root")
        .scope("images:read")
        .claim("roles", json!(["image-admin"]))
        .sign();
    let (status, _) = store.call(&client, "GET", &path, Some(&admin), None).await;
    assert_eq!(status, 200, "the role grants images:read:any");
    let bob = users.token("bob").scope("images:read").sign();
    let (status, _) = store.call(&client, "GET", &path, Some(&bob), None).await;
    assert_eq!(status, 403, "no role, not the owner");

    // The algorithm list of the file: an EdDSA user token is refused.
    let eddsa = TestIssuer::eddsa("https://idp.test").with_audience("image-store");
    let (status, _) = store
        .call(
            &client,
            "GET",
            "/me",
            Some(&eddsa.token("eve").sign()),
            None,
        )
        .await;
    assert_eq!(status, 401);

    // The service slot: keys from the JWKS URL, optional, beside a user.
    let service = services.token("archiver").scope("images:read").sign();
    let (status, me) = store
        .call(&client, "GET", "/me", Some(&alice), Some(&service))
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["service"]["sub"], "archiver");
    // The user slot is required.
    let (status, _) = store
        .call(&client, "GET", "/me", None, Some(&service))
        .await;
    assert_eq!(status, 401);
    // Leeway 30 s: a token expired 45 s ago is refused.
    let late = users
        .token("alice")
        .expired_for(std::time::Duration::from_secs(45))
        .sign();
    let (status, _) = store.call(&client, "GET", "/me", Some(&late), None).await;
    assert_eq!(status, 401);
}

#[test]
fn a_bad_file_is_refused_at_start_naming_the_key() {
    let dir = support::temp_dir("config-file-bad");
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, TestIssuer::rs256("https://idp.test").jwks()).unwrap();
    let issuer = format!(
        "[[user.issuers]]\nissuer = \"https://idp.test\"\naudiences = [\"image-store\"]\njwks_file = {:?}\n",
        jwks.to_str().unwrap()
    );
    let cases = [
        (
            "unknown key",
            format!("{issuer}leway = \"30s\"\n"),
            "user.issuers[0].leway: unknown field `leway`",
        ),
        (
            "wrong type",
            format!("{issuer}leeway = 30\n"),
            "user.issuers[0].leeway: ",
        ),
        (
            "two key sources",
            format!("{issuer}jwks_url = \"https://idp.test/jwks\"\n"),
            "user.issuers[0]: exactly one of jwks_file, jwks_url, discovery = true",
        ),
        (
            "bad URL",
            issuer.replace(
                &format!("jwks_file = {:?}", jwks.to_str().unwrap()),
                "jwks_url = \"htp:/x\"",
            ),
            "user.issuers[0].jwks_url: invalid URL \"htp:/x\"",
        ),
    ];
    for (name, text, expected) in cases {
        let file = dir.join("bad.toml");
        std::fs::write(&file, text).unwrap();
        let stderr = support::Example::refuses_to_start(
            "image_store",
            &[("MANDATE_CONFIG", file.to_str().unwrap())],
        );
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
}

#[tokio::test]
async fn image_store_is_ready_once_its_keys_load_and_serves_metrics() {
    let users = TestIssuer::rs256("https://users.example").with_audience("image-store");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let jwks_addr = listener.local_addr().unwrap();
    drop(listener);
    let jwks_url = format!("http://{jwks_addr}/jwks");
    // The identity provider is not up yet when image_store starts.
    let store = support::Example::spawn(
        "image_store",
        &[
            ("USER_ISSUER", "https://users.example"),
            ("USER_JWKS_URL", &jwks_url),
        ],
    )
    .await;
    let client = support::http_client();
    let readyz = || async {
        client
            .get(format!("{}/readyz", store.base))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(readyz().await, 503);
    assert_eq!(
        client
            .get(format!("{}/healthz", store.base))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "alive while not ready"
    );
    let published = users.jwks();
    let _jwks = support::Server::start_on(
        jwks_addr,
        axum::Router::new().route(
            "/jwks",
            get(move || {
                let body = published.clone();
                async move { body }
            }),
        ),
    )
    .await
    .unwrap();
    // Readiness probes alone (no traffic) bring the keys in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while readyz().await != 200 {
        assert!(std::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let alice = users.token("alice").scope("images:read").sign();
    let (status, _) = store.call(&client, "GET", "/me", Some(&alice), None).await;
    assert_eq!(status, 200);
    let (status, _) = store.call(&client, "GET", "/me", None, None).await;
    assert_eq!(status, 401);
    // Prometheus text, unauthenticated.
    let metrics = client
        .get(format!("{}/metrics", store.base))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    for line in [
        "mandate_requests_total{outcome=\"allowed\"} 1",
        "mandate_requests_total{outcome=\"unauthenticated\"} 1",
        "mandate_verifications_total{slot=\"user\",result=\"valid\"} 1",
        &format!("mandate_jwks_keys{{issuer=\"{jwks_url}\"}} 1"),
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
    assert!(text.contains("mandate_jwks_age_seconds"), "{text}");
    assert!(!text.contains("alice"), "{text}");
}
