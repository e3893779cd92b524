//! The DPoP setting of a slot ([`Dpop`]) and the check of one request's
//! proof against it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Uri};

use super::nonce::{NonceCheck, Nonces};
use super::proof::{self, Expected};
use super::uri::NormalizedUri;
use super::{Bound, ReplayRecord, ReplayStore};
use crate::error::Challenge;
use crate::keys::{AlgSet, Algorithm};
use crate::revocation::{MemoryStore, Revocation, TokenFacts, TokenStore};
use crate::token::Head;
use crate::{AuthError, ConfigError};

/// The application's own reading of the URI a request was sent to (behind
/// a proxy that names it in a header the proxy controls).
type ExternalUri = dyn Fn(&HeaderMap, &Uri) -> Option<String> + Send + Sync;

/// DPoP (RFC 9449) for one slot: `Authorization: DPoP <token>` with one
/// `DPoP: <proof>` header, checked as RFC 9449 §4.3 and §7.1 ask. Give it
/// to [`Slot::with_dpop`](crate::Slot::with_dpop).
///
/// A slot without this setting takes bearer tokens only. Whatever the
/// setting, a token bound to a DPoP key (`cnf.jkt`) is never accepted as a
/// bearer token: presented without its proof, it is a stolen token.
///
/// ```
/// use std::time::Duration;
/// use tower_mandate::binding::Dpop;
///
/// // Bearer and DPoP tokens, proofs for https://images.example/…
/// let dpop = Dpop::allowed()
///     .with_origin("https://images.example")
///     .with_max_age(Duration::from_secs(60));
/// # let _ = dpop;
/// ```
///
/// Proofs are checked against the URI the client used: the configured
/// origin (scheme, host and port as the clients reach the service) and the
/// request's path, never a `Host` or `Forwarded` header a client could
/// choose. Each proof's `jti` is recorded for its lifetime in the layer's
/// revocation store when it has one (a [`RedisStore`](crate::revocation::RedisStore)
/// shares the records between replicas), else in a store of the layer's
/// own, or in the store given to [`with_replay_store`](Self::with_replay_store).
#[derive(Clone)]
#[must_use]
pub struct Dpop {
    pub(crate) required: bool,
    algs: Vec<Algorithm>,
    max_age: u64,
    leeway: u64,
    origins: Vec<String>,
    external: Option<Arc<ExternalUri>>,
    nonces: Option<Nonces>,
    store: Option<ReplayStore>,
    /// Set by [`prepare`](Self::prepare).
    prepared: Option<Arc<Prepared>>,
}

/// What `prepare` worked out once.
struct Prepared {
    algs: AlgSet,
    /// `ES256 PS256 …`, for challenges.
    algs_text: Arc<str>,
    origins: Vec<String>,
    store: ReplayStore,
    /// Proof headers checked before (one per client key).
    keys: proof::ProofKeys,
}

/// Proof headers kept (each a client's key, parsed).
const PROOF_KEYS: usize = 10_000;

/// The proof algorithms taken by default: every asymmetric one.
const DEFAULT_ALGS: [Algorithm; 9] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
];

impl Dpop {
    fn new(required: bool) -> Self {
        Dpop {
            required,
            algs: DEFAULT_ALGS.to_vec(),
            max_age: 60,
            leeway: 5,
            origins: Vec::new(),
            external: None,
            nonces: None,
            store: None,
            prepared: None,
        }
    }

    /// Bearer tokens and DPoP-bound tokens with their proofs.
    pub fn allowed() -> Self {
        Self::new(false)
    }

    /// DPoP-bound tokens with their proofs only: a bearer token gets 401
    /// with a `DPoP` challenge.
    pub fn required() -> Self {
        Self::new(true)
    }

    /// Take proofs signed with these algorithms only (default: every
    /// asymmetric algorithm of [`Algorithm`]). HMAC is refused by
    /// [`build`](crate::server::MandateBuilder::build): a proof's key is public.
    pub fn with_algorithms(mut self, algs: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algs = algs.into_iter().collect();
        self
    }

