//! Token providers that call an authorization server's token endpoint
//! (feature `oauth`): client credentials (RFC 6749 §4.4) and token exchange
//! (RFC 8693).

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

mod response;

#[cfg(feature = "_aws-lc")]
use response::ErrorResponse;
use response::Extra;
#[cfg(feature = "fuzzing")]
pub(crate) use response::parse_token_response;
#[cfg(not(feature = "fuzzing"))]
use response::parse_token_response;
pub(crate) use response::{Issued, rejected};

use super::{
    AccessToken, ProviderCache, ProviderError, ProviderErrorKind, TokenFuture, TokenProvider,
    TokenRequest,
};

const MAX_RESPONSE: usize = 64 * 1024;
const DEFAULT_LIFETIME: Duration = Duration::from_secs(60);
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// How the client authenticates to the token endpoint.
#[non_exhaustive]
pub enum ClientAuth {
    /// `client_secret_basic`: HTTP Basic with the client id and secret.
    SecretBasic(String),
    /// `client_secret_post`: the secret in the form body.
    SecretPost(String),
    /// `private_key_jwt` (RFC 7523): a short JWT assertion signed with the
    /// client's key, whose public key the server knows.
    #[cfg(feature = "_aws-lc")]
    PrivateKeyJwt(crate::mint::SigningKey),
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClientAuth::SecretBasic(_) => "SecretBasic(<redacted>)",
            ClientAuth::SecretPost(_) => "SecretPost(<redacted>)",
            #[cfg(feature = "_aws-lc")]
            ClientAuth::PrivateKeyJwt(_) => "PrivateKeyJwt(<redacted>)",
        })
    }
}

/// A token endpoint and the client's credentials for it.
pub(crate) struct Endpoint {
    url: String,
    client_id: String,
    auth: ClientAuth,
    pub(crate) allow_http: bool,
    timeout: Duration,
    client: OnceLock<Result<reqwest::Client, String>>,
    /// The key of DPoP-bound tokens (RFC 9449 §5), and the authorization
    /// server's latest nonce for it.
    #[cfg(feature = "_aws-lc")]
    dpop: Option<(crate::binding::DpopKey, std::sync::Mutex<Option<String>>)>,
}

/// The longest `DPoP-Nonce` kept.
#[cfg(feature = "_aws-lc")]
const MAX_NONCE: usize = 512;

fn err(kind: ProviderErrorKind, message: impl Into<String>) -> ProviderError {
    ProviderError::new(kind, message)
}

/// A transport failure, with reqwest's error (its URL removed) as source.
fn network(e: reqwest::Error) -> ProviderError {
    let e = e.without_url();
    ProviderError::new(ProviderErrorKind::Network, e.to_string()).with_source(e)
}

impl Endpoint {
    pub(crate) fn new(url: String, client_id: String, auth: ClientAuth) -> Self {
        Endpoint {
            url,
            client_id,
            auth,
            allow_http: false,
            timeout: Duration::from_secs(5),
            client: OnceLock::new(),
            #[cfg(feature = "_aws-lc")]
            dpop: None,
        }
    }

    /// The client id.
    #[cfg_attr(not(feature = "_aws-lc"), allow(dead_code))]
    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The token endpoint's URL.
    #[cfg_attr(not(feature = "_aws-lc"), allow(dead_code))]
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Use the application's client, built under the crate's rules.
    #[cfg_attr(not(feature = "_aws-lc"), allow(dead_code))]
    pub(crate) fn set_client(&mut self, builder: reqwest::ClientBuilder) {
        let client = self.own_client(builder);
        self.client = OnceLock::from(client);
    }

