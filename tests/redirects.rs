//! No token follows a redirect off its destination: reqwest under
//! `PropagateMiddleware` with `redirect_policy`, and hyper-util under
//! `PropagateLayer` with tower-http's `FollowRedirect` outside it. Real
//! servers on 127.0.0.1: an allowed upstream that answers each redirect
//! status, and a sniffing listener off the list.

mod support;

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use http::HeaderName;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use support::Sniffer;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_mandate::mint::SigningKey;
use tower_mandate::propagate::{Destination, PropagateLayer, PropagateMiddleware, redirect_policy};
use tower_mandate::provider::{SelfSigned, TokenProvider, TokenRequest};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{Caller, Issuer, Verifier, keys::Algorithm};

const CODES: [u16; 5] = [301, 302, 303, 307, 308];
const USER_HEADER: &str = "x-user-token";

#[derive(serde::Deserialize)]
struct To {
    url: String,
}

/// `/to/{code}?url=…` answers `code` with `Location: url`; `/me` tells
/// which token headers arrived.
async fn upstream() -> support::Server {
    let app = Router::new()
        .route(
            "/to/{code}",
            get(|Path(code): Path<u16>, Query(to): Query<To>| async move {
                (
                    StatusCode::from_u16(code).unwrap(),
                    [(header::LOCATION, to.url)],
                )
                    .into_response()
            }),
        )
        .route(
            "/me",
            get(|headers: HeaderMap| async move {
                Json(json!({
                    "user": headers.contains_key(USER_HEADER),
                    "service": headers.contains_key("service-authorization"),
                }))
            }),
        );
    support::Server::start(app).await
}

struct Fixture {
    upstream: support::Server,
    caller: Caller,
    user_token: String,
    service_token: String,
    layer: PropagateLayer,
}

async fn fixture() -> Fixture {
    let upstream = upstream().await;
    let users = TestIssuer::es256("https://users.example").with_audience("relay");
    let verifier =
        Verifier::new([Issuer::new(users.issuer(), "relay").with_keys(users.key_set())]).unwrap();
    let user_token = users.token("alice").scope("images:read").sign();
    let caller = Caller::new(Some(verifier.verify(&user_token).unwrap()), None);
    let me = SelfSigned::new(
        "https://relay.internal",
        SigningKey::generate(Algorithm::ES256, "relay-1"),
    )
    .unwrap();
    let request = TokenRequest::for_audience("image-store");
    // The provider caches: the token it attaches is this one.
    let service_token = me.token(request.clone()).await.unwrap().secret().to_owned();
    let layer = PropagateLayer::builder()
        .with_headers(
            HeaderName::from_static(USER_HEADER),
            HeaderName::from_static("service-authorization"),
        )
        .add_destination(
            Destination::insecure_http("127.0.0.1", upstream.addr.port())
                .forward_user_token()
                .with_service_token(me, request),
        )
        .build();
    Fixture {
        upstream,
        caller,
        user_token,
        service_token,
        layer,
    }
}

/// A reqwest client under the middleware, built with the redirect policy.
fn guarded_client(layer: &PropagateLayer) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(
        reqwest::Client::builder()
            .redirect(redirect_policy())
            .build()
            .unwrap(),
    )
    .with(PropagateMiddleware::new(layer))
    .build()
}

fn redirect_url(f: &Fixture, code: u16, to: &str) -> String {
    let mut url = reqwest::Url::parse(&f.upstream.url(&format!("/to/{code}"))).unwrap();
    url.query_pairs_mut().append_pair("url", to);
    url.into()
}

