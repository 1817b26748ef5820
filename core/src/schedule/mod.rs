//! Schedules (asyncmd's aioschedule): run in N seconds (`start_in`), at a time of day or at
//! one instant (`at`), and every N seconds (`every`); the ONE scheduling policy that units and
//! tasks share.
//!
//! The arithmetic ([`next`]) is pure and generic over the time zone, so midnight and DST changes
//! are tested with real zones. The policy ([`policy`]) keeps deadlines absolute: an `every` run
//! is due `every` after the previous *due time* (not after the previous run ended), on the
//! monotonic clock, so nothing drifts over hours; an `at` deadline follows the wall clock,
//! re-read at least every second, so it survives a clock change; a run due while the previous
//! one still goes is skipped, and so are periods already past.

pub mod next;
pub mod policy;

/// What a schedule says: the protocol's, so a host describes a board's schedule from its parts.
pub use asyncmd_proto::schedule as spec;
pub use asyncmd_proto::schedule::{describe, parse_at, At, Spec};
pub use next::{after, first, next_daily};
pub use policy::{Deadline, Turn};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock as _, MockClock};
    use alloc::string::ToString;
    use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
    use chrono_tz::Europe::Berlin;
    use core::time::Duration;

    fn hm(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    #[test]
    fn start_in_and_every_keep_absolute_deadlines() {
        let spec = Spec::new(
            Some(Duration::from_secs(20)),
            Some(Duration::from_secs(60)),
            None,
        )
        .unwrap();
        let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        let d1 = first(&spec, &t0).unwrap();
        assert_eq!(d1, Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 20).unwrap());
        // A run that took 5 s does not push the next one: due + every.
        let d2 = after(&spec, &d1, &(d1 + chrono::Duration::seconds(5))).unwrap();
        assert_eq!(d2, d1 + chrono::Duration::seconds(60));
        // A run that overran two periods skips them rather than running them in a burst.
        let d3 = after(&spec, &d2, &(d2 + chrono::Duration::seconds(130))).unwrap();
        assert_eq!(d3, d2 + chrono::Duration::seconds(180));
    }

    #[test]
    fn daily_at_across_midnight() {
        let spec = Spec::new(None, None, Some("07:30")).unwrap();
        let evening = Utc.with_ymd_and_hms(2026, 11, 25, 23, 59, 59).unwrap();
        let d = first(&spec, &evening).unwrap();
        assert_eq!(d, Utc.with_ymd_and_hms(2026, 11, 26, 7, 30, 0).unwrap());
        let exactly = Utc.with_ymd_and_hms(2026, 11, 26, 7, 30, 0).unwrap();
        assert_eq!(
            after(&spec, &exactly, &exactly).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 27, 7, 30, 0).unwrap()
        );
    }

    #[test]
    fn daily_at_across_dst_changes() {
        // Berlin springs forward on 2026-03-29 at 02:00 -> 03:00: 02:30 does not exist.
        let spec = Spec::new(None, None, Some("02:30")).unwrap();
        let before = Berlin.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
        let d1 = first(&spec, &before).unwrap();
        assert_eq!(d1, Berlin.with_ymd_and_hms(2026, 3, 29, 3, 0, 0).unwrap());
        let d2 = after(&spec, &d1, &d1).unwrap();
        assert_eq!(d2, Berlin.with_ymd_and_hms(2026, 3, 30, 2, 30, 0).unwrap());
        // 23 hours apart across the change, 24 after it: the wall clock, not a fixed period.
        assert_eq!((d1 - before).num_hours(), 14);
        // It falls back on 2026-10-25 at 03:00 -> 02:00: 02:30 happens twice, it runs once.
        let autumn = Berlin.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap();
        let first_230 = first(&spec, &autumn).unwrap();
        assert_eq!(
            first_230.naive_local(),
            NaiveDate::from_ymd_opt(2026, 10, 25)
                .unwrap()
                .and_time(hm(2, 30))
        );
        assert_eq!(first_230.offset().to_string(), "CEST");
        let next = after(&spec, &first_230, &first_230).unwrap();
        assert_eq!(
            next.date_naive(),
            NaiveDate::from_ymd_opt(2026, 10, 26).unwrap()
        );
    }

    #[test]
    fn an_instant_once_or_in_phase_when_past() {
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        let future = Spec::new(None, None, Some("2026-11-25T12:00:00+01:00")).unwrap();
        assert_eq!(
            first(&future, &now).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 25, 11, 0, 0).unwrap()
        );
        assert_eq!(
            after(&future, &first(&future, &now).unwrap(), &now),
            None,
            "once"
        );
        let past = Spec::new(None, None, Some("2020-01-01T00:00:00Z")).unwrap();
        assert_eq!(first(&past, &now), None, "a past instant never runs");
        let past_every = Spec::new(
            None,
            Some(Duration::from_secs(3600)),
            Some("2020-01-01T00:30:00Z"),
        )
        .unwrap();
        assert_eq!(
            first(&past_every, &now).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 25, 10, 30, 0).unwrap()
        );
    }

    /// The core's mock clock, read as a schedule takes the time.
    struct Clock(MockClock);

    impl Clock {
        fn at(h: u32, m: u32) -> Clock {
            let wall = Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap();
            Clock(MockClock::new(wall.timestamp_micros(), 7_000_000))
        }

        fn wall(&self) -> DateTime<Utc> {
            Utc.timestamp_micros(self.0.wall_us()).unwrap()
        }

        fn mono(&self) -> u64 {
            self.0.mono_us()
        }

        fn pass(&self, d: Duration) {
            self.0.pass(d.as_micros() as u64);
        }

        /// The wall clock is set to `h:m` of the same day; the monotonic clock does not move.
        fn set_wall(&self, h: u32, m: u32) {
            self.set_wall_to(Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap());
        }

        fn set_wall_to(&self, t: DateTime<Utc>) {
            self.0.set_wall(t.timestamp_micros());
        }

        fn wait(&self, d: &Deadline<Utc>) -> Duration {
            d.wait(&self.wall(), self.mono()).unwrap()
        }
    }

    #[test]
    fn at_follows_a_wall_clock_change() {
        let spec = Spec::new(None, None, Some("07:30")).unwrap();
        let c = Clock::at(7, 0);
        let mut d = Deadline::new(spec, &c.wall(), c.mono());
        // Half an hour ahead, but looked at again within a second.
        assert_eq!(c.wait(&d), Duration::from_secs(1));
        c.pass(Duration::from_secs(1));
        // The clock is set forward past 07:30: the run is due at once, not 30 min later.
        c.set_wall(7, 31);
        assert_eq!(c.wait(&d), Duration::ZERO);
        d.advance(&c.wall(), c.mono());
        assert_eq!(
            d.due(),
            Some(&Utc.with_ymd_and_hms(2026, 11, 26, 7, 30, 0).unwrap())
        );
        // Set back to 07:00 of the next day: due in half an hour again, not 24.5 hours.
        c.set_wall_to(Utc.with_ymd_and_hms(2026, 11, 26, 7, 0, 0).unwrap());
        assert_eq!(c.wait(&d), Duration::from_secs(1));
        c.pass(Duration::from_secs(29 * 60 + 59));
        assert_eq!(c.wait(&d), Duration::from_secs(1));
        c.pass(Duration::from_millis(400));
        assert_eq!(c.wait(&d), Duration::from_millis(600));
        c.pass(Duration::from_millis(600));
        assert_eq!(c.wait(&d), Duration::ZERO, "due on the dot");
    }

    #[test]
    fn every_and_start_in_ignore_a_wall_clock_change() {
        let spec = Spec::new(
            Some(Duration::from_secs(20)),
            Some(Duration::from_secs(60)),
            None,
        )
        .unwrap();
        let c = Clock::at(10, 0);
        let mut d = Deadline::new(spec, &c.wall(), c.mono());
        c.pass(Duration::from_secs(5));
        // An hour forward or back on the wall clock changes nothing: 15 s to go either way.
        c.set_wall(11, 0);
        assert_eq!(c.wait(&d), Duration::from_secs(15));
        c.set_wall(9, 0);
        assert_eq!(c.wait(&d), Duration::from_secs(15));
        c.pass(Duration::from_secs(15));
        assert_eq!(c.wait(&d), Duration::ZERO);
        // The run took 5 s: the next is due 60 s after the previous due time, not after the run.
        c.pass(Duration::from_secs(5));
        d.advance(&c.wall(), c.mono());
        assert_eq!(c.wait(&d), Duration::from_secs(55));
        // A stall of three periods skips them: due at the next whole period, no burst.
        c.pass(Duration::from_secs(55 + 170));
        assert_eq!(c.wait(&d), Duration::ZERO);
        d.advance(&c.wall(), c.mono());
        assert_eq!(c.wait(&d), Duration::from_secs(10));
    }

    #[test]
    fn a_start_in_alone_runs_once() {
        let spec = Spec::new(Some(Duration::from_secs(2)), None, None).unwrap();
        let c = Clock::at(10, 0);
        let mut d = Deadline::new(spec, &c.wall(), c.mono());
        assert_eq!(c.wait(&d), Duration::from_secs(2));
        c.pass(Duration::from_secs(2));
        assert_eq!(c.wait(&d), Duration::ZERO);
        d.advance(&c.wall(), c.mono());
        assert_eq!(d.due(), None);
        assert_eq!(d.wait(&c.wall(), c.mono()), None);
    }

    #[test]
    fn bad_schedules_are_named() {
        assert!(parse_at("25:00").unwrap_err().contains("'25:00'"));
        // start_in says when the first run is; at (daily) and every say when the next ones are.
        let both = Spec::new(Some(Duration::from_secs(20)), None, Some("07:00")).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap();
        let d1 = first(&both, &now).unwrap();
        assert_eq!(d1, now + chrono::Duration::seconds(20));
        assert_eq!(
            after(&both, &d1, &d1).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 26, 7, 0, 0).unwrap()
        );
        assert!(Spec::new(None, Some(Duration::ZERO), None).is_err());
        assert_eq!(
            describe(
                &Spec::new(
                    Some(Duration::from_secs(20)),
                    Some(Duration::from_secs(60)),
                    None
                )
                .unwrap()
            ),
            "first in 20s, every 1m"
        );
    }
}
