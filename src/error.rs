//! Errors: [`ConfigError`] when a layer is built, [`AuthError`] when a request
//! is refused.

use std::borrow::Cow;
use std::fmt;

/// Which credential slot of a request an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SlotKind {
    /// The end user's token (default `Authorization: Bearer …`).
    User,
    /// The calling service's own token (default `Service-Authorization: Bearer …`).
    Service,
    /// The transaction's token (default `Txn-Token: …`, draft-ietf-oauth-transaction-tokens).
    Transaction,
}

impl SlotKind {
    /// `"user"` or `"service"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SlotKind::User => "user",
            SlotKind::Service => "service",
            SlotKind::Transaction => "transaction",
        }
    }
}

impl fmt::Display for SlotKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A configuration that cannot be used: returned when keys are loaded or a
/// layer is built, never per request.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// A key could not be parsed or is unusable for any allowed algorithm.
    InvalidKey {
        /// The key id, when it has one.
        kid: Option<String>,
        /// Why the key was refused.
        reason: String,
    },
    /// A JWKS document is not valid JSON of the expected shape, or holds no usable key.
    InvalidJwks(String),
    /// An algorithm name that the crate does not support.
    UnknownAlgorithm(String),
    /// A rule of an issuer is missing or contradictory.
    InvalidRule {
        /// The issuer the rule belongs to.
        issuer: String,
        /// What is wrong.
        reason: String,
    },
    /// No issuer is trusted: a verifier needs at least one.
    NoIssuer,
    /// A URL (of keys, discovery, a token endpoint or a store) that cannot
    /// be used.
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A policy that does not parse.
    InvalidPolicy(String),
    /// The slots of one layer conflict (both read the same header).
    SlotConflict(String),
    /// A rule for requests that skip authentication is too broad.
    InvalidSkip(String),
    /// Two slots accept the same tokens (RFC 8725 §3.12).
    InterchangeableSlots {
        /// The issuer both slots trust.
        issuer: String,
    },
    /// A configuration file that does not parse: an unknown key, a value
    /// of the wrong type (feature `config`).
    Parse {
        /// The key path, such as `user.issuers[1].leeway` (empty for the
        /// whole document).
        path: String,
        /// What is wrong, quoting the value.
        message: String,
    },
    /// A DPoP or certificate-binding setting that cannot be used.
    InvalidBinding(String),
    /// A setting of a configuration file that cannot be built, at a key
    /// path (feature `config`).
    At {
        /// The key path, such as `user.issuers[1].jwks_url`.
        path: String,
        /// What is wrong.
        source: Box<ConfigError>,
    },
    /// A file could not be read.
    Io {
        /// The path that was read.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::InvalidKey {
                kid: Some(kid),
                reason,
            } => {
                write!(f, "invalid key {kid:?}: {reason}")
            }
            ConfigError::InvalidKey { kid: None, reason } => write!(f, "invalid key: {reason}"),
            ConfigError::InvalidJwks(reason) => write!(f, "invalid JWKS document: {reason}"),
            ConfigError::UnknownAlgorithm(alg) => write!(f, "unknown algorithm {alg:?}"),
            ConfigError::InvalidRule { issuer, reason } => {
                write!(f, "invalid rules for issuer {issuer:?}: {reason}")
            }
            ConfigError::NoIssuer => f.write_str("no trusted issuer"),
            ConfigError::InvalidUrl { url, reason } => write!(f, "invalid URL {url:?}: {reason}"),
            ConfigError::InvalidPolicy(reason) => write!(f, "invalid policy: {reason}"),
            ConfigError::SlotConflict(reason) => write!(f, "conflicting slots: {reason}"),
            ConfigError::InvalidSkip(reason) => write!(f, "invalid skip rule: {reason}"),
            ConfigError::InvalidBinding(reason) => write!(f, "invalid token binding: {reason}"),
            ConfigError::InterchangeableSlots { issuer } => write!(
                f,
                "the user and service slots both accept tokens of issuer {issuer:?} with the same \
                 audience and typ; make them distinguishable (RFC 8725 §3.12) or call \
                 insecure_allow_interchangeable_slots()"
            ),
            ConfigError::Parse { path, message } if path.is_empty() => f.write_str(message),
            ConfigError::Parse { path, message } => write!(f, "{path}: {message}"),
            ConfigError::At { path, source } => write!(f, "{path}: {source}"),
            ConfigError::Io { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Io { source, .. } => Some(source),
            // The inner error is part of the message; its own cause follows.
            ConfigError::At { source, .. } => source.source(),
            _ => None,
        }
    }
}

