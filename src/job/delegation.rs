//! Capturing a user's delegation for a job, and opening its handle.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine as _;

use super::grant::{Grant, Route};
use super::handle::{JobError, JobErrorKind, JobHandle, Payload};
use super::run::Job;
use super::seal::SealingKeys;
use crate::Caller;
use crate::audit;
use crate::clock::unix_now;
use crate::provider::{ProviderError, ProviderErrorKind, TokenRequest};
use crate::revocation::TokenStore;

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const REFRESH_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:refresh_token";
const DEFAULT_MAX_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// Work done later on a user's behalf, with a durable, queueable handle:
/// see the [module docs](crate::job).
///
/// ```no_run
/// use std::time::Duration;
/// use tower_mandate::Caller;
/// use tower_mandate::job::{Delegation, Grant, SealingKeys};
/// use tower_mandate::provider::{ClientAuth, TokenRequest};
///
/// # async fn f(caller: Caller) -> Result<(), Box<dyn std::error::Error>> {
/// let keys = SealingKeys::from_base64("2026-12", &std::env::var("JOB_KEY")?)?;
/// let jobs = Delegation::builder(
///     Grant::refresh_token(
///         "https://id.example.com/oauth/token",
///         "tagger",
///         ClientAuth::SecretBasic(std::env::var("CLIENT_SECRET")?),
///         "https://id.example.com", // the issuer of the users it acts for
///     ),
///     keys,
/// )
/// .build();
///
/// // While the user's request is handled:
/// let request = TokenRequest::for_audience("image-store").with_scope("images:write");
/// let handle = jobs
///     .capture(&caller, "tag-image", request, Duration::from_secs(24 * 3600))
///     .await?;
/// let queued = serde_json::to_string(&handle)?; // onto the queue
///
/// // In the worker, hours later:
/// let job = jobs.open(&serde_json::from_str(&queued)?, "tag-image")?;
/// let token = job.token().await?; // for the user, this service as actor
/// let headers = token.headers(); // Authorization, X-Request-Id, Txn-Token
/// # let _ = headers; Ok(()) }
/// ```
#[derive(Clone)]
pub struct Delegation(pub(super) Arc<Inner>);

pub(super) struct Inner {
    pub(super) route: Route,
    pub(super) keys: SealingKeys,
    pub(super) revocation: Option<Arc<dyn TokenStore>>,
    max_lifetime: Duration,
}

/// Builds a [`Delegation`]: [`Delegation::builder`].
pub struct DelegationBuilder(Inner);

impl Delegation {
    /// Jobs that get their tokens by `grant`, with handles sealed under
    /// `keys`.
    pub fn builder(grant: Grant, keys: SealingKeys) -> DelegationBuilder {
        DelegationBuilder(Inner {
            route: grant.0,
            keys,
            revocation: None,
            max_lifetime: DEFAULT_MAX_LIFETIME,
        })
    }
}

impl DelegationBuilder {
    /// Before a job's token is asked for, check the user (and the
    /// captured token) against `store`'s revocation list: a user revoked
    /// since capture ([`MemoryStore::revoke_subject`](crate::revocation::MemoryStore::revoke_subject))
    /// gets no token, and nothing is called. A store that cannot answer
    /// refuses the job (fail closed).
    pub fn with_revocation(mut self, store: impl TokenStore) -> Self {
        self.0.revocation = Some(Arc::new(store));
        self
    }

    /// [`DelegationBuilder::with_revocation`] with a store already shared.
    #[cfg(feature = "config")]
    pub(crate) fn with_revocation_store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.0.revocation = Some(store);
        self
    }

    /// The longest a handle lives, whatever a capture asks (default 7 days).
    pub fn with_max_lifetime(mut self, lifetime: Duration) -> Self {
        self.0.max_lifetime = lifetime;
        self
    }

    /// Allow a token endpoint over plain http.
    ///
    /// # Security
    ///
    /// Refresh tokens and assertions then cross the network in clear: for
    /// tests on loopback only.
    pub fn insecure_allow_http(mut self) -> Self {
        if let Some(endpoint) = self.0.route.endpoint() {
            endpoint.allow_http = true;
        }
        self
    }

    /// Talk to the token endpoint with the application's HTTP client
    /// (proxy, CA roots); redirects stay off and the timeouts are the
    /// crate's.
    pub fn with_client(mut self, client: reqwest::ClientBuilder) -> Self {
        if let Some(endpoint) = self.0.route.endpoint() {
            endpoint.set_client(client);
        }
        self
    }

    /// The delegation.
    pub fn build(self) -> Delegation {
        Delegation(Arc::new(self.0))
    }
}

