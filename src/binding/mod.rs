//! Sender-constrained tokens: DPoP (RFC 9449) and certificate-bound tokens
//! (RFC 8705). A bearer token works for whoever holds it; a bound token
//! only with the key ([DPoP](Dpop)) or the TLS client certificate it was
//! issued to, so a token that leaks from one service's logs is useless
//! against the others.
//!
//! # At the resource server
//!
//! - A slot takes bearer tokens only (the default), DPoP too
//!   ([`Dpop::allowed`]) or DPoP only ([`Dpop::required`]), given to
//!   [`Slot::with_dpop`](crate::Slot::with_dpop); and it may require
//!   certificate-bound tokens ([`Slot::require_certificate_bound`](crate::Slot::require_certificate_bound)).
//! - Whatever the setting, a token whose `cnf` names a key (`jkt`) is
//!   accepted only with a valid proof of that key, and one whose `cnf`
//!   names a certificate (`x5t#S256`) only over a connection with that
//!   certificate; a `cnf` the crate cannot check refuses the token.
//! - The verified-token cache still serves the access token: a DPoP
//!   request costs one more signature check (the proof's) and one
//!   replay-store operation.
//!
//! | RFC 9449 §4.3 | here |
//! |---|---|
//! | 1. one `DPoP` header | a second one, or none with `Authorization: DPoP`, is `invalid_dpop_proof` |
//! | 2. a well-formed JWT | at most 8 KiB, three segments, JSON header and claims without duplicate members |
//! | 3. all required claims | `jti` (1–256 characters), `htm`, `htu`, `iat`, `ath` |
//! | 4. `typ` is `dpop+jwt` | compared case-insensitively |
//! | 5. an asymmetric `alg` of the allow-list | [`Dpop::with_algorithms`]; HMAC and `none` never |
//! | 6. the signature verifies with `jwk` | aws-lc-rs; RSA keys of at least 2048 bits |
//! | 7. `jwk` has no private key | `d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k` refused; `jku`, `x5u`, `x5c`, `crit` too |
//! | 8. `htm` is the method | byte for byte |
//! | 9. `htu` is the URI, without query and fragment | RFC 3986 §6.2.2–6.2.3 normalised; the origin from [`Dpop::with_origin`], never from `Host` |
//! | 10. the server's `nonce` | [`Nonces`]: `use_dpop_nonce` and a fresh `DPoP-Nonce` |
//! | 11. `iat` within a window | [`Dpop::with_max_age`] (60 s) and [`Dpop::with_leeway`] (5 s) |
//! | 12. `ath` and the key's thumbprint | `ath` = base64url SHA-256 of the token; RFC 7638 thumbprint = `cnf.jkt` |
//! | §11.1 `jti` replay | recorded until `iat` + max age + leeway in the replay store (memory, or Redis across replicas) |
//!
//! | answer (RFC 9449 §7.1) | status | `WWW-Authenticate` |
//! |---|---|---|
//! | no token, slot takes both | 401 | `Bearer, DPoP algs="ES256 …"` |
//! | bad proof | 401 | `DPoP algs="…", error="invalid_dpop_proof"` |
//! | nonce missing or stale | 401 + `DPoP-Nonce` | `DPoP algs="…", error="use_dpop_nonce"` |
//! | bearer token to a DPoP-only slot | 401 | `DPoP algs="…", error="invalid_token"` |
//! | bound token as bearer | 401 | slot takes both: `Bearer error="invalid_token", …, DPoP algs="…"`; DPoP-only: `DPoP algs="…", error="invalid_token"`; bearer-only: `Bearer error="invalid_token"` |
//!
//! gRPC requests carry the proof in the `dpop` metadata key and are refused
//! with UNAUTHENTICATED. The proven thumbprints are in the
//! [`Caller`](crate::Caller) ([`Caller::dpop_jkt`](crate::Caller::dpop_jkt),
//! [`Caller::certificate_thumbprint`](crate::Caller::certificate_thumbprint))
//! and in the audit events (`dpop_jkt`, `x5t_s256`).
//!
//! # Certificate-bound tokens (RFC 8705 §3)
//!
//! The certificate comes from the TLS connection by default: a
//! [`ClientCertificate`] the TLS acceptor puts into each request's
//! extensions, or tonic's `TlsConnectInfo` (feature `tonic-tls`). Behind a
//! proxy that terminates TLS, name the proxy's header explicitly with
//! [`CertificateSource::envoy_xfcc`] or [`CertificateSource::pem_header`]
//! on [`MandateBuilder::with_client_certificates`](crate::server::MandateBuilder::with_client_certificates).
//!
//! With axum over tokio-rustls, insert the certificate per connection
//! (`tests/mtls.rs` does it in full):
//!
//! ```text
//! let tls = acceptor.accept(tcp).await?;
//! let cert = tls.get_ref().1.peer_certificates()
//!     .and_then(|c| c.first())
//!     .map(|c| ClientCertificate::from_der(c));
//! let service = hyper::service::service_fn(move |mut req| {
//!     if let Some(cert) = &cert { req.extensions_mut().insert(cert.clone()); }
//!     app.clone().oneshot(req)
//! });
//! ```
//!
//! # Outgoing
//!
//! [`DpopKey`] signs proofs: a [`ClientCredentials`](crate::provider::ClientCredentials)
//! provider with [`with_dpop`](crate::provider::ClientCredentialsBuilder::with_dpop)
//! obtains DPoP-bound tokens, and the propagation layers then send each
//! with a fresh proof for that request. A DPoP-bound user token is never
//! forwarded (the next service would refuse it, and it must not become a
//! bearer token): exchange it, or the call fails.

