//! Fetching: the HTTP GET with its limits, OIDC discovery, and the state
//! a fetch leaves behind (new keys, not modified, or a failure with backoff).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Location, Shared, State, after, backoff};
use crate::keys::{KeySet, parse_jwks_document};

#[derive(Debug)]
enum FetchError {
    Http(String),
    Status(u16),
    TooLarge,
    Parse(String),
    NoKeys,
    Insecure(String),
    Discovery(String),
    Redirected,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Http(e) => write!(f, "request failed: {e}"),
            FetchError::Status(s) => write!(f, "status {s}"),
            FetchError::TooLarge => f.write_str("document too large"),
            FetchError::Parse(e) => write!(f, "invalid document: {e}"),
            FetchError::NoKeys => f.write_str("no usable signing key"),
            FetchError::Insecure(u) => write!(f, "{u:?} is not https (see insecure_allow_http)"),
            FetchError::Discovery(e) => write!(f, "discovery: {e}"),
            FetchError::Redirected => f.write_str("redirected (redirects are not followed)"),
        }
    }
}

fn check_scheme(shared: &Shared, url: &str) -> Result<(), FetchError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| FetchError::Parse(e.to_string()))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if shared.settings.allow_http => Ok(()),
        _ => Err(FetchError::Insecure(url.to_owned())),
    }
}

/// GET `url`, reading at most `max_size` bytes.
async fn get(
    shared: &Shared,
    url: &str,
    etag: Option<&str>,
) -> Result<(reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>), FetchError> {
    check_scheme(shared, url)?;
    let client = shared
        .client
        .get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(shared.settings.connect_timeout)
                .timeout(shared.settings.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| FetchError::Http(e.clone()))?;
    let asked = reqwest::Url::parse(url).map_err(|e| FetchError::Parse(e.to_string()))?;
    let mut req = client
        .get(asked.clone())
        .timeout(shared.settings.timeout)
        .header(reqwest::header::ACCEPT, "application/json");
    if let Some(etag) = etag {
        req = req.header(reqwest::header::IF_NONE_MATCH, etag);
    }
    let mut res = req
        .send()
        .await
        .map_err(|e| FetchError::Http(e.without_url().to_string()))?;
    let status = res.status();
    // The application's client may follow redirects: its answer must still
    // come from the URL asked.
    // (304 Not Modified answers a conditional GET; it is no redirect.)
    let redirect = status.is_redirection() && status != reqwest::StatusCode::NOT_MODIFIED;
    if redirect || *res.url() != asked {
        return Err(FetchError::Redirected);
    }
    let headers = res.headers().clone();
    let max = shared.settings.max_size;
    let body = crate::body::read(&mut res, max)
        .await
        .map_err(|e| match e {
            crate::body::BodyError::Network(e) => FetchError::Http(e.to_string()),
            crate::body::BodyError::TooLarge => FetchError::TooLarge,
        })?;
    Ok((status, headers, body))
}

async fn discover(shared: &Shared, issuer: &str) -> Result<String, FetchError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let (status, _, body) = get(shared, &url, None).await?;
    if !status.is_success() {
        return Err(FetchError::Discovery(format!("status {}", status.as_u16())));
    }
    #[derive(serde::Deserialize)]
    struct Metadata {
        issuer: String,
        jwks_uri: String,
    }
    let meta: Metadata =
        serde_json::from_slice(&body).map_err(|e| FetchError::Discovery(e.to_string()))?;
    // OpenID Connect Discovery §4.3: the issuer must be identical.
    if meta.issuer != issuer {
        return Err(FetchError::Discovery(format!(
            "the document names issuer {:?}, not {issuer:?}",
            meta.issuer
        )));
    }
    check_scheme(shared, &meta.jwks_uri)?;
    tracing::info!(target: "tower_mandate::keys", issuer, jwks_uri = %meta.jwks_uri, "discovered JWKS endpoint");
    Ok(meta.jwks_uri)
}

pub(super) fn max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    value.split(',').find_map(|d| {
        let d = d.trim();
        let (name, secs) = d.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| {
                secs.trim()
                    .trim_matches('"')
                    .parse()
                    .ok()
                    .map(Duration::from_secs)
            })
            .flatten()
    })
}

