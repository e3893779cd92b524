//! The current caller, as a task-local.

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
