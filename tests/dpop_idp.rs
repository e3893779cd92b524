//! DPoP against a real identity provider, panva's oidc-provider (npm, its
//! `dPoP` feature), on 127.0.0.1:
//! - tokens it binds to a key, with proofs made by panva's `jose`
//!   (`tests/support/idp/dpop_call.mjs`), pass the layer end to end;
//! - `ClientCredentials::with_dpop` obtains DPoP-bound tokens from it (the
//!   provider checks the crate's proofs, and its nonce is retried), and the
//!   propagation layers send them downstream with a fresh proof per request;
//! - a DPoP-bound user token is never forwarded.

mod support;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use serde_json::{Value, json};
use tower::{ServiceBuilder, ServiceExt as _};
use tower_mandate::binding::{Dpop, DpopKey};
use tower_mandate::keys::JwksSource;
use tower_mandate::propagate::{Destination, PropagateLayer, PropagateMiddleware};
use tower_mandate::provider::{ClientAuth, ClientCredentials, TokenRequest};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{Caller, Issuer, MandateLayer, Slot, Verifier};

use support::{Idp, Server, free_port, http_client};

const DPOP_SECRET: &str = "dpop-client-secret-0123456789abcdef0123456789";

async fn me(caller: Caller) -> String {
    let who = caller.user().or(caller.service());
    json!({
        "sub": who.map(|p| p.subject().to_owned()),
        "jkt": caller.dpop_jkt(),
    })
    .to_string()
}

fn idp_verifier(idp: &Idp) -> Verifier {
    let keys = JwksSource::discovery(idp.issuer.clone())
        .insecure_allow_http()
        .build()
        .unwrap();
    Verifier::new([Issuer::new(idp.issuer.clone(), "image-store")
        .require_typ("at+jwt")
        .with_jwks(keys)])
    .unwrap()
}

/// A store on `port` whose `slot` takes only DPoP-bound tokens of the IdP.
async fn store(idp: &Idp, port: u16, service_slot: bool) -> Server {
    let dpop = Dpop::required().with_origin(format!("http://127.0.0.1:{port}"));
    let slot = Slot::required(idp_verifier(idp)).with_dpop(dpop);
    let builder = MandateLayer::builder();
    let builder = if service_slot {
        builder.service(slot)
    } else {
        builder.user(slot)
    };
    let app = Router::new()
        .route("/images/{id}", get(me))
        .route_layer(builder.build().unwrap());
    Server::start_on(([127, 0, 0, 1], port).into(), app)
        .await
        .unwrap()
}

#[tokio::test]
async fn tokens_bound_by_oidc_provider_with_jose_proofs_pass_the_layer() {
    let idp = Idp::start();
    let port = free_port();
    let _store = store(&idp, port, false).await;
    let url = format!("http://127.0.0.1:{port}/images/1");
    let out = Idp::node("dpop_call.mjs", &[&idp.issuer, "GET", &url, &url]);
    assert_eq!(out["token_type"], "DPoP");
    let token = out["access_token"].as_str().unwrap();
    let proofs: Vec<&str> = out["proofs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let call = |proof: Option<&str>, scheme: &str| {
        let mut req = http_client()
            .get(&url)
            .header("authorization", format!("{scheme} {token}"));
        if let Some(p) = proof {
            req = req.header("dpop", p);
        }
        req.send()
    };
    let res = call(Some(proofs[0]), "DPoP").await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["sub"], "dpop-client");
    assert_eq!(
        body["jkt"], out["jkt"],
        "the proven key is the one jose made"
    );
    // Its proof once only; the second proof is fine.
    assert_eq!(call(Some(proofs[0]), "DPoP").await.unwrap().status(), 401);
    assert_eq!(call(Some(proofs[1]), "DPoP").await.unwrap().status(), 200);
    // The same token as a bearer token: refused.
    assert_eq!(call(None, "Bearer").await.unwrap().status(), 401);
}