pub(super) async fn fetch(shared: &Shared) {
    let started = Instant::now();
    shared.counters.fetches.fetch_add(1, Ordering::Relaxed);
    let previous = shared.state.load_full();
    let result = fetch_inner(shared, &previous).await;
    let now = Instant::now();
    match result {
        Ok(Fetched::Keys {
            keys,
            ttl,
            etag,
            jwks_uri,
        }) => {
            tracing::info!(
                target: "tower_mandate::keys",
                keys = keys.len(),
                ttl_secs = ttl.as_secs(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "fetched JWKS"
            );
            crate::metrics::jwks_fetch(&shared.label, "ok", Some(keys.len()));
            shared.fetched_well(now);
            shared.state.store(Arc::new(State {
                keys,
                refresh_at: Some(after(now, ttl - ttl / 4)),
                expires_at: Some(after(now, ttl)),
                etag,
                jwks_uri: Some(jwks_uri),
                failing: false,
                failures: 0,
                last_attempt: Some(now),
            }));
            shared.negative.clear();
        }
        Ok(Fetched::NotModified { ttl, jwks_uri }) => {
            shared.counters.not_modified.fetch_add(1, Ordering::Relaxed);
            crate::metrics::jwks_fetch(&shared.label, "not_modified", None);
            shared.fetched_well(now);
            tracing::debug!(target: "tower_mandate::keys", "JWKS not modified");
            shared.state.store(Arc::new(State {
                keys: previous.keys.clone(),
                refresh_at: Some(after(now, ttl - ttl / 4)),
                expires_at: Some(after(now, ttl)),
                etag: previous.etag.clone(),
                jwks_uri: Some(jwks_uri),
                failing: false,
                failures: 0,
                last_attempt: Some(now),
            }));
        }
        Err(error) => {
            shared.counters.failures.fetch_add(1, Ordering::Relaxed);
            crate::metrics::jwks_fetch(&shared.label, "error", None);
            let failures = previous.failures.saturating_add(1);
            let backoff = backoff(&shared.settings, failures);
            tracing::warn!(
                target: "tower_mandate::keys",
                %error,
                serving_stale = !previous.keys.is_empty(),
                "JWKS fetch failed"
            );
            shared.state.store(Arc::new(State {
                keys: previous.keys.clone(),
                // Retry in the background after the backoff.
                refresh_at: Some(after(now, backoff)),
                expires_at: previous.expires_at,
                etag: previous.etag.clone(),
                jwks_uri: previous.jwks_uri.clone(),
                failing: true,
                failures,
                last_attempt: Some(now),
            }));
        }
    }
    shared.report_age(now, true);
}

enum Fetched {
    Keys {
        keys: KeySet,
        ttl: Duration,
        etag: Option<String>,
        jwks_uri: String,
    },
    NotModified {
        ttl: Duration,
        jwks_uri: String,
    },
}

async fn fetch_inner(shared: &Shared, previous: &State) -> Result<Fetched, FetchError> {
    let jwks_uri = match (&shared.location, &previous.jwks_uri) {
        (Location::Jwks(url), _) => url.clone(),
        (Location::Discovery { .. }, Some(uri)) => uri.clone(),
        (Location::Discovery { issuer }, None) => discover(shared, issuer).await?,
    };
    let etag = (!previous.keys.is_empty())
        .then_some(previous.etag.as_deref())
        .flatten();
    let (status, headers, body) = get(shared, &jwks_uri, etag).await?;
    let s = &shared.settings;
    let ttl = max_age(&headers)
        .unwrap_or(s.default_ttl)
        .clamp(s.min_ttl, s.max_ttl);
    if status == reqwest::StatusCode::NOT_MODIFIED && !previous.keys.is_empty() {
        return Ok(Fetched::NotModified { ttl, jwks_uri });
    }
    if !status.is_success() {
        return Err(FetchError::Status(status.as_u16()));
    }
    let text = std::str::from_utf8(&body).map_err(|e| FetchError::Parse(e.to_string()))?;
    let keys = parse_jwks_document(text, false).map_err(|e| FetchError::Parse(e.to_string()))?;
    if keys.is_empty() {
        return Err(FetchError::NoKeys);
    }
    let etag = headers
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(Fetched::Keys {
        keys,
        ttl,
        etag,
        jwks_uri,
    })
}
