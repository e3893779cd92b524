//! A small authorization server for the jobs example and the demo: the
//! token exchange (RFC 8693) — for an access token that names the client
//! as actor, or, with `requested_token_type` refresh_token, for a refresh
//! token narrowed to the scopes asked — the refresh token grant (its access
//! tokens name the client as actor), and client credentials. One client,
//! authenticated with HTTP Basic. Subject tokens are verified (an expired
//! one is refused). It counts the token requests it answers.
// The demo uses a part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Form, Json, Router};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value, json};
use tower_mandate::Verifier;

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const REFRESH_TOKEN: &str = "urn:ietf:params:oauth:token-type:refresh_token";
const LIFETIME: u64 = 300;

/// Signs the claims of an access token.
pub(crate) type Sign = Box<dyn Fn(&Value) -> String + Send + Sync>;

pub(crate) struct Sts {
    pub(crate) issuer: String,
    client_id: String,
    client_secret: String,
    /// Verifies the users' tokens presented as `subject_token`.
    users: Verifier,
    sign: Sign,
    /// Refresh token → (user, scopes, audience).
    grants: Mutex<HashMap<String, (String, String, String)>>,
    calls: AtomicUsize,
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    subject_token: Option<String>,
    requested_token_type: Option<String>,
    refresh_token: Option<String>,
    audience: Option<String>,
    resource: Option<String>,
    scope: Option<String>,
}

impl Sts {
    pub(crate) fn new(
        issuer: &str,
        (client_id, client_secret): (&str, &str),
        users: Verifier,
        sign: Sign,
    ) -> Arc<Sts> {
        Arc::new(Sts {
            issuer: issuer.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            users,
            sign,
            grants: Mutex::new(HashMap::new()),
            calls: AtomicUsize::new(0),
        })
    }

    /// The token requests answered so far.
    pub(crate) fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    pub(crate) fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/token", post(token))
            .with_state(self.clone())
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random() -> String {
    let mut bytes = [0u8; 24];
    aws_lc_rs::rand::fill(&mut bytes).expect("random bytes");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

type Refusal = (StatusCode, Json<Value>);

async fn token(
    State(sts): State<Arc<Sts>>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Result<Json<Value>, Refusal> {
    sts.calls.fetch_add(1, Ordering::SeqCst);
    let refuse = |code: &str| (StatusCode::BAD_REQUEST, Json(json!({"error": code})));
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", sts.client_id, sts.client_secret))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return Err((
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        ));
    }
    let audience = || {
        form.audience
            .clone()
            .or(form.resource.clone())
            .ok_or_else(|| refuse("invalid_target"))
    };
    let scope = form.scope.clone().unwrap_or_default();
    let access = |sub: &str, scope: &str, aud: &str, act: bool| {
        let mut claims = json!({
            "iss": sts.issuer, "sub": sub, "aud": aud, "scope": scope,
            "iat": now(), "exp": now() + LIFETIME, "client_id": sts.client_id,
        });
        if act {
            claims["act"] = json!({"sub": sts.client_id});
        }
        Json(json!({
            "access_token": (sts.sign)(&claims),
            "token_type": "Bearer",
            "expires_in": LIFETIME,
        }))
    };
    match form.grant_type.as_str() {
        TOKEN_EXCHANGE => {
            let subject = form
                .subject_token
                .as_deref()
                .ok_or_else(|| refuse("invalid_request"))?;
            let user = sts
                .users
                .verify(subject)
                .map_err(|_| refuse("invalid_grant"))?;
            // Only scopes the user holds.
            if !scope
                .split_whitespace()
                .all(|s| user.permissions().iter().any(|p| p == s))
            {
                return Err(refuse("invalid_scope"));
            }
            if form.requested_token_type.as_deref() == Some(REFRESH_TOKEN) {
                let refresh = random();
                sts.grants.lock().unwrap().insert(
                    refresh.clone(),
                    (user.subject().to_owned(), scope, audience()?),
                );
                return Ok(Json(json!({
                    "access_token": refresh,
                    "issued_token_type": REFRESH_TOKEN,
                    "token_type": "N_A",
                    "expires_in": 86_400,
                })));
            }
            Ok(access(user.subject(), &scope, &audience()?, true))
        }
        "refresh_token" => {
            let refresh = form
                .refresh_token
                .as_deref()
                .ok_or_else(|| refuse("invalid_request"))?;
            let grant = sts.grants.lock().unwrap().get(refresh).cloned();
            let (sub, granted, aud) = grant.ok_or_else(|| refuse("invalid_grant"))?;
            let scope = if scope.is_empty() {
                granted.clone()
            } else {
                scope
            };
            if !scope
                .split_whitespace()
                .all(|s| granted.split(' ').any(|g| g == s))
            {
                return Err(refuse("invalid_scope"));
            }
            Ok(access(&sub, &scope, &aud, true))
        }
        "client_credentials" => Ok(access(&sts.client_id.clone(), &scope, &audience()?, false)),
        _ => Err(refuse("unsupported_grant_type")),
    }
}
