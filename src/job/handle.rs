//! The serialized job handle, what it seals, and why a handle is refused.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::seal::SealingKeys;
use crate::provider::{ProviderError, ProviderErrorKind};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The handle format this crate writes and reads.
const VERSION: u8 = 1;

/// The largest sealed payload opened (a refresh token or a Transaction
/// Token and a few names): anything bigger is refused before decryption.
const MAX_SEALED: usize = 16 * 1024;
/// The longest readable fields: a key id, a purpose, an audience.
const MAX_KID: usize = 64;
const MAX_PURPOSE: usize = 128;
const MAX_AUD: usize = 1024;
/// A 96-bit nonce in base64url.
const NONCE_CHARS: usize = 16;

/// A job's delegation, safe to put on a queue: `serde` (JSON, or any
/// format), made by [`Delegation::capture`](super::Delegation::capture) and
/// turned back into a [`Job`](super::Job) by
/// [`Delegation::open`](super::Delegation::open).
///
/// The purpose, the audience and the expiry are readable (a consumer may
/// route on them); everything else — the user, the request id and any
/// credential the authorization server issued for the job — is sealed
/// with AES-256-GCM under the application's [`SealingKeys`], which also
/// authenticate the purpose, audience, expiry and key id: a handle edited
/// by one byte, or moved to another purpose, does not open. `Debug` shows
/// only the readable fields.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct JobHandle {
    v: u8,
    kid: String,
    purpose: String,
    aud: String,
    exp: u64,
    nonce: String,
    sealed: String,
}

/// What a handle seals.
#[derive(Serialize, Deserialize)]
pub(super) struct Payload {
    /// The route: `refresh_token`, `jwt_bearer` or `transaction`.
    pub(super) grant: String,
    /// The credential the authorization server issued for the job (a
    /// refresh token, a Transaction Token), when the route has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) credential: Option<String>,
    /// The user: issuer and subject.
    pub(super) iss: String,
    pub(super) sub: String,
    /// The captured token's `iat` and `jti`, for the revocation check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) resource: Option<String>,
    /// The audience is the handle's readable `aud`; this says whether it
    /// is also sent as `audience` (else only `resource` is).
    #[serde(default)]
    pub(super) send_audience: bool,
    pub(super) request_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) txn: Option<String>,
    /// When the handle was sealed (unix seconds).
    pub(super) captured_at: u64,
    /// This job's own id: the `token_id` of its audit events, revocable
    /// with `revoke_token(iss, job_id, …)` until the handle expires.
    pub(super) job_id: String,
    /// On the transaction route: the Transaction Token's principal (trust
    /// domain and `sub`) and the replacement's `jti`, also checked against
    /// the revocation store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) txn_subject: Option<(String, String, Option<String>)>,
}

/// The authenticated data of a handle: every readable field and the
/// delegation's `binding` (route, endpoint, client, issuer), each length
/// prefixed so that no two handles share it.
fn aad(binding: &str, kid: &str, purpose: &str, aud: &str, exp: u64) -> Vec<u8> {
    let mut aad = b"tower-mandate job v1".to_vec();
    for part in [
        binding.as_bytes(),
        kid.as_bytes(),
        purpose.as_bytes(),
        aud.as_bytes(),
    ] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part);
    }
    aad.extend_from_slice(&exp.to_be_bytes());
    aad
}

impl JobHandle {
    pub(super) fn seal(
        keys: &SealingKeys,
        binding: &str,
        purpose: &str,
        aud: &str,
        exp: u64,
        payload: &Payload,
    ) -> JobHandle {
        let plaintext = serde_json::to_vec(payload).expect("a job payload serializes");
        let kid = keys.current_kid();
        let (kid, nonce, sealed) = keys.seal(&aad(binding, kid, purpose, aud, exp), plaintext);
        JobHandle {
            v: VERSION,
            kid: kid.to_owned(),
            purpose: purpose.to_owned(),
            aud: aud.to_owned(),
            exp,
            nonce: B64.encode(nonce),
            sealed: B64.encode(sealed),
        }
    }

