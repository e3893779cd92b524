//! At the edge: exchanging the incoming access token for a Transaction
//! Token at the trust domain's Transaction Token Service (draft -10 §11.1),
//! and asking it for a replacement (§13.15).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

use super::TOKEN_TYPE;
use crate::provider::{
    AccessToken, ProviderError, ProviderErrorKind, TokenFuture, TokenProvider, TokenRequest,
};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const MAX_RESPONSE: usize = 64 * 1024;

fn err(kind: ProviderErrorKind, message: impl Into<String>) -> ProviderError {
    ProviderError::new(kind, message)
}

/// A token provider that exchanges the user's access token (the request's
/// `subject_token`) for a Transaction Token: `audience` the trust domain,
/// `scope` the purpose (the request's scope), authenticated with this
/// workload's own token. Never cached: each exchange is a new transaction.
///
/// Give it to [`Destination::with_transaction_token`](crate::propagate::Destination::with_transaction_token):
/// a request that came with a user token and no Transaction Token then
/// goes out with a new one in `Txn-Token`.
#[derive(Clone)]
pub struct TransactionExchange(Arc<Inner>);

/// Reads a request's context from its [`Caller`](crate::Caller).
type ContextFn = dyn Fn(&crate::Caller) -> Option<serde_json::Map<String, Value>> + Send + Sync;

struct Inner {
    url: String,
    trust_domain: String,
    workload: (Arc<dyn TokenProvider>, TokenRequest),
    allow_http: bool,
    client: reqwest::Client,
    /// `request_context` (→ `rctx`) and `request_details` (→ `tctx`).
    context: Option<Arc<ContextFn>>,
    details: Option<Arc<ContextFn>>,
}

#[derive(Deserialize)]
struct Answer {
    access_token: String,
    issued_token_type: String,
    token_type: String,
}

