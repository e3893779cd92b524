//! The Redis store (feature `redis`): one view for a fleet of replicas.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use super::{StoreError, StoreErrorKind, StoreFuture, TokenFacts, TokenStore, Verdict, key};
use crate::clock::unix_now;

/// Revocation lists and replay records in Redis, shared by every replica
/// that uses the same server and key prefix.
///
/// Keys: `{prefix}rt:{n}:{iss}:{jti}` (revoked token, expiring with it),
/// `{prefix}rs:{n}:{iss}:{sub}` (subject revoked for tokens issued before
/// the stored time), `{prefix}seen:{n}:{iss}:{jti}` (replay record, `SET
/// NX`, kept until the verifier would refuse the token anyway, plus
/// [`REPLAY_MARGIN_SECS`](super::REPLAY_MARGIN_SECS)), where `n` is the
/// length of the issuer in bytes, so that an issuer or id holding `:` can
/// never be read as another pair. The connection is made on first use,
/// with timeouts, so startup never fails because Redis is down.
///
/// `rediss://` URLs connect over TLS (rustls), trusting the system's roots
/// or, with [`RedisStore::new_with_root_ca`], a private CA. rustls needs a
/// process-wide crypto provider: when the application has installed none,
/// building a `rediss://` store installs aws-lc-rs's.
///
/// One request is one round trip: the user's and the service's tokens are
/// checked in a single pipeline (`EXISTS`, `GET`, and with the replay
/// guard `SET … NX EXAT`), so Redis 6.2 or later is needed (`EXAT`).
///
/// # Redis Cluster
///
/// The store speaks to one endpoint: a standalone server or primary, a
/// Sentinel-managed or managed service's primary endpoint, or a
/// cluster-aware proxy (Envoy's Redis proxy, a managed service's proxy
/// endpoint) that splits the pipeline by slot. It does not speak the
/// Cluster protocol itself: the keys of one request hash to different slots
/// (they are not hash-tagged, so that one subject's tokens spread over the
/// cluster), and a direct cluster connection would answer `MOVED`, which
/// the store reports as unavailable — the layer then fails closed (503).
pub struct RedisStore {
    client: redis::Client,
    prefix: String,
    timeout: Duration,
    conn: OnceCell<ConnectionManager>,
}

/// The redis crate asks rustls for the process-wide crypto provider when it
/// connects over TLS, which panics when none is installed and the build
/// holds two. For a `rediss://` URL, install aws-lc-rs's unless the
/// application installed one first (it keeps its own then).
fn tls_provider(url: &str) {
    if url.starts_with("rediss:") && rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

fn err(e: impl fmt::Display) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, e.to_string())
}

impl RedisStore {
    /// A store at `url` (e.g. `redis://127.0.0.1:6379/`), keys prefixed with
    /// `tower-mandate:`; 500 ms connect and response timeouts.
    ///
    /// # Errors
    ///
    /// When the URL is not a Redis URL.
    pub fn new(url: &str) -> Result<Self, crate::ConfigError> {
        tls_provider(url);
        Self::from_client(url, redis::Client::open(url))
    }

    /// A store at a `rediss://` URL whose server certificate is signed by
    /// the CA in `root_ca_pem` (PEM), instead of one the system trusts.
    ///
    /// # Errors
    ///
    /// When the URL is not a `rediss://` URL, or the PEM holds no certificate.
    pub fn new_with_root_ca(url: &str, root_ca_pem: &[u8]) -> Result<Self, crate::ConfigError> {
        tls_provider(url);
        Self::from_client(
            url,
            redis::Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root_ca_pem.to_vec()),
                },
            ),
        )
    }

    fn from_client(
        url: &str,
        client: redis::RedisResult<redis::Client>,
    ) -> Result<Self, crate::ConfigError> {
        let client = client.map_err(|e| crate::ConfigError::InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(RedisStore {
            client,
            prefix: "tower-mandate:".into(),
            timeout: Duration::from_millis(500),
            conn: OnceCell::new(),
        })
    }

    /// Use another key prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Connect and response timeouts.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn conn(&self) -> Result<ConnectionManager, StoreError> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                tokio::time::timeout(
                    self.timeout * 2,
                    self.client.get_connection_manager_with_config(config),
                )
                .await
                .map_err(|_| err("connect timed out"))?
                .map_err(err)
            })
            .await?;
        Ok(conn.clone())
    }

    /// Revoke the token `jti` of `issuer`; `until` is its `exp`. The record
    /// is kept [`REVOCATION_MARGIN_SECS`](super::REVOCATION_MARGIN_SECS)
    /// longer, while a verifier's leeway could still accept the token.
    ///
    /// # Errors
    ///
    /// When Redis cannot be reached.
    pub async fn revoke_token(
        &self,
        issuer: &str,
        jti: &str,
        until: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let key = format!("{}rt:{}", self.prefix, key(issuer, jti));
        redis::cmd("SET")
            .arg(key)
            .arg(1)
            .arg("EXAT")
            .arg(
                until
                    .saturating_add(super::REVOCATION_MARGIN_SECS)
                    .max(unix_now() + 1),
            )
            .query_async::<()>(&mut conn)
            .await
            .map_err(err)
    }

    /// Revoke every token of `subject` from `issuer` issued before `issued_before`.
    ///
    /// # Errors
    ///
    /// When Redis cannot be reached.
    pub async fn revoke_subject(
        &self,
        issuer: &str,
        subject: &str,
        issued_before: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let key = format!("{}rs:{}", self.prefix, key(issuer, subject));
        redis::cmd("SET")
            .arg(key)
            .arg(issued_before)
            .query_async::<()>(&mut conn)
            .await
            .map_err(err)
    }
}

