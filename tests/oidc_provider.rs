//! Against a real identity provider, panva's oidc-provider (npm), started by
//! the test on 127.0.0.1: OIDC discovery, client_credentials access tokens
//! (RFC 9068 `at+jwt`) accepted, keys rotated and the new tokens accepted;
//! Keycloak-shaped access tokens verified by the Keycloak preset.

mod support;

use std::time::Duration;

use tower_mandate::{Issuer, MandateLayer, Slot, Verifier, keys::JwksSource};

const RELAY_SECRET: &str = "relay-secret-0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn discovery_client_credentials_and_rotation() {
    let idp = support::Idp::start();
    let client = support::http_client();
    let keys = JwksSource::discovery(idp.issuer.clone())
        .insecure_allow_http()
        .with_cooldown(Duration::from_millis(200))
        .build()
        .unwrap();
    let verifier = Verifier::new([Issuer::new(idp.issuer.clone(), "image-store")
        .require_typ("at+jwt")
        .with_jwks(keys.clone())])
    .unwrap();

    let first = idp
        .client_credentials(&client, "relay", RELAY_SECRET, "images:read images:write")
        .await;
    let p = verifier.verify_async(&first).await.unwrap();
    assert_eq!(p.subject(), "relay");
    assert_eq!(p.issuer(), idp.issuer);
    assert!(p.permissions().contains("images:read"));
    assert!(p.permissions().contains("images:write"));
    assert_eq!(keys.stats().fetches, 1);

    // The IdP rotates its signing key; the next token has a new kid.
    let rotated = idp.rotate(&client).await;
    assert_eq!(rotated["kids"].as_array().unwrap().len(), 2);
    let second = idp
        .client_credentials(&client, "relay", RELAY_SECRET, "images:read")
        .await;
    assert_ne!(kid(&first), kid(&second));
    let p = verifier.verify_async(&second).await.unwrap();
    assert_eq!(p.subject(), "relay");
    assert_eq!(keys.stats().refetches_on_miss, 1);
    // The old key is still published: the first token still verifies.
    assert!(verifier.verify_async(&first).await.is_ok());
}

