//! A Transaction Token Service (draft-ietf-oauth-transaction-tokens-10
//! §10–§11) as an axum router: `POST /token` (the RFC 8693 profile of
//! §11.1) and `GET /.well-known/jwks.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::{Map, Value, json};

use super::{TOKEN_TYPE, TYP, TransactionSlot};
use crate::mint::SigningKey;
use crate::{ConfigError, Principal, Verifier};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The longest form body read.
const MAX_BODY: usize = 64 * 1024;

/// A Transaction Token Service: verifies the subject token (the external
/// access token, or a Transaction Token to replace), authenticates the
/// requesting workload by its own token (`Authorization: Bearer`), narrows
/// the scope, and signs a Transaction Token.
///
/// The scope issued is the scope requested, narrowed to what the subject
/// token grants (§13.6: never wider than it) and to what the policy lets
/// the workload ask for ([`TokenServiceBuilder::allow`]); nothing left is
/// `invalid_scope`. A replacement (`subject_token_type` the Txn-Token type)
/// keeps `txn`, `sub`, `aud`, `req_wl`, `tctx` and `rctx` and may only
/// narrow the scope (§13.15); an expired token is not replaced.
#[derive(Clone)]
pub struct TokenService(Arc<Inner>);

struct Inner {
    trust_domain: String,
    issuer: Option<String>,
    key: SigningKey,
    subjects: Verifier,
    workloads: Verifier,
    own: Verifier,
    lifetime: u64,
    allowed: BTreeMap<crate::PrincipalId, BTreeSet<String>>,
}

/// Builds a [`TokenService`].
#[must_use]
pub struct TokenServiceBuilder {
    trust_domain: String,
    issuer: Option<String>,
    key: SigningKey,
    subjects: Verifier,
    workloads: Verifier,
    lifetime: Duration,
    allowed: BTreeMap<crate::PrincipalId, BTreeSet<String>>,
}

impl TokenService {
    /// A service for `trust_domain` signing with `key`; `subjects` verifies
    /// the access tokens it exchanges, `workloads` the requesting
    /// workloads' own tokens.
    pub fn builder(
        trust_domain: impl Into<String>,
        key: SigningKey,
        subjects: Verifier,
        workloads: Verifier,
    ) -> TokenServiceBuilder {
        TokenServiceBuilder {
            trust_domain: trust_domain.into(),
            issuer: None,
            key,
            subjects,
            workloads,
            lifetime: Duration::from_secs(300),
            allowed: BTreeMap::new(),
        }
    }

    /// The public keys, as a JWKS document.
    pub fn jwks(&self) -> String {
        self.0.key.jwks()
    }