#[cfg(feature = "_aws-lc")]
mod certificate;
#[cfg(feature = "_aws-lc")]
mod dpop;
#[cfg(feature = "_aws-lc")]
mod key;
#[cfg(feature = "_aws-lc")]
mod nonce;
#[cfg(feature = "_aws-lc")]
mod proof;
#[cfg(feature = "_aws-lc")]
mod thumbprint;
#[cfg(feature = "_aws-lc")]
mod uri;

pub use crate::caller::Confirmation;
#[cfg(feature = "_aws-lc")]
pub use certificate::{CertificateSource, ClientCertificate};
#[cfg(feature = "_aws-lc")]
pub use dpop::Dpop;
#[cfg(feature = "_aws-lc")]
pub use key::DpopKey;
#[cfg(feature = "_aws-lc")]
pub use nonce::Nonces;

use std::fmt;
use std::sync::Arc;

use crate::AuthError;
use crate::revocation::{MemoryStore, RevocationCheck, TokenFacts, TokenStore};
use crate::token::{Head, Scheme};

/// How one slot takes bound tokens.
#[derive(Clone, Debug, Default)]
pub(crate) struct SlotBinding {
    #[cfg(feature = "_aws-lc")]
    pub(crate) dpop: Option<Dpop>,
    pub(crate) certificate_bound: bool,
}

impl SlotBinding {
    /// Whether the slot's header takes the `DPoP` scheme.
    pub(crate) fn takes_dpop(&self) -> bool {
        #[cfg(feature = "_aws-lc")]
        return self.dpop.is_some();
        #[cfg(not(feature = "_aws-lc"))]
        false
    }

    /// The challenge of a refusal of this slot after a request with `scheme`.
    pub(crate) fn challenge(&self, scheme: Option<Scheme>) -> crate::error::Challenge {
        #[cfg(feature = "_aws-lc")]
        if let Some(dpop) = &self.dpop {
            return dpop.challenge(scheme == Some(Scheme::Dpop));
        }
        let _ = scheme;
        crate::error::Challenge::Bearer
    }

    /// Refuse a bearer token before verifying it when the slot requires DPoP.
    pub(crate) fn precheck(&self, scheme: Scheme) -> Result<(), AuthError> {
        #[cfg(feature = "_aws-lc")]
        if scheme == Scheme::Bearer && self.dpop.as_ref().is_some_and(|d| d.required) {
            return Err(AuthError::invalid_token("DPoP required"));
        }
        let _ = scheme;
        Ok(())
    }

