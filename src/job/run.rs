//! A job when it runs: the revocation check, the grant, the headers of its calls.

use std::fmt;
use std::sync::{Arc, Mutex};

use super::delegation::{Delegation, random_id, request_form};
use super::grant::Route;
use super::handle::{JobError, JobErrorKind, JobHandle, Payload};
use crate::audit;
use crate::clock::unix_now;
use crate::provider::AccessToken;
use crate::revocation::{TokenFacts, Verdict};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The lifetime of an RFC 7523 assertion.
const ASSERTION_LIFETIME: u64 = 60;

/// A job opened from its handle: [`Job::token`] when it runs.
pub struct Job {
    pub(super) delegation: Delegation,
    pub(super) purpose: String,
    pub(super) aud: String,
    pub(super) exp: u64,
    pub(super) payload: Mutex<Payload>,
    /// One token request at a time: a rotated refresh token is used once.
    pub(super) running: tokio::sync::Mutex<()>,
}

/// What a job sends to the services it calls: see [`JobToken::headers`].
#[derive(Clone)]
pub struct JobToken {
    access_token: Option<AccessToken>,
    transaction_token: Option<Arc<str>>,
    request_id: Arc<str>,
}

impl JobToken {
    /// The user's delegated access token (none on the
    /// [transaction](super::Grant::transaction) route: send the service's own).
    pub fn access_token(&self) -> Option<&AccessToken> {
        self.access_token.as_ref()
    }

    /// The Transaction Token, on the transaction route.
    ///
    /// # Security
    ///
    /// A bearer credential: never log it.
    pub fn transaction_token(&self) -> Option<&str> {
        self.transaction_token.as_deref()
    }

    /// The id of the request that captured the job.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The headers of a call the job makes: `Authorization: Bearer` (the
    /// delegated token), `Txn-Token` (on the transaction route) and
    /// `X-Request-Id`, which the called service's audit events record.
    /// Credentials are marked sensitive.
    pub fn headers(&self) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        let sensitive = |text: String| {
            http::HeaderValue::try_from(text).ok().map(|mut v| {
                v.set_sensitive(true);
                v
            })
        };
        if let Some(value) = self
            .access_token
            .as_ref()
            .and_then(|t| sensitive(format!("Bearer {}", t.secret())))
        {
            headers.insert(http::header::AUTHORIZATION, value);
        }
        if let Some(value) = self
            .transaction_token
            .as_deref()
            .and_then(|t| sensitive(t.to_owned()))
        {
            headers.insert(crate::transaction::HEADER, value);
        }
        if let Ok(value) = http::HeaderValue::from_str(&self.request_id) {
            headers.insert(audit::REQUEST_ID_HEADER, value);
        }
        headers
    }
}

impl fmt::Debug for JobToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobToken")
            .field("access_token", &self.access_token)
            .field(
                "transaction_token",
                &self.transaction_token.as_ref().map(|_| "<redacted>"),
            )
            .field("request_id", &self.request_id)
            .finish()
    }
}

impl Job {
    fn payload(&self) -> std::sync::MutexGuard<'_, Payload> {
        self.payload.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The user the job acts for.
    pub fn user(&self) -> crate::PrincipalId {
        let p = self.payload();
        crate::PrincipalId::new(p.iss.as_str(), p.sub.as_str())
    }

    /// The id of the request that captured the job.
    pub fn request_id(&self) -> String {
        self.payload().request_id.clone()
    }

    /// The `txn` of the transaction the job was captured in.
    pub fn txn(&self) -> Option<String> {
        self.payload().txn.clone()
    }

    /// This job's id: the `token_id` of its audit events. To stop one job,
    /// revoke it as a token of its user's issuer until the handle expires:
    /// `store.revoke_token(&job.user().issuer(), &job.id(), handle.expires_at())`;
    /// to stop every job of a user, `revoke_subject`.
    pub fn id(&self) -> String {
        self.payload().job_id.clone()
    }

    /// The job's purpose.
    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// The handle again, sealed under the current key: to put the job back
    /// on a queue, with the refresh token the authorization server rotated
    /// to, or to re-seal handles under a new key before the old one retires.
    pub fn reseal(&self) -> JobHandle {
        JobHandle::seal(
            &self.delegation.0.keys,
            &self.delegation.0.route.binding(),
            &self.purpose,
            &self.aud,
            self.exp,
            &self.payload(),
        )
    }

    /// An audit event about this job: `user` the user, `actor` this
    /// service, `request_id` and `txn` the capturing request's.
    fn audit(&self, allowed: bool, reason: &str) {
        if !audit::enabled() {
            return;
        }
        let p = self.payload();
        let actor = match &self.delegation.0.route {
            Route::RefreshToken { endpoint, .. } | Route::JwtBearer { endpoint, .. } => {
                format!("{}#{}", p.iss, endpoint.client_id())
            }
            Route::Transaction(_) => String::new(),
        };
        let who = audit::Who {
            user: &p.sub,
            user_issuer: &p.iss,
            actors: actor
                .rsplit_once('#')
                .map(|(_, sub)| sub.to_owned())
                .unwrap_or_default(),
            actor,
            token_id: p.job_id.clone(),
            txn: p.txn.as_deref().unwrap_or(""),
            request_id: &p.request_id,
            ..audit::Who::default()
        };
        audit::decision(&who, allowed, reason, &self.purpose, None, "");
    }

