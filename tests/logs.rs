//! A full request cycle at TRACE level, every target captured: the audit
//! events are there, and no token — nor any 20-character slice of one —
//! appears in any log line.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_mandate::mint::SigningKey;
use tower_mandate::propagate::{Destination, PropagateLayer};
use tower_mandate::provider::{SelfSigned, TokenProvider, TokenRequest};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{
    Caller, Issuer, MandateLayer, Slot, Verifier,
    keys::{Algorithm, JwksSource, KeySet},
};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_token_in_any_log_line() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let users = TestIssuer::rs256("https://users.example").with_audience("b");
    // The users' keys come from a JWKS endpoint, so fetches are logged too.
    let jwks = users.jwks();
    let keys_server =
        support::Server::start(Router::new().route("/jwks", get(move || async move { jwks })))
            .await;
    let keys = JwksSource::builder(keys_server.url("/jwks"))
        .insecure_allow_http()
        .build()
        .unwrap();
    let a_key = SigningKey::generate(Algorithm::ES256, "a-1");
    let a_jwks = a_key.jwks();
    let a = SelfSigned::new("https://a.internal", a_key).unwrap();

    // B: user + service slots.
    tower_mandate::permission! { Read = "images:read"; }
    async fn me(caller: Caller) -> String {
        caller.require::<Read>().ok();
        caller.user().unwrap().subject().to_owned()
    }
    let b_layer = MandateLayer::builder()
        .user(Slot::required(
            Verifier::new([Issuer::new(users.issuer(), "b").with_jwks(keys)]).unwrap(),
        ))
        .service(Slot::required(
            Verifier::new([Issuer::new("https://a.internal", "b")
                .with_keys(KeySet::from_jwks(&a_jwks).unwrap())])
            .unwrap(),
        ))
        .build()
        .unwrap();
    let b = support::Server::start(Router::new().route("/me", get(me)).route_layer(b_layer)).await;

    // A calls B with propagation, inside alice's scope.
    let user_token = users.token("alice").scope("images:read").sign();
    let verifier =
        Verifier::new([Issuer::new(users.issuer(), "b").with_keys(users.key_set())]).unwrap();
    let alice = Caller::new(Some(verifier.verify(&user_token).unwrap()), None);
    let service_token = a
        .token(TokenRequest::for_audience("b"))
        .await
        .unwrap()
        .secret()
        .to_owned();
    let mut client = ServiceBuilder::new()
        .layer(
            PropagateLayer::builder()
                .add_destination(
                    Destination::insecure_http("127.0.0.1", b.addr.port())
                        .with_service_token(a, TokenRequest::for_audience("b")),
                )
                .build(),
        )
        .service(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>(),
        );
    let url = b.url("/me");
    let body = alice
        .scope(async move {
            let req = http::Request::get(url)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let res = client.ready().await.unwrap().call(req).await.unwrap();
            res.into_body().collect().await.unwrap().to_bytes()
        })
        .await;
    assert_eq!(body, "alice");
    // And a refused one: a forged token.
    let forged = users
        .token("mallory")
        .sign_with(&SigningKey::generate(Algorithm::RS256, "key-1"));
    let res = support::http_client()
        .get(b.url("/me"))
        .header("authorization", format!("Bearer {forged}"))
        .header("service-authorization", format!("Bearer {service_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("tower_mandate::audit"),
        "no audit events were logged"
    );
    assert!(logs.contains("decision=\"deny\""), "{logs}");
    for token in [&user_token, &service_token, &forged] {
        for start in 0..token.len().saturating_sub(20) {
            let slice = &token[start..start + 20];
            // The JOSE header is not secret and repeats across tokens.
            if token[..start + 20].matches('.').count() == 0 {
                continue;
            }
            assert!(
                !logs.contains(slice),
                "a token slice {slice:?} appears in the logs"
            );
        }
    }
}