    /// Check the binding (`cnf`) of a verified `token` presented with
    /// `scheme`: the proof of its DPoP key, the certificate it is bound to.
    pub(crate) fn check(
        &self,
        (token, cnf): (&str, Option<&Confirmation>),
        scheme: Scheme,
        head: &Head<'_>,
        certificates: &Certificates,
        now: u64,
    ) -> Result<Option<Bound>, AuthError> {
        match cnf.and_then(Confirmation::certificate_thumbprint) {
            Some(x5t) => {
                let presented = certificates.thumbprint(head)?;
                match presented.as_deref() {
                    Some(t) if t == x5t => {}
                    Some(_) => {
                        return Err(AuthError::invalid_token(
                            "client certificate does not match the token",
                        ));
                    }
                    None => {
                        return Err(AuthError::invalid_token(
                            "certificate-bound token without a client certificate",
                        ));
                    }
                }
            }
            None if self.certificate_bound => {
                return Err(AuthError::invalid_token("certificate-bound token required"));
            }
            None => {}
        }
        let jkt = cnf.and_then(Confirmation::dpop_jkt);
        match (scheme, jkt) {
            (Scheme::Bearer, None) => Ok(None),
            (Scheme::Bearer, Some(_)) => Err(AuthError::invalid_token(
                "DPoP-bound token presented as a bearer token",
            )),
            (Scheme::Dpop, None) => Err(AuthError::invalid_token("token is not DPoP-bound")),
            #[cfg(feature = "_aws-lc")]
            (Scheme::Dpop, Some(jkt)) => match &self.dpop {
                Some(dpop) => dpop.prove(head, token, jkt, now).map(Some),
                None => Err(AuthError::invalid_token("DPoP not accepted here")),
            },
            #[cfg(not(feature = "_aws-lc"))]
            (Scheme::Dpop, Some(_)) => {
                let _ = (now, token);
                Err(AuthError::invalid_token("DPoP not accepted here"))
            }
        }
    }
}

/// A DPoP proof that passed: a new nonce to hand out, and the replay
/// record still to make.
#[derive(Debug)]
pub(crate) struct Bound {
    pub(crate) next_nonce: Option<String>,
    pub(crate) replay: Arc<ReplayRecord>,
}

/// Where proofs' `jti`s are recorded.
#[derive(Clone)]
pub(crate) struct ReplayStore {
    pub(crate) store: Arc<dyn TokenStore>,
    /// The same store, answered in place.
    pub(crate) memory: Option<MemoryStore>,
}

/// A proof's `jti` to record, and where; the refusal of a replay.
pub(crate) struct ReplayRecord {
    pub(crate) facts: TokenFacts,
    pub(crate) store: ReplayStore,
    pub(crate) replayed: AuthError,
}

impl fmt::Debug for ReplayRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayRecord").finish_non_exhaustive()
    }
}

impl ReplayRecord {
    /// Record the `jti`: answered in place by a memory store.
    pub(crate) fn check(&self) -> RevocationCheck {
        crate::revocation::check_once(
            &self.store.store,
            self.store.memory.as_ref(),
            self.facts.clone(),
            self.replayed.clone(),
        )
    }
}

/// The layer's certificate source (or none without a digest backend).
#[derive(Clone, Debug, Default)]
pub(crate) struct Certificates(#[cfg(feature = "_aws-lc")] pub(crate) Option<CertificateSource>);

impl Certificates {
    fn thumbprint(&self, head: &Head<'_>) -> Result<Option<String>, AuthError> {
        #[cfg(feature = "_aws-lc")]
        return match &self.0 {
            Some(source) => source.thumbprint(head),
            None => CertificateSource::connection().thumbprint(head),
        };
        #[cfg(not(feature = "_aws-lc"))]
        {
            let _ = head;
            Ok(None)
        }
    }
}