#[tokio::test]
async fn client_credentials_obtains_dpop_bound_tokens_and_propagation_proves_them() {
    // The provider requires its nonce at the token endpoint: the first
    // token request is answered `use_dpop_nonce` and retried.
    let idp = Idp::start_with(&[("IDP_DPOP_NONCE", "1")]);
    let port = free_port();
    let _store = store(&idp, port, true).await;
    let key = DpopKey::generate();
    let provider = ClientCredentials::builder(
        format!("{}/token", idp.issuer),
        "dpop-client",
        ClientAuth::SecretBasic(DPOP_SECRET.into()),
    )
    .insecure_allow_http()
    .with_dpop(key.clone())
    .build();
    let request = TokenRequest::default()
        .with_scope("images:read")
        .with_resource("urn:image-store");
    let policy = PropagateLayer::builder()
        .add_destination(
            Destination::insecure_http("127.0.0.1", port).with_service_token(provider, request),
        )
        .build();

    // reqwest-middleware: two calls, one token, two proofs.
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(PropagateMiddleware::new(&policy))
        .build();
    for id in [1, 2] {
        let res = client
            .get(format!("http://127.0.0.1:{port}/images/{id}?v=1"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "{:?}",
            res.headers().get("www-authenticate")
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["sub"], "dpop-client");
        assert_eq!(body["jkt"], key.thumbprint());
    }

    // The tower layer over hyper's client: the same, from the cache.
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let client = ServiceBuilder::new().layer(policy).service(hyper);
    for id in [3, 4] {
        let req = http::Request::get(format!("http://127.0.0.1:{port}/images/{id}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = client.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), 200);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["jkt"], key.thumbprint());
    }
}

#[tokio::test]
async fn a_dpop_bound_user_token_is_never_forwarded() {
    let users = TestIssuer::es256("https://id.example");
    let key = DpopKey::generate();
    let token = users
        .token("alice")
        .audience("edge")
        .claim("cnf", json!({"jkt": key.thumbprint()}))
        .sign();
    let principal = Verifier::new([Issuer::new(users.issuer(), "edge").with_keys(users.key_set())])
        .unwrap()
        .verify_bound(&token)
        .unwrap();
    // A downstream that would answer anything it gets.
    let downstream = Server::start(Router::new().route("/x", get(|| async { "reached" }))).await;
    let policy = PropagateLayer::builder()
        .add_destination(
            Destination::insecure_http("127.0.0.1", downstream.addr.port()).forward_user_token(),
        )
        .build();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(PropagateMiddleware::new(&policy))
        .build();
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let tower_client = ServiceBuilder::new().layer(policy).service(hyper);
    let url = downstream.url("/x");
    Caller::new(Some(principal), None)
        .scope(async move {
            let e = client.get(&url).send().await.unwrap_err().to_string();
            assert!(e.contains("exchange_user_token"), "{e}");
            let req = http::Request::get(&url)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let e = tower_client.oneshot(req).await.unwrap_err().to_string();
            assert!(e.contains("exchange_user_token"), "{e}");
        })
        .await;
}

/// A provider of one DPoP-bound token (minted by the test kit for `key`).
struct BoundToken(String, DpopKey);

impl tower_mandate::provider::TokenProvider for BoundToken {
    fn token(&self, _: TokenRequest) -> tower_mandate::provider::TokenFuture {
        let token = tower_mandate::provider::AccessToken::new(
            self.0.clone(),
            std::time::Duration::from_secs(300),
        )
        .with_dpop(self.1.clone());
        Box::pin(async move { Ok(token) })
    }
}

#[tokio::test]
async fn the_reqwest_middleware_learns_a_resource_servers_nonce_and_retries_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower_mandate::binding::Nonces;

    let services = TestIssuer::es256("https://services.example");
    let key = DpopKey::generate();
    let token = services
        .token("relay")
        .audience("images")
        .claim("cnf", json!({"jkt": key.thumbprint()}))
        .sign();
    let port = free_port();
    let verifier =
        Verifier::new([Issuer::new(services.issuer(), "images").with_keys(services.key_set())])
            .unwrap();
    let dpop = Dpop::required()
        .with_origin(format!("http://127.0.0.1:{port}"))
        .with_nonces(Nonces::random());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let app = Router::new()
        .route("/images/{id}", get(me).post(me))
        .route_layer(
            MandateLayer::builder()
                .service(Slot::required(verifier).with_dpop(dpop))
                .build()
                .unwrap(),
        )
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                counter.fetch_add(1, Ordering::SeqCst);
                next.run(req)
            },
        ));
    let _server = Server::start_on(([127, 0, 0, 1], port).into(), app)
        .await
        .unwrap();
    let policy = PropagateLayer::builder()
        .add_destination(
            Destination::insecure_http("127.0.0.1", port)
                .with_service_token(BoundToken(token, key.clone()), TokenRequest::default()),
        )
        .build();
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(PropagateMiddleware::new(&policy))
        .build();
    // The first call is refused for want of the nonce and retried with it.
    let res = client
        .post(format!("http://127.0.0.1:{port}/images/1"))
        .body("tag")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "{:?}",
        res.headers().get("www-authenticate")
    );
    assert_eq!(seen.load(Ordering::SeqCst), 2, "one refusal, one retry");
    // The next call sends the nonce it learned: one request.
    let res = client
        .get(format!("http://127.0.0.1:{port}/images/2"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}
