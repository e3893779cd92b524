//! The demo's tagging job (#16): alice uploads a photo through the uploads
//! service, which stores it, captures a sealed job handle for the tagger
//! and answers at once; the tagger's worker takes the handle off a queue
//! later, gets a fresh token for alice with itself as actor (RFC 8693
//! refresh-token exchange at capture, the refresh grant now), and tags the
//! image in image_store. One request id runs through the audit trail.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc, oneshot};
use tower_mandate::job::{Delegation, Grant, JobHandle, SealingKeys};
use tower_mandate::provider::{ClientAuth, TokenRequest};
use tower_mandate::testing::TestIssuer;
use tower_mandate::{Caller, Issuer, MandateLayer, Verifier};

use crate::sts;

const TAGGER: (&str, &str) = ("tagger", "tagger-secret-0123456789abcdef");
const PURPOSE: &str = "tag-image";

struct Uploads {
    store: String,
    jobs: Delegation,
    queue: mpsc::UnboundedSender<(String, String)>,
}

/// `POST /photos`: store the image as the user, queue its tagging, answer.
async fn photo(
    State(up): State<Arc<Uploads>>,
    caller: Caller,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), (StatusCode, String)> {
    let fail = |e: &dyn std::fmt::Display| (StatusCode::BAD_GATEWAY, e.to_string());
    let user = caller
        .user()
        .ok_or((StatusCode::UNAUTHORIZED, "no user".into()))?;
    let mut req = reqwest::Client::new()
        .post(format!("{}/images", up.store))
        .bearer_auth(user.token())
        .body(body);
    if let Some(id) = caller.request_id() {
        req = req.header("x-request-id", id);
    }
    let res = req.send().await.map_err(|e| fail(&e))?;
    let status = res.status();
    let created: Value = res.json().await.map_err(|e| fail(&e))?;
    if status != StatusCode::CREATED {
        return Err((status, created.to_string()));
    }
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let request =
        TokenRequest::for_audience(crate::app::DEFAULT_AUDIENCE).with_scope("images:write");
    let handle = up
        .jobs
        .capture(&caller, PURPOSE, request, Duration::from_secs(3600))
        .await
        .map_err(|e| fail(&e))?;
    let text = serde_json::to_string(&handle).map_err(|e| fail(&e))?;
    up.queue.send((id.clone(), text)).map_err(|e| fail(&e))?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "tagging": "queued"})),
    ))
}

/// The tagger's worker: waits for `go`, then runs each queued job.
async fn worker(
    jobs: Delegation,
    store: String,
    go: Arc<Notify>,
    mut queue: mpsc::UnboundedReceiver<(String, String)>,
    done: oneshot::Sender<Result<u16, String>>,
) {
    go.notified().await;
    let Some((id, text)) = queue.recv().await else {
        return;
    };
    let result = async {
        let handle: JobHandle = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let job = jobs.open(&handle, PURPOSE).map_err(|e| e.to_string())?;
        let token = job.token().await.map_err(|e| e.to_string())?;
        let res = reqwest::Client::new()
            .put(format!("{store}/images/{id}/tags"))
            .headers(token.headers())
            .body(r#"["sunset","beach"]"#)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        Ok(res.status().as_u16())
    }
    .await;
    let _ = done.send(result);
}

async fn serve(app: axum::Router) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(base)
}

/// The tagging story against the image store at `store`; `audit` reads the
/// audit trail so far. Returns the number of steps that differ.
pub(crate) async fn story(
    users: &TestIssuer,
    store: &str,
    alice: &str,
    audit: impl Fn() -> Vec<String>,
) -> Result<usize, Box<dyn std::error::Error>> {
    let verifier = || {
        Verifier::new([
            Issuer::new(users.issuer(), crate::app::DEFAULT_AUDIENCE).with_keys(users.key_set())
        ])
    };
    // The users' identity provider also runs the token endpoint.
    let key = users.current_key();
    let idp = sts::Sts::new(
        users.issuer(),
        TAGGER,
        verifier()?,
        Box::new(move |claims| key.sign_claims(claims)),
    );
    let token_url = format!("{}/token", serve(idp.router()).await?);
    let jobs = Delegation::builder(
        Grant::refresh_token(
            token_url,
            TAGGER.0,
            ClientAuth::SecretBasic(TAGGER.1.into()),
            users.issuer(),
        ),
        SealingKeys::new("demo-1", &[0x2a; 32])?,
    )
    .insecure_allow_http() // loopback only
    .build();
    let (queue, queued) = mpsc::unbounded_channel();
    let (done, result) = oneshot::channel();
    let go = Arc::new(Notify::new());
    tokio::spawn(worker(
        jobs.clone(),
        store.to_owned(),
        go.clone(),
        queued,
        done,
    ));
    let uploads = serve(
        axum::Router::new()
            .route("/photos", post(photo))
            .route_layer(MandateLayer::new(verifier()?))
            .with_state(Arc::new(Uploads {
                store: store.to_owned(),
                jobs,
                queue,
            })),
    )
    .await?;

    let http = reqwest::Client::new();
    let mut failures = 0;
    let mut step = |name: &str, want: &str, got: &str| {
        failures += usize::from(!crate::step(name, want, got));
    };
    let request_id = "demo-upload-7";
    let res = http
        .post(format!("{uploads}/photos"))
        .bearer_auth(alice)
        .header("x-request-id", request_id)
        .body("photo bytes")
        .send()
        .await?;
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    step(
        "alice uploads a photo: answered at once, tagging queued",
        "201",
        &status.to_string(),
    );
    let id = body["id"].as_str().unwrap_or("img-0").to_owned();
    let read = || async {
        let res = http
            .get(format!("{store}/images/{id}"))
            .bearer_auth(alice)
            .send()
            .await?;
        res.json::<Value>().await
    };
    step(
        "the photo has no tags yet",
        "none",
        &read().await?["tags"].to_string().replace("null", "none"),
    );
    // Later: the worker takes the handle off the queue.
    go.notify_one();
    let tagged = tokio::time::timeout(Duration::from_secs(10), result).await;
    let got = match tagged {
        Ok(Ok(Ok(status))) => status.to_string(),
        Ok(Ok(Err(e))) => e,
        _ => "no answer".into(),
    };
    step(
        "later, the tagger tags it for alice (as actor)",
        "200",
        &got,
    );
    step(
        "alice sees the tags",
        r#"["sunset","beach"]"#,
        &read().await?["tags"].to_string(),
    );
    let trail: Vec<String> = audit()
        .into_iter()
        .filter(|l| l.contains(request_id))
        .collect();
    let tag_event = trail
        .iter()
        .any(|l| l.contains("/images/{id}/tags") && l.contains("#tagger") && l.contains("alice"));
    let upload_event = trail.iter().any(|l| l.contains("route=\"/images\""));
    step(
        "one request id in the audit trail: upload, job, tag",
        "upload+job+tag",
        &format!(
            "{}{}{}",
            if upload_event { "upload" } else { "-" },
            if trail.iter().any(|l| l.contains("job token obtained")) {
                "+job"
            } else {
                "+-"
            },
            if tag_event { "+tag" } else { "+-" }
        ),
    );
    Ok(failures)
}
