//! Time, as the crate reads it: unix seconds for token dates.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Now, in whole unix seconds (0 if the system clock is before 1970).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `now + d`, saturating: durations from configuration may be huge
/// (`Duration::MAX` for "never"), and `Instant` arithmetic must not panic.
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}
