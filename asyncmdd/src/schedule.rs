//! Schedules (asyncmd's aioschedule): run in N seconds (`start_in`), at a time of day or at
//! one instant (`at`), and every N seconds (`every`).
//!
//! The arithmetic is pure and generic over the time zone, so midnight and DST changes are
//! tested with real zones. The runner keeps deadlines absolute: an `every` run is due `every`
//! after the previous *due time* (not after the previous run ended), on the monotonic clock, so
//! nothing drifts over hours; an `at` deadline follows the wall clock, re-read at least every
//! second, so it survives a clock change.

use std::sync::Arc;
use std::time::{Duration, Instant};

use asyncmd_proto::{Level, UnitState};
use chrono::{DateTime, FixedOffset, Local, LocalResult, NaiveDate, NaiveTime, TimeZone};

use crate::supervisor::{Slot, Supervisor};

/// The `at` of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// Every day at this local time.
    Daily(NaiveTime),
    /// Once, at this instant.
    Once(DateTime<FixedOffset>),
}

/// Parses `HH:MM`, `HH:MM:SS` (daily) or an RFC 3339 instant (once).
pub fn parse_at(s: &str) -> Result<At, String> {
    for fmt in ["%H:%M:%S", "%H:%M"] {
        if let Ok(t) = NaiveTime::parse_from_str(s, fmt) {
            return Ok(At::Daily(t));
        }
    }
    DateTime::parse_from_rfc3339(s).map(At::Once).map_err(|_| {
        format!(
            "at '{s}' is neither a time of day (\"07:30\", \"07:30:15\") nor an RFC 3339 \
             instant (\"2026-12-24T18:00:00+01:00\")"
        )
    })
}

/// A parsed schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Spec {
    /// First run this long after the schedule is set up (boot, or the task being added).
    pub start_in: Option<Duration>,
    /// Then again every this long.
    pub every: Option<Duration>,
    /// Or first (and daily) at this time.
    pub at: Option<At>,
}

impl Spec {
    /// Checks and builds a schedule from its three keys.
    pub fn new(
        start_in: Option<Duration>,
        every: Option<Duration>,
        at: Option<&str>,
    ) -> Result<Spec, String> {
        let at = at.map(parse_at).transpose()?;
        if every == Some(Duration::ZERO) {
            return Err("every must be longer than 0s".into());
        }
        Ok(Spec {
            start_in,
            every,
            at,
        })
    }
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// The first moment strictly after `after` when the local time in `after`'s zone is `t`. A
/// time that a DST change skips runs at the first minute after the gap; one it repeats runs
/// at its first occurrence.
pub fn next_daily<Tz: TimeZone>(after: &DateTime<Tz>, t: NaiveTime) -> DateTime<Tz> {
    let tz = after.timezone();
    let mut date: NaiveDate = after.date_naive();
    loop {
        let mut local = date.and_time(t);
        // In a gap, walk forward a minute at a time (gaps are at most a few hours).
        for _ in 0..(24 * 60) {
            match tz.from_local_datetime(&local) {
                LocalResult::Single(dt) | LocalResult::Ambiguous(dt, _) => {
                    if dt > *after {
                        return dt;
                    }
                    break;
                }
                LocalResult::None => local += chrono::Duration::minutes(1),
            }
        }
        date = date.succ_opt().expect("dates do not run out");
    }
}

/// When the first run is due for a schedule set up at `now`; `None` if it never runs (a single
/// instant already past, with no `every` to repeat it).
pub fn first<Tz: TimeZone>(spec: &Spec, now: &DateTime<Tz>) -> Option<DateTime<Tz>> {
    if let Some(d) = spec.start_in {
        // Overflow (a start_in of centuries) means never.
        return now.clone().checked_add_signed(chrono_of(d));
    }
    match spec.at {
        None => now
            .clone()
            .checked_add_signed(chrono_of(spec.start_in.unwrap_or(Duration::ZERO))),
        Some(At::Daily(t)) => Some(next_daily(now, t)),
        Some(At::Once(i)) => {
            let i = i.with_timezone(&now.timezone());
            if i > *now {
                return Some(i);
            }
            // Past, but repeating: the first repetition still ahead, in phase with `at`.
            let every = chrono_of(spec.every?);
            let behind = (now.clone() - i.clone()).num_microseconds()?;
            let step = every.num_microseconds()?.max(1);
            i.checked_add_signed(chrono::Duration::microseconds(
                (behind / step).checked_add(1)?.checked_mul(step)?,
            ))
        }
    }
}

/// When the run after the one due at `due` is due, seen at `now`. Repetitions that are already
/// past (the run overran, or the machine slept) are skipped, never run in a burst.
pub fn after<Tz: TimeZone>(
    spec: &Spec,
    due: &DateTime<Tz>,
    now: &DateTime<Tz>,
) -> Option<DateTime<Tz>> {
    if let Some(every) = spec.every {
        let every = chrono_of(every);
        let mut next = due.clone().checked_add_signed(every)?;
        if next <= *now {
            let behind = (now.clone() - next.clone()).num_microseconds()?;
            let step = every.num_microseconds()?.max(1);
            next = next.checked_add_signed(chrono::Duration::microseconds(
                (behind / step).checked_add(1)?.checked_mul(step)?,
            ))?;
        }
        return Some(next);
    }
    match spec.at {
        Some(At::Daily(t)) => Some(next_daily(if due > now { due } else { now }, t)),
        _ => None,
    }
}

/// `every 1m`, `at 07:30 daily, then every 1h`...: a schedule for a person.
pub fn describe(spec: &Spec) -> String {
    let mut parts = Vec::new();
    if let Some(d) = spec.start_in {
        parts.push(format!("first in {}", humantime::format_duration(d)));
    }
    match spec.at {
        Some(At::Daily(t)) => parts.push(format!("at {} daily", t.format("%H:%M:%S"))),
        Some(At::Once(i)) => parts.push(format!("at {}", i.to_rfc3339())),
        None => {}
    }
    if let Some(e) = spec.every {
        parts.push(format!("every {}", humantime::format_duration(e)));
    }
    parts.join(", ")
}

/// Where a running schedule stands: the due time of its next run on the wall clock and, for a
/// schedule without `at`, on the monotonic clock too. Pure: the caller passes the time, so the
/// daemon passes the real clocks and tests drive a clock by hand.
#[derive(Debug, Clone)]
pub struct Deadline<Tz: TimeZone> {
    spec: Spec,
    due: Option<DateTime<Tz>>,
    mono: Option<Instant>,
}

impl<Tz: TimeZone> Deadline<Tz> {
    /// The schedule `spec` set up at `wall` (monotonic `mono`).
    pub fn new(spec: Spec, wall: &DateTime<Tz>, mono: Instant) -> Deadline<Tz> {
        let due = first(&spec, wall);
        let mono = due.as_ref().map(|d| mono_at(d, wall, mono));
        Deadline { spec, due, mono }
    }

