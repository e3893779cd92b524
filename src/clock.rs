//! Time, as the crate reads it: unix seconds for token dates.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in whole unix seconds (0 if the system clock is before 1970).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
