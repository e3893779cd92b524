//! The current caller: the server layer runs the inner service inside a
//! task-local scope holding the [`Caller`], so code deeper in the call (an
//! outgoing-request layer, a repository) can read it without threading it
//! through every function.
//!
//! # Pitfall: spawned tasks
//!
//! A task-local belongs to the task that set it. A plain `tokio::spawn`
//! starts a new task **without** the caller: inside it,
//! [`Caller::current`] is `None`, and a propagation layer sends no user
//! token. Use [`spawn`] (or wrap the future with [`Caller::scope`]) to carry
//! the caller into the new task.
//!
//! ```
//! use tower_mandate::Caller;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let caller = Caller::default();
//! let seen = caller
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

use std::future::Future;

use tokio::task::JoinHandle;
use tokio::task::futures::TaskLocalFuture;

use crate::Caller;

tokio::task_local! {
    static CURRENT: Caller;
}

/// A future running inside a caller's scope; see [`Caller::scope`].
pub type Scoped<F> = TaskLocalFuture<Caller, F>;

impl Caller {
    /// The caller of the request being handled by the current task, if the
    /// task runs inside a [`MandateLayer`](crate::MandateLayer) (or a
    /// [`Caller::scope`]).
    pub fn current() -> Option<Caller> {
        CURRENT.try_with(Caller::clone).ok()
    }

    /// Run `future` with this caller as [`Caller::current`].
    pub fn scope<F: Future>(self, future: F) -> Scoped<F> {
        CURRENT.scope(self, future)
    }
}

/// `tokio::spawn`, carrying the current caller (if any) into the new task.
///
/// # Panics
///
/// Outside a Tokio runtime, like `tokio::spawn`.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match Caller::current() {
        Some(caller) => tokio::spawn(caller.scope(future)),
        None => tokio::spawn(future),
    }
}
