//! The demo's transaction chain (draft-ietf-oauth-transaction-tokens-10):
//! a gateway exchanges alice's token for a Transaction Token at the trust
//! domain's service, the tagging service and the image store receive it,
//! and the tagging service cannot do what the transaction's purpose does
//! not cover even though its own token could.

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tower_mandate::keys::{Algorithm, KeySet};
use tower_mandate::mint::SigningKey;
use tower_mandate::propagate::{Destination, PropagateLayer, PropagateMiddleware};
use tower_mandate::provider::{AccessToken, TokenFuture, TokenProvider, TokenRequest};
use tower_mandate::testing::TestIssuer;
use tower_mandate::transaction::{TokenService, TransactionExchange, TransactionSlot};
use tower_mandate::{
    Caller, Issuer, MandateLayer, PrincipalId, Require, Slot, Verifier, permission,
};

permission! {
    Read = "images:read";
    Write = "images:write";
}

const DOMAIN: &str = "images.example";

/// A workload's own token, minted by the services' issuer.
#[derive(Clone)]
struct Own(String);

impl TokenProvider for Own {
    fn token(&self, _: TokenRequest) -> TokenFuture {
        let token = AccessToken::new(self.0.clone(), Duration::from_secs(600));
        Box::pin(async move { Ok(token) })
    }
}

async fn serve(app: Router) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(base)
}

fn client(destination: Destination) -> reqwest_middleware::ClientWithMiddleware {
    let policy = PropagateLayer::builder()
        .add_destination(destination)
        .build();
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(PropagateMiddleware::new(&policy))
        .build()
}

