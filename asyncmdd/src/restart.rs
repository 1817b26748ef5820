//! Restart policy: whether a unit that ended by itself comes back, after how long, and when to
//! give up.
//!
//! The delay starts at `restart_delay`, doubles after each restart up to `restart_max_delay`,
//! and goes back to `restart_delay` once a run has lasted `restart_reset_after`. Failures are
//! counted in a sliding window of `start_limit_interval`; the `start_limit`-th failure in it
//! gives up. Pure: the supervisor feeds it exits and the clock, and acts on its decisions.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::unit::{Backoff, Restart};

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
    failures: VecDeque<Instant>,
}

impl Restarts {
    /// Forgets the history: a person started the unit, or reset it.
    pub fn reset(&mut self) {
        *self = Restarts::default();
    }

    /// Decides after a run that lasted `ran` ended at `now`, `failed` or not.
    pub fn on_exit(
        &mut self,
        policy: Restart,
        backoff: &Backoff,
        failed: bool,
        ran: Duration,
        now: Instant,
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
            self.failures.push_back(now);
            while let Some(&first) = self.failures.front() {
                if now.duration_since(first) > backoff.limit_interval {
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
                    humantime::format_duration(backoff.limit_interval)
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

    fn backoff() -> Backoff {
        Backoff {
            delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(700),
            reset_after: Duration::from_secs(10),
            limit: 0,
            limit_interval: Duration::from_secs(60),
        }
    }

    fn delays(r: &mut Restarts, b: &Backoff, runs: &[u64], t0: Instant) -> Vec<Decision> {
        runs.iter()
            .enumerate()
            .map(|(i, &ran)| {
                let now = t0 + Duration::from_secs(i as u64);
                r.on_exit(Restart::OnFailure, b, true, Duration::from_secs(ran), now)
            })
            .collect()
    }

    #[test]
    fn delays_double_cap_and_reset_after_a_long_run() {
        let b = backoff();
        let mut r = Restarts::default();
        let ms = |m| Decision::RestartIn(Duration::from_millis(m));
        let got = delays(&mut r, &b, &[0, 0, 0, 0, 0, 11, 0], Instant::now());
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
        let now = Instant::now();
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
        let t0 = Instant::now();
        let mut r = Restarts::default();
        let at = |s| t0 + Duration::from_secs(s);
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
