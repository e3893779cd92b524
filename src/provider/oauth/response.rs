//! Reading a token endpoint's answers (RFC 6749 §5.1, §5.2; RFC 8693 §2.2).

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::DEFAULT_LIFETIME;
use crate::provider::{AccessToken, ProviderError, ProviderErrorKind};

fn err(kind: ProviderErrorKind, message: impl Into<String>) -> ProviderError {
    ProviderError::new(kind, message)
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    token_type: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct ErrorResponse {
    pub(super) error: String,
}

/// A token endpoint's answer, with what a job keeps of it.
#[cfg_attr(not(feature = "_aws-lc"), allow(dead_code))]
pub(crate) struct Issued {
    pub(crate) token: AccessToken,
    /// `refresh_token` (RFC 6749 §5.1).
    pub(crate) refresh_token: Option<String>,
    /// `issued_token_type` (RFC 8693 §2.2.1).
    pub(crate) issued_token_type: Option<String>,
    /// `expires_in`, as sent.
    pub(crate) expires_in: Option<u64>,
    /// `refresh_expires_in` (Keycloak's lifetime of its refresh token).
    pub(crate) refresh_expires_in: Option<u64>,
}

#[derive(Deserialize)]
pub(super) struct Extra {
    #[serde(default)]
    pub(super) refresh_token: Option<String>,
    #[serde(default)]
    pub(super) issued_token_type: Option<String>,
    #[serde(default)]
    pub(super) expires_in: Option<u64>,
    #[serde(default)]
    pub(super) refresh_expires_in: Option<u64>,
}

/// Read a token endpoint's answer (RFC 6749 §5.1, §5.2): the token and
/// its `token_type`.
pub(crate) fn parse_token_response(
    status: u16,
    body: &[u8],
) -> Result<(AccessToken, Option<String>), ProviderError> {
    if (500..600).contains(&status) {
        return Err(err(
            ProviderErrorKind::Unavailable,
            format!("token endpoint answered {status}"),
        ));
    }
    if !(200..300).contains(&status) {
        return Err(rejected("token endpoint", status, body));
    }
    let parsed: TokenResponse = serde_json::from_slice(body)
        .map_err(|_| err(ProviderErrorKind::InvalidResponse, "not a token response"))?;
    if parsed.access_token.is_empty() {
        return Err(err(
            ProviderErrorKind::InvalidResponse,
            "empty access_token",
        ));
    }
    let lifetime = parsed.expires_in.map_or(DEFAULT_LIFETIME, |secs| {
        Duration::from_secs(secs.min(365 * 24 * 3600))
    });
    Ok((
        AccessToken::new(parsed.access_token, lifetime),
        parsed.token_type,
    ))
}

/// A refusal by `who` (RFC 6749 §5.2), naming only its OAuth error code:
/// an error description may echo input.
pub(crate) fn rejected(who: &str, status: impl fmt::Display, body: &[u8]) -> ProviderError {
    let code = serde_json::from_slice::<ErrorResponse>(body)
        .map(|e| e.error)
        .unwrap_or_else(|_| "unknown error".into());
    let code: String = code
        .chars()
        .filter(char::is_ascii_graphic)
        .take(64)
        .collect();
    err(
        ProviderErrorKind::Rejected,
        format!("{who} answered {status}: {code}"),
    )
}