fn port(base: &str) -> u16 {
    base.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// What a hop saw of the transaction, and the next hop's answer.
async fn call(
    client: &reqwest_middleware::ClientWithMiddleware,
    method: reqwest::Method,
    url: String,
) -> (u16, Value) {
    match client.request(method, url).send().await {
        Ok(res) => {
            let status = res.status().as_u16();
            (status, res.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, json!({"error": e.to_string()})),
    }
}

/// Play the chain; the number of steps that differ from what is expected.
pub(crate) async fn story(
    users: &TestIssuer,
    services: &TestIssuer,
    alice: &str,
) -> Result<usize, Box<dyn std::error::Error>> {
    let mesh = |aud: &str| {
        Verifier::new([Issuer::new(services.issuer(), aud).with_keys(services.key_set())])
    };
    let key = SigningKey::generate(Algorithm::ES256, "tts-1");
    let tts = TokenService::builder(
        DOMAIN,
        key,
        Verifier::new([
            Issuer::new(users.issuer(), crate::app::DEFAULT_AUDIENCE).with_keys(users.key_set())
        ])?,
        mesh("tts")?,
    )
    .allow(
        PrincipalId::new(services.issuer(), "gateway"),
        ["images:read"],
    )
    .build()?;
    let tts_keys = KeySet::from_jwks(&tts.jwks())?;
    let tts_url = serve(tts.router()).await?;

    // The image store: the calling service and the transaction decide.
    let store_layer = MandateLayer::builder()
        .service(Slot::required(mesh("store")?))
        .transaction(TransactionSlot::required(DOMAIN).with_keys(tts_keys.clone()))
        .build()?;
    let seen = |caller: &Caller| {
        let t = caller.transaction();
        json!({
            "txn": t.map(|t| t.txn()),
            "sub": t.map(|t| t.subject()),
            "scope": t.map(|t| t.scope()),
            "service": caller.service().map(|s| s.subject()),
        })
    };
    let store = serve(
        Router::new()
            .route(
                "/images",
                get(move |c: Require<Read>| async move { axum::Json(seen(&c)) }),
            )
            .route(
                "/tags",
                post(move |c: Require<Write>| async move { axum::Json(seen(&c)) }),
            )
            .route_layer(store_layer),
    )
    .await?;

    // The tagging service: its own token may read and write.
    let tagger = Own(services
        .token("tagger")
        .audience("store")
        .scope("images:read images:write")
        .sign());
    let to_store = client(
        Destination::insecure_http("127.0.0.1", port(&store))
            .drop_user_token()
            .with_service_token(tagger, TokenRequest::default()),
    );
    let tagging_layer = MandateLayer::builder()
        .service(Slot::required(mesh("tagging")?))
        .transaction(TransactionSlot::required(DOMAIN).with_keys(tts_keys))
        .build()?;
    let (read_store, write_store) = (format!("{store}/images"), format!("{store}/tags"));
    let (c1, c2) = (to_store.clone(), to_store);
    let tagging = serve(
        Router::new()
            .route(
                "/read",
                get(move |caller: Caller| {
                    let (client, url) = (c1.clone(), read_store.clone());
                    async move {
                        let (status, next) = call(&client, reqwest::Method::GET, url).await;
                        (
                            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                            axum::Json(json!({"here": seen(&caller), "store": next})),
                        )
                    }
                }),
            )
            .route(
                "/write",
                post(move || {
                    let (client, url) = (c2.clone(), write_store.clone());
                    async move {
                        let (status, next) = call(&client, reqwest::Method::POST, url).await;
                        (
                            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                            axum::Json(next),
                        )
                    }
                }),
            )
            .route_layer(tagging_layer),
    )
    .await?;

    // The gateway: authenticates the user, exchanges the token for a
    // Transaction Token for the purpose `images:read`.
    let gateway_token = Own(services.token("gateway").audience("tts").sign());
    let gateway_to_tagging = Own(services.token("gateway").audience("tagging").sign());
    let exchange = TransactionExchange::new(
        format!("{tts_url}/token"),
        DOMAIN,
        gateway_token,
        TokenRequest::default(),
    )
    .insecure_allow_http();
    let to_tagging = client(
        Destination::insecure_http("127.0.0.1", port(&tagging))
            .drop_user_token()
            .with_service_token(gateway_to_tagging, TokenRequest::default())
            .with_transaction_token(exchange, TokenRequest::default().with_scope("images:read")),
    );
    let gateway_layer = MandateLayer::new(Verifier::new([Issuer::new(
        users.issuer(),
        crate::app::DEFAULT_AUDIENCE,
    )
    .with_keys(users.key_set())])?);
    let (read, write) = (format!("{tagging}/read"), format!("{tagging}/write"));
    let (g1, g2) = (to_tagging.clone(), to_tagging);
    let gateway = serve(
        Router::new()
            .route(
                "/read",
                get(move || {
                    let (client, url) = (g1.clone(), read.clone());
                    async move {
                        let (status, next) = call(&client, reqwest::Method::GET, url).await;
                        (
                            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                            axum::Json(next),
                        )
                    }
                }),
            )
            .route(
                "/write",
                post(move || {
                    let (client, url) = (g2.clone(), write.clone());
                    async move {
                        let (status, next) = call(&client, reqwest::Method::POST, url).await;
                        (
                            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
                            axum::Json(next),
                        )
                    }
                }),
            )
            .route_layer(gateway_layer),
    )
    .await?;

    let http = reqwest::Client::new();
    let mut failures = 0;
    let mut step = |name: &str, want: &str, got: &str| {
        failures += usize::from(!crate::step(name, want, got));
    };
    let res = http
        .get(format!("{gateway}/read"))
        .bearer_auth(alice)
        .send()
        .await?;
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    step(
        "alice reads through gateway → tagging → store",
        "200",
        &status.to_string(),
    );
    let (here, there) = (&body["here"]["txn"], &body["store"]["txn"]);
    let same = if here == there && here.is_string() {
        "same txn"
    } else {
        "another"
    };
    step(
        "the store sees the tagging service's transaction",
        "same txn",
        same,
    );
    println!(
        "       one txn across the chain: {here}; at the store: sub {}, scope {}",
        body["store"]["sub"], body["store"]["scope"]
    );
    let res = http
        .post(format!("{gateway}/write"))
        .bearer_auth(alice)
        .send()
        .await?;
    step(
        "tagging writes: its token could, the purpose (images:read) not",
        "403",
        &res.status().as_u16().to_string(),
    );
    Ok(failures)
}
