//! The current caller, as a task-local: set by the server layer around the
//! inner service, read by outgoing-call layers and application code.

use std::future::Future;

use tokio::task::futures::TaskLocalFuture;

use super::Caller;

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
