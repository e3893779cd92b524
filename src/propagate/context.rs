//! Spawning with the current caller.

use std::future::Future;

use tokio::task::JoinHandle;

use crate::Caller;

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