#[tokio::test]
async fn reqwest_refuses_every_redirect_off_the_destination() {
    let f = fixture().await;
    let sniffer = Sniffer::start(64).await;
    let port = sniffer.addr.port();
    let client = guarded_client(&f.layer);
    let targets = [
        ("another host", format!("http://localhost:{port}/x")),
        (
            "same host, another port",
            format!("http://127.0.0.1:{port}/x"),
        ),
        (
            "same host and port, another scheme",
            format!("https://127.0.0.1:{}/x", f.upstream.addr.port()),
        ),
    ];
    f.caller
        .clone()
        .scope(async {
            for code in CODES {
                for (name, target) in &targets {
                    let res = client.get(redirect_url(&f, code, target)).send().await;
                    // Refused by the policy, before connecting: a redirect error,
                    // not a connection or TLS failure at the target.
                    match res {
                        Err(reqwest_middleware::Error::Reqwest(e)) => {
                            assert!(e.is_redirect(), "{code} to {name}: {e:?}")
                        }
                        other => panic!("{code} to {name}: followed ({other:?})"),
                    }
                }
                // A redirect that stays on the destination is followed, with the tokens.
                let own = f.upstream.url("/me");
                let res = client
                    .get(redirect_url(&f, code, &own))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200, "{code} to the same destination");
                let body: Value = res.json().await.unwrap();
                assert_eq!(body, json!({"user": true, "service": true}), "{code}");
            }
        })
        .await;
    sniffer.assert_no_token(&[&f.user_token, &f.service_token], "redirect_policy");
    assert!(sniffer.heads().is_empty(), "nothing is sent off the list");
}

#[tokio::test]
async fn without_the_policy_the_middleware_refuses_the_answer() {
    // reqwest's default policy follows the redirect and keeps custom
    // headers: the sniffer sees the token (the leak redirect_policy
    // prevents), and the middleware fails the request instead of handing
    // the off-list answer to the application.
    let f = fixture().await;
    let sniffer = Sniffer::start(8).await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(PropagateMiddleware::new(&f.layer))
        .build();
    let target = format!("http://localhost:{}/x", sniffer.addr.port());
    let res = f
        .caller
        .clone()
        .scope(client.get(redirect_url(&f, 302, &target)).send())
        .await;
    let error = res.expect_err("an answer from off the list is an error");
    assert!(error.to_string().contains("redirect_policy"), "{error}");
    let heads = sniffer.heads();
    assert_eq!(heads.len(), 1);
    assert!(heads[0].contains(&f.service_token), "the control leaks");
}

#[tokio::test]
async fn a_chain_that_leaves_and_comes_back_is_refused_at_the_first_hop() {
    // destination → another host → the destination again: the answer comes
    // from the destination, so only the policy can stop the middle hop.
    let f = fixture().await;
    let client = guarded_client(&f.layer);
    let back = f.upstream.url("/me");
    let mut via = reqwest::Url::parse(&format!(
        "http://localhost:{}/to/302",
        f.upstream.addr.port()
    ))
    .unwrap();
    via.query_pairs_mut().append_pair("url", &back);
    let res = f
        .caller
        .clone()
        .scope(client.get(redirect_url(&f, 302, via.as_str())).send())
        .await;
    match res {
        Err(reqwest_middleware::Error::Reqwest(e)) => assert!(e.is_redirect(), "{e:?}"),
        other => panic!("followed: {other:?}"),
    }
}

type Hyper = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

#[tokio::test]
async fn follow_redirect_outside_the_layer_attaches_per_hop() {
    let f = fixture().await;
    let sniffer = Sniffer::start(64).await;
    let hyper: Hyper =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let client = ServiceBuilder::new()
        .layer(tower_http::follow_redirect::FollowRedirectLayer::new())
        .layer(f.layer.clone())
        .service(hyper);
    let get = |url: String| {
        let mut client = client.clone();
        async move {
            let req = http::Request::get(url)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let res = client.ready().await.unwrap().call(req).await.unwrap();
            let status = res.status();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
            )
        }
    };
    let port = sniffer.addr.port();
    f.caller
        .clone()
        .scope(async {
            for code in CODES {
                for target in [
                    format!("http://localhost:{port}/x"),
                    format!("http://127.0.0.1:{port}/x"),
                ] {
                    let (status, _) = get(redirect_url(&f, code, &target)).await;
                    assert_eq!(status, 200, "{code} to {target}: the hop is made, bare");
                }
                let (status, body) = get(redirect_url(&f, code, &f.upstream.url("/me"))).await;
                assert_eq!(status, 200);
                assert_eq!(body, json!({"user": true, "service": true}), "{code}");
            }
        })
        .await;
    assert_eq!(sniffer.heads().len(), CODES.len() * 2, "every hop arrived");
    sniffer.assert_no_token(&[&f.user_token, &f.service_token], "FollowRedirect outside");
}
