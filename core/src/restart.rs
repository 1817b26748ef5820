//! Restart policy: whether a unit that ended by itself comes back, after how long, and when to
//! give up.
//!
//! The delay starts at `restart_delay`, doubles after each restart up to `restart_max_delay`,
//! and goes back to `restart_delay` once a run has lasted `restart_reset_after`. Failures are
//! counted in a sliding window of `start_limit_interval`; the `start_limit`-th failure in it
//! gives up. Pure: the driver feeds it exits and monotonic time (µs), and acts on its decisions.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use core::time::Duration;

use serde::Deserialize;

use crate::duration::Human;

/// When a unit is restarted after it ends by itself (`restart` in its file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Never.
    #[default]
    No,
    /// When it fails.
    OnFailure,
    /// Whenever it ends.
    Always,
}

/// How a unit comes back after it ends by itself: `restart`, its backoff and its start limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay before a restart.
    pub delay: Duration,
    /// The delay doubles after each restart up to this.
    pub max_delay: Duration,
    /// A run this long resets the delay to `delay`.
    pub reset_after: Duration,
    /// Give up after this many failures within `limit_interval` (0: never give up).
    pub limit: u32,
    /// The window `limit` counts failures in.
    pub limit_interval: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            reset_after: Duration::from_secs(10),
            limit: 10,
            limit_interval: Duration::from_secs(300),
        }
    }
}

/// What to do after a run ended by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Leave it ended (policy `no`, or `on-failure` after a success).
    Stay,
    /// Start it again after this delay.
    RestartIn(Duration),
    /// Too many failures in the window: stay failed, with this reason.
    GiveUp(String),
}

/// A unit's restart bookkeeping between manual starts.
#[derive(Debug, Clone, Default)]
pub struct Restarts {
    /// Automatic restarts since the last manual start.
    pub count: u32,
    /// The delay the next restart waits (None: the policy's first delay).
    next_delay: Option<Duration>,
    /// When recent failures happened, oldest first, within the window.
    failures: VecDeque<u64>,
}

impl Restarts {
    /// Forgets the history: a person started the unit, or reset it.
    pub fn reset(&mut self) {
        *self = Restarts::default();
    }

    /// Decides after a run that lasted `ran` ended at monotonic `now_us`, `failed` or not.
    pub fn on_exit(
        &mut self,
        policy: Restart,
        backoff: &Backoff,
        failed: bool,
        ran: Duration,
        now_us: u64,
    ) -> Decision {
        let wanted = match policy {
            Restart::No => false,
            Restart::OnFailure => failed,
            Restart::Always => true,
        };
        if !wanted {
            return Decision::Stay;
        }
        if ran >= backoff.reset_after {
            self.next_delay = None;
        }
        if failed {
            self.failures.push_back(now_us);
            let window = u64::try_from(backoff.limit_interval.as_micros()).unwrap_or(u64::MAX);
            while let Some(&first) = self.failures.front() {
                if now_us.saturating_sub(first) > window {
                    self.failures.pop_front();
                } else {
                    break;
                }
            }
            if backoff.limit > 0 && self.failures.len() >= backoff.limit as usize {
                return Decision::GiveUp(format!(
                    "start limit hit: {} failures within {}; not restarting \
                     (asyncmctl start or reset-failed to try again)",
                    self.failures.len(),
                    Human(backoff.limit_interval)
                ));
            }
        }
        let delay = self.next_delay.unwrap_or(backoff.delay);
        self.next_delay = Some((delay * 2).min(backoff.max_delay).max(backoff.delay));
        self.count += 1;
        Decision::RestartIn(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn backoff() -> Backoff {
        Backoff {
            delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(700),
            reset_after: Duration::from_secs(10),
            limit: 0,
            limit_interval: Duration::from_secs(60),
        }
    }

    fn delays(r: &mut Restarts, b: &Backoff, runs: &[u64], t0: u64) -> Vec<Decision> {
        runs.iter()
            .enumerate()
            .map(|(i, &ran)| {
                let now = t0 + i as u64 * 1_000_000;
                r.on_exit(Restart::OnFailure, b, true, Duration::from_secs(ran), now)
            })
            .collect()
    }

    #[test]
    fn delays_double_cap_and_reset_after_a_long_run() {
        let b = backoff();
        let mut r = Restarts::default();
        let ms = |m| Decision::RestartIn(Duration::from_millis(m));
        let got = delays(&mut r, &b, &[0, 0, 0, 0, 0, 11, 0], 0);
        assert_eq!(
            got,
            vec![
                ms(100),
                ms(200),
                ms(400),
                ms(700),
                ms(700),
                ms(100),
                ms(200)
            ]
        );
        assert_eq!(r.count, 7);
    }

    #[test]
    fn policies() {
        let b = backoff();
        let now = 0;
        let mut r = Restarts::default();
        assert_eq!(
            r.on_exit(Restart::No, &b, true, Duration::ZERO, now),
            Decision::Stay
        );
        assert_eq!(
            r.on_exit(Restart::OnFailure, &b, false, Duration::ZERO, now),
            Decision::Stay
        );
        assert!(matches!(
            r.on_exit(Restart::Always, &b, false, Duration::ZERO, now),
            Decision::RestartIn(_)
        ));
    }

    #[test]
    fn the_start_limit_counts_failures_in_a_sliding_window() {
        let mut b = backoff();
        b.limit = 3;
        b.limit_interval = Duration::from_secs(10);
        let t0 = 5_000_000;
        let mut r = Restarts::default();
        let at = |s: u64| t0 + s * 1_000_000;
        let fail =
            |r: &mut Restarts, s| r.on_exit(Restart::Always, &b, true, Duration::ZERO, at(s));
        assert!(matches!(fail(&mut r, 0), Decision::RestartIn(_)));
        assert!(matches!(fail(&mut r, 1), Decision::RestartIn(_)));
        // The first two left the window by now: one, then two in it.
        assert!(matches!(fail(&mut r, 12), Decision::RestartIn(_)));
        assert!(matches!(fail(&mut r, 13), Decision::RestartIn(_)));
        match fail(&mut r, 14) {
            Decision::GiveUp(why) => assert!(why.contains("3 failures within 10s"), "{why}"),
            other => panic!("{other:?}"),
        }
        r.reset();
        assert!(matches!(fail(&mut r, 15), Decision::RestartIn(_)));
    }
}
