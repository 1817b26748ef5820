//! Text formats shared by the clients: times as asyncmd prints them and the journal line
//! `2026-11-25 10:00:19 [host] [INFO] [hello.service] LED 3 toggled!`.

use std::fmt::Write as _;

use chrono::{Local, TimeZone};

use crate::journal::{Entry, Level, TextStyle};

/// ANSI styles used when colour is on.
pub mod ansi {
    /// Bold red, for failures.
    pub const RED: &str = "\x1b[31;1m";
    /// Bold green, for running units.
    pub const GREEN: &str = "\x1b[32;1m";
    /// Bright green, for the running dot.
    pub const BRIGHT_GREEN: &str = "\x1b[92m";
    /// Bold yellow, for stopped units and warnings.
    pub const YELLOW: &str = "\x1b[33;1m";
    /// Cyan, for scheduled units.
    pub const CYAN: &str = "\x1b[36m";
    /// Bold, for headers.
    pub const BOLD: &str = "\x1b[1m";
    /// Back to plain.
    pub const RESET: &str = "\x1b[0m";
}

/// When to colour, as `--color` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorWhen {
    /// On a terminal that can show colour, unless the environment says otherwise.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl core::str::FromStr for ColorWhen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(ColorWhen::Auto),
            "always" => Ok(ColorWhen::Always),
            "never" => Ok(ColorWhen::Never),
            other => Err(format!("'{other}': expected auto, always or never")),
        }
    }
}

/// Whether to colour what goes to `stream`: as `when` says; for `auto`, as the conventions
/// say (anstream reads them): never with a non-empty `NO_COLOR` or `CLICOLOR=0`, always with
/// `CLICOLOR_FORCE`, else only on a terminal that is not `TERM=dumb`.
pub fn color_for(when: ColorWhen, stream: &impl anstream::stream::RawStream) -> bool {
    match when {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => anstream::AutoStream::choice(stream) != anstream::ColorChoice::Never,
    }
}

/// Whether to colour stdout: see [`color_for`]; `--no-color` is `--color never`.
pub fn color_enabled(when: ColorWhen, no_color_flag: bool) -> bool {
    let when = if no_color_flag {
        ColorWhen::Never
    } else {
        when
    };
    color_for(when, &std::io::stdout())
}

/// Current wall-clock time, µs since the Unix epoch.
pub fn now_us() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_micros() as i64
}

/// `2026-11-25 10:00:19` in the local time zone.
pub fn local_time(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    match Local.timestamp_opt(secs, 0).single() {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => String::from("????-??-?? ??:??:??"),
    }
}

/// `Thu 2026-11-25 10:00:19 +01:00`: the local time with its weekday and offset from UTC, as
/// `asyncmctl show` gives timestamps (`date -d` reads it back).
pub fn timestamp(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    match Local.timestamp_opt(secs, 0).single() {
        Some(t) => t.format("%a %Y-%m-%d %H:%M:%S %:z").to_string(),
        None => String::new(),
    }
}

/// How long ago `then_us` was, as asyncmd says it: `4 s ago`, `00:02:31 ago`, `2 days, 03:00:00 ago`.
pub fn ago(now_us: i64, then_us: i64) -> String {
    let secs = (now_us - then_us).max(0) / 1_000_000;
    format!("{} ago", duration(secs))
}

/// A span of whole seconds: `4 s`, `00:02:31`, `1 day, 00:00:05`.
pub fn duration(secs: i64) -> String {
    if secs < 60 {
        return format!("{secs} s");
    }
    let (d, rem) = (secs / 86_400, secs % 86_400);
    let hms = format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    match d {
        0 => hms,
        1 => format!("1 day, {hms}"),
        _ => format!("{d} days, {hms}"),
    }
}

/// Formats journal lines, caching the rendered time of the current second (entries come in
/// bursts within one second, and rendering a local time is the costly part of a line).
#[derive(Default)]
pub struct EntryFormatter {
    color: bool,
    utc: bool,
    cached_sec: Option<(i64, TextStyle)>,
    cached: String,
}

impl EntryFormatter {
    /// A formatter; `color` turns on ANSI colour for warning and error levels.
    pub fn new(color: bool) -> Self {
        EntryFormatter {
            color,
            ..Default::default()
        }
    }

    /// The same, with times in UTC rather than the local time zone.
    pub fn utc(mut self, utc: bool) -> Self {
        self.utc = utc;
        self
    }

