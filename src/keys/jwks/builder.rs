//! Building a [`JwksSource`]: where its keys are and how it fetches them.

use std::time::Duration;

use super::{JwksSource, Location, Settings};
use crate::ConfigError;

/// Builds a [`JwksSource`]: every setting is made before the source is
/// shared (and before anything is fetched); [`build`](JwksBuilder::build)
/// checks the URL.
///
/// ```
/// use std::time::Duration;
/// use tower_mandate::keys::JwksSource;
///
/// let keys = JwksSource::builder("https://id.example.com/jwks")
///     .with_cooldown(Duration::from_secs(30))
///     .build()?;
/// # let _ = keys;
/// assert!(JwksSource::builder("ftp://id.example.com/jwks").build().is_err());
/// # Ok::<(), tower_mandate::ConfigError>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct JwksBuilder {
    location: Location,
    settings: Settings,
    client: Option<reqwest::ClientBuilder>,
}

impl JwksSource {
    /// Keys from the JWKS document at `url`, with the default settings
    /// ([`JwksSource::builder`] to change them).
    ///
    /// # Errors
    ///
    /// As [`JwksBuilder::build`].
    pub fn new(url: impl Into<String>) -> Result<Self, ConfigError> {
        Self::builder(url).build()
    }

    /// Keys found through OIDC discovery, with the default settings
    /// ([`JwksSource::discovery`] to change them).
    ///
    /// # Errors
    ///
    /// As [`JwksBuilder::build`].
    pub fn discover(issuer: impl Into<String>) -> Result<Self, ConfigError> {
        Self::discovery(issuer).build()
    }

    /// Start a source of the JWKS document at `url`.
    pub fn builder(url: impl Into<String>) -> JwksBuilder {
        JwksBuilder {
            location: Location::Jwks(url.into()),
            settings: Settings::default(),
            client: None,
        }
    }

    /// Start a source found through OIDC discovery:
    /// `{issuer}/.well-known/openid-configuration`, whose `issuer` must equal
    /// `issuer` exactly, names the `jwks_uri`. Discovery happens on the first
    /// fetch, not when building.
    pub fn discovery(issuer: impl Into<String>) -> JwksBuilder {
        JwksBuilder {
            location: Location::Discovery {
                issuer: issuer.into(),
            },
            settings: Settings::default(),
            client: None,
        }
    }
}

impl JwksBuilder {
    /// Minimum time between two refetches caused by unknown kids (default
    /// 10 s). After a failed fetch, the next one may start after 250 ms,
    /// then twice as long after each further failure, up to the cooldown:
    /// keys that appear late (services start in any order) are picked up
    /// within a second, and an endpoint that stays down is asked at most
    /// once per cooldown.
    pub fn with_cooldown(mut self, cooldown: Duration) -> Self {
        self.settings.cooldown = cooldown;
        self
    }

    /// Bounds for the `Cache-Control: max-age` of the document (default 60 s to 24 h),
    /// and the lifetime assumed without one (default 10 min).
    pub fn with_refresh_bounds(mut self, min: Duration, max: Duration, default: Duration) -> Self {
        let s = &mut self.settings;
        s.min_ttl = min;
        s.max_ttl = max.max(min);
        s.default_ttl = default.clamp(min, s.max_ttl);
        self
    }

    /// How long past their expiry the last good keys keep serving while the
    /// endpoint fails (default 12 h); it also bounds tokens answered from
    /// the verified-token cache.
    pub fn with_max_staleness(mut self, max: Duration) -> Self {
        self.settings.max_staleness = max;
        self
    }

    /// How long a request waits for keys being fetched (default 5 s).
    pub fn with_max_wait(mut self, max: Duration) -> Self {
        self.settings.max_wait = max;
        self
    }

    /// Fetch with the application's own HTTP client: a private CA, a
    /// proxy, a client certificate towards the identity provider, set on a
    /// `reqwest::ClientBuilder`.
    ///
    /// The crate's rules still hold on it: it builds the client with no
    /// redirects and the timeouts of [`with_timeouts`](Self::with_timeouts)
    /// (whatever the builder says); `https` unless
    /// [`insecure_allow_http`](Self::insecure_allow_http); the response
    /// size limit; and an answer that came from another URL than the one
    /// asked is refused.
    pub fn with_client(mut self, client: reqwest::ClientBuilder) -> Self {
        self.client = Some(client);
        self
    }

    /// Connect timeout (default 2 s) and whole-request timeout (default 5 s).
    pub fn with_timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.settings.connect_timeout = connect;
        self.settings.timeout = total;
        self
    }

    /// Largest accepted document, in bytes (default 256 KiB).
    pub fn with_max_response_size(mut self, bytes: usize) -> Self {
        self.settings.max_size = bytes;
        self
    }

    /// Allow `http` URLs for the JWKS and discovery documents.
    ///
    /// # Security
    ///
    /// Keys fetched over plain http can be replaced by anyone on the path,
    /// who can then mint any token. Use it for loopback test servers only.
    pub fn insecure_allow_http(mut self) -> Self {
        self.settings.allow_http = true;
        self
    }

    /// The source. Nothing is fetched yet.
    ///
    /// # Errors
    ///
    /// When the URL (or the issuer, for discovery) is not an absolute
    /// `https` URL ([`ConfigError::InvalidUrl`]; `http` needs
    /// [`insecure_allow_http`](Self::insecure_allow_http), checked when
    /// fetching).
    pub fn build(self) -> Result<JwksSource, ConfigError> {
        let url = match &self.location {
            Location::Jwks(u) => u,
            Location::Discovery { issuer } => issuer,
        };
        let invalid = |reason: String| ConfigError::InvalidUrl {
            url: url.clone(),
            reason,
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err(invalid("not an https URL".into()));
        }
        let client = self.client.map(|builder| {
            builder
                .connect_timeout(self.settings.connect_timeout)
                .timeout(self.settings.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())
        });
        let source = JwksSource::from_parts(self.location, self.settings);
        if let Some(client) = client {
            let _ = source.0.client.set(client);
        }
        Ok(source)
    }
}