    /// How old a proof's `iat` may be (default 60 s); its `jti` is kept
    /// that long, plus the leeway.
    pub fn with_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age.as_secs();
        self
    }

    /// How far the client's clock may differ (default 5 s): an `iat` that
    /// far in the future, or that much past the maximum age, is accepted.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.as_secs();
        self
    }

    /// The origin (`https://host[:port]`) clients send requests to; add
    /// several when the service has several names. A proof's `htu` must be
    /// one of them followed by the request's path.
    pub fn with_origin(mut self, origin: impl Into<String>) -> Self {
        self.origins.push(origin.into());
        self
    }

    /// Read the external URI (`scheme://host[:port]/path`) of each request
    /// with `uri`, for a proxy that names it in headers it sets itself.
    /// `None` refuses the request. Used instead of the origins.
    ///
    /// # Security
    ///
    /// Read only headers that the proxy overwrites: a header the client
    /// sets lets it replay a proof made for another service.
    pub fn with_external_uri(
        mut self,
        uri: impl Fn(&HeaderMap, &Uri) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.external = Some(Arc::new(uri));
        self
    }

    /// Require the server's nonce in every proof (RFC 9449 §8): a proof
    /// without the current one gets 401 `use_dpop_nonce` and a fresh
    /// `DPoP-Nonce`, and answers carry a new nonce once it rotates.
    pub fn with_nonces(mut self, nonces: Nonces) -> Self {
        self.nonces = Some(nonces);
        self
    }

    /// Record proofs' `jti`s in `store` (instead of the layer's revocation
    /// store, or its own memory store).
    pub fn with_replay_store(mut self, store: impl TokenStore) -> Self {
        // Revocation tells a memory store (answered in place) from others.
        let (store, memory) = Revocation::new(store).store();
        self.store = Some(ReplayStore { store, memory });
        self
    }

    /// Check the setting once, when the layer is built; `revocation` is
    /// the layer's, whose store records the proofs by default.
    pub(crate) fn prepare(&mut self, revocation: Option<&Revocation>) -> Result<(), ConfigError> {
        let origins = self.checked_origins()?;
        let shared = revocation.map(Revocation::store);
        let store = match (&self.store, shared) {
            (Some(store), _) => store.clone(),
            // A shared store (Redis): every replica sees every proof.
            (None, Some((store, None))) => ReplayStore {
                store,
                memory: None,
            },
            // Otherwise a memory store of the proofs' own, so that a client
            // minting proofs fills it, not the revocation store's records.
            (None, _) => {
                let memory = MemoryStore::new();
                ReplayStore {
                    store: Arc::new(memory.clone()),
                    memory: Some(memory),
                }
            }
        };
        let algs = AlgSet::of(self.algs.iter().copied());
        // In the configured order: the first is the one clients should prefer.
        let mut names: Vec<&str> = Vec::new();
        for alg in &self.algs {
            if !names.contains(&alg.as_str()) {
                names.push(alg.as_str());
            }
        }
        let algs_text = names.join(" ");
        self.prepared = Some(Arc::new(Prepared {
            algs,
            algs_text: algs_text.into(),
            origins,
            store,
            keys: proof::ProofKeys::new(PROOF_KEYS),
        }));
        Ok(())
    }

    /// The algorithms and origins, checked; the origins normalised.
    /// (A configuration file checks them at the key that set them.)
    pub(crate) fn checked_origins(&self) -> Result<Vec<String>, ConfigError> {
        let invalid = |m: String| ConfigError::InvalidBinding(m);
        if self.algs.is_empty() {
            return Err(invalid("DPoP needs at least one proof algorithm".into()));
        }
        if let Some(alg) = self.algs.iter().find(|a| a.is_hmac()) {
            return Err(invalid(format!(
                "{} cannot sign DPoP proofs: a proof's key is public",
                alg.as_str()
            )));
        }
        if self.origins.is_empty() && self.external.is_none() {
            return Err(invalid(
                "DPoP needs the origin clients reach the service at (with_origin), \
                 or with_external_uri"
                    .into(),
            ));
        }
        let mut origins = Vec::new();
        for origin in &self.origins {
            let normal = NormalizedUri::parse(origin)
                .filter(|u| u.as_str().ends_with("/") && u.as_str().matches('/').count() == 3)
                .ok_or_else(|| {
                    invalid(format!(
                        "DPoP origin {origin:?} is not scheme://host[:port] (http or https, no path)"
                    ))
                })?;
            origins.push(normal.as_str().trim_end_matches('/').to_owned());
        }
        Ok(origins)
    }

    fn prepared(&self) -> &Prepared {
        self.prepared
            .as_deref()
            .expect("Dpop::prepare runs when the layer is built")
    }

    /// For protected-resource metadata (RFC 9728): whether DPoP is
    /// required, and the proof algorithms taken.
    pub(crate) fn metadata(&self) -> (bool, Vec<String>) {
        let algs = self
            .prepared()
            .algs_text
            .split(' ')
            .map(str::to_owned)
            .collect();
        (self.required, algs)
    }

    /// The challenge of this slot's answers after a request with `scheme`.
    pub(crate) fn challenge(&self, dpop_request: bool) -> Challenge {
        let algs = self.prepared().algs_text.clone();
        if dpop_request || self.required {
            Challenge::Dpop(algs)
        } else {
            Challenge::Both(algs)
        }
    }

    /// Check the request's proof for `token`, bound to `jkt`.
    pub(crate) fn prove(
        &self,
        head: &Head<'_>,
        token: &str,
        jkt: &str,
        now: u64,
    ) -> Result<Bound, AuthError> {
        let prepared = self.prepared();
        let proof = proof::header(head.headers)?;
        let uris = self.request_uris(head, prepared)?;
        let want = Expected {
            method: head.method.as_str(),
            uris: &uris,
            token,
            now,
            algs: prepared.algs,
            max_age: self.max_age,
            leeway: self.leeway,
            keys: &prepared.keys,
        };
        let result = proof::check(proof, &want);
        let checked = result?;
        if checked.jkt != jkt {
            return Err(AuthError::invalid_dpop_proof(
                "DPoP proof key does not match the token",
            ));
        }
        let mut next_nonce = None;
        if let Some(nonces) = &self.nonces {
            match nonces.check(checked.nonce.as_deref(), now) {
                NonceCheck::Current => {}
                NonceCheck::Previous => next_nonce = Some(nonces.current(now)),
                NonceCheck::Refused => return Err(AuthError::use_dpop_nonce(nonces.current(now))),
            }
        }
        let until = checked
            .iat
            .saturating_add(self.max_age)
            .saturating_add(self.leeway);
        // Scoped by key: one client's `jti`s cannot collide with another's.
        let facts = TokenFacts::new(
            format!("dpop:{}", checked.jkt),
            checked.jkt.clone(),
            until,
            until,
        )
        .with_jti(checked.jti)
        .with_issued_at(checked.iat);
        Ok(Bound {
            next_nonce,
            replay: Arc::new(ReplayRecord {
                facts,
                store: prepared.store.clone(),
                replayed: AuthError::invalid_dpop_proof("DPoP proof replayed")
                    .with_challenge(self.challenge(true)),
            }),
        })
    }

    /// The URIs the request may have been sent to: each origin with the
    /// request's path, or the application's reading.
    ///
    /// With several origins, the one the request names (its `Host` or
    /// `:authority`) when it is one of them: a proof for one name of the
    /// service is then not accepted under another.
    fn request_uris(
        &self,
        head: &Head<'_>,
        prepared: &Prepared,
    ) -> Result<Vec<NormalizedUri>, AuthError> {
        let unknown = || AuthError::invalid_dpop_proof("the request's URI is unknown");
        if let Some(external) = &self.external {
            let uri = external(head.headers, head.uri).ok_or_else(unknown)?;
            return Ok(vec![NormalizedUri::parse(&uri).ok_or_else(unknown)?]);
        }
        let path = head.original_path();
        let authority = head
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| {
                head.headers
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
            })
            .map(str::to_ascii_lowercase);
        let named: Vec<&String> = match &authority {
            Some(a) if prepared.origins.len() > 1 => prepared
                .origins
                .iter()
                .filter(|o| o.split_once("://").is_some_and(|(_, host)| host == a))
                .collect(),
            _ => Vec::new(),
        };
        let origins: Vec<&String> = if named.is_empty() {
            prepared.origins.iter().collect()
        } else {
            named
        };
        origins
            .into_iter()
            .map(|origin| NormalizedUri::of_request(origin, path).ok_or_else(unknown))
            .collect()
    }
}

impl fmt::Debug for Dpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dpop")
            .field("required", &self.required)
            .field("algs", &self.algs)
            .field("max_age_secs", &self.max_age)
            .field("leeway_secs", &self.leeway)
            .field("origins", &self.origins)
            .field("nonces", &self.nonces)
            .finish_non_exhaustive()
    }
}