impl TransactionExchange {
    /// Exchange at `token_url` for `trust_domain`, authenticated by this
    /// workload's token from `workload` (for `request`).
    ///
    /// # Panics
    ///
    /// If the TLS backend cannot be initialised.
    pub fn new(
        token_url: impl Into<String>,
        trust_domain: impl Into<String>,
        workload: impl TokenProvider,
        request: TokenRequest,
    ) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        TransactionExchange(Arc::new(Inner {
            url: token_url.into(),
            trust_domain: trust_domain.into(),
            workload: (Arc::new(workload), request),
            allow_http: false,
            client,
            context: None,
            details: None,
        }))
    }

    fn with(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.0).unwrap_or_else(|shared| Inner {
            url: shared.url.clone(),
            trust_domain: shared.trust_domain.clone(),
            workload: shared.workload.clone(),
            allow_http: shared.allow_http,
            client: shared.client.clone(),
            context: shared.context.clone(),
            details: shared.details.clone(),
        });
        f(&mut inner);
        TransactionExchange(Arc::new(inner))
    }

    /// The `request_context` (draft §11.1, the service's `rctx`) of each
    /// exchange, read from the request being handled (its
    /// [`Caller::current`](crate::Caller::current)). By default: `authn`,
    /// the user token's `acr`, when it has one.
    #[must_use]
    pub fn with_request_context(
        self,
        context: impl Fn(&crate::Caller) -> Option<serde_json::Map<String, Value>>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.with(|inner| inner.context = Some(Arc::new(context)))
    }

    /// The `request_details` (draft §11.1, the service's `tctx`) of each
    /// exchange, read from the request being handled.
    #[must_use]
    pub fn with_request_details(
        self,
        details: impl Fn(&crate::Caller) -> Option<serde_json::Map<String, Value>>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        self.with(|inner| inner.details = Some(Arc::new(details)))
    }

    /// The context of the request being handled, as the service gets it.
    fn contexts(&self) -> (Option<String>, Option<String>) {
        let Some(caller) = crate::Caller::current() else {
            return (None, None);
        };
        let context = match &self.0.context {
            Some(f) => f(&caller),
            None => caller
                .user()
                .and_then(|u| u.claim("acr").and_then(Value::as_str))
                .map(|acr| {
                    let mut m = serde_json::Map::new();
                    m.insert("authn".into(), Value::String(acr.to_owned()));
                    m
                }),
        };
        let details = self.0.details.as_ref().and_then(|f| f(&caller));
        let text =
            |m: Option<serde_json::Map<String, Value>>| m.map(|m| Value::Object(m).to_string());
        (text(context), text(details))
    }

    /// Allow a plain `http` token endpoint (loopback tests).
    ///
    /// # Security
    ///
    /// The tokens cross the network in clear text.
    #[must_use]
    pub fn insecure_allow_http(self) -> Self {
        self.with(|inner| inner.allow_http = true)
    }

    /// The token endpoint and the trust domain (what a job handle of the
    /// transaction route is bound to).
    #[cfg(feature = "_aws-lc")]
    pub(crate) fn binding(&self) -> (&str, &str) {
        (&self.0.url, &self.0.trust_domain)
    }

    /// A replacement for `current` (a Transaction Token this workload
    /// received) with `scope`, for work done later (§13.15). The service
    /// may only narrow: a replacement that changes `txn`, `sub` or `aud`,
    /// or widens the scope, is refused here.
    ///
    /// # Errors
    ///
    /// [`ProviderErrorKind::Rejected`] when the service refuses, or
    /// [`ProviderErrorKind::InvalidResponse`] for a replacement that breaks
    /// those rules.
    pub async fn replace(&self, current: &str, scope: &str) -> Result<String, ProviderError> {
        let token = self
            .request(current, TOKEN_TYPE, scope, (None, None))
            .await?;
        check_replacement(current, &token)?;
        Ok(token)
    }

    async fn request(
        &self,
        subject: &str,
        subject_type: &str,
        scope: &str,
        (context, details): (Option<String>, Option<String>),
    ) -> Result<String, ProviderError> {
        let inner = &*self.0;
        let url = reqwest::Url::parse(&inner.url)
            .map_err(|e| err(ProviderErrorKind::InvalidRequest, format!("token URL: {e}")))?;
        if url.scheme() != "https" && !(url.scheme() == "http" && inner.allow_http) {
            return Err(err(
                ProviderErrorKind::InvalidRequest,
                "the Transaction Token Service is not https (see insecure_allow_http)",
            ));
        }
        let (provider, request) = &inner.workload;
        let own = provider.token(request.clone()).await?;
        let form = [
            ("grant_type", TOKEN_EXCHANGE),
            ("requested_token_type", TOKEN_TYPE),
            ("audience", inner.trust_domain.as_str()),
            ("scope", scope),
            ("subject_token", subject),
            ("subject_token_type", subject_type),
        ];
        let body = {
            // Not held across an await: the serializer is not `Send`.
            let mut body = url::form_urlencoded::Serializer::new(String::new());
            body.extend_pairs(form);
            if let Some(context) = &context {
                body.append_pair("request_context", context);
            }
            if let Some(details) = &details {
                body.append_pair("request_details", details);
            }
            body.finish()
        };
        let mut res = inner
            .client
            .post(url.clone())
            .bearer_auth(own.secret())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await
            .map_err(|e| err(ProviderErrorKind::Network, e.without_url().to_string()))?;
        let status = res.status();
        let bytes = crate::body::read(&mut res, MAX_RESPONSE)
            .await
            .map_err(|e| match e {
                crate::body::BodyError::Network(e) => {
                    err(ProviderErrorKind::Network, e.to_string())
                }
                crate::body::BodyError::TooLarge => {
                    err(ProviderErrorKind::InvalidResponse, "response too large")
                }
            })?;
        if status.is_server_error() {
            return Err(err(
                ProviderErrorKind::Unavailable,
                format!("the service answered {status}"),
            ));
        }
        if !status.is_success() {
            return Err(crate::provider::rejected("the service", status, &bytes));
        }
        let answer: Answer = serde_json::from_slice(&bytes)
            .map_err(|_| err(ProviderErrorKind::InvalidResponse, "not a token response"))?;
        // §11.4: `N_A`, and the Txn-Token type.
        if answer.issued_token_type != TOKEN_TYPE || answer.token_type != "N_A" {
            return Err(err(
                ProviderErrorKind::InvalidResponse,
                "not a Transaction Token",
            ));
        }
        Ok(answer.access_token)
    }
}