/// The class of a refused request; decides the status code and the
/// `WWW-Authenticate` challenge (RFC 6750 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// No credentials were presented where they are required: 401, bare `Bearer` challenge.
    MissingCredentials,
    /// A token is malformed, forged, expired, or not meant for this service: 401 `invalid_token`.
    InvalidToken,
    /// The request itself is malformed (e.g. two credentials for one slot): 400 `invalid_request`.
    InvalidRequest,
    /// A verified caller lacks a permission: 403 `insufficient_scope`.
    InsufficientScope,
    /// The keys needed to verify a token cannot be obtained right now: 503.
    KeysUnavailable,
    /// A DPoP proof (RFC 9449 §7.1) is missing, malformed, or does not fit
    /// the request or the token: 401 `invalid_dpop_proof`.
    InvalidDpopProof,
    /// The DPoP proof lacks the server's current nonce (RFC 9449 §9): 401
    /// `use_dpop_nonce`, with a fresh `DPoP-Nonce` header.
    UseDpopNonce,
    /// The user's authentication is too weak or too old for the route
    /// (RFC 9470 §3): 401 `insufficient_user_authentication` with
    /// `acr_values` and `max_age`.
    InsufficientUserAuthentication,
    /// The policy decision point could not be asked, timed out, or gave no
    /// usable answer: 503 with `Retry-After`; the request is denied.
    PolicyUnavailable,
}

impl AuthErrorKind {
    /// The HTTP status for this kind.
    pub fn status(self) -> http::StatusCode {
        match self {
            AuthErrorKind::MissingCredentials
            | AuthErrorKind::InvalidToken
            | AuthErrorKind::InvalidDpopProof
            | AuthErrorKind::UseDpopNonce
            | AuthErrorKind::InsufficientUserAuthentication => http::StatusCode::UNAUTHORIZED,
            AuthErrorKind::InvalidRequest => http::StatusCode::BAD_REQUEST,
            AuthErrorKind::InsufficientScope => http::StatusCode::FORBIDDEN,
            AuthErrorKind::KeysUnavailable | AuthErrorKind::PolicyUnavailable => {
                http::StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The gRPC status code for this kind: UNAUTHENTICATED (16) for missing
    /// or bad tokens, PERMISSION_DENIED (7) for a missing permission,
    /// INVALID_ARGUMENT (3) for malformed credentials, UNAVAILABLE (14)
    /// when keys or a policy decision cannot be had.
    ///
    /// ```
    /// use tower_mandate::AuthErrorKind;
    /// assert_eq!(AuthErrorKind::InsufficientScope.grpc_code(), 7);
    /// assert_eq!(AuthErrorKind::InvalidToken.grpc_code(), 16);
    /// ```
    pub fn grpc_code(self) -> u16 {
        match self {
            AuthErrorKind::MissingCredentials
            | AuthErrorKind::InvalidToken
            | AuthErrorKind::InvalidDpopProof
            | AuthErrorKind::UseDpopNonce
            | AuthErrorKind::InsufficientUserAuthentication => 16,
            AuthErrorKind::InsufficientScope => 7,
            AuthErrorKind::InvalidRequest => 3,
            AuthErrorKind::KeysUnavailable | AuthErrorKind::PolicyUnavailable => 14,
        }
    }

    /// The RFC 6750 error code, when the kind has one.
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            AuthErrorKind::MissingCredentials
            | AuthErrorKind::KeysUnavailable
            | AuthErrorKind::PolicyUnavailable => None,
            AuthErrorKind::InvalidToken => Some("invalid_token"),
            AuthErrorKind::InvalidRequest => Some("invalid_request"),
            AuthErrorKind::InsufficientScope => Some("insufficient_scope"),
            AuthErrorKind::InvalidDpopProof => Some("invalid_dpop_proof"),
            AuthErrorKind::UseDpopNonce => Some("use_dpop_nonce"),
            AuthErrorKind::InsufficientUserAuthentication => {
                Some("insufficient_user_authentication")
            }
        }
    }
}

/// Why a request was refused.
///
/// Opaque on purpose: match on [`AuthError::kind`]. The [`reason`](AuthError::reason)
/// is a short fixed text for logs and tests; it never contains token content.
/// The layer puts every `AuthError` it answers with into the response's
/// extensions.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthError {
    kind: AuthErrorKind,
    slot: Option<SlotKind>,
    reason: &'static str,
    scope: Option<Cow<'static, str>>,
    retry_after: Option<u64>,
    challenge: Challenge,
    /// What few refusals carry, boxed so that the error stays small.
    extra: Option<Box<Extra>>,
}

