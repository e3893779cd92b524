//! Propagation of identity to downstream services: [`PropagateLayer`] on any
//! tower client of `http::Request` (hyper-util's client, tonic's `Channel`)
//! attaches the current user's token (forwarded or exchanged) and this
//! service's own token to allowed destinations only.
//!
//! # The current caller
//!
//! The server layer runs the inner service inside a
//! task-local scope holding the [`Caller`](crate::Caller), so code deeper in the call (an
//! outgoing-request layer, a repository) can read it without threading it
//! through every function.
//!
//! # Pitfall: spawned tasks
//!
//! A task-local belongs to the task that set it. A plain `tokio::spawn`
//! starts a new task **without** the caller: inside it,
//! [`Caller::current`](crate::Caller::current) is `None`, and a propagation layer sends no user
//! token. Use [`spawn`] (or wrap the future with [`Caller::scope`](crate::Caller::scope)) to carry
//! the caller into the new task.
//!
//! ```
//! use tower_mandate::Caller;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let caller = Caller::default();
//! let seen = caller
//!     .clone()
//!     .scope(async { Caller::current().is_some() })
//!     .await;
//! assert!(seen);
//! assert!(Caller::current().is_none(), "outside the scope");
//!
//! let inner = caller
//!     .scope(async {
//!         let carried = tower_mandate::propagate::spawn(async { Caller::current().is_some() });
//!         let lost = tokio::spawn(async { Caller::current().is_some() });
//!         (carried.await.unwrap(), lost.await.unwrap())
//!     })
//!     .await;
//! assert_eq!(inner, (true, false));
//! # }
//! ```

mod context;
mod destination;
mod future;
mod layer;
mod policy;
#[cfg(feature = "reqwest")]
mod reqwest;

#[cfg(feature = "reqwest")]
pub use self::reqwest::{PropagateMiddleware, redirect_policy};
pub use crate::caller::Scoped;
pub use context::spawn;
pub use destination::Destination;
pub use future::ResponseFuture;
pub use layer::{Propagate, PropagateBuilder, PropagateLayer};

/// The error type of [`Propagate`]: the inner client's error, or a token
/// that could not be obtained.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