    /// The application's client, built under the crate's rules.
    fn own_client(&self, builder: reqwest::ClientBuilder) -> Result<reqwest::Client, String> {
        builder
            .timeout(self.timeout)
            .connect_timeout(self.timeout.min(Duration::from_secs(2)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())
    }

    async fn request(&self, form: Vec<(&str, String)>) -> Result<AccessToken, ProviderError> {
        self.issue(form).await.map(|issued| issued.token)
    }

    /// One grant at the endpoint, with everything a job keeps of the answer.
    pub(crate) async fn issue(&self, form: Vec<(&str, String)>) -> Result<Issued, ProviderError> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| err(ProviderErrorKind::InvalidRequest, format!("token URL: {e}")))?;
        if url.scheme() != "https" && !(url.scheme() == "http" && self.allow_http) {
            return Err(err(
                ProviderErrorKind::InvalidRequest,
                "the token endpoint is not https (see insecure_allow_http)",
            ));
        }
        let client = self
            .client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .timeout(self.timeout)
                    .connect_timeout(self.timeout.min(Duration::from_secs(2)))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|e| err(ProviderErrorKind::Network, e.clone()))?;
        // RFC 9449 §8: one retry with the nonce the server asks for.
        let mut nonce_retry = true;
        loop {
            let (status, body) = self.send(client, &url, form.clone()).await?;
            #[cfg(feature = "_aws-lc")]
            if status == reqwest::StatusCode::BAD_REQUEST
                && self.dpop.is_some()
                && std::mem::take(&mut nonce_retry)
                && serde_json::from_slice::<ErrorResponse>(&body)
                    .is_ok_and(|e| e.error == "use_dpop_nonce")
            {
                continue;
            }
            let _ = &mut nonce_retry;
            let (token, token_type) = parse_token_response(status.as_u16(), &body)?;
            tracing::debug!(
                target: "tower_mandate::provider",
                client_id = %self.client_id,
                "obtained a token"
            );
            let extra: Extra = serde_json::from_slice(&body)
                .map_err(|_| err(ProviderErrorKind::InvalidResponse, "not a token response"))?;
            return Ok(Issued {
                token: self.bind(token, token_type.as_deref())?,
                refresh_token: extra.refresh_token.filter(|t| !t.is_empty()),
                issued_token_type: extra.issued_token_type,
                expires_in: extra.expires_in,
                refresh_expires_in: extra.refresh_expires_in,
            });
        }
    }

    /// One token request; the status and body of the answer.
    async fn send(
        &self,
        client: &reqwest::Client,
        url: &reqwest::Url,
        mut form: Vec<(&str, String)>,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), ProviderError> {
        let mut req = client
            .post(url.clone())
            .timeout(self.timeout)
            .header(reqwest::header::ACCEPT, "application/json");
        match &self.auth {
            ClientAuth::SecretBasic(secret) => {
                req = req.basic_auth(form_encode(&self.client_id), Some(form_encode(secret)));
            }
            ClientAuth::SecretPost(secret) => {
                form.push(("client_id", self.client_id.clone()));
                form.push(("client_secret", secret.clone()));
            }
            #[cfg(feature = "_aws-lc")]
            ClientAuth::PrivateKeyJwt(key) => {
                form.push(("client_id", self.client_id.clone()));
                form.push((
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
                ));
                form.push(("client_assertion", self.assertion(key)));
            }
        }
        #[cfg(feature = "_aws-lc")]
        if let Some((key, nonce)) = &self.dpop {
            let nonce = nonce.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let uri: http::Uri = url
                .as_str()
                .parse()
                .map_err(|_| err(ProviderErrorKind::InvalidRequest, "token URL"))?;
            let proof = key
                .proof(&http::Method::POST, &uri, None, nonce.as_deref())
                .map_err(|e| err(ProviderErrorKind::InvalidRequest, e.to_string()))?;
            let mut proof = reqwest::header::HeaderValue::from_str(&proof)
                .map_err(|_| err(ProviderErrorKind::InvalidRequest, "DPoP proof"))?;
            proof.set_sensitive(true);
            req = req.header("dpop", proof);
        }
        let mut res = req.form(&form).send().await.map_err(network)?;
        let status = res.status();
        // The application's client may follow redirects: the answer must
        // still come from the token endpoint.
        if status.is_redirection() || res.url() != url {
            return Err(err(
                ProviderErrorKind::InvalidResponse,
                "the token endpoint redirected (redirects are not followed)",
            ));
        }
        #[cfg(feature = "_aws-lc")]
        if let (Some((_, kept)), Some(nonce)) = (&self.dpop, res.headers().get("dpop-nonce"))
            && let Ok(nonce) = nonce.to_str()
            && nonce.len() <= MAX_NONCE
        {
            *kept.lock().unwrap_or_else(|p| p.into_inner()) = Some(nonce.to_owned());
        }
        match crate::body::read(&mut res, MAX_RESPONSE).await {
            Ok(body) => Ok((status, body)),
            Err(crate::body::BodyError::Network(e)) => Err(network(e)),
            Err(crate::body::BodyError::TooLarge) => Err(err(
                ProviderErrorKind::InvalidResponse,
                "response too large",
            )),
        }
    }

    /// The token as the server typed it: DPoP-bound when this client asked
    /// for DPoP, which then refuses a bearer token.
    fn bind(
        &self,
        token: AccessToken,
        token_type: Option<&str>,
    ) -> Result<AccessToken, ProviderError> {
        let dpop = token_type.is_some_and(|t| t.eq_ignore_ascii_case("DPoP"));
        #[cfg(feature = "_aws-lc")]
        if let Some((key, _)) = &self.dpop {
            if !dpop {
                return Err(err(
                    ProviderErrorKind::InvalidResponse,
                    "the token endpoint issued a bearer token where a DPoP-bound one was asked",
                ));
            }
            return Ok(token.with_dpop(key.clone()));
        }
        if dpop {
            return Err(err(
                ProviderErrorKind::InvalidResponse,
                "the token endpoint issued a DPoP-bound token to a client without a DPoP key",
            ));
        }
        Ok(token)
    }

    #[cfg(feature = "_aws-lc")]
    fn assertion(&self, key: &crate::mint::SigningKey) -> String {
        use aws_lc_rs::rand::{SecureRandom, SystemRandom};
        use base64::Engine as _;
        let now = crate::clock::unix_now();
        let mut jti = [0u8; 16];
        let _ = SystemRandom::new().fill(&mut jti);
        key.sign_claims(&serde_json::json!({
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.url,
            "iat": now,
            "exp": now + 60,
            "jti": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(jti),
        }))
    }
}

