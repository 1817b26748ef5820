//! The host's clocks for the core: the system wall clock, and a monotonic clock counted from
//! the first time it is read in this process.

use std::sync::OnceLock;
use std::time::Instant;

use asyncmd_core::clock::Clock;

/// The system clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostClock;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Monotonic µs of this process.
pub fn mono_us() -> u64 {
    epoch().elapsed().as_micros() as u64
}

impl Clock for HostClock {
    fn wall_us(&self) -> i64 {
        asyncmd_proto::text::now_us()
    }

    fn mono_us(&self) -> u64 {
        mono_us()
    }
}