/// The rarely set parts of an [`AuthError`].
#[derive(Clone, Default, PartialEq, Eq)]
struct Extra {
    /// RFC 9449 §8: the nonce the client must use.
    dpop_nonce: Option<Box<str>>,
    /// RFC 9470: the `acr_values` and `max_age` asked for.
    step_up: Option<(Cow<'static, str>, Option<u64>)>,
    /// RFC 9728: the URL of the resource's metadata.
    resource_metadata: Option<std::sync::Arc<str>>,
}

/// The authentication schemes an answer challenges with (RFC 9110 §11.6.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(not(feature = "_aws-lc"), allow(dead_code))]
pub(crate) enum Challenge {
    /// `Bearer` (RFC 6750 §3).
    #[default]
    Bearer,
    /// `DPoP algs="…"` only (RFC 9449 §7.1): a DPoP request, or a slot
    /// that requires DPoP.
    Dpop(std::sync::Arc<str>),
    /// The error in a `Bearer` challenge, followed by `DPoP algs="…"`: a
    /// slot that takes both (RFC 9449 §7.2).
    Both(std::sync::Arc<str>),
}

impl AuthError {
    pub(crate) fn new(kind: AuthErrorKind, reason: &'static str) -> Self {
        AuthError {
            kind,
            slot: None,
            reason,
            scope: None,
            retry_after: None,
            challenge: Challenge::Bearer,
            extra: None,
        }
    }

    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Name the resource's metadata in the challenge (RFC 9728 §5.1).
    pub(crate) fn with_resource_metadata(mut self, url: Option<std::sync::Arc<str>>) -> Self {
        if url.is_some() {
            self.extra_mut().resource_metadata = url;
        }
        self
    }

    /// The user's authentication does not meet the route's requirement
    /// (RFC 9470 §3): `acr_values` (space-separated, in order of
    /// preference) and `max_age` (seconds) go into the challenge.
    pub fn insufficient_user_authentication(
        reason: &'static str,
        acr_values: impl Into<Cow<'static, str>>,
        max_age: Option<u64>,
    ) -> Self {
        let mut error = Self::new(AuthErrorKind::InsufficientUserAuthentication, reason);
        error.extra_mut().step_up = Some((acr_values.into(), max_age));
        error
    }

    /// For [`AuthErrorKind::InsufficientUserAuthentication`]: the
    /// `acr_values` asked for (possibly empty) and the `max_age`.
    pub fn step_up(&self) -> Option<(&str, Option<u64>)> {
        self.extra
            .as_ref()
            .and_then(|e| e.step_up.as_ref())
            .map(|(acr, age)| (&**acr, *age))
    }

