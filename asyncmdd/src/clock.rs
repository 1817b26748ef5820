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

/// The host's clocks as the core reads them: the system's wall clock and [`mono_us`].
#[derive(Debug, Clone, Copy, Default)]
pub struct HostClock;

impl asyncmd_core::clock::Clock for HostClock {
    fn wall_us(&self) -> i64 {
        asyncmd_proto::text::now_us()
    }

    fn mono_us(&self) -> u64 {
        mono_us()
    }
}
