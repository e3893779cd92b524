//! Jobs: a job that acts later on a user's behalf (token exchange at run
//! time, so the token records the service as actor), and a job with no user
//! (the service's own token, narrow scopes).
//!
//! ```text
//! cargo run --example jobs
//! ```
//!
//! Everything runs in-process on 127.0.0.1: a small authorization server
//! with the token exchange (RFC 8693) and client credentials grants, a
//! `reports` service behind `MandateLayer`, and the jobs. Exits non-zero if
//! an outcome differs from the expected one.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_mandate::mint::SigningKey;
use tower_mandate::provider::{AsService, OnBehalfOf};
use tower_mandate::provider::{ClientAuth, ClientCredentials, TokenExchange, TokenRequest};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{
    Caller, Issuer, MandateLayer, Verifier,
    keys::{Algorithm, KeySet},
};

const SECRET: &str = "batch-worker-secret-0123456789abcdef";

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    subject_token: Option<String>,
    audience: Option<String>,
    scope: Option<String>,
}

struct Sts {
    issuer: String,
    key: SigningKey,
    users: Verifier,
}

/// A minimal authorization server: token exchange for users' tokens, and
/// client credentials for the worker's own token. (Client authentication is
/// checked by the Basic header.)
async fn token(
    State(sts): State<Arc<Sts>>,
    headers: axum::http::HeaderMap,
    Form(form): Form<TokenForm>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let refuse = |code| (StatusCode::BAD_REQUEST, Json(json!({"error": code})));
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("batch-worker:{SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        ));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = json!({
        "iss": sts.issuer, "aud": form.audience.unwrap_or_else(|| "reports".into()),
        "iat": now, "exp": now + 300, "client_id": "batch-worker",
    });
    match form.grant_type.as_str() {
        "urn:ietf:params:oauth:grant-type:token-exchange" => {
            let subject = form
                .subject_token
                .ok_or_else(|| refuse("invalid_request"))?;
            let user = sts
                .users
                .verify(&subject)
                .map_err(|_| refuse("invalid_grant"))?;
            claims["sub"] = json!(user.subject());
            claims["act"] = json!({"sub": "batch-worker"});
            claims["scope"] = json!(form.scope.unwrap_or_default());
        }
        "client_credentials" => {
            claims["sub"] = json!("batch-worker");
            claims["scope"] = json!(form.scope.unwrap_or_default());
        }
        _ => return Err(refuse("unsupported_grant_type")),
    }
    Ok(Json(json!({
        "access_token": sts.key.sign_claims(&claims),
        "token_type": "Bearer",
        "expires_in": 300,
    })))
}

async fn whoami(caller: Caller) -> Json<Value> {
    let user = caller.user().expect("the reports slot is required");
    Json(json!({
        "sub": user.subject(),
        "actors": caller.actors().iter().map(|a| a.subject()).collect::<Vec<_>>(),
        "scope": user.permissions().iter().collect::<Vec<_>>(),
    }))
}

async fn serve(app: Router) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The users' identity provider, and a user's verified request.
    let idp = TestIssuer::rs256("https://users.example").with_audience("web");
    let users = Verifier::new([Issuer::new(idp.issuer(), "web").with_keys(idp.key_set())])?;
    let alice = Caller::new(
        Some(users.verify(&idp.token("alice").scope("reports:read").sign())?),
        None,
    );

    // The authorization server the worker talks to.
    let sts_key = SigningKey::generate(Algorithm::ES256, "sts-1");
    let sts_jwks = sts_key.jwks();
    let sts = Arc::new(Sts {
        issuer: "https://sts.example".into(),
        key: sts_key,
        users,
    });
    let sts_base = serve(Router::new().route("/token", post(token)).with_state(sts)).await?;

    // The reports service trusts the STS's tokens for audience "reports".
    let reports = Verifier::new([
        Issuer::new("https://sts.example", "reports").with_keys(KeySet::from_jwks(&sts_jwks)?)
    ])?;
    let reports_base = serve(
        Router::new()
            .route("/whoami", get(whoami))
            .route_layer(MandateLayer::new(reports)),
    )
    .await?;
    let http = reqwest::Client::new();
    let call = |token: String| {
        let http = http.clone();
        let url = format!("{reports_base}/whoami");
        async move {
            let res = http.get(url).bearer_auth(token).send().await?;
            res.json::<Value>().await
        }
    };
    let token_url = format!("{sts_base}/token");
    let mut failures = 0;
    let mut check = |name: &str, got: &Value, want: Value| {
        let ok = *got == want;
        failures += usize::from(!ok);
        println!("[{}] {name}: {got}", if ok { " ok " } else { "FAIL" });
    };

    // 1. While handling alice's request, capture her for a job that runs later.
    let exchange = TokenExchange::builder(
        token_url.clone(),
        "batch-worker",
        ClientAuth::SecretBasic(SECRET.into()),
    )
    .insecure_allow_http()
    .build(); // loopback only
    let job = OnBehalfOf::capture(
        &alice,
        exchange,
        TokenRequest::for_audience("reports").with_scope("reports:read"),
    )
    .expect("alice is a user");
    println!("captured a job for {}", job.user());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ... later, the job runs: a delegated token that names the worker as actor.
    let seen = call(job.token().await?.secret().to_owned()).await?;
    check(
        "job on alice's behalf",
        &seen,
        json!({"sub": "alice", "actors": ["batch-worker"], "scope": ["reports:read"]}),
    );

    // 2. A job with no user: the worker's own token, with a narrow scope.
    let own = ClientCredentials::builder(
        token_url,
        "batch-worker",
        ClientAuth::SecretBasic(SECRET.into()),
    )
    .insecure_allow_http()
    .build(); // loopback only
    let nightly = AsService::new(
        own,
        TokenRequest::for_audience("reports").with_scope("reports:aggregate"),
    );
    let seen = call(nightly.token().await?.secret().to_owned()).await?;
    check(
        "job as the service itself",
        &seen,
        json!({"sub": "batch-worker", "actors": [], "scope": ["reports:aggregate"]}),
    );

    if failures > 0 {
        std::process::exit(1);
    }
    Ok(())
}