    /// A DPoP proof that cannot be accepted (RFC 9449 §7.1).
    #[cfg_attr(not(feature = "_aws-lc"), allow(dead_code))]
    pub(crate) fn invalid_dpop_proof(reason: &'static str) -> Self {
        Self::new(AuthErrorKind::InvalidDpopProof, reason)
    }

    /// A proof without the current nonce; `nonce` is the one to use.
    #[cfg_attr(not(feature = "_aws-lc"), allow(dead_code))]
    pub(crate) fn use_dpop_nonce(nonce: String) -> Self {
        let mut error = Self::new(AuthErrorKind::UseDpopNonce, "DPoP nonce required");
        error.extra_mut().dpop_nonce = Some(nonce.into_boxed_str());
        error
    }

    /// Answer with this challenge.
    pub(crate) fn with_challenge(mut self, challenge: Challenge) -> Self {
        self.challenge = challenge;
        self
    }

    /// The `DPoP-Nonce` the client must put into its next proof (RFC 9449
    /// §8), for [`AuthErrorKind::UseDpopNonce`]; the layer sends it in the
    /// `DPoP-Nonce` header whatever the renderer does.
    pub fn dpop_nonce(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.dpop_nonce.as_deref())
    }

    /// Keys cannot be had right now; the client may retry after `secs` seconds.
    #[cfg_attr(not(feature = "jwks"), allow(dead_code))]
    pub(crate) fn keys_unavailable(reason: &'static str, retry_after: u64) -> Self {
        AuthError {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(AuthErrorKind::KeysUnavailable, reason)
        }
    }

    /// The policy decision point failed; the client may retry after `secs`
    /// seconds.
    #[cfg_attr(not(feature = "authzen"), allow(dead_code))]
    pub(crate) fn policy_unavailable(retry_after: u64) -> Self {
        AuthError {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(
                AuthErrorKind::PolicyUnavailable,
                "policy decision point unavailable",
            )
        }
    }

    pub(crate) fn invalid_token(reason: &'static str) -> Self {
        Self::new(AuthErrorKind::InvalidToken, reason)
    }

    pub(crate) fn invalid_request(reason: &'static str) -> Self {
        Self::new(AuthErrorKind::InvalidRequest, reason)
    }

    pub(crate) fn missing_credentials() -> Self {
        Self::new(AuthErrorKind::MissingCredentials, "no credentials")
    }

    /// A permission error naming the scope the caller lacks.
    pub fn insufficient_scope(scope: impl Into<Cow<'static, str>>) -> Self {
        AuthError {
            scope: Some(scope.into()),
            ..Self::new(AuthErrorKind::InsufficientScope, "permission missing")
        }
    }

    pub(crate) fn with_slot(mut self, slot: SlotKind) -> Self {
        self.slot = Some(slot);
        self
    }

    /// The class of the error.
    pub fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// The slot whose credential failed, when the error is about one.
    pub fn slot(&self) -> Option<SlotKind> {
        self.slot
    }