impl RedisStore {
    /// The commands for `token` in a pipeline: five reads, and with
    /// `guard_replay` the `SET NX` that records its `jti`.
    fn queue(&self, pipe: &mut redis::Pipeline, token: &TokenFacts, guard_replay: bool) {
        let raw_jti = token.jti.as_deref().unwrap_or("");
        let jti = key(&token.issuer, raw_jti);
        let p = &self.prefix;
        // Records written by 0.1 (`{iss}:{id}`, ambiguous) are still read,
        // so an upgrade forgets no revocation and no replay: an old record
        // can only refuse more, never accept more.
        pipe.cmd("EXISTS")
            .arg(format!("{p}rt:{jti}"))
            .cmd("GET")
            .arg(format!("{p}rs:{}", key(&token.issuer, &token.subject)))
            .cmd("EXISTS")
            .arg(format!("{p}rt:{}:{raw_jti}", token.issuer))
            .cmd("GET")
            .arg(format!("{p}rs:{}:{}", token.issuer, token.subject))
            .cmd("EXISTS")
            .arg(format!("{p}seen:{}:{raw_jti}", token.issuer));
        if guard_replay && token.jti.is_some() {
            // Recorded in the same round trip: a token refused for another
            // reason (revoked) is then also recorded as seen, which can
            // only refuse more.
            pipe.cmd("SET")
                .arg(format!("{p}seen:{jti}"))
                .arg(1)
                .arg("NX")
                .arg("EXAT")
                .arg(token.replay_record_until().max(unix_now() + 1));
        }
    }

    /// The verdict of `token` from its replies, in the order [`queue`](Self::queue) sent.
    fn verdict(
        token: &TokenFacts,
        guard_replay: bool,
        replies: &mut impl Iterator<Item = redis::Value>,
    ) -> Result<Verdict, StoreError> {
        fn next<T: redis::FromRedisValue>(
            replies: &mut impl Iterator<Item = redis::Value>,
        ) -> Result<T, StoreError> {
            let value = replies.next().ok_or_else(|| err("a reply is missing"))?;
            redis::from_redis_value(value).map_err(err)
        }
        let revoked_token: bool = next(replies)?;
        let revoked_before: Option<u64> = next(replies)?;
        let old_token: bool = next(replies)?;
        let old_before: Option<u64> = next(replies)?;
        let old_seen: bool = next(replies)?;
        let first = if guard_replay && token.jti.is_some() {
            next::<Option<String>>(replies)?.is_some()
        } else {
            true
        };
        let before = revoked_before.max(old_before);
        if (token.jti.is_some() && (revoked_token || old_token))
            || before.is_some_and(|before| token.issued_at.is_none_or(|iat| iat < before))
        {
            return Ok(Verdict::Revoked);
        }
        if guard_replay && token.jti.is_some() && (old_seen || !first) {
            return Ok(Verdict::Replayed);
        }
        Ok(Verdict::Fresh)
    }
}

impl TokenStore for RedisStore {
    fn check<'a>(&'a self, token: &'a TokenFacts, guard_replay: bool) -> StoreFuture<'a, Verdict> {
        Box::pin(async move {
            let mut verdicts = self
                .check_all(std::slice::from_ref(token), guard_replay)
                .await?;
            verdicts.pop().ok_or_else(|| err("no verdict"))
        })
    }

    /// Every token of the request in one pipeline: one round trip.
    fn check_all<'a>(
        &'a self,
        tokens: &'a [TokenFacts],
        guard_replay: bool,
    ) -> StoreFuture<'a, Vec<Verdict>> {
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let mut pipe = redis::pipe();
            for token in tokens {
                self.queue(&mut pipe, token, guard_replay);
            }
            let replies: Vec<redis::Value> = pipe.query_async(&mut conn).await.map_err(err)?;
            let mut replies = replies.into_iter();
            tokens
                .iter()
                .map(|token| Self::verdict(token, guard_replay, &mut replies))
                .collect()
        })
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