/// RFC 6749 §2.3.1: the client id and secret are form-encoded before Basic.
/// `application/x-www-form-urlencoded` (RFC 6749 §2.3.1 asks it of the
/// client id and secret in HTTP Basic authentication).
fn form_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

fn add_request(form: &mut Vec<(&str, String)>, request: &TokenRequest) {
    if let Some(scope) = &request.scope {
        form.push(("scope", scope.clone()));
    }
    if let Some(resource) = &request.resource {
        form.push(("resource", resource.clone()));
    }
    if let Some(audience) = &request.audience {
        form.push(("audience", audience.clone()));
    }
}

/// The client credentials grant (RFC 6749 §4.4): this service's own token.
///
/// ```no_run
/// use tower_mandate::provider::{ClientAuth, ClientCredentials, TokenProvider, TokenRequest};
///
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// let idp = ClientCredentials::new(
///     "https://id.example.com/oauth/token",
///     "relay",
///     ClientAuth::SecretBasic(std::env::var("CLIENT_SECRET")?),
/// );
/// let token = idp
///     .token(TokenRequest::default().with_scope("images:read").with_resource("urn:image-store"))
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientCredentials(Arc<(Endpoint, ProviderCache)>);

impl ClientCredentials {
    /// A client `client_id` of the token endpoint `token_url` (https only;
    /// [`ClientCredentials::builder`] for other settings).
    pub fn new(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        auth: ClientAuth,
    ) -> Self {
        Self::builder(token_url, client_id, auth).build()
    }