    /// A short, fixed description (e.g. `"token expired"`); never token content.
    pub fn reason(&self) -> &'static str {
        self.reason
    }

    /// For [`AuthErrorKind::InsufficientScope`]: the permission(s) required.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// For [`AuthErrorKind::KeysUnavailable`] and
    /// [`AuthErrorKind::PolicyUnavailable`]: seconds after which a retry
    /// may succeed (the `Retry-After` header).
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The HTTP status of the answer.
    pub fn status(&self) -> http::StatusCode {
        self.kind.status()
    }

    /// The `WWW-Authenticate` value of the answer (RFC 6750 §3), if any.
    ///
    /// The `error_description` is the fixed [`reason`](AuthError::reason),
    /// so nothing from the request is echoed.
    ///
    /// A slot that takes DPoP-bound tokens answers with the `DPoP` scheme
    /// and its `algs` (RFC 9449 §7.1): after a `DPoP` request, or always
    /// when it requires DPoP; when it takes both, with a `Bearer`
    /// challenge and a `DPoP` one (§7.2).
    pub fn www_authenticate(&self) -> Option<String> {
        if matches!(
            self.kind,
            AuthErrorKind::KeysUnavailable | AuthErrorKind::PolicyUnavailable
        ) {
            return None;
        }
        let (scheme, algs) = match &self.challenge {
            Challenge::Bearer => ("Bearer", None),
            Challenge::Dpop(algs) => ("DPoP", Some(algs)),
            Challenge::Both(_) => ("Bearer", None),
        };
        let mut value = String::from(scheme);
        if let Some(algs) = algs {
            value.push_str(" algs=\"");
            value.push_str(algs);
            value.push('"');
        }
        if self.kind != AuthErrorKind::MissingCredentials {
            let code = self.kind.error_code().unwrap_or("invalid_token");
            value.push_str(if algs.is_some() { ", " } else { " " });
            value.push_str("error=\"");
            value.push_str(code);
            value.push_str("\", error_description=\"");
            value.push_str(self.reason);
            value.push('"');
            if let Some(scope) = &self.scope {
                value.push_str(", scope=\"");
                value.push_str(scope);
                value.push('"');
            }
            if let Some((acr, max_age)) = self.step_up() {
                if !acr.is_empty() {
                    value.push_str(", acr_values=\"");
                    value.push_str(acr);
                    value.push('"');
                }
                if let Some(age) = max_age {
                    value.push_str(&format!(", max_age={age}"));
                }
            }
        }
        // RFC 9728 §5.1: where the resource's metadata is.
        if let Some(url) = self
            .extra
            .as_ref()
            .and_then(|e| e.resource_metadata.as_ref())
        {
            let bare = value == scheme;
            value.push_str(if bare { " " } else { ", " });
            value.push_str("resource_metadata=\"");
            value.push_str(url);
            value.push('"');
        }
        if let Challenge::Both(algs) = &self.challenge {
            value.push_str(", DPoP algs=\"");
            value.push_str(algs);
            value.push('"');
        }
        Some(value)
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthError")
            .field("kind", &self.kind)
            .field("slot", &self.slot)
            .field("reason", &self.reason)
            .field("scope", &self.scope)
            .finish()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(slot) = self.slot {
            write!(f, "{slot} token: ")?;
        }
        f.write_str(self.reason)?;
        if let Some(scope) = &self.scope {
            write!(f, " (requires {scope})")?;
        }
        Ok(())
    }
}

impl std::error::Error for AuthError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_follow_rfc_6750() {
        struct Case {
            name: &'static str,
            error: AuthError,
            status: u16,
            challenge: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "missing",
                error: AuthError::missing_credentials(),
                status: 401,
                challenge: Some("Bearer"),
            },
            Case {
                name: "invalid token",
                error: AuthError::invalid_token("token expired"),
                status: 401,
                challenge: Some(
                    r#"Bearer error="invalid_token", error_description="token expired""#,
                ),
            },
            Case {
                name: "invalid request",
                error: AuthError::invalid_request("duplicate credentials"),
                status: 400,
                challenge: Some(
                    r#"Bearer error="invalid_request", error_description="duplicate credentials""#,
                ),
            },
            Case {
                name: "scope",
                error: AuthError::insufficient_scope("images:write"),
                status: 403,
                challenge: Some(
                    r#"Bearer error="insufficient_scope", error_description="permission missing", scope="images:write""#,
                ),
            },
            Case {
                name: "keys",
                error: AuthError::keys_unavailable("keys unavailable", 5),
                status: 503,
                challenge: None,
            },
        ];
        for case in cases {
            assert_eq!(case.error.status().as_u16(), case.status, "{}", case.name);
            assert_eq!(
                case.error.www_authenticate().as_deref(),
                case.challenge,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn config_errors_quote_input() {
        let e = ConfigError::UnknownAlgorithm("HS1".into());
        assert_eq!(e.to_string(), "unknown algorithm \"HS1\"");
    }
}