    /// The service's routes: `POST /token`, `GET /.well-known/jwks.json`.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        let this = self.clone();
        let jwks = self.jwks();
        axum::Router::new()
            .route(
                "/token",
                axum::routing::post(move |headers: http::HeaderMap, body: axum::body::Bytes| {
                    let this = this.clone();
                    async move { this.exchange(&headers, &body) }
                }),
            )
            .route(
                "/.well-known/jwks.json",
                axum::routing::get(move || {
                    let jwks = jwks.clone();
                    async move {
                        (
                            [(http::header::CONTENT_TYPE, "application/jwk-set+json")],
                            jwks,
                        )
                    }
                }),
            )
    }

    /// One token request; an RFC 6749 §5.1 or §5.2 answer.
    fn exchange(&self, headers: &http::HeaderMap, body: &[u8]) -> Response {
        match self.issue(headers, body) {
            Ok(token) => answer(
                StatusCode::OK,
                json!({
                    "access_token": token,
                    "issued_token_type": TOKEN_TYPE,
                    "token_type": "N_A",
                }),
            ),
            Err((status, code, description)) => {
                let mut response = answer(
                    status,
                    json!({"error": code, "error_description": description}),
                );
                if status == StatusCode::UNAUTHORIZED {
                    // RFC 6749 §5.2: how the client was to authenticate.
                    response.headers_mut().insert(
                        http::header::WWW_AUTHENTICATE,
                        http::HeaderValue::from_static("Bearer"),
                    );
                }
                response
            }
        }
    }

    fn issue(&self, headers: &http::HeaderMap, body: &[u8]) -> Result<String, Refusal> {
        let inner = &*self.0;
        // §11.5: the requesting workload authenticates with its own token.
        let workload = workload_token(headers)
            .and_then(|t| inner.workloads.verify(t).ok())
            .ok_or((
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "the workload is not authenticated",
            ))?;
        if body.len() > MAX_BODY {
            return Err(bad("invalid_request", "request too large"));
        }
        let mut form: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in url::form_urlencoded::parse(body) {
            if form.insert(name.into_owned(), value.into_owned()).is_some() {
                return Err(bad("invalid_request", "a parameter appears twice"));
            }
        }
        let get = |name: &str| form.get(name).map(String::as_str);
        if get("grant_type") != Some(TOKEN_EXCHANGE) {
            return Err(bad("unsupported_grant_type", "token exchange only"));
        }
        if get("requested_token_type") != Some(TOKEN_TYPE) {
            return Err(bad(
                "invalid_request",
                "requested_token_type must be the Txn-Token type",
            ));
        }
        if get("audience") != Some(inner.trust_domain.as_str()) {
            return Err(bad("invalid_target", "audience is not this trust domain"));
        }
        let requested: Vec<&str> = get("scope")
            .ok_or(bad("invalid_request", "scope is required"))?
            .split(' ')
            .filter(|s| !s.is_empty())
            .collect();
        let subject_token =
            get("subject_token").ok_or(bad("invalid_request", "subject_token is required"))?;
        let allowed = inner.allowed.get(&workload.id());
        let may = |s: &&str| allowed.is_some_and(|a| a.contains(*s));
        let now = crate::clock::unix_now();
        let claims = match get("subject_token_type") {
            Some(ACCESS_TOKEN) => {
                let subject = inner
                    .subjects
                    .verify(subject_token)
                    .map_err(|_| bad("invalid_grant", "the subject token is not valid"))?;
                let scope = granted(&requested, &subject, may)?;
                let exp = (now + inner.lifetime).min(subject.exp());
                if exp <= now {
                    return Err(bad("invalid_grant", "the subject token has expired"));
                }
                let mut claims = Map::new();
                let txn = new_txn().ok_or((
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "no random source",
                ))?;
                claims.insert("txn".into(), Value::String(txn));
                // `sub` is unique in the trust domain (§9.2): a `sub` is
                // unique only within its issuer (or tenant), so it is
                // `<iss>#<sub>`.
                let sub = format!("{}#{}", subject.issuer(), subject.subject());
                claims.insert("sub".into(), Value::String(sub));
                claims.insert(
                    "req_wl".into(),
                    Value::String(workload.subject().to_owned()),
                );
                for (param, claim) in [("request_details", "tctx"), ("request_context", "rctx")] {
                    if let Some(text) = get(param) {
                        let value: Value = serde_json::from_str(text)
                            .ok()
                            .filter(Value::is_object)
                            .ok_or(bad(
                                "invalid_request",
                                "request_context and request_details are JSON objects",
                            ))?;
                        claims.insert(claim.into(), value);
                    }
                }
                claims.insert("scope".into(), Value::String(scope));
                claims.insert("exp".into(), exp.into());
                claims
            }
            Some(TOKEN_TYPE) => {
                // §13.15: txn, sub and aud stay; the scope may only narrow.
                let old = inner
                    .own
                    .verify(subject_token)
                    .ok()
                    // §13.15: an expired token is not replaced, leeway or not.
                    .filter(|old| old.exp() > now)
                    .ok_or(bad("invalid_grant", "the Txn-Token is not valid"))?;
                let scope = granted(&requested, &old, may)?;
                let mut claims = old.claims_map().clone();
                claims.insert("scope".into(), Value::String(scope));
                // Never past the token it replaces: a transaction cannot be
                // kept alive beyond the login it started from by replacing
                // it again and again.
                claims.insert("exp".into(), (now + inner.lifetime).min(old.exp()).into());
                claims
            }
            _ => {
                return Err(bad(
                    "invalid_request",
                    "subject_token_type is not supported",
                ));
            }
        };
        let mut claims = claims;
        claims.insert("aud".into(), Value::String(inner.trust_domain.clone()));
        claims.insert("iat".into(), now.into());
        match &inner.issuer {
            Some(iss) => claims.insert("iss".into(), Value::String(iss.clone())),
            None => claims.remove("iss"),
        };
        Ok(sign(&inner.key, &Value::Object(claims)))
    }
}

