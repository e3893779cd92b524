//! The relay example against the image_store example, both as real
//! binaries on 127.0.0.1: forward with a self-signed service token, the
//! allow-list, and token exchange with client credentials against
//! oidc-provider.

mod support;

use serde_json::Value;
use tower_mandate::testing::TestIssuer;

#[tokio::test]
async fn relay_forwards_the_user_and_signs_its_own_token() {
    let users = TestIssuer::rs256("https://users.example").with_audience("image-store");
    let dir = support::temp_dir("relay");
    let jwks = dir.join("users.json");
    std::fs::write(&jwks, users.jwks()).unwrap();
    let jwks = jwks.to_str().unwrap();
    let relay_port = support::free_port();
    let relay_issuer = format!("http://127.0.0.1:{relay_port}");
    let relay_jwks = format!("{relay_issuer}/.well-known/jwks.json");

    // The relay starts first, so that image_store finds its JWKS at once.
    let upstream_bind = format!("127.0.0.1:{}", support::free_port());
    let upstream_url = format!("http://{upstream_bind}");
    let bind = format!("127.0.0.1:{relay_port}");
    let relay = support::Example::spawn(
        "relay",
        &[
            ("BIND", &bind),
            ("USER_ISSUER", "https://users.example"),
            ("USER_JWKS_FILE", jwks),
            ("UPSTREAM", &upstream_url),
        ],
    )
    .await;
    let upstream = support::Example::spawn(
        "image_store",
        &[
            ("BIND", &upstream_bind),
            ("USER_ISSUER", "https://users.example"),
            ("USER_JWKS_FILE", jwks),
            ("SERVICE_ISSUER", &relay_issuer),
            ("SERVICE_JWKS_URL", &relay_jwks),
        ],
    )
    .await;
    let client = support::http_client();
    let alice = users.token("alice").scope("images:read").sign();
    let (status, me) = relay.call(&client, "GET", "/me", Some(&alice), None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["sub"], "alice");
    assert_eq!(me["service"]["sub"], Value::String(relay_issuer.clone()));
    let (status, _) = relay.call(&client, "GET", "/me", None, None).await;
    assert_eq!(status, 401, "relay verifies its callers");

    // An upstream off ALLOWED_HOSTS gets no token, so it refuses.
    let strict_port = support::free_port();
    let strict_bind = format!("127.0.0.1:{strict_port}");
    let strict = support::Example::spawn(
        "relay",
        &[
            ("BIND", &strict_bind),
            ("USER_ISSUER", "https://users.example"),
            ("USER_JWKS_FILE", jwks),
            ("UPSTREAM", &upstream.base),
            ("ALLOWED_HOSTS", "images.internal"),
        ],
    )
    .await;
    let (status, _) = strict.call(&client, "GET", "/me", Some(&alice), None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn relay_exchanges_the_user_token_at_a_real_idp() {
    let idp = support::Idp::start();
    let client = support::http_client();
    let upstream = support::Example::spawn(
        "image_store",
        &[
            ("USER_ISSUER", &idp.issuer),
            ("SERVICE_ISSUER", &idp.issuer),
            ("SERVICE_AUDIENCE", "urn:image-store-internal"),
            ("ALGORITHMS", "RS256"),
        ],
    )
    .await;
    let token_url = format!("{}/token", idp.issuer);
    let relay_bind = format!("127.0.0.1:{}", support::free_port());
    let relay = support::Example::spawn(
        "relay",
        &[
            ("BIND", &relay_bind),
            ("USER_ISSUER", &idp.issuer),
            ("USER_AUDIENCE", "relay"),
            ("ALGORITHMS", "RS256"),
            ("UPSTREAM", &upstream.base),
            ("PROPAGATION", "exchange"),
            ("EXCHANGE_AUDIENCE", "image-store"),
            ("TOKEN_URL", &token_url),
            ("CLIENT_ID", "relay-exchange"),
            (
                "CLIENT_SECRET",
                "relay-exchange-secret-0123456789abcdef01234567",
            ),
            ("SCOPE", "images:read"),
            ("RESOURCE", "urn:image-store-internal"),
        ],
    )
    .await;
    // alice's token is for the relay, not for image_store.
    let alice = idp
        .user_token(&client, "alice", "relay", "images:read")
        .await;
    let (status, me) = relay.call(&client, "GET", "/me", Some(&alice), None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["sub"], "alice");
    assert_eq!(me["actors"], serde_json::json!(["relay-exchange"]));
    assert_eq!(me["service"]["sub"], "relay-exchange");
}

#[tokio::test]
async fn relay_sends_no_token_where_a_redirect_points() {
    // The allowed upstream answers 302 to localhost on another port: the
    // relay's client refuses the hop, and the listener there sees nothing.
    use axum::http::header::LOCATION;
    let users = TestIssuer::rs256("https://users.example").with_audience("image-store");
    let dir = support::temp_dir("relay-redirect");
    let jwks = dir.join("users.json");
    std::fs::write(&jwks, users.jwks()).unwrap();
    let sniffer = support::Sniffer::start(8).await;
    let target = format!("http://localhost:{}/me", sniffer.addr.port());
    let redirector = support::Server::start(axum::Router::new().route(
        "/me",
        axum::routing::get(move || {
            let target = target.clone();
            async move { (axum::http::StatusCode::FOUND, [(LOCATION, target)]) }
        }),
    ))
    .await;
    let relay = support::Example::spawn(
        "relay",
        &[
            ("USER_ISSUER", "https://users.example"),
            ("USER_JWKS_FILE", jwks.to_str().unwrap()),
            ("UPSTREAM", &format!("http://{}", redirector.addr)),
            ("ALLOWED_HOSTS", "127.0.0.1"),
        ],
    )
    .await;
    let client = support::http_client();
    let alice = users.token("alice").scope("images:read").sign();
    let (status, _) = relay.call(&client, "GET", "/me", Some(&alice), None).await;
    assert_eq!(status, 502, "the redirect is refused");
    sniffer.assert_no_token(&[&alice], "relay");
    assert!(sniffer.heads().is_empty(), "{:?}", sniffer.heads());
}

#[tokio::test]
async fn relay_runs_from_a_config_file_with_providers_and_destinations() {
    let users = TestIssuer::rs256("https://users.example").with_audience("image-store");
    let dir = support::temp_dir("relay-config");
    let users_jwks = dir.join("users.json");
    std::fs::write(&users_jwks, users.jwks()).unwrap();
    // Relay's key, a PKCS#8 PEM file made by rcgen; its public half is
    // what image_store trusts for the service slot.
    let pem = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem();
    let key_file = dir.join("relay-key.pem");
    std::fs::write(&key_file, &pem).unwrap();
    let public = tower_mandate::mint::SigningKey::from_pkcs8_pem(
        tower_mandate::keys::Algorithm::ES256,
        "relay-1",
        &pem,
    )
    .unwrap()
    .jwks();
    let relay_jwks = dir.join("relay.json");
    std::fs::write(&relay_jwks, public).unwrap();

    let upstream = support::Example::spawn(
        "image_store",
        &[
            ("USER_ISSUER", "https://users.example"),
            ("USER_JWKS_FILE", users_jwks.to_str().unwrap()),
            ("SERVICE_ISSUER", "https://relay.internal"),
            ("SERVICE_JWKS_FILE", relay_jwks.to_str().unwrap()),
        ],
    )
    .await;
    let port = upstream.base.rsplit(':').next().unwrap().to_owned();
    let config = format!(
        r#"
[[user.issuers]]
issuer = "https://users.example"
audiences = ["image-store"]
jwks_file = {users:?}

[providers.me]
kind = "self_signed"
issuer = "https://relay.internal"
private_key_file = {key:?}
key_algorithm = "ES256"
key_id = "relay-1"
lifetime = "2m"

[[propagate.destinations]]
host = "127.0.0.1"
port = {port}
insecure_http = true
user_token = "forward"
service_token = {{ provider = "me", audience = "image-store" }}
"#,
        users = users_jwks.to_str().unwrap(),
        key = key_file.to_str().unwrap(),
    );
    let file = dir.join("relay.toml");
    std::fs::write(&file, config).unwrap();
    let relay = support::Example::spawn(
        "relay",
        &[
            ("MANDATE_CONFIG", file.to_str().unwrap()),
            ("UPSTREAM", &upstream.base),
        ],
    )
    .await;
    let client = support::http_client();
    let alice = users.token("alice").scope("images:read").sign();
    let (status, me) = relay.call(&client, "GET", "/me", Some(&alice), None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["sub"], "alice");
    assert_eq!(me["service"]["sub"], "https://relay.internal");
    let (status, _) = relay.call(&client, "GET", "/me", None, None).await;
    assert_eq!(status, 401, "the file's user slot is required");
}
