//! The single flight of fetches: one fetch task at a time, shared by every
//! request that waits for keys, each waiting at most the source's wait.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::PoisonError;
use std::task::{Context, Poll};

use futures_util::FutureExt as _;
use futures_util::future::{Map, Shared as SharedFuture};
use pin_project_lite::pin_project;

use super::JwksSource;
use super::fetch::fetch;

impl JwksSource {
    pub(super) fn in_flight(&self) -> bool {
        self.0
            .flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|f| !f.task.is_finished())
    }

    /// Join the fetch in flight or start one (single flight). The fetch runs
    /// in its own task, so it completes even if every waiter goes away.
    /// `None` outside a Tokio runtime: nothing can be fetched.
    pub(super) fn start_fetch(&self) -> Option<Flight> {
        let shared = self.0.clone();
        self.start_flight(async move { fetch(&shared).await })
    }

    /// Run `work` as the flight in its own task, unless one is in flight
    /// already. Waiters wait for the task itself: it lands however `work`
    /// ends, a panic included, so the source is never left "in flight".
    /// Whether a flight is over is asked of the task, not of the shared
    /// future: a background refresh nobody waits for is over all the same.
    pub(super) fn start_flight<F>(&self, work: F) -> Option<Flight>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut flight = self.0.flight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = flight.as_ref()
            && !f.task.is_finished()
        {
            return Some(f.landing.clone());
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let landed: fn(Result<(), tokio::task::JoinError>) = |_| {};
        let handle = runtime.spawn(work);
        let task = handle.abort_handle();
        let landing = handle.map(landed).shared();
        *flight = Some(InFlight {
            landing: landing.clone(),
            task,
        });
        Some(landing)
    }

    /// Start (or join) a fetch and wait for it, at most
    /// [`with_max_wait`](super::JwksBuilder::with_max_wait).
    ///
    /// The wait's clock starts when the [`KeyWait`] is first polled.
    pub(crate) fn fetch_and_wait(&self) -> KeyWait {
        KeyWait {
            flight: self.start_fetch(),
            max_wait: self.0.settings.max_wait,
            deadline: None,
        }
    }
}

/// The fetch task of a source: its landing, and a handle that tells
/// whether it is over.
pub(super) struct InFlight {
    landing: Flight,
    task: tokio::task::AbortHandle,
}

/// A fetch in flight, shared by everyone waiting for it (the task's
/// handle, so no allocation per waiter).
pub(super) type Flight =
    SharedFuture<Map<tokio::task::JoinHandle<()>, fn(Result<(), tokio::task::JoinError>)>>;

pin_project! {
    /// Waits for a key fetch to land, at most the source's wait (counted
    /// from the first poll). Its output tells whether the fetch landed
    /// (`true`) or the wait ran out first (`false`).
    #[must_use = "futures do nothing unless polled"]
    pub(crate) struct KeyWait {
        flight: Option<Flight>,
        max_wait: std::time::Duration,
        #[pin]
        deadline: Option<tokio::time::Sleep>,
    }
}

impl Future for KeyWait {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let mut this = self.project();
        let Some(flight) = this.flight else {
            // Nothing could be fetched (no runtime): nothing landed.
            return Poll::Ready(false);
        };
        if Pin::new(flight).poll(cx).is_ready() {
            return Poll::Ready(true);
        }
        if this.deadline.is_none() {
            this.deadline.set(Some(tokio::time::sleep(*this.max_wait)));
        }
        match this.deadline.as_pin_mut().map(|deadline| deadline.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(false),
            _ => Poll::Pending,
        }
    }
}

impl fmt::Debug for KeyWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyWait").finish_non_exhaustive()
    }
}
