//! The host's monotonic clock for the core's policies (restart windows, schedule deadlines):
//! microseconds counted from the first time it is read in this process.

use std::sync::OnceLock;
use std::time::Instant;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Monotonic µs of this process.
pub fn mono_us() -> u64 {
    epoch().elapsed().as_micros() as u64
}