type Refusal = (StatusCode, &'static str, &'static str);

fn bad(code: &'static str, description: &'static str) -> Refusal {
    (StatusCode::BAD_REQUEST, code, description)
}

/// The requested scopes the subject's token grants and the workload may
/// ask for, space-delimited; none left is `invalid_scope`.
fn granted(
    requested: &[&str],
    subject: &Principal,
    may: impl Fn(&&str) -> bool,
) -> Result<String, Refusal> {
    let scope: Vec<&str> = requested
        .iter()
        .filter(|s| subject.permissions().contains(s))
        .filter(|s| may(s))
        .copied()
        .collect();
    if scope.is_empty() {
        return Err(bad("invalid_scope", "no requested scope may be granted"));
    }
    Ok(scope.join(" "))
}

fn workload_token(headers: &http::HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return None;
    };
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// A new transaction id: a UUID (version 4) from 16 random bytes.
fn new_txn() -> Option<String> {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut b = [0u8; 16];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut b).ok()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// A JWS with header `{typ: txntoken+jwt, alg, kid}` (§9.1).
fn sign(key: &SigningKey, claims: &Value) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = json!({"typ": TYP, "alg": key.algorithm().as_str(), "kid": key.kid()});
    let input = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let signature = key.sign_input(input.as_bytes());
    format!("{input}.{signature}")
}

fn answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [
            (http::header::CONTENT_TYPE, "application/json"),
            (http::header::CACHE_CONTROL, "no-store"),
        ],
        body.to_string(),
    )
        .into_response()
}

impl TokenServiceBuilder {
    /// The `iss` to set (tokens carry none by default, draft §9.2).
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// How long a token lives (default 5 minutes; draft §6: minutes or
    /// less), never past the subject token's `exp`.
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// Let the workload `workload` (its token's issuer and `sub`) ask for
    /// these scopes (purposes). A workload not named gets none.
    pub fn allow<I, S>(mut self, workload: crate::PrincipalId, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed
            .entry(workload)
            .or_default()
            .extend(scopes.into_iter().map(Into::into));
        self
    }

    /// The service.
    ///
    /// # Errors
    ///
    /// [`ConfigError::InvalidKey`] for a secret (HMAC) key: the service's
    /// keys are published.
    pub fn build(self) -> Result<TokenService, ConfigError> {
        let jwks = self.key.jwks();
        let keys = crate::keys::KeySet::from_jwks(&jwks)
            .ok()
            .filter(|k| !k.is_empty())
            .ok_or_else(|| ConfigError::InvalidKey {
                kid: Some(self.key.kid().to_owned()),
                reason: "a Transaction Token Service signs with a public key".into(),
            })?;
        let mut slot = TransactionSlot::required(self.trust_domain.clone()).with_keys(keys);
        if let Some(iss) = &self.issuer {
            slot = slot.with_issuer(iss.clone());
        }
        let (own, _, _) = slot.into_parts()?;
        Ok(TokenService(Arc::new(Inner {
            trust_domain: self.trust_domain,
            issuer: self.issuer,
            key: self.key,
            subjects: self.subjects,
            workloads: self.workloads,
            own,
            lifetime: self.lifetime.as_secs().max(1),
            allowed: self.allowed,
        })))
    }
}

impl fmt::Debug for TokenService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenService")
            .field("trust_domain", &self.0.trust_domain)
            .field("issuer", &self.0.issuer)
            .field("lifetime_secs", &self.0.lifetime)
            .field("allowed", &self.0.allowed)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for TokenServiceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenServiceBuilder")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}
