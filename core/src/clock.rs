//! Time as the core sees it: wall-clock and monotonic microseconds, from whoever drives it.

use core::cell::Cell;

/// A source of time. The host reads the system clocks; a board reads its RTC and timer; tests
/// move a [`MockClock`] by hand.
pub trait Clock {
    /// Wall-clock time, µs since the Unix epoch (it may jump: NTP, a person, a battery-less RTC).
    fn wall_us(&self) -> i64;
    /// Monotonic time, µs since an arbitrary start; never goes back.
    fn mono_us(&self) -> u64;
}

/// A clock for tests: both times stand still until moved.
#[derive(Debug, Default)]
pub struct MockClock {
    wall: Cell<i64>,
    mono: Cell<u64>,
}

impl MockClock {
    /// A clock reading `wall_us` on the wall and `mono_us` on the monotonic clock.
    pub fn new(wall_us: i64, mono_us: u64) -> MockClock {
        MockClock {
            wall: Cell::new(wall_us),
            mono: Cell::new(mono_us),
        }
    }

    /// Time passes: both clocks move by `us`.
    pub fn pass(&self, us: u64) {
        self.wall.set(self.wall.get().saturating_add(us as i64));
        self.mono.set(self.mono.get().saturating_add(us));
    }

    /// The wall clock is set (NTP, a person): the monotonic clock does not move.
    pub fn set_wall(&self, wall_us: i64) {
        self.wall.set(wall_us);
    }
}

impl Clock for MockClock {
    fn wall_us(&self) -> i64 {
        self.wall.get()
    }

    fn mono_us(&self) -> u64 {
        self.mono.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wall_clock_change_leaves_monotonic_time_alone() {
        let c = MockClock::new(1_000, 5);
        c.pass(10);
        assert_eq!((c.wall_us(), c.mono_us()), (1_010, 15));
        c.set_wall(0);
        assert_eq!((c.wall_us(), c.mono_us()), (0, 15));
    }
}
