//! Authorization between microservices, correct by default.
//!
//! `tower-mandate` verifies two JWTs on every incoming request — the end
//! user's and the calling service's, each against its own issuers,
//! audiences and keys — and gates routes declaratively: a handler argument
//! `Require<ImagesWrite>` exists only if **every** principal on the request
//! holds `images:write`. A powerful user token cannot lift a weak service
//! token, and no internal call is trusted blindly.
//!
//! # Quick start
//!
//! ```
//! use axum::{Router, routing::post};
//! use tower_mandate::{permission, Issuer, MandateLayer, Require, Slot, Verifier};
//! # use tower_mandate::testing::TestIssuer;
//! # let idp = TestIssuer::rs256("https://id.example");
//! # let jwks = idp.jwks();
//!
//! permission! {
//!     /// Upload images.
//!     pub ImagesWrite = "images:write";
//! }
//!
//! async fn upload(caller: Require<ImagesWrite>) -> String {
//!     format!("stored for {}", caller.user().map_or("a service", |u| u.subject()))
//! }
//!
//! let users = Verifier::new([Issuer::new("https://id.example", "image-store")
//!     .with_keys(tower_mandate::keys::KeySet::from_jwks(&jwks)?)])?;
//! let layer = MandateLayer::builder().user(Slot::required(users)).build()?;
//! let app: Router = Router::new().route("/images", post(upload)).route_layer(layer);
//! # Ok::<(), tower_mandate::ConfigError>(())
//! ```
//!
//! # What is checked
//!
//! See [`verify`] for the rules a token must pass (RFC 7519, RFC 8725,
//! RFC 9068), [`server`] for the layer and its answers (RFC 6750), and
//! [`permission`](mod@permission) for how claims and roles become permissions.
//!
//! | credential | header (gRPC: metadata of the same name) |
//! |---|---|
//! | user's token | `Authorization: Bearer <jwt>` |
//! | calling service's token | `Service-Authorization: Bearer <jwt>` |
//! | DPoP-bound token ([`binding::Dpop`], RFC 9449) | `Authorization: DPoP <jwt>` + one `DPoP: <proof>` |
//! | certificate-bound token (RFC 8705) | the token, over TLS with the client certificate ([`binding`]) |
//! | Transaction Token ([`transaction`], draft -10) | `Txn-Token: <jwt>` |
//!
//! | case | HTTP | `WWW-Authenticate` |
//! |---|---|---|
//! | no credentials | 401 | `Bearer` (a slot taking DPoP: `Bearer, DPoP algs="…"`) |
//! | bad, expired, wrong iss/aud, unknown key | 401 | `Bearer error="invalid_token"` |
//! | DPoP-bound token as bearer; bearer token to a DPoP-only slot | 401 | `error="invalid_token"` with the `DPoP` challenge |
//! | bad, replayed or misdirected DPoP proof | 401 | `DPoP algs="…", error="invalid_dpop_proof"` |
//! | DPoP nonce missing (nonces on) | 401 + `DPoP-Nonce` | `DPoP algs="…", error="use_dpop_nonce"` |
//! | duplicate or malformed credential header | 400 | `Bearer error="invalid_request"` |
//! | permission missing | 403 | `Bearer error="insufficient_scope", scope="…"` |
//! | keys cannot be obtained (JWKS down, `kid` unknown) | 503 + `Retry-After` | — |
//!
//! # Sender-constrained tokens
//!
//! [`binding`]: DPoP (RFC 9449) on a slot with [`Slot::with_dpop`], tokens
//! bound to a client certificate (RFC 8705), DPoP-bound tokens obtained and
//! proven on outgoing calls. A bound token is never accepted, nor
//! forwarded, as a bearer token. DPoP and certificate thumbprints need
//! `aws-lc-rs` (on by default).
//!
//! # Running in production
//!
//! - **Configuration from a file** (feature `config`): [`config::MandateConfig`]
//!   deserializes everything the builders express — from TOML, or as a
//!   section of the application's figment or `config` configuration — and
//!   names the key of every mistake.
//! - **Metrics** (feature `metrics`), through the `metrics` facade:
//!   `mandate_requests_total{outcome}`, `mandate_verifications_total{slot,result}`,
//!   `mandate_verify_duration_seconds{slot}`, `mandate_jwks_fetches_total{issuer,outcome}`,
//!   `mandate_jwks_keys{issuer}`, `mandate_jwks_age_seconds{issuer}`,
//!   `mandate_guard_decisions_total{permission,decision}`,
//!   `mandate_token_requests_total{provider,outcome}`, `mandate_token_cache_total{result}`,
//!   `mandate_revocation_checks_total{outcome}`; label values never come
//!   from a token. The README's "Running in production" has their values,
//!   units and what to alert on.
//! - **Spans**: one `mandate` span per request (INFO, target
//!   `tower_mandate::server`) with the outcome and who called
//!   (`enduser.id`, issuers, the calling service, the actor); audit events
//!   carry the method and route.
//! - **Readiness**: [`MandateLayer::is_ready`] for a probe,
//!   [`MandateLayer::ready`] to wait; neither blocks start-up.
//! - **Skipped paths**: [`server::MandateBuilder::add_skip_grpc_health`] and
//!   its siblings (gRPC reflection, CORS preflights, a prefix, a predicate).
//! - **Your own HTTP client**: [`keys::JwksBuilder::with_client`] and the
//!   providers' `with_client`, with the crate's rules still enforced.
//! - **Redis**: [`revocation::RedisStore`] (feature `redis`) checks a
//!   request's tokens in one round trip; its docs say what it needs of a
//!   Redis deployment.
//!
//! # Features
//!
//! | feature | default | what |
//! |---|---|---|
//! | `axum` | yes | extractors: `Caller`, `Require<P>`, `RequireUser<P>`, `RequireService<P>` |
//! | `aws-lc-rs` | yes | signatures checked by aws-lc-rs on keys parsed once |
//! | `jwks` | yes | [`keys::JwksSource`]: keys from JWKS endpoints and OIDC discovery |
//! | `oauth` | yes | [`provider::ClientCredentials`], [`provider::TokenExchange`] |
//! | `redis` | no | [`revocation`]: a Redis store shared by replicas |
//! | `cedar` | no | [`policy::CedarPolicy`]: resource policies in Cedar |
//! | `tonic` | no | [`tonic`]: gRPC refusals and guard helpers returning `tonic::Status` |
//! | `tonic-tls` | no | certificate-bound tokens on tonic's own TLS server (its `TlsConnectInfo`) |
//! | `reqwest` | no | `propagate::PropagateMiddleware` for reqwest-middleware |
//! | `rust-crypto` | no | signatures checked by the RustCrypto crates (via jsonwebtoken) |
//! | `config` | no | [`config`]: the layer, providers and propagation from a configuration file |
//! | `metrics` | no | counters, gauges and a histogram through the `metrics` facade (README: "Running in production") |
//! | `test-util` | no | [`testing`]: generate keys, mint tokens, publish JWKS |
//!
//! With neither `aws-lc-rs` nor `rust-crypto`, loading a key is a
//! [`ConfigError`]. When both are on, aws-lc-rs is used.