    /// Check the user against the revocation store, if there is one.
    async fn check_revocation(&self) -> Result<(), JobError> {
        let Some(store) = &self.delegation.0.revocation else {
            return Ok(());
        };
        let facts = {
            let p = self.payload();
            let with = |facts: TokenFacts, jti: Option<&String>| match jti {
                Some(jti) => facts.with_jti(jti.clone()),
                None => facts,
            };
            let user = TokenFacts::new(p.iss.clone(), p.sub.clone(), self.exp, self.exp);
            let user = match p.iat {
                Some(iat) => user.with_issued_at(iat),
                None => user,
            };
            // The captured token, this job (by its id), and on the
            // transaction route the transaction's subject and replacement.
            let mut facts = vec![
                with(user.clone(), p.jti.as_ref()),
                user.with_jti(p.job_id.clone()),
            ];
            if let Some((iss, sub, jti)) = &p.txn_subject {
                facts.push(with(
                    TokenFacts::new(iss.clone(), sub.clone(), self.exp, self.exp)
                        .with_issued_at(p.captured_at),
                    jti.as_ref(),
                ));
            }
            facts
        };
        match store.check_all(&facts, false).await {
            Ok(verdicts) if verdicts.iter().all(|v| *v == Verdict::Fresh) => Ok(()),
            Ok(_) => {
                self.audit(false, "user revoked since the job was captured");
                Err(JobError::new(
                    JobErrorKind::Revoked,
                    "the user was revoked since the job was captured",
                ))
            }
            Err(e) => {
                self.audit(false, "revocation store unavailable");
                Err(JobError::new(
                    JobErrorKind::StoreUnavailable,
                    format!("the revocation store could not answer: {e}"),
                ))
            }
        }
    }

    /// A token for the job, obtained now: the revocation check first (a
    /// revoked user's job calls nothing), then the route's grant.
    ///
    /// # Errors
    ///
    /// [`JobErrorKind::Revoked`], [`StoreUnavailable`](JobErrorKind::StoreUnavailable),
    /// [`Expired`](JobErrorKind::Expired), or [`Token`](JobErrorKind::Token)
    /// when the authorization server refuses (e.g. the grant was revoked
    /// there).
    pub async fn token(&self) -> Result<JobToken, JobError> {
        let _running = self.running.lock().await;
        let now = unix_now();
        if now >= self.exp {
            self.audit(false, "job handle expired");
            return Err(JobError::new(
                JobErrorKind::Expired,
                "the job handle has expired",
            ));
        }
        self.check_revocation().await?;
        let (form, endpoint, request_id) = {
            let p = self.payload();
            let request_id: Arc<str> = p.request_id.as_str().into();
            match &self.delegation.0.route {
                Route::Transaction(_) => {
                    let token = JobToken {
                        access_token: None,
                        transaction_token: p.credential.as_deref().map(Arc::from),
                        request_id,
                    };
                    drop(p);
                    self.audit(true, "job transaction token released");
                    return Ok(token);
                }
                Route::RefreshToken { endpoint, .. } => {
                    let mut form = vec![
                        ("grant_type", "refresh_token".to_owned()),
                        ("refresh_token", p.credential.clone().unwrap_or_default()),
                    ];
                    if let Some(scope) = &p.scope {
                        form.push(("scope", scope.clone()));
                    }
                    if let Some(resource) = &p.resource {
                        form.push(("resource", resource.clone()));
                    }
                    (form, endpoint, request_id)
                }
                Route::JwtBearer {
                    endpoint,
                    key,
                    issuer,
                } => {
                    if p.iss != *issuer {
                        return Err(JobError::new(
                            JobErrorKind::NoUser,
                            "the job's user is not of the issuer this grant acts for",
                        ));
                    }
                    let assertion = key.sign_claims(&serde_json::json!({
                        "iss": endpoint.client_id(),
                        "sub": p.sub,
                        "aud": endpoint.url(),
                        "iat": now,
                        "exp": now + ASSERTION_LIFETIME,
                        "jti": random_id(),
                    }));
                    let mut form = vec![
                        ("grant_type", JWT_BEARER.to_owned()),
                        ("assertion", assertion),
                    ];
                    request_form(&mut form, &p, &self.aud);
                    (form, endpoint, request_id)
                }
            }
        };
        let issued = match endpoint.issue(form).await {
            Ok(issued) => issued,
            Err(e) => {
                self.audit(false, "the authorization server refused the job's token");
                return Err(e.into());
            }
        };
        if let (Route::RefreshToken { .. }, Some(rotated)) =
            (&self.delegation.0.route, issued.refresh_token)
        {
            self.payload().credential = Some(rotated);
        }
        self.audit(true, "job token obtained");
        Ok(JobToken {
            access_token: Some(issued.token),
            transaction_token: None,
            request_id,
        })
    }
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.payload();
        f.debug_struct("Job")
            .field("purpose", &self.purpose)
            .field("aud", &self.aud)
            .field("exp", &self.exp)
            .field("user", &p.sub)
            .field("request_id", &p.request_id)
            .field("credential", &p.credential.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}
