//! Propagation of identity to downstream services.
//!
//! - [`Caller::current`](crate::Caller::current) and [`spawn`]: the verified
//!   caller of the request being handled, available to any code the handler
//!   calls, and carried into spawned tasks on request.

mod context;

pub use context::{Scoped, spawn};