    /// `start_in` and `every` count on the monotonic clock, so a wall-clock change moves
    /// nothing; `at` follows the wall clock.
    fn monotonic(&self) -> bool {
        self.spec.at.is_none()
    }

    /// The next run's due time; `None` when no run is ahead.
    pub fn due(&self) -> Option<&DateTime<Tz>> {
        self.due.as_ref()
    }

    /// How long to wait before looking again, zero when the run is due; `None` when no run is
    /// ahead. For `at`, never more than a second: the wall clock is read again by then, so a
    /// clock change (NTP, a person, DST) is followed.
    pub fn wait(&self, wall: &DateTime<Tz>, mono: Instant) -> Option<Duration> {
        let when = self.due.as_ref()?;
        if let (true, Some(m)) = (self.monotonic(), self.mono) {
            return Some(m.saturating_duration_since(mono));
        }
        let left = (when.clone() - wall.clone())
            .to_std()
            .unwrap_or(Duration::ZERO);
        Some(left.min(Duration::from_secs(1)))
    }

    /// Moves on from the run that is due (started or skipped) to the next, skipping whole
    /// periods that are already past rather than running them in a burst.
    pub fn advance(&mut self, wall: &DateTime<Tz>, mono: Instant) {
        let Some(when) = self.due.take() else {
            return;
        };
        let next = after(&self.spec, &when, wall);
        self.mono = match (self.mono, self.spec.every) {
            (Some(m), Some(every)) if self.monotonic() => {
                let mut n = m.checked_add(every);
                while let Some(t) = n.filter(|t| *t <= mono) {
                    n = t.checked_add(every);
                }
                n
            }
            _ => next.as_ref().map(|d| mono_at(d, wall, mono)),
        };
        self.due = next;
    }
}

/// The monotonic instant of wall time `when`, seen at `wall` = `mono`. Beyond what an Instant
/// holds is as good as never: a century away.
fn mono_at<Tz: TimeZone>(when: &DateTime<Tz>, wall: &DateTime<Tz>, mono: Instant) -> Instant {
    let ahead = (when.clone() - wall.clone())
        .to_std()
        .unwrap_or(Duration::ZERO);
    mono.checked_add(ahead)
        .unwrap_or_else(|| mono + Duration::from_secs(100 * 365 * 86_400))
}

/// Runs the schedule of `slot` for as long as the unit is loaded: starts the unit when a run is
/// due, unless the previous run still goes (then the journal says it skipped one). Follows
/// changes of the unit's definition (reload, enable, disable).
pub async fn run(sup: Arc<Supervisor>, slot: Arc<Slot>) {
    let mut changes = slot.subscribe();
    let mut current: Option<(Spec, bool)> = None;
    let mut deadline: Option<Deadline<Local>> = None;
    loop {
        if !sup.holds(&slot) {
            return;
        }
        let def = slot.def();
        let now_spec = def
            .unit
            .as_ref()
            .and_then(|u| u.schedule.clone())
            .map(|sc| (sc.spec, def.config.enabled));
        if now_spec != current {
            current = now_spec;
            deadline = match current {
                Some((spec, true)) => Some(Deadline::new(spec, &Local::now(), Instant::now())),
                _ => None,
            };
            if let (Some((spec, true)), None) = (current, deadline.as_ref().and_then(|d| d.due())) {
                sup.log_for(
                    &slot,
                    Level::Warning,
                    &format!(
                        "Schedule {}: no run ahead, it will not run",
                        describe(&spec)
                    ),
                );
            }
        }
        let due = deadline.as_ref().and_then(|d| d.due().cloned());
        slot.set_schedule(due.as_ref().map(|d| d.timestamp_micros()));
        let (Some(d), Some(when)) = (deadline.as_mut(), due) else {
            // Disabled, unscheduled or with no run ahead: wait for the definition to change.
            if changes.changed().await.is_err() {
                return;
            }
            continue;
        };
        let wait = d.wait(&Local::now(), Instant::now()).unwrap_or_default();
        if !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                r = changes.changed() => if r.is_err() { return },
            }
            continue;
        }
        // Due now. Anything but ended means the previous run still goes.
        let busy = !matches!(
            slot.state(),
            UnitState::Inactive | UnitState::Done | UnitState::Failed | UnitState::Stopped
        );
        if busy {
            sup.log_for(
                &slot,
                Level::Warning,
                &format!(
                    "Skipped the run due at {}: the previous run is still going",
                    when.format("%Y-%m-%d %H:%M:%S%.3f")
                ),
            );
        } else {
            // The due time in the journal lets a person (and a test) see lateness, not guess it.
            sup.log_for(
                &slot,
                Level::Info,
                &format!(
                    "Starting the run due at {}",
                    when.format("%Y-%m-%d %H:%M:%S%.3f")
                ),
            );
            slot.ran_on_schedule(when.timestamp_micros());
            let (sup2, s2) = (sup.clone(), slot.clone());
            tokio::spawn(async move {
                let _ = sup2.start(&s2).await;
            });
        }
        d.advance(&Local::now(), Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use chrono_tz::Europe::Berlin;

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

    /// A clock for the tests: wall and monotonic time, moved by hand.
    struct Clock {
        wall: DateTime<Utc>,
        mono: Instant,
    }

    impl Clock {
        fn at(h: u32, m: u32) -> Clock {
            Clock {
                wall: Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap(),
                mono: Instant::now(),
            }
        }

        /// Time passes: both clocks move.
        fn pass(&mut self, d: Duration) {
            self.wall += chrono::Duration::from_std(d).unwrap();
            self.mono += d;
        }

        /// The wall clock is set (NTP, a person): the monotonic clock does not move.
        fn set_wall(&mut self, h: u32, m: u32) {
            self.wall = Utc.with_ymd_and_hms(2026, 11, 25, h, m, 0).unwrap();
        }

        fn wait(&self, d: &Deadline<Utc>) -> Duration {
            d.wait(&self.wall, self.mono).unwrap()
        }
    }

    #[test]
    fn at_follows_a_wall_clock_change() {
        let spec = Spec::new(None, None, Some("07:30")).unwrap();
        let mut c = Clock::at(7, 0);
        let mut d = Deadline::new(spec, &c.wall, c.mono);
        // Half an hour ahead, but looked at again within a second.
        assert_eq!(c.wait(&d), Duration::from_secs(1));
        c.pass(Duration::from_secs(1));
        // The clock is set forward past 07:30: the run is due at once, not 30 min later.
        c.set_wall(7, 31);
        assert_eq!(c.wait(&d), Duration::ZERO);
        d.advance(&c.wall, c.mono);
        assert_eq!(
            d.due(),
            Some(&Utc.with_ymd_and_hms(2026, 11, 26, 7, 30, 0).unwrap())
        );
        // Set back to 07:00 of the next day: due in half an hour again, not 24.5 hours.
        c.wall = Utc.with_ymd_and_hms(2026, 11, 26, 7, 0, 0).unwrap();
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
        let mut c = Clock::at(10, 0);
        let mut d = Deadline::new(spec, &c.wall, c.mono);
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
        d.advance(&c.wall, c.mono);
        assert_eq!(c.wait(&d), Duration::from_secs(55));
        // A stall of three periods skips them: due at the next whole period, no burst.
        c.pass(Duration::from_secs(55 + 170));
        assert_eq!(c.wait(&d), Duration::ZERO);
        d.advance(&c.wall, c.mono);
        assert_eq!(c.wait(&d), Duration::from_secs(10));
    }

    #[test]
    fn a_start_in_alone_runs_once() {
        let spec = Spec::new(Some(Duration::from_secs(2)), None, None).unwrap();
        let mut c = Clock::at(10, 0);
        let mut d = Deadline::new(spec, &c.wall, c.mono);
        assert_eq!(c.wait(&d), Duration::from_secs(2));
        c.pass(Duration::from_secs(2));
        assert_eq!(c.wait(&d), Duration::ZERO);
        d.advance(&c.wall, c.mono);
        assert_eq!(d.due(), None);
        assert_eq!(d.wait(&c.wall, c.mono), None);
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