#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod audit;
pub mod binding;
#[cfg(any(feature = "jwks", feature = "oauth", feature = "authzen"))]
mod body;
mod bounded;
mod caller;
mod clock;
#[cfg(feature = "config")]
pub mod config;
mod error;
#[cfg(all(feature = "oauth", feature = "_aws-lc"))]
pub mod job;
pub mod keys;
mod metrics;
#[cfg(feature = "_aws-lc")]
pub mod mint;
pub mod permission;
pub mod policy;
pub mod propagate;
pub mod provider;
pub mod revocation;
pub mod server;
pub mod step_up;
mod token;
pub mod transaction;
pub mod verify;

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "test-util")]
pub mod testing;
#[cfg(feature = "tonic")]
pub mod tonic;

pub use caller::{Actor, Caller, Principal, PrincipalId};
pub use error::{AuthError, AuthErrorKind, ConfigError};
pub use server::layer::MandateLayer;
pub use server::slot::Slot;
pub use verify::issuer::Issuer;
pub use verify::verifier::Verifier;

#[cfg(feature = "axum")]
pub use crate::axum::require::{Require, RequireService, RequireUser};

#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`); not
/// part of the API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz {
    /// Parse a token endpoint answer; whether it gave a token.
    #[cfg(feature = "oauth")]
    pub fn token_response(status: u16, body: &[u8]) -> bool {
        crate::provider::parse_token_response(status, body).is_ok()
    }

    /// Parse a JWKS document as fetched from the network; the usable keys.
    pub fn jwks_document(text: &str) -> usize {
        crate::keys::parse_jwks_document(text, false).map_or(0, |k| k.len())
    }
}