    /// The time of `us` as `style` writes it: the second cached, the µs of `ShortPrecise`
    /// added to it.
    fn time(&mut self, us: i64, style: TextStyle) -> &str {
        let sec = us.div_euclid(1_000_000);
        let key = Some((sec, style));
        if self.cached_sec != key {
            let layout = match style {
                TextStyle::ShortIso => "%Y-%m-%dT%H:%M:%S%:z",
                _ => "%Y-%m-%d %H:%M:%S",
            };
            self.cached = if self.utc {
                chrono::Utc
                    .timestamp_opt(sec, 0)
                    .single()
                    .map(|t| t.format(layout).to_string())
            } else {
                Local
                    .timestamp_opt(sec, 0)
                    .single()
                    .map(|t| t.format(layout).to_string())
            }
            .unwrap_or_else(|| String::from("????-??-?? ??:??:??"));
            self.cached_sec = key;
        }
        if style == TextStyle::ShortPrecise {
            self.cached.truncate(19);
            let _ = write!(self.cached, ".{:06}", us.rem_euclid(1_000_000));
        }
        &self.cached
    }

    /// Appends `entry` as a line (with its newline) to `out`.
    pub fn short(&mut self, out: &mut String, host: &str, entry: &Entry) {
        self.line(
            out,
            TextStyle::Short,
            host,
            entry.time_us,
            entry.level,
            &entry.unit,
            &entry.msg,
        );
    }

    /// Appends one entry, given by its parts, as a line of `style` (with its newline).
    #[allow(clippy::too_many_arguments)]
    pub fn line(
        &mut self,
        out: &mut String,
        style: TextStyle,
        host: &str,
        time_us: i64,
        level: Level,
        unit: &str,
        msg: &str,
    ) {
        if style != TextStyle::Cat {
            let color = self.color;
            out.push_str(self.time(time_us, style));
            out.push_str(" [");
            out.push_str(host);
            out.push_str("] [");
            let paint = match level {
                Level::Error | Level::Critical if color => Some(ansi::RED),
                Level::Warning if color => Some(ansi::YELLOW),
                _ => None,
            };
            match paint {
                Some(p) => {
                    let _ = write!(out, "{p}{}{}", level.as_str(), ansi::RESET);
                }
                None => out.push_str(level.as_str()),
            }
            out.push_str("] [");
            out.push_str(unit);
            out.push_str("] ");
        }
        out.push_str(msg);
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_asyncmd() {
        assert_eq!(duration(0), "0 s");
        assert_eq!(duration(59), "59 s");
        assert_eq!(duration(151), "00:02:31");
        assert_eq!(duration(86_405), "1 day, 00:00:05");
        assert_eq!(duration(3 * 86_400 + 3600), "3 days, 01:00:00");
        assert_eq!(ago(10_000_000, 6_000_000), "4 s ago");
        assert_eq!(ago(0, 5_000_000), "0 s ago");
    }

    #[test]
    fn entry_line_has_the_contract_shape() {
        let e = Entry {
            seq: 1,
            time_us: 1_764_064_819_000_000,
            mono_us: 0,
            level: Level::Info,
            unit: "hello.service".into(),
            msg: "LED 3 toggled!".into(),
        };
        let mut out = String::new();
        EntryFormatter::new(false).short(&mut out, "box", &e);
        let time = local_time(e.time_us);
        assert_eq!(
            out,
            format!("{time} [box] [INFO] [hello.service] LED 3 toggled!\n")
        );
        assert_eq!(time.len(), 19);
    }

    #[test]
    fn iso_and_precise_times_and_utc() {
        let mut f = EntryFormatter::new(false).utc(true);
        let line = |f: &mut EntryFormatter, style, us| {
            let mut out = String::new();
            f.line(&mut out, style, "box", us, Level::Warning, "a.service", "m");
            out
        };
        let us = 1_764_064_819_000_042;
        assert_eq!(
            line(&mut f, TextStyle::ShortIso, us),
            "2025-11-25T10:00:19+00:00 [box] [WARNING] [a.service] m\n"
        );
        assert_eq!(
            line(&mut f, TextStyle::ShortPrecise, us),
            "2025-11-25 10:00:19.000042 [box] [WARNING] [a.service] m\n"
        );
        // The same second again, another µs: the cached second is not spoilt.
        assert_eq!(
            line(&mut f, TextStyle::ShortPrecise, us + 900_000),
            "2025-11-25 10:00:19.900042 [box] [WARNING] [a.service] m\n"
        );
        assert_eq!(
            line(&mut f, TextStyle::Short, us),
            "2025-11-25 10:00:19 [box] [WARNING] [a.service] m\n"
        );
        assert_eq!(line(&mut f, TextStyle::Cat, us), "m\n");
    }
}