    /// Start a client `client_id` of the token endpoint `token_url`.
    pub fn builder(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        auth: ClientAuth,
    ) -> ClientCredentialsBuilder {
        ClientCredentialsBuilder(Endpoint::new(token_url.into(), client_id.into(), auth))
    }
}

/// Builds a [`ClientCredentials`] provider: every setting is made before
/// it is shared.
#[must_use]
pub struct ClientCredentialsBuilder(Endpoint);

impl ClientCredentialsBuilder {
    /// Allow a plain `http` token endpoint.
    ///
    /// # Security
    ///
    /// The client secret and the tokens cross the network in clear text.
    /// Loopback test servers only.
    pub fn insecure_allow_http(mut self) -> Self {
        self.0.allow_http = true;
        self
    }

    /// Send token requests with the application's own HTTP client (a
    /// private CA, a proxy, a client certificate), set on a
    /// `reqwest::ClientBuilder`. The crate builds it with no redirects (the
    /// client secret and the tokens are in the request a redirect would
    /// resend) and its 5 s timeout, whatever the builder says; https, the
    /// size limit and the same-URL check still apply.
    pub fn with_client(mut self, client: reqwest::ClientBuilder) -> Self {
        self.0.client = OnceLock::from(self.0.own_client(client));
        self
    }

    /// Obtain DPoP-bound tokens (RFC 9449 §5) for `key`: each token
    /// request carries a proof (and the server's nonce, retried once when
    /// it asks for one), and the propagation layers send each token with a
    /// fresh proof per request. A bearer token in the answer is refused.
    #[cfg(feature = "_aws-lc")]
    pub fn with_dpop(mut self, key: crate::binding::DpopKey) -> Self {
        self.0.dpop = Some((key, std::sync::Mutex::new(None)));
        self
    }

    /// The provider.
    pub fn build(self) -> ClientCredentials {
        ClientCredentials(Arc::new((self.0, ProviderCache::new("client_credentials"))))
    }
}

impl fmt::Debug for ClientCredentialsBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentialsBuilder")
            .field("token_url", &self.0.url)
            .field("client_id", &self.0.client_id)
            .field("auth", &self.0.auth)
            .finish()
    }
}

impl TokenProvider for ClientCredentials {
    fn cached(&self, request: &TokenRequest) -> Option<AccessToken> {
        self.0.1.fresh(request)
    }

    fn token(&self, request: TokenRequest) -> TokenFuture {
        let this = self.clone();
        Box::pin(async move {
            let (endpoint, cache) = &*this.0;
            cache
                .get(request.clone(), || {
                    let mut form = vec![("grant_type", "client_credentials".to_owned())];
                    add_request(&mut form, &request);
                    endpoint.request(form)
                })
                .await
        })
    }
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.0.0.url)
            .field("client_id", &self.0.0.client_id)
            .field("auth", &self.0.0.auth)
            .finish()
    }
}

/// Token exchange (RFC 8693): trade the user's token (the request's
/// `subject_token`) for one meant for a destination, optionally naming this
/// service as the actor (`actor_token`), so the new token's `act` claim
/// records who acts on the user's behalf. Results are cached per (subject
/// token, audience, resource, scope).
#[derive(Clone)]
pub struct TokenExchange(Arc<ExchangeInner>);

struct ExchangeInner {
    endpoint: Endpoint,
    cache: ProviderCache,
    actor: Option<(Arc<dyn TokenProvider>, TokenRequest)>,
}

impl TokenExchange {
    /// A client `client_id` of the token endpoint `token_url` (https only,
    /// no actor token; [`TokenExchange::builder`] for other settings).
    pub fn new(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        auth: ClientAuth,
    ) -> Self {
        Self::builder(token_url, client_id, auth).build()
    }

