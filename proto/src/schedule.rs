//! What a schedule says: its three keys, checked, and how it reads to a person.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveTime, Timelike};

use crate::duration::Human;

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

/// `every 1m`, `at 07:30 daily, then every 1h`...: a schedule for a person.
pub fn describe(spec: &Spec) -> String {
    let mut parts = Vec::new();
    if let Some(d) = spec.start_in {
        parts.push(format!("first in {}", Human(d)));
    }
    match spec.at {
        Some(At::Daily(t)) => parts.push(format!(
            "at {:02}:{:02}:{:02} daily",
            t.hour(),
            t.minute(),
            t.second()
        )),
        Some(At::Once(i)) => parts.push(format!("at {}", i.to_rfc3339())),
        None => {}
    }
    if let Some(e) = spec.every {
        parts.push(format!("every {}", Human(e)));
    }
    parts.join(", ")
}