/// A purpose is a name: 1 to 128 characters of `A-Z a-z 0-9 - _ . :`.
fn usable_purpose(purpose: &str) -> bool {
    !purpose.is_empty()
        && purpose.len() <= 128
        && purpose
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

pub(super) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random generator");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The claims of a JWT, read without verifying it (a token this service
/// was just given by its Transaction Token Service).
fn unverified_claims(token: &str) -> Option<serde_json::Value> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

pub(super) fn request_form(form: &mut Vec<(&str, String)>, payload: &Payload, aud: &str) {
    if let Some(scope) = &payload.scope {
        form.push(("scope", scope.clone()));
    }
    if let Some(resource) = &payload.resource {
        form.push(("resource", resource.clone()));
    }
    if payload.send_audience {
        form.push(("audience", aud.to_owned()));
    }
}

impl Delegation {
    /// Capture the user of `caller` for a job with `purpose` (a name such
    /// as `tag-image`, 1 to 128 characters of `A-Z a-z 0-9 - _ . :`), whose
    /// tokens `request` describes (its audience or resource is required;
    /// its scope is the job's), for at most `lifetime` (and the builder's
    /// maximum, and what the authorization server grants).
    ///
    /// The handle carries the request's id ([`Caller::request_id`], else a
    /// new one) and its `txn`, for the audit events of the job's calls.
    ///
    /// # Errors
    ///
    /// [`JobErrorKind::NoUser`] without a user (of the route's issuer),
    /// [`JobErrorKind::InvalidRequest`] for a bad purpose or no audience,
    /// [`JobErrorKind::Token`] when the authorization server refuses.
    pub async fn capture(
        &self,
        caller: &Caller,
        purpose: &str,
        request: TokenRequest,
        lifetime: Duration,
    ) -> Result<JobHandle, JobError> {
        let inner = &*self.0;
        if !usable_purpose(purpose) {
            return Err(JobError::new(
                JobErrorKind::InvalidRequest,
                "a job purpose is 1 to 128 characters of A-Z a-z 0-9 - _ . :",
            ));
        }
        let Some(aud) = request
            .audience
            .clone()
            .or_else(|| request.resource.clone())
        else {
            return Err(JobError::new(
                JobErrorKind::InvalidRequest,
                "a job needs the audience (or resource) of its tokens",
            ));
        };
        let now = unix_now();
        let mut exp = now.saturating_add(lifetime.min(inner.max_lifetime).as_secs());
        let transaction = caller.transaction();
        let user = match &inner.route {
            // The user, when the request names one; else the transaction's subject.
            Route::Transaction(_) if transaction.is_some() => {
                caller.user().or(transaction.map(|t| t.principal()))
            }
            Route::Transaction(_) => None,
            _ => caller.user(),
        };
        let Some(user) = user else {
            return Err(JobError::new(
                JobErrorKind::NoUser,
                match &inner.route {
                    Route::Transaction(_) => "no Transaction Token on the request",
                    _ => {
                        "no user on the request: a job without one runs as the service (AsService)"
                    }
                },
            ));
        };
        if let Some(issuer) = inner.route.issuer()
            && user.issuer() != issuer
        {
            return Err(JobError::new(
                JobErrorKind::NoUser,
                "the user is not of the issuer this grant acts for",
            ));
        }
        let mut payload = Payload {
            grant: inner.route.name().to_owned(),
            credential: None,
            iss: user.issuer().to_owned(),
            sub: user.subject().to_owned(),
            iat: user.issued_at(),
            jti: user.token_id().map(str::to_owned),
            scope: request.scope.clone(),
            resource: request.resource.clone(),
            send_audience: request.audience.is_some(),
            request_id: caller.request_id().map_or_else(random_id, str::to_owned),
            txn: transaction.map(|t| t.txn().to_owned()),
            captured_at: now,
            job_id: random_id(),
            txn_subject: None,
        };
        match &inner.route {
            Route::RefreshToken { endpoint, .. } => {
                let mut form = vec![
                    ("grant_type", TOKEN_EXCHANGE.to_owned()),
                    ("subject_token", user.token().to_owned()),
                    ("subject_token_type", ACCESS_TOKEN_TYPE.to_owned()),
                    ("requested_token_type", REFRESH_TOKEN_TYPE.to_owned()),
                ];
                request_form(&mut form, &payload, &aud);
                let issued = endpoint.issue(form).await?;
                let (credential, lifetime) =
                    if issued.issued_token_type.as_deref() == Some(REFRESH_TOKEN_TYPE) {
                        (Some(issued.token.secret().to_owned()), issued.expires_in)
                    } else {
                        (
                            issued.refresh_token,
                            issued.refresh_expires_in.filter(|&s| s > 0),
                        )
                    };
                let Some(credential) = credential else {
                    return Err(ProviderError::new(
                        ProviderErrorKind::InvalidResponse,
                        "the token exchange issued no refresh token",
                    )
                    .into());
                };
                if let Some(secs) = lifetime {
                    exp = exp.min(now.saturating_add(secs));
                }
                payload.credential = Some(credential);
            }
            Route::JwtBearer { .. } => {
                // The service alone decides what it will assert: only what
                // the user's token holds, and never a delegated token's
                // user (its actor chain would be lost).
                if !user.actors().is_empty() {
                    return Err(JobError::new(
                        JobErrorKind::InvalidRequest,
                        "a delegated token (with act) is not captured for a JWT-bearer job",
                    ));
                }
                let scope = payload.scope.as_deref().unwrap_or_default();
                if scope.split_whitespace().next().is_none()
                    || !scope
                        .split_whitespace()
                        .all(|s| user.permissions().iter().any(|p| p == s))
                {
                    return Err(JobError::new(
                        JobErrorKind::InvalidRequest,
                        "a JWT-bearer job's scope must be named and held by the user's token",
                    ));
                }
            }
            Route::Transaction(exchange) => {
                let Some(scope) = &payload.scope else {
                    return Err(JobError::new(
                        JobErrorKind::InvalidRequest,
                        "a job inside a transaction needs a scope",
                    ));
                };
                let Some(current) = transaction else {
                    return Err(JobError::new(
                        JobErrorKind::NoUser,
                        "no Transaction Token on the request",
                    ));
                };
                let replacement = exchange.replace(current.token(), scope).await?;
                let claims = unverified_claims(&replacement);
                let Some(until) = claims.as_ref().and_then(|c| c.get("exp")?.as_u64()) else {
                    return Err(ProviderError::new(
                        ProviderErrorKind::InvalidResponse,
                        "a replacement Transaction Token without exp",
                    )
                    .into());
                };
                exp = exp.min(until);
                let principal = current.principal();
                payload.txn_subject = Some((
                    principal.issuer().to_owned(),
                    principal.subject().to_owned(),
                    claims
                        .as_ref()
                        .and_then(|c| c.get("jti")?.as_str())
                        .map(str::to_owned),
                ));
                payload.credential = Some(replacement);
            }
        }
        let handle = JobHandle::seal(
            &inner.keys,
            &inner.route.binding(),
            purpose,
            &aud,
            exp,
            &payload,
        );
        caller.audit(true, "job captured", purpose, None);
        Ok(handle)
    }

    /// Open `handle` for `purpose`, in any process that holds the keys.
    ///
    /// # Errors
    ///
    /// [`JobErrorKind::Malformed`], [`UnknownKey`](JobErrorKind::UnknownKey)
    /// (a retired key), [`Tampered`](JobErrorKind::Tampered),
    /// [`WrongPurpose`](JobErrorKind::WrongPurpose) or
    /// [`Expired`](JobErrorKind::Expired).
    pub fn open(&self, handle: &JobHandle, purpose: &str) -> Result<Job, JobError> {
        let opened = handle
            .open(&self.0.keys, &self.0.route.binding(), purpose, unix_now())
            .and_then(|payload| {
                // A maximum lowered since capture applies to queued handles too.
                let lived = handle.expires_at().saturating_sub(payload.captured_at);
                if lived > self.0.max_lifetime.as_secs() {
                    return Err(JobError::new(
                        JobErrorKind::Expired,
                        "a job handle that lives longer than this delegation allows",
                    ));
                }
                Ok(payload)
            });
        let payload = match opened {
            Ok(payload) => payload,
            Err(e) => {
                refused(purpose, &e);
                return Err(e);
            }
        };
        Ok(Job {
            delegation: self.clone(),
            purpose: handle.purpose().to_owned(),
            aud: handle.audience().to_owned(),
            exp: handle.expires_at(),
            payload: Mutex::new(payload),
            running: tokio::sync::Mutex::new(()),
        })
    }
}

/// The audit event of a handle that does not open (a forgery attempt, a
/// retired key, a handle past its time): who it names is not known.
fn refused(purpose: &str, e: &JobError) {
    if !audit::enabled() {
        return;
    }
    let reason = match e.kind() {
        JobErrorKind::Tampered => "job handle does not authenticate",
        JobErrorKind::UnknownKey => "job handle sealed under an unknown key",
        JobErrorKind::WrongPurpose => "job handle for another purpose",
        JobErrorKind::Expired => "job handle expired",
        _ => "job handle malformed",
    };
    // The purpose is the worker's, not the handle's: no queue text is logged.
    audit::decision(&audit::Who::default(), false, reason, purpose, None, "");
}

impl fmt::Debug for Delegation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delegation")
            .field("grant", &self.0.route.name())
            .field("keys", &self.0.keys)
            .field("revocation", &self.0.revocation.is_some())
            .field("max_lifetime", &self.0.max_lifetime)
            .finish()
    }
}

impl fmt::Debug for DelegationBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DelegationBuilder")
            .field("grant", &self.0.route.name())
            .finish_non_exhaustive()
    }
}