    /// Start a client `client_id` of the token endpoint `token_url`.
    pub fn builder(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        auth: ClientAuth,
    ) -> TokenExchangeBuilder {
        TokenExchangeBuilder(ExchangeInner {
            endpoint: Endpoint::new(token_url.into(), client_id.into(), auth),
            cache: ProviderCache::new("token_exchange"),
            actor: None,
        })
    }
}

/// Builds a [`TokenExchange`] provider: every setting is made before it is
/// shared.
#[must_use]
pub struct TokenExchangeBuilder(ExchangeInner);

impl TokenExchangeBuilder {
    /// Send this service's own token, from `provider`, as the `actor_token`.
    pub fn with_actor(mut self, provider: impl TokenProvider, request: TokenRequest) -> Self {
        self.0.actor = Some((Arc::new(provider), request));
        self
    }

    /// Allow a plain `http` token endpoint (see
    /// [`ClientCredentialsBuilder::insecure_allow_http`]).
    pub fn insecure_allow_http(mut self) -> Self {
        self.0.endpoint.allow_http = true;
        self
    }

    /// Send token requests with the application's own HTTP client (see
    /// [`ClientCredentialsBuilder::with_client`]).
    pub fn with_client(mut self, client: reqwest::ClientBuilder) -> Self {
        self.0.endpoint.client = OnceLock::from(self.0.endpoint.own_client(client));
        self
    }

    /// The provider.
    pub fn build(self) -> TokenExchange {
        TokenExchange(Arc::new(self.0))
    }
}

impl fmt::Debug for TokenExchangeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchangeBuilder")
            .field("token_url", &self.0.endpoint.url)
            .field("client_id", &self.0.endpoint.client_id)
            .field("actor", &self.0.actor.as_ref().map(|(_, r)| r))
            .finish_non_exhaustive()
    }
}

impl TokenProvider for TokenExchange {
    fn cached(&self, request: &TokenRequest) -> Option<AccessToken> {
        self.0.cache.fresh(request)
    }

    fn token(&self, request: TokenRequest) -> TokenFuture {
        let this = self.clone();
        Box::pin(async move {
            let inner = &*this.0;
            let Some(subject) = request.subject_token.clone() else {
                return Err(err(
                    ProviderErrorKind::InvalidRequest,
                    "token exchange needs a subject token",
                ));
            };
            inner
                .cache
                .get(request.clone(), || {
                    let subject = subject.clone();
                    let request = request.clone();
                    async move {
                        let mut form = vec![
                            ("grant_type", TOKEN_EXCHANGE.to_owned()),
                            ("subject_token", subject.to_string()),
                            ("subject_token_type", ACCESS_TOKEN_TYPE.to_owned()),
                            ("requested_token_type", ACCESS_TOKEN_TYPE.to_owned()),
                        ];
                        if let Some((actor, actor_request)) = &inner.actor {
                            let actor_token = actor.token(actor_request.clone()).await?;
                            form.push(("actor_token", actor_token.secret().to_owned()));
                            form.push(("actor_token_type", ACCESS_TOKEN_TYPE.to_owned()));
                        }
                        add_request(&mut form, &request);
                        inner.endpoint.request(form).await
                    }
                })
                .await
        })
    }
}

impl fmt::Debug for TokenExchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenExchange")
            .field("token_url", &self.0.endpoint.url)
            .field("client_id", &self.0.endpoint.client_id)
            .field("auth", &self.0.endpoint.auth)
            .field("actor", &self.0.actor.as_ref().map(|(_, r)| r))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded() {
        assert_eq!(form_encode("relay"), "relay");
        assert_eq!(form_encode("a b:c/%"), "a+b%3Ac%2F%25");
    }

    #[test]
    fn debug_hides_secrets() {
        let cc = ClientCredentials::new(
            "https://x/token",
            "relay",
            ClientAuth::SecretPost("hunter2".into()),
        );
        assert!(!format!("{cc:?}").contains("hunter2"));
    }
}
