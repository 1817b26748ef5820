//! The scheduling policy: where a running schedule stands, when to look again, and what to do
//! when a run is due.

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use asyncmd_proto::Level;
use chrono::{DateTime, Datelike, TimeZone, Timelike};

use super::next::{after, first};
use super::spec::Spec;

/// What to do with a run that is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Start it.
    Start,
    /// Skip it: the previous run is still going (a schedule never runs one twice at once).
    Skip,
}

impl Turn {
    /// Start unless the previous run is `busy`.
    pub fn when_busy(busy: bool) -> Turn {
        if busy {
            Turn::Skip
        } else {
            Turn::Start
        }
    }

    /// The journal line for this turn of the run due at `due`. The due time is in it so that a
    /// person (and a test) sees lateness rather than guesses it.
    pub fn line<Tz: TimeZone>(self, due: &DateTime<Tz>) -> (Level, String)
    where
        Tz::Offset: core::fmt::Display,
    {
        // By hand rather than with chrono's strftime, whose machinery costs a board 5 KiB.
        let t = due.naive_local();
        let at = format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
            t.year(),
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.nanosecond() / 1_000_000 % 1000
        );
        self.line_at(&at)
    }

    /// The journal line for this turn of the run due at `at`, already written out (a board
    /// whose clock no host has set yet says how long after its boot).
    pub fn line_at(self, at: &str) -> (Level, String) {
        match self {
            Turn::Start => (Level::Info, format!("Starting the run due at {at}")),
            Turn::Skip => (
                Level::Warning,
                format!("Skipped the run due at {at}: the previous run is still going"),
            ),
        }
    }
}

/// Where a running schedule stands: the due time of its next run on the wall clock and, for a
/// schedule without `at`, on the monotonic clock too. Pure: the caller passes the time, so the
/// daemon passes the real clocks and tests drive a clock by hand.
#[derive(Debug, Clone)]
pub struct Deadline<Tz: TimeZone> {
    spec: Spec,
    due: Option<DateTime<Tz>>,
    mono: Option<u64>,
}

impl<Tz: TimeZone> Deadline<Tz> {
    /// The schedule `spec` set up at `wall` (monotonic `mono`).
    pub fn new(spec: Spec, wall: &DateTime<Tz>, mono: u64) -> Deadline<Tz> {
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
    pub fn wait(&self, wall: &DateTime<Tz>, mono: u64) -> Option<Duration> {
        let when = self.due.as_ref()?;
        if let (true, Some(m)) = (self.monotonic(), self.mono) {
            return Some(Duration::from_micros(m.saturating_sub(mono)));
        }
        let left = (when.clone() - wall.clone())
            .to_std()
            .unwrap_or(Duration::ZERO);
        Some(left.min(Duration::from_secs(1)))
    }

    /// Moves on from the run that is due (started or skipped) to the next, skipping whole
    /// periods that are already past rather than running them in a burst.
    pub fn advance(&mut self, wall: &DateTime<Tz>, mono: u64) {
        let Some(when) = self.due.take() else {
            return;
        };
        let next = after(&self.spec, &when, wall);
        self.mono = match (self.mono, self.spec.every) {
            (Some(m), Some(every)) if self.monotonic() => {
                // The first whole period after now, in phase with the first due time.
                let step = micros(every).max(1);
                let next = m.saturating_add(step);
                Some(if next > mono {
                    next
                } else {
                    next.saturating_add((mono - next) / step * step + step)
                })
            }
            _ => next.as_ref().map(|d| mono_at(d, wall, mono)),
        };
        self.due = next;
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The monotonic µs of wall time `when`, seen at `wall` = `mono` (saturating: beyond 584,000
/// years is as good as never).
fn mono_at<Tz: TimeZone>(when: &DateTime<Tz>, wall: &DateTime<Tz>, mono: u64) -> u64 {
    let ahead = (when.clone() - wall.clone())
        .to_std()
        .unwrap_or(Duration::ZERO);
    mono.saturating_add(micros(ahead))
}
