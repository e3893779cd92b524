//! The server middleware: [`MandateLayer`](crate::MandateLayer) verifies the user and service
//! tokens of every request and puts the [`Caller`](crate::Caller) into its extensions, or
//! answers by itself (RFC 6750 §3).
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_mandate::{Caller, Issuer, MandateLayer, Slot, Verifier};
//! # use tower_mandate::testing::TestIssuer;
//! # let users = TestIssuer::rs256("https://id.example");
//! # let services = TestIssuer::es256("https://services.example");
//!
//! let layer = MandateLayer::builder()
//!     .user(Slot::required(Verifier::new([
//!         Issuer::new("https://id.example", "image-store").with_keys(users.key_set()),
//!     ])?))
//!     .service(Slot::optional(Verifier::new([
//!         Issuer::new("https://services.example", "image-store").with_keys(services.key_set()),
//!     ])?))
//!     .build()?;
//!
//! async fn me(caller: Caller) -> String {
//!     caller.user().map(|u| u.subject().to_owned()).unwrap_or_default()
//! }
//!
//! let app: Router = Router::new()
//!     .route("/me", get(me))
//!     // route_layer: only matched routes are authenticated, so an unknown
//!     // path stays a 404 and never reveals what needs a token.
//!     .route_layer(layer)
//!     .route("/healthz", get(|| async { "ok" }));
//! # Ok::<(), tower_mandate::ConfigError>(())
//! ```
//!
//! # Layer order
//!
//! Put the `MandateLayer` on `route_layer`, after routing: unknown paths
//! answer 404 without touching tokens, and routes added after the
//! `route_layer` call (health checks) stay public. Layers that must see
//! every request (tracing, request ids, timeouts) go outside, with `layer`.
//! The rejection is a ready response, not an error, so the layer satisfies
//! axum's `Error: Into<Infallible>` bound.

mod enrich;
mod future;
pub(crate) mod layer;
mod metadata;
mod reject;
mod service;
pub(crate) mod skip;
pub(crate) mod slot;

pub use enrich::{Enrich, EnrichError, EnrichFuture};
pub use future::ResponseFuture;
pub use layer::MandateBuilder;
pub use metadata::ResourceMetadata;
pub(crate) use reject::Renderer;
#[cfg(feature = "axum")]
pub(crate) use reject::behind_layer;
pub use reject::{DefaultRejection, MakeRejection, RejectionBody};
pub use service::Mandate;
pub(crate) use service::{Config, Progress};

pub use crate::error::SlotKind;
pub use crate::token::TokenSource;

#[cfg(all(test, feature = "test-util"))]
mod tests;