    /// Open this handle, sealed for `binding`, for `purpose`, at `now`
    /// (unix seconds).
    pub(super) fn open(
        &self,
        keys: &SealingKeys,
        binding: &str,
        purpose: &str,
        now: u64,
    ) -> Result<Payload, JobError> {
        if self.v != VERSION {
            return Err(JobError::new(
                JobErrorKind::Malformed,
                format!("a job handle of version {}, expected {VERSION}", self.v),
            ));
        }
        if self.sealed.len() > MAX_SEALED * 4 / 3 + 4
            || self.kid.len() > MAX_KID
            || self.purpose.len() > MAX_PURPOSE
            || self.aud.len() > MAX_AUD
            || self.nonce.len() != NONCE_CHARS
        {
            return Err(JobError::new(
                JobErrorKind::Malformed,
                "a job handle with a field of the wrong size",
            ));
        }
        let (Ok(nonce), Ok(sealed)) = (B64.decode(&self.nonce), B64.decode(&self.sealed)) else {
            return Err(JobError::new(
                JobErrorKind::Malformed,
                "a job handle that is not base64url",
            ));
        };
        let aad = aad(binding, &self.kid, &self.purpose, &self.aud, self.exp);
        let plaintext = keys.open(&self.kid, &nonce, &aad, sealed).map_err(|e| match e {
            None => JobError::new(
                JobErrorKind::UnknownKey,
                format!(
                    "a job handle sealed under key {:?}, which this service does not hold (retired?)",
                    self.kid.chars().take(64).collect::<String>()
                ),
            ),
            Some(()) => JobError::new(
                JobErrorKind::Tampered,
                "a job handle that does not open: edited, sealed for another delegation, or under another key with the same id",
            ),
        })?;
        // Only an authentic handle gets this far: its purpose and expiry
        // are the ones sealed.
        if self.purpose != purpose {
            return Err(JobError::new(
                JobErrorKind::WrongPurpose,
                format!(
                    "a job handle for purpose {:?}, opened for {purpose:?}",
                    self.purpose
                ),
            ));
        }
        if now >= self.exp {
            return Err(JobError::new(
                JobErrorKind::Expired,
                format!("a job handle that expired {} s ago", now - self.exp),
            ));
        }
        serde_json::from_slice(&plaintext).map_err(|_| {
            JobError::new(JobErrorKind::Malformed, "a job payload of an unknown shape")
        })
    }

    /// What the job is for, as captured.
    pub fn purpose(&self) -> &str {
        &self.purpose
    }

    /// The audience of the job's tokens.
    pub fn audience(&self) -> &str {
        &self.aud
    }

    /// When the handle stops opening (unix seconds).
    pub fn expires_at(&self) -> u64 {
        self.exp
    }

    /// The id of the key that sealed it.
    pub fn key_id(&self) -> &str {
        &self.kid
    }
}

impl fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobHandle")
            .field("purpose", &self.purpose)
            .field("aud", &self.aud)
            .field("exp", &self.exp)
            .field("kid", &self.kid)
            .field("sealed", &"<redacted>")
            .finish()
    }
}

/// Why a job could not be captured, opened or given a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobErrorKind {
    /// The handle is not one this crate wrote (version, base64, size).
    Malformed,
    /// The handle's key is not among the [`SealingKeys`] (a retired key).
    UnknownKey,
    /// The handle does not authenticate: edited, or forged.
    Tampered,
    /// An authentic handle, opened for another purpose.
    WrongPurpose,
    /// The handle, or the credential it holds, has expired.
    Expired,
    /// The request has no user to act for (use [`AsService`](crate::provider::AsService)),
    /// or the user is not of the issuer the route acts for.
    NoUser,
    /// The job's request cannot be made (no audience, no Transaction Token…).
    InvalidRequest,
    /// The user (or the captured token) was revoked since capture.
    Revoked,
    /// The revocation store could not answer: the job is refused (fail closed).
    StoreUnavailable,
    /// The authorization server refused or could not be reached; see
    /// [`JobError::provider_kind`].
    Token,
}

/// Why a job could not be captured, opened or given a token. Never holds
/// token or handle text.
#[derive(Debug, Clone)]
pub struct JobError {
    kind: JobErrorKind,
    message: String,
    provider: Option<ProviderError>,
}

impl JobError {
    pub(super) fn new(kind: JobErrorKind, message: impl Into<String>) -> Self {
        JobError {
            kind,
            message: message.into(),
            provider: None,
        }
    }

    /// The class of the error.
    pub fn kind(&self) -> JobErrorKind {
        self.kind
    }

    /// For [`JobErrorKind::Token`]: what the token request ran into.
    pub fn provider_kind(&self) -> Option<ProviderErrorKind> {
        self.provider.as_ref().map(ProviderError::kind)
    }
}

impl From<ProviderError> for JobError {
    fn from(e: ProviderError) -> Self {
        JobError {
            kind: JobErrorKind::Token,
            message: "the job's token request failed".into(),
            provider: Some(e),
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.provider {
            Some(p) => write!(f, "{}: {p}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for JobError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.provider
            .as_ref()
            .map(|p| p as &(dyn std::error::Error + 'static))
    }
}
