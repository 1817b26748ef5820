//! Journal entries, levels and queries.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;
use serde::{Deserialize, Serialize};

/// Severity of a journal entry, least severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
#[repr(u8)]
pub enum Level {
    /// Diagnostic detail.
    Debug = 0,
    /// Normal output; a process's stdout.
    Info = 1,
    /// Something looks wrong.
    Warning = 2,
    /// Something failed; a process's stderr.
    Error = 3,
    /// The service cannot go on.
    Critical = 4,
}

impl Level {
    /// All levels, least severe first.
    pub const ALL: [Level; 5] = [
        Level::Debug,
        Level::Info,
        Level::Warning,
        Level::Error,
        Level::Critical,
    ];

    /// The name shown in journal lines (`INFO`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }

    /// The level of a byte written by [`Level::as_u8`], if it is one.
    pub fn from_u8(v: u8) -> Option<Level> {
        Level::ALL.get(v as usize).copied()
    }

    /// A compact code for the level (0 = DEBUG .. 4 = CRITICAL).
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The level of a syslog priority (0 emerg .. 7 debug), as used by `<N>` line prefixes.
    pub fn from_syslog(priority: u8) -> Level {
        match priority {
            0..=2 => Level::Critical,
            3 => Level::Error,
            4 => Level::Warning,
            5 | 6 => Level::Info,
            _ => Level::Debug,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A level name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLevel;

impl fmt::Display for UnknownLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected debug, info, warning, error, critical, or a syslog priority 0-7")
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UnknownLevel {}

impl FromStr for Level {
    type Err = UnknownLevel;

    /// Parses our names, syslog's (`err`, `crit`, `notice`...) and syslog numbers, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Ok(match lower.as_str() {
            "debug" => Level::Debug,
            "info" | "notice" => Level::Info,
            "warning" | "warn" => Level::Warning,
            "error" | "err" => Level::Error,
            "critical" | "crit" | "alert" | "emerg" => Level::Critical,
            n if n.len() == 1 && n.as_bytes()[0].is_ascii_digit() && n.as_bytes()[0] <= b'7' => {
                Level::from_syslog(n.as_bytes()[0] - b'0')
            }
            _ => return Err(UnknownLevel),
        })
    }
}

/// One journal entry as sent to clients. The host is sent once per batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Sequence number, increasing by one per entry since the daemon started.
    pub seq: u64,
    /// Wall-clock time, µs since the Unix epoch.
    pub time_us: i64,
    /// Monotonic time, µs since the daemon started.
    pub mono_us: u64,
    /// Severity.
    pub level: Level,
    /// Unit or task that logged it.
    pub unit: String,
    /// The line, without its newline; invalid UTF-8 is replaced.
    pub msg: String,
}

/// Which journal entries to send, and whether to keep sending new ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalQuery {
    /// Unit names or globs; entries of any unit when empty.
    #[serde(default)]
    pub units: Vec<String>,
    /// Only the newest `lines` matching entries (of those already in the ring).
    #[serde(default)]
    pub lines: Option<u64>,
    /// A regular expression the message must match.
    #[serde(default)]
    pub grep: Option<String>,
    /// Only entries at this level or more severe.
    #[serde(default)]
    pub level: Option<Level>,
    /// Only entries at this level or less severe (with `level`, a range: `-p err..warning`).
    #[serde(default)]
    pub level_max: Option<Level>,
    /// Only entries logged at or after this time (µs since the Unix epoch).
    #[serde(default)]
    pub since_us: Option<i64>,
    /// Only entries logged at or before this time (µs since the Unix epoch).
    #[serde(default)]
    pub until_us: Option<i64>,
    /// Only entries with this sequence number or later.
    #[serde(default)]
    pub after_seq: Option<u64>,
    /// Keep the connection open and send new entries as they are logged.
    #[serde(default)]
    pub follow: bool,
    /// Send the entries rendered as text ([`crate::Response::Text`]) instead of as entries:
    /// far cheaper for both ends, so a follower keeps up with a flood.
    #[serde(default)]
    pub text: Option<TextFormat>,
    /// While following, miss nothing: services' output waits whenever this follower is more
    /// than half the journal behind (for root and the daemon's user only).
    #[serde(default, skip_serializing_if = "crate::unit::is_false")]
    pub lossless: bool,
}

/// How entries are rendered as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TextStyle {
    /// `2026-11-25 10:00:19 [host] [INFO] [hello.service] LED 3 toggled!`
    Short,
    /// `2026-11-25T10:00:19+01:00 [host] [INFO] [hello.service] LED 3 toggled!`
    ShortIso,
    /// `2026-11-25 10:00:19.123456 [host] [INFO] [hello.service] LED 3 toggled!`
    ShortPrecise,
    /// The message only.
    Cat,
}

/// A text rendering asked for by a journal query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextFormat {
    /// Line layout.
    pub style: TextStyle,
    /// ANSI colour for warning and error levels.
    #[serde(default)]
    pub color: bool,
    /// Times in UTC rather than the local time zone.
    #[serde(default)]
    pub utc: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_from_names_and_syslog_numbers() {
        assert_eq!("ERR".parse::<Level>(), Ok(Level::Error));
        assert_eq!("warning".parse::<Level>(), Ok(Level::Warning));
        assert_eq!("3".parse::<Level>(), Ok(Level::Error));
        assert_eq!("7".parse::<Level>(), Ok(Level::Debug));
        assert_eq!("0".parse::<Level>(), Ok(Level::Critical));
        assert!("8".parse::<Level>().is_err());
        assert!("loud".parse::<Level>().is_err());
    }

    #[test]
    fn levels_order_by_severity() {
        assert!(Level::Debug < Level::Info && Level::Error < Level::Critical);
        for l in Level::ALL {
            assert_eq!(Level::from_u8(l.as_u8()), Some(l));
        }
    }
}