/// The claims of a token, read without checking its signature (receivers
/// check it; here they only compare two tokens of the same service).
fn claims_of(token: &str) -> Option<serde_json::Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Value>(&bytes)
        .ok()?
        .as_object()
        .cloned()
}

/// §13.15: `txn`, `sub` and `aud` unchanged, the scope not wider.
pub(crate) fn check_replacement(current: &str, replacement: &str) -> Result<(), ProviderError> {
    let bad = |m: &'static str| err(ProviderErrorKind::InvalidResponse, m);
    let (old, new) = (
        claims_of(current).ok_or_else(|| bad("the current token is not a JWT"))?,
        claims_of(replacement).ok_or_else(|| bad("the replacement is not a JWT"))?,
    );
    for claim in ["txn", "sub", "aud"] {
        if old.get(claim).is_none() || old.get(claim) != new.get(claim) {
            return Err(bad("the replacement changed txn, sub or aud"));
        }
    }
    let scope = |c: &serde_json::Map<String, Value>| -> Vec<String> {
        c.get("scope")
            .and_then(Value::as_str)
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let old_scope = scope(&old);
    if scope(&new).iter().any(|s| !old_scope.contains(s)) {
        return Err(bad("the replacement widened the scope"));
    }
    Ok(())
}

impl TokenProvider for TransactionExchange {
    fn token(&self, request: TokenRequest) -> TokenFuture {
        let this = self.clone();
        // Read now, in the request's task.
        let contexts = self.contexts();
        let caller = crate::Caller::current();
        Box::pin(async move {
            let subject = request.subject_token.clone().ok_or_else(|| {
                err(
                    ProviderErrorKind::InvalidRequest,
                    "a Transaction Token needs a subject token",
                )
            })?;
            let scope = request.scope.clone().ok_or_else(|| {
                err(
                    ProviderErrorKind::InvalidRequest,
                    "a Transaction Token needs a scope (its purpose)",
                )
            })?;
            let token = this
                .request(&subject, ACCESS_TOKEN, &scope, contexts)
                .await?;
            // The audit trail names the transaction at the edge too.
            let txn = claims_of(&token)
                .and_then(|c| c.get("txn").and_then(Value::as_str).map(str::to_owned));
            if let (Some(caller), Some(txn)) = (&caller, txn) {
                caller.audit_transaction_started(&txn);
            }
            let lifetime = claims_of(&token)
                .and_then(|c| c.get("exp").and_then(Value::as_u64))
                .map_or(Duration::from_secs(60), |exp| {
                    Duration::from_secs(exp.saturating_sub(crate::clock::unix_now()))
                });
            Ok(AccessToken::new(token, lifetime))
        })
    }
}

impl fmt::Debug for TransactionExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionExchange")
            .field("token_url", &self.0.url)
            .field("trust_domain", &self.0.trust_domain)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(claims: Value) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("e30.{}.sig", b64.encode(claims.to_string()))
    }

    #[test]
    fn a_replacement_may_only_narrow() {
        let old =
            token(serde_json::json!({"txn": "t1", "sub": "alice", "aud": "d", "scope": "a b"}));
        let ok = token(serde_json::json!({"txn": "t1", "sub": "alice", "aud": "d", "scope": "a"}));
        assert!(check_replacement(&old, &ok).is_ok());
        for bad in [
            serde_json::json!({"txn": "t2", "sub": "alice", "aud": "d", "scope": "a"}),
            serde_json::json!({"txn": "t1", "sub": "bob", "aud": "d", "scope": "a"}),
            serde_json::json!({"txn": "t1", "sub": "alice", "aud": "e", "scope": "a"}),
            serde_json::json!({"txn": "t1", "sub": "alice", "aud": "d", "scope": "a b c"}),
            serde_json::json!({"sub": "alice", "aud": "d", "scope": "a"}),
        ] {
            let e = check_replacement(&old, &token(bad.clone())).unwrap_err();
            assert_eq!(e.kind(), ProviderErrorKind::InvalidResponse, "{bad}");
        }
        assert!(check_replacement(&old, "not a jwt").is_err());
    }
}
