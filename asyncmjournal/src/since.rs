//! `--since` and `--until` times as journalctl users type them, read in the local time zone.

use chrono::{DateTime, Duration, Local, NaiveDate, NaiveDateTime, NaiveTime, TimeZone};

fn local(dt: NaiveDateTime) -> Result<i64, String> {
    Local
        .from_local_datetime(&dt)
        .earliest()
        .map(|t| t.timestamp_micros())
        .ok_or_else(|| format!("{dt} does not exist in the local time zone"))
}

/// Parses `s` into µs since the Unix epoch.
pub fn parse(s: &str) -> Result<i64, String> {
    parse_at(s, Local::now().naive_local())
}

/// Parses `s` relative to the local time `now`.
pub fn parse_at(s: &str, now: NaiveDateTime) -> Result<i64, String> {
    let t = s.trim();
    let today = now.date();
    match t {
        "now" => return local(now),
        "today" => return local(today.and_time(NaiveTime::MIN)),
        "yesterday" => return local((today - Duration::days(1)).and_time(NaiveTime::MIN)),
        "tomorrow" => return local((today + Duration::days(1)).and_time(NaiveTime::MIN)),
        _ => {}
    }
    if let Some(span) = t.strip_prefix('+') {
        let d = humantime::parse_duration(span.trim())
            .map_err(|e| format!("invalid time '{s}': {e}"))?;
        let d = Duration::from_std(d).map_err(|e| format!("invalid time '{s}': {e}"))?;
        return local(now + d);
    }
    let relative = t
        .strip_prefix('-')
        .or_else(|| t.strip_suffix(" ago"))
        .map(str::trim);
    if let Some(span) = relative {
        let d = humantime::parse_duration(span).map_err(|e| format!("invalid time '{s}': {e}"))?;
        let d = Duration::from_std(d).map_err(|e| format!("invalid time '{s}': {e}"))?;
        return local(now - d);
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Ok(dt.timestamp_micros());
    }
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, f) {
            return local(dt);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return local(d.and_time(NaiveTime::MIN));
    }
    for f in ["%H:%M:%S", "%H:%M"] {
        if let Ok(tm) = NaiveTime::parse_from_str(t, f) {
            return local(today.and_time(tm));
        }
    }
    Err(format!(
        "invalid time '{s}': use \"YYYY-MM-DD [HH:MM[:SS]]\", \"HH:MM[:SS]\", today, yesterday, \
         tomorrow, now, \"-5m\", \"5 min ago\", \"+5m\" or RFC 3339"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, 25)
            .unwrap()
            .and_hms_opt(10, 30, 0)
            .unwrap()
    }

    #[test]
    fn forms_journalctl_users_type() {
        let at = |s| parse_at(s, now()).unwrap();
        let base = at("now");
        assert_eq!(at("-5m"), base - 300_000_000);
        assert_eq!(at("5 min ago"), base - 300_000_000);
        assert_eq!(at("10:00"), base - 1_800_000_000);
        assert_eq!(at("10:00:30"), base - 1_770_000_000);
        assert_eq!(at("2026-11-25 10:30:00"), base);
        assert_eq!(at("2026-11-25 10:30"), base);
        assert_eq!(at("today"), at("2026-11-25"));
        assert_eq!(at("yesterday"), at("2026-11-24 00:00"));
        assert_eq!(at("tomorrow"), at("2026-11-26"));
        assert_eq!(at("+1h"), base + 3_600_000_000);
        assert_eq!(at("2026-11-25T10:30:00Z"), 1_795_602_600_000_000);
        assert!(parse_at("soonish", now()).is_err());
    }
}