#[tokio::test]
async fn idp_tokens_through_the_layer() {
    let idp = support::Idp::start();
    let client = support::http_client();
    let keys = JwksSource::discovery(idp.issuer.clone())
        .insecure_allow_http()
        .build()
        .unwrap();
    keys.prefetch();
    let service = Verifier::new([Issuer::new(idp.issuer.clone(), "image-store")
        .require_typ("at+jwt")
        .with_jwks(keys)])
    .unwrap();
    let layer = MandateLayer::builder()
        .service(Slot::required(service))
        .build()
        .unwrap();
    async fn me(caller: tower_mandate::Caller) -> String {
        caller.service().unwrap().subject().to_owned()
    }
    let app = axum::Router::new()
        .route("/me", axum::routing::get(me))
        .route_layer(layer);
    let server = support::Server::start(app).await;
    let token = idp
        .client_credentials(&client, "relay", RELAY_SECRET, "images:read")
        .await;
    let res = client
        .get(server.url("/me"))
        .header("service-authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "relay");
    // A token whose signature was tampered with is refused.
    let res = client
        .get(server.url("/me"))
        .header(
            "service-authorization",
            format!("Bearer {}x", &token[..token.len() - 1]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

fn kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn image_store_binary_with_a_jwks_url_and_discovery() {
    use tower_mandate::testing::TestIssuer;
    let idp = support::Idp::start();
    let client = support::http_client();
    // Users: keys from a JWKS URL served by a real axum endpoint.
    let users = TestIssuer::rs256("https://users.example").with_audience("image-store");
    let jwks = users.jwks();
    let jwks_server = support::Server::start(
        axum::Router::new().route("/jwks", axum::routing::get(move || async move { jwks })),
    )
    .await;
    // Services: the oidc-provider, found by discovery from SERVICE_ISSUER.
    let server = support::Example::spawn(
        "image_store",
        &[
            ("USER_ISSUER", "https://users.example"),
            ("USER_JWKS_URL", &jwks_server.url("/jwks")),
            ("SERVICE_ISSUER", &idp.issuer),
            ("VERIFIED_CACHE", "off"),
            ("KEY_COOLDOWN_SECS", "1"),
        ],
    )
    .await;
    let user = users.token("alice").scope("images:read").sign();
    let service = idp
        .client_credentials(&client, "relay", RELAY_SECRET, "images:read")
        .await;
    let (status, me) = server
        .call(&client, "GET", "/me", Some(&user), Some(&service))
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["sub"], "alice");
    assert_eq!(me["service"]["sub"], "relay");
}

const EXCHANGE_SECRET: &str = "relay-exchange-secret-0123456789abcdef01234567";

#[tokio::test]
async fn client_credentials_and_token_exchange_with_an_actor() {
    use tower_mandate::provider::{
        ClientAuth, ClientCredentials, TokenExchange, TokenProvider, TokenRequest,
    };
    let idp = support::Idp::start();
    let client = support::http_client();
    let token_url = format!("{}/token", idp.issuer);
    // This service's own token, by client credentials (client_secret_basic).
    let own = ClientCredentials::builder(
        token_url.clone(),
        "relay",
        ClientAuth::SecretBasic(RELAY_SECRET.into()),
    )
    .insecure_allow_http()
    .build();
    let own_request = TokenRequest::default()
        .with_scope("images:read")
        .with_resource("urn:image-store");
    // client_secret_post works too, for another client.
    let archiver = ClientCredentials::builder(
        token_url.clone(),
        "archiver",
        ClientAuth::SecretPost("archiver-secret-0123456789abcdef0123456789ab".into()),
    )
    .insecure_allow_http()
    .build();
    let keys = JwksSource::discovery(idp.issuer.clone())
        .insecure_allow_http()
        .build()
        .unwrap();
    let verifier = |aud: &str| {
        Verifier::new([Issuer::new(idp.issuer.clone(), aud)
            .require_typ("at+jwt")
            .with_jwks(keys.clone())])
        .unwrap()
    };
    let p = verifier("image-store")
        .verify_async(archiver.token(own_request.clone()).await.unwrap().secret())
        .await
        .unwrap();
    assert_eq!(p.subject(), "archiver");

    // The user's token, exchanged for one meant for service-b, with this
    // service as the actor.
    let user = idp
        .user_token(&client, "alice", "image-store", "images:read")
        .await;
    let exchange = TokenExchange::builder(
        token_url,
        "relay-exchange",
        ClientAuth::SecretBasic(EXCHANGE_SECRET.into()),
    )
    .insecure_allow_http()
    .with_actor(own, own_request)
    .build();
    let request = TokenRequest::for_audience("service-b").with_scope("images:read");
    let exchanged = exchange
        .token(request.clone().with_subject_token(user.as_str()))
        .await
        .unwrap();
    let p = verifier("service-b")
        .verify_async(exchanged.secret())
        .await
        .unwrap();
    assert_eq!(p.subject(), "alice");
    assert_eq!(
        p.actors().iter().map(|a| a.subject()).collect::<Vec<_>>(),
        ["relay"]
    );
    // The original token is not for service-b.
    assert!(verifier("service-b").verify_async(&user).await.is_err());
    // Cached per subject token and audience: the same exchange is not repeated.
    let again = exchange
        .token(request.with_subject_token(user.as_str()))
        .await
        .unwrap();
    assert_eq!(again.secret(), exchanged.secret());
    // Without a subject token there is nothing to exchange.
    assert!(
        exchange
            .token(TokenRequest::for_audience("x"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn three_hops_with_token_exchange_show_the_actor_at_the_end() {
    use axum::Json;
    use axum::routing::get;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use tower::{Service, ServiceBuilder, ServiceExt};
    use tower_mandate::propagate::{Destination, PropagateLayer};
    use tower_mandate::provider::{ClientAuth, ClientCredentials, TokenExchange, TokenRequest};

    let idp = support::Idp::start();
    let client = support::http_client();
    let token_url = format!("{}/token", idp.issuer);
    let keys = JwksSource::discovery(idp.issuer.clone())
        .insecure_allow_http()
        .build()
        .unwrap();
    let verifier = |aud: &str| {
        Verifier::new([Issuer::new(idp.issuer.clone(), aud)
            .require_typ("at+jwt")
            .with_jwks(keys.clone())])
        .unwrap()
    };

    // B: accepts only tokens for service-b, and shows who acts for whom.
    async fn me(caller: tower_mandate::Caller) -> Json<serde_json::Value> {
        Json(serde_json::json!({
            "user": caller.user().map(|u| u.subject().to_owned()),
            "actors": caller.actors().iter().map(|a| a.subject().to_owned()).collect::<Vec<_>>(),
        }))
    }
    let b = support::Server::start(
        axum::Router::new()
            .route("/me", get(me))
            .route_layer(MandateLayer::new(verifier("service-b"))),
    )
    .await;

    // A: accepts the user's token for image-store, exchanges it for B.
    let own = ClientCredentials::builder(
        token_url.clone(),
        "relay",
        ClientAuth::SecretBasic(RELAY_SECRET.into()),
    )
    .insecure_allow_http()
    .build();
    let exchange = TokenExchange::builder(
        token_url,
        "relay-exchange",
        ClientAuth::SecretBasic(EXCHANGE_SECRET.into()),
    )
    .insecure_allow_http()
    .with_actor(
        own,
        TokenRequest::default()
            .with_scope("images:read")
            .with_resource("urn:image-store"),
    )
    .build();
    let outgoing = ServiceBuilder::new()
        .layer(
            PropagateLayer::builder()
                .add_destination(
                    Destination::insecure_http("127.0.0.1", b.addr.port()).exchange_user_token(
                        exchange,
                        TokenRequest::for_audience("service-b").with_scope("images:read"),
                    ),
                )
                .build(),
        )
        .service(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>(),
        );
    let b_url = b.url("/me");
    let a = support::Server::start(
        axum::Router::new()
            .route(
                "/me",
                get(move || {
                    let mut outgoing = outgoing.clone();
                    let url = b_url.clone();
                    async move {
                        let req = http::Request::get(url)
                            .body(Full::new(Bytes::new()))
                            .unwrap();
                        let res = outgoing.ready().await.unwrap().call(req).await.unwrap();
                        let status = res.status();
                        let body = res.into_body().collect().await.unwrap().to_bytes();
                        (status, body)
                    }
                }),
            )
            .route_layer(MandateLayer::new(verifier("image-store"))),
    )
    .await;

    let user = idp
        .user_token(&client, "alice", "image-store", "images:read")
        .await;
    let res = client
        .get(a.url("/me"))
        .header("authorization", format!("Bearer {user}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["user"], "alice", "{body}");
    assert_eq!(body["actors"], serde_json::json!(["relay"]), "{body}");
    // Sent as received, the user's token would not be accepted by B.
    let res = client
        .get(b.url("/me"))
        .header("authorization", format!("Bearer {user}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

/// The Keycloak preset against a real identity provider (oidc-provider,
/// made to issue Keycloak's access-token shape for one client): keys by
/// discovery, roles through the preset's claim paths and the role table.
#[tokio::test]
async fn the_keycloak_preset_against_a_real_provider() {
    let idp = support::Idp::start();
    let client = support::http_client();
    let keys = JwksSource::discovery(&idp.issuer)
        .insecure_allow_http()
        .build()
        .unwrap();
    let verifier = Verifier::new([Issuer::keycloak(&idp.issuer, "image-store")
        .with_permissions(
            tower_mandate::permission::PermissionMapping::default()
                .with_role_claims(["/realm_access/roles", "/resource_access/image-store/roles"])
                .add_role("image-admin", ["images:read:any"])
                .add_role("uploader", ["images:write"]),
        )
        .with_jwks(keys)])
    .unwrap();
    let shaped = idp
        .client_credentials(
            &client,
            "kc-shaped",
            "kc-shaped-secret-0123456789abcdef0123456789ab",
            "images:read",
        )
        .await;
    let principal = verifier.verify_async(&shaped).await.unwrap();
    assert_eq!(principal.subject(), "kc-shaped");
    for p in ["images:read", "images:read:any", "images:write"] {
        assert!(
            principal.permissions().contains(p),
            "{p}: {:?}",
            principal.permissions()
        );
    }
    // The same provider's tokens without Keycloak's `typ: "Bearer"` (as an
    // ID or refresh token would say otherwise) are refused by the preset.
    let plain = idp
        .client_credentials(&client, "relay", RELAY_SECRET, "images:read")
        .await;
    let refused = verifier.verify_async(&plain).await.unwrap_err();
    assert_eq!(refused.reason(), "missing required claim");
}
