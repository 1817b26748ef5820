//! When runs are due: the first, and the one after a given due time.

use core::time::Duration;

use chrono::{DateTime, LocalResult, NaiveDate, NaiveTime, TimeZone};

use super::spec::{At, Spec};

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
