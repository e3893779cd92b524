//! Jobs: work done later on a user's behalf, from a durable, sealed
//! handle on a queue (RFC 8693 refresh-token exchange at capture, the
//! refresh token grant when the job runs, this service as actor), and a job
//! with no user (the service's own token, narrow scopes).
//!
//! ```text
//! cargo run --example jobs
//! ```
//!
//! Everything runs on 127.0.0.1: a small authorization server (`sts.rs`),
//! a `reports` service behind `MandateLayer`, a queue, and the worker — once
//! in this process and once in a fresh one (this binary, started again with
//! `worker`). One `[ ok ]` or `[FAIL]` line per step; exits non-zero on any
//! failure.

mod sts;

use std::collections::VecDeque;
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use serde_json::{Value, json};
use tower_mandate::job::{Delegation, Grant, JobErrorKind, JobHandle, SealingKeys};
use tower_mandate::mint::SigningKey;
use tower_mandate::provider::{AsService, OnBehalfOf};
use tower_mandate::provider::{ClientAuth, ClientCredentials, TokenExchange, TokenRequest};
use tower_mandate::revocation::MemoryStore;
use tower_mandate::testing::TestIssuer;
use tower_mandate::{
    Caller, Issuer, MandateLayer, Verifier,
    keys::{Algorithm, KeySet},
};

const CLIENT: (&str, &str) = ("batch-worker", "batch-worker-secret-0123456789abcdef");
const PURPOSE: &str = "monthly-report";
/// The users' identity provider (whose users the jobs act for).
const USERS: &str = "https://users.example";
/// The application's sealing key (in production: from a secret store).
const JOB_KEY: &str = "q6vH1Rr3nC0m6a3b0x2W9yQ7pU5tL8kE4jD1sF0gA2Y=";

async fn whoami(caller: Caller) -> Json<Value> {
    let user = caller.user().expect("the reports slot is required");
    Json(json!({
        "sub": user.subject(),
        "actors": caller.actors().iter().map(|a| a.subject()).collect::<Vec<_>>(),
        "scope": user.permissions().iter().collect::<Vec<_>>(),
    }))
}

async fn serve(app: axum::Router) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(base)
}

fn auth() -> ClientAuth {
    ClientAuth::SecretBasic(CLIENT.1.into())
}

fn keys() -> SealingKeys {
    SealingKeys::from_base64("2026-12", JOB_KEY).expect("a 32-byte key")
}

fn delegation(token_url: &str, revocation: Option<MemoryStore>) -> Delegation {
    let builder = Delegation::builder(
        Grant::refresh_token(token_url, CLIENT.0, auth(), USERS),
        keys(),
    )
    .insecure_allow_http(); // loopback only
    match revocation {
        Some(store) => builder.with_revocation(store),
        None => builder,
    }
    .build()
}

async fn call(url: &str, headers: axum::http::HeaderMap) -> Result<Value, reqwest::Error> {
    let res = reqwest::Client::new()
        .get(url)
        .headers(headers)
        .send()
        .await?;
    if !res.status().is_success() {
        return Ok(json!({"status": res.status().as_u16()}));
    }
    res.json::<Value>().await
}

/// `jobs worker`: a fresh process that opens the handle in `JOB_HANDLE`,
/// gets the job's token and prints what the reports service saw.
async fn worker() -> Result<(), Box<dyn std::error::Error>> {
    let handle: JobHandle = serde_json::from_str(&std::env::var("JOB_HANDLE")?)?;
    let job = delegation(&std::env::var("TOKEN_URL")?, None).open(&handle, PURPOSE)?;
    let token = job.token().await?;
    let seen = call(&std::env::var("REPORTS_URL")?, token.headers()).await?;
    println!("{seen}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).as_deref() == Some("worker") {
        return worker().await;
    }
    // The users' identity provider, and alice's verified request. Her
    // access token lives three seconds: long enough for the captures on a
    // loaded machine (`exp` is in whole seconds), short enough to wait out.
    let idp = TestIssuer::rs256(USERS).with_audience("web");
    let users = || {
        Verifier::new([Issuer::new(idp.issuer(), "web")
            .with_keys(idp.key_set())
            .with_leeway(Duration::ZERO)])
    };
    let token_for = |sub: &str| {
        idp.token(sub)
            .scope("reports:read reports:write")
            .expires_in(Duration::from_secs(3))
            .sign()
    };
    let alice_token = token_for("alice");
    let alice = Caller::new(Some(users()?.verify(&alice_token)?), None).with_request_id("req-0042");
    let bob = Caller::new(Some(users()?.verify(&token_for("bob"))?), None);

    // The authorization server the worker talks to.
    let sts_key = SigningKey::generate(Algorithm::ES256, "sts-1");
    let sts_jwks = sts_key.jwks();
    let sts = sts::Sts::new(
        "https://sts.example",
        CLIENT,
        users()?,
        Box::new(move |claims| sts_key.sign_claims(claims)),
    );
    let token_url = format!("{}/token", serve(sts.router()).await?);

    // The reports service trusts the STS's tokens for audience "reports".
    let reports = Verifier::new([
        Issuer::new("https://sts.example", "reports").with_keys(KeySet::from_jwks(&sts_jwks)?)
    ])?;
    let reports_url = format!(
        "{}/whoami",
        serve(
            axum::Router::new()
                .route("/whoami", get(whoami))
                .route_layer(MandateLayer::new(reports)),
        )
        .await?
    );
    let mut failures = 0;
    let mut check = |name: &str, ok: bool, detail: &dyn std::fmt::Display| {
        failures += usize::from(!ok);
        println!("[{}] {name}: {detail}", if ok { " ok " } else { "FAIL" });
    };
    let alice_seen = json!({"sub": "alice", "actors": ["batch-worker"], "scope": ["reports:read"]});
    let request = || TokenRequest::for_audience("reports").with_scope("reports:read");

    // While handling alice's request: capture the job, queue its handle
    // (JSON, sealed), answer. The old way captures her access token.
    let revocations = MemoryStore::new();
    let jobs = delegation(&token_url, Some(revocations.clone()));
    let mut queue = VecDeque::new();
    for caller in [&alice, &alice, &bob] {
        let handle = jobs
            .capture(caller, PURPOSE, request(), Duration::from_secs(24 * 3600))
            .await?;
        queue.push_back(serde_json::to_string(&handle)?);
    }
    let exchange = TokenExchange::builder(token_url.clone(), CLIENT.0, auth())
        .insecure_allow_http() // loopback only
        .build();
    let captured = OnBehalfOf::capture(&alice, exchange, request()).expect("alice is a user");
    println!(
        "captured {} jobs; the first: {}",
        queue.len(),
        &queue[0][..60.min(queue[0].len())]
    );

    // ... later: alice's access token has expired.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while users()?.verify(&alice_token).is_ok() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let own = call(&reports_url, {
        let mut h = axum::http::HeaderMap::new();
        h.insert("authorization", format!("Bearer {alice_token}").parse()?);
        h
    })
    .await?;
    check(
        "alice's captured access token has expired",
        users()?.verify(&alice_token).is_err() && own["status"] == 401,
        &own,
    );
    let old = captured.token().await;
    check(
        "OnBehalfOf (the captured access token) fails once it expired",
        old.is_err(),
        &old.map_or_else(|e| e.to_string(), |_| "a token".into()),
    );

    // 1. The worker takes the first handle: a fresh token for alice, the
    //    worker as actor, the job's scope only.
    let handle: JobHandle = serde_json::from_str(&queue.pop_front().unwrap_or_default())?;
    let job = jobs.open(&handle, PURPOSE)?;
    let token = job.token().await?;
    let seen = call(&reports_url, token.headers()).await?;
    check(
        "a job runs after the captured token expired, for alice, the worker as actor",
        seen == alice_seen && token.request_id() == "req-0042",
        &seen,
    );

    // 2. The second handle, in a fresh process (this binary, `worker`).
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg("worker")
        .env("JOB_HANDLE", queue.pop_front().unwrap_or_default())
        .env("TOKEN_URL", &token_url)
        .env("REPORTS_URL", &reports_url)
        .output()?;
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let seen: Value = serde_json::from_str(&printed).unwrap_or(Value::Null);
    check(
        "a job restored from its serialized handle in a fresh process",
        out.status.success() && seen == alice_seen,
        &if out.status.success() {
            printed
        } else {
            String::from_utf8_lossy(&out.stderr).trim().to_owned()
        },
    );

    // 3. bob is revoked after his job was queued: refused before any call.
    revocations.revoke_subject(idp.issuer(), "bob", now() + 1);
    let calls = sts.calls();
    let handle: JobHandle = serde_json::from_str(&queue.pop_front().unwrap_or_default())?;
    let refused = jobs.open(&handle, PURPOSE)?.token().await;
    check(
        "a revoked user's job is refused before any call",
        refused
            .as_ref()
            .is_err_and(|e| e.kind() == JobErrorKind::Revoked)
            && sts.calls() == calls,
        &refused.map_or_else(|e| e.to_string(), |_| "a token".into()),
    );

    // 4. Handles that do not open.
    let text = serde_json::to_string(&job.reseal())?;
    let mut value: Value = serde_json::from_str(&text)?;
    let sealed = value["sealed"].as_str().unwrap_or_default().to_owned();
    let flipped = if sealed.starts_with('A') { "B" } else { "A" };
    value["sealed"] = json!(format!("{flipped}{}", &sealed[1..]));
    let edited: JobHandle = serde_json::from_value(value)?;
    let moved: JobHandle = serde_json::from_str(&text.replace(PURPOSE, "delete-reports"))?;
    let retired = Delegation::builder(
        Grant::refresh_token(&token_url, CLIENT.0, auth(), USERS),
        SealingKeys::new("2027-01", &[0x5c; 32])?,
    )
    .build();
    for (name, result, want) in [
        (
            "a handle edited by one byte is refused",
            jobs.open(&edited, PURPOSE).map(|_| ()),
            JobErrorKind::Tampered,
        ),
        (
            "a handle moved to another purpose is refused",
            jobs.open(&moved, "delete-reports").map(|_| ()),
            JobErrorKind::Tampered,
        ),
        (
            "a handle sealed with a retired key is refused",
            retired.open(&handle, PURPOSE).map(|_| ()),
            JobErrorKind::UnknownKey,
        ),
    ] {
        let ok = result.as_ref().is_err_and(|e| e.kind() == want);
        check(
            name,
            ok,
            &result.map_or_else(|e| e.to_string(), |()| "opened".into()),
        );
    }

    // 5. A job with no user: the worker's own token, with a narrow scope.
    let own = ClientCredentials::builder(token_url, CLIENT.0, auth())
        .insecure_allow_http() // loopback only
        .build();
    let nightly = AsService::new(
        own,
        TokenRequest::for_audience("reports").with_scope("reports:aggregate"),
    );
    let mut headers = axum::http::HeaderMap::new();
    headers.insert(
        "authorization",
        format!("Bearer {}", nightly.token().await?.secret()).parse()?,
    );
    let seen = call(&reports_url, headers).await?;
    check(
        "a job with no user runs as the service itself",
        seen == json!({"sub": "batch-worker", "actors": [], "scope": ["reports:aggregate"]}),
        &seen,
    );

    if failures > 0 {
        println!("\n{failures} step(s) failed");
        std::process::exit(1);
    }
    println!("\nevery step as expected");
    Ok(())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
