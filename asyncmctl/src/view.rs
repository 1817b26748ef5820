//! How units are drawn: the compact line, the detailed view and the list table.

use std::fmt::Write as _;

use asyncmd_proto::text::{ago, ansi, duration, local_time, EntryFormatter};
use asyncmd_proto::unit::UnitSummary;
use asyncmd_proto::{ExitResult, UnitState, UnitStatus};

fn paint(s: &str, style: &str, color: bool) -> String {
    if color {
        format!("{style}{s}{}", ansi::RESET)
    } else {
        s.to_string()
    }
}

fn dot(u: &UnitStatus, color: bool) -> String {
    let style = match (u.state, &u.load_error) {
        (_, Some(_)) | (UnitState::Failed, _) => ansi::RED,
        (UnitState::Running, _) => ansi::BRIGHT_GREEN,
        (UnitState::Stopped | UnitState::Stopping, _) => ansi::YELLOW,
        _ => "",
    };
    if style.is_empty() {
        "●".into()
    } else {
        paint("●", style, color)
    }
}

fn state_word(u: &UnitStatus, color: bool) -> String {
    let style = match u.state {
        UnitState::Running | UnitState::Starting => ansi::GREEN,
        UnitState::Waiting => ansi::CYAN,
        UnitState::Failed => ansi::RED,
        UnitState::Stopped | UnitState::Stopping => ansi::YELLOW,
        _ => "",
    };
    if style.is_empty() {
        u.state.as_str().into()
    } else {
        paint(u.state.as_str(), style, color)
    }
}

/// How the last run ended, for a person: `0`, `exit status 1: <last stderr line>`,
/// `killed by SIGTERM`, or why it could not start.
pub fn result_text(u: &UnitStatus) -> String {
    if let Some(e) = &u.error {
        return e.clone();
    }
    if let Some(v) = &u.task_result {
        return v.to_string();
    }
    match (&u.result, u.traceback.last()) {
        (Some(r), _) if r.success() => "0".into(),
        (Some(r @ ExitResult::Exited { .. }), Some(last)) => format!("{r}: {last}"),
        (Some(r), _) => r.to_string(),
        (None, _) => String::new(),
    }
}

/// The state part after `status: `: `running since ...; 4 s ago` or `done @ ...; 48 s ago --> result: 0`.
fn state_phrase(u: &UnitStatus, now: i64, color: bool) -> String {
    if let Some(e) = &u.load_error {
        return format!("{} --> Error: {e}", paint("not loaded", ansi::RED, color));
    }
    let word = state_word(u, color);
    let Some(since) = u.since_us else {
        return if u.enabled {
            word
        } else {
            format!("{word} (disabled)")
        };
    };
    let when = format!("{}; {}", local_time(since), ago(now, since));
    match u.state {
        UnitState::Waiting => format!("{word} for {} since {when}", u.waiting_for.join(", ")),
        UnitState::Restarting => {
            let due = u
                .next_restart_us
                .map(|t| format!(" --> next restart in {}", in_secs(now, t)))
                .unwrap_or_default();
            let last = u.last_exit.as_deref().unwrap_or("ended");
            format!("{word} (restart {}; last exit: {last}){due}", u.restarts)
        }
        UnitState::Running | UnitState::Starting | UnitState::Stopping => {
            format!("{word} since {when}")
        }
        _ => format!("{word} @ {when} --> result: {}", result_text(u)),
    }
}

/// `3 s`, `0.4 s`: how far in the future `t` is.
fn in_secs(now: i64, t: i64) -> String {
    let us = (t - now).max(0);
    if us < 10_000_000 {
        format!("{:.1} s", us as f64 / 1e6)
    } else {
        format!("{} s", us / 1_000_000)
    }
}

/// Whether `u` is not as it is meant to be, for a status of every unit: failed, or enabled and
/// not running when it is no oneshot that finished and no scheduled unit between its runs.
pub fn unwell(u: &UnitStatus) -> bool {
    match u.state {
        UnitState::Failed => true,
        UnitState::Running | UnitState::Stopping | UnitState::Done => false,
        _ if u.schedule.is_some() => false,
        _ => u.enabled,
    }
}

/// `● hello.service: status: running since 2026-11-25 10:00:19; 4 s ago`, and the schedule
/// line under a scheduled unit.
pub fn compact(out: &mut String, u: &UnitStatus, now: i64, color: bool) {
    let _ = writeln!(
        out,
        "{} {}: status: {}",
        dot(u, color),
        u.name,
        state_phrase(u, now, color)
    );
    schedule_line(out, "    ", u, now);
}

/// `┗━► schedule: last @ 2026-11-25 10:00:20 --> next in 37 s @ 2026-11-25 10:01:20`, as
/// asyncmd prints it; `starts in` before the first run.
fn schedule_line(out: &mut String, pad: &str, u: &UnitStatus, now: i64) {
    let Some(sc) = &u.schedule else { return };
    let next = match sc.next_us {
        Some(t) => format!("{} @ {}", in_secs(now, t), local_time(t)),
        None => "no run ahead".into(),
    };
    let _ = match sc.last_us {
        Some(l) => writeln!(
            out,
            "{pad}┗━► schedule: last @ {} --> next in {next} ({})",
            local_time(l),
            sc.spec
        ),
        None if sc.next_us.is_some() => {
            writeln!(out, "{pad}┗━► schedule: starts in {next} ({})", sc.spec)
        }
        None => writeln!(out, "{pad}┗━► schedule: {next} ({})", sc.spec),
    };
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "K", "M", "G"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b}B")
    } else {
        format!("{v:.1}{}", UNITS[i])
    }
}

/// The systemctl-like view of one unit, with its journal lines.
pub fn detailed(out: &mut String, u: &UnitStatus, now: i64, color: bool) {
    let mut head = format!("{} {}", dot(u, color), u.name);
    if !u.description.is_empty() {
        let _ = write!(head, " - {}", u.description);
    }
    if !u.version.is_empty() {
        let _ = write!(head, " v{}", u.version);
    }
    let _ = writeln!(out, "{head}");
    let pad = "    ";
    match &u.load_error {
        None if u.kind == asyncmd_proto::UnitType::Task => {
            let _ = writeln!(out, "{pad}Loaded: Task: {}", u.name);
        }
        Some(e) => {
            let _ = writeln!(
                out,
                "{pad}Loaded: Service: {} from {} not loaded: Error: {e}",
                u.name, u.source
            );
        }
        None => {
            let en = if u.enabled { "enabled" } else { "disabled" };
            let _ = writeln!(
                out,
                "{pad}Loaded: Service: {} from {} ({en})",
                u.name, u.source
            );
        }
    }
    let _ = writeln!(
        out,
        "{pad}Active: ({}) {}",
        u.state.active_word(),
        state_phrase(u, now, color)
    );
    if u.kind == asyncmd_proto::UnitType::Task {
        let _ = writeln!(out, "{pad}Type: task");
    } else {
        let _ = writeln!(out, "{pad}Type: {}.service", u.kind.as_str());
    }
    if !u.docs.is_empty() {
        let _ = writeln!(out, "{pad}Docs: {}", u.docs);
    }
    if let Some(pid) = u.pid {
        let _ = writeln!(out, "{pad}Main PID: {pid}");
    }
    if let Some(n) = u.tasks {
        let _ = writeln!(out, "{pad}Tasks: {n}");
    }
    match (u.memory_bytes, u.cpu_us) {
        (Some(m), Some(c)) => {
            let _ = writeln!(
                out,
                "{pad}Memory: {}   CPU: {} ms",
                human_bytes(m),
                c / 1000
            );
        }
        (None, Some(c)) => {
            let _ = writeln!(out, "{pad}CPU: {} ms", c / 1000);
        }
        _ => {}
    }
    if let Some(cg) = &u.cgroup {
        let _ = writeln!(out, "{pad}CGroup: {cg}");
    }
    if u.starts > 0 {
        let _ = writeln!(out, "{pad}Starts: {}   Restarts: {}", u.starts, u.restarts);
    }
    if let Some(e) = &u.last_exit {
        let _ = writeln!(out, "{pad}Last exit: {e}");
    }
    if let Some(t) = &u.status_text {
        let _ = writeln!(out, "{pad}Status: \"{t}\"");
    }
    if let Some(h) = &u.health {
        let _ = writeln!(out, "{pad}Health: {h}");
    }
    if let Some(l) = &u.loop_info {
        let _ = writeln!(
            out,
            "{pad}Loop info: exec time: {} ms; # loops: {}",
            l.busy_us / 1000,
            l.polls
        );
    }
    if !u.stats.is_empty() {
        let stats: Vec<String> = u.stats.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        let _ = writeln!(out, "{pad}Stats: {}", stats.join("; "));
    }
    if let Some(a) = u.started_us {
        let b = u.done_us.unwrap_or(now);
        let _ = writeln!(
            out,
            "{pad}┗━► runtime: {}",
            duration((b - a).max(0) / 1_000_000)
        );
    }
    if let Some(v) = &u.task_result {
        let _ = writeln!(out, "{pad}┗━► result: {v}");
    }
    schedule_line(out, pad, u, now);
    if !u.argv.is_empty() {
        let cmd: Vec<String> = u.argv.iter().map(|a| a.replace('\n', "\\n")).collect();
        let _ = writeln!(out, "{pad}┗━► exec: {}", cmd.join(" "));
    }
    let _ = writeln!(
        out,
        "{pad}┗━► args: {}",
        serde_json::Value::from(u.args.clone())
    );
    let _ = writeln!(
        out,
        "{pad}┗━► kwargs: {}",
        serde_json::Value::Object(u.kwargs.clone())
    );
    if !u.traceback.is_empty() && u.state != UnitState::Running {
        let _ = writeln!(out, "{pad}┗━► traceback: {}: Traceback", u.name);
        for line in &u.traceback {
            let _ = writeln!(out, "{pad}              {line}");
        }
    }
    let mut fmt = EntryFormatter::new(color);
    for e in &u.journal {
        fmt.short(out, &u.host, e);
    }
}

/// `asyncmctl list`: a table like `systemctl list-units`.
pub fn list(out: &mut String, units: &[UnitSummary], color: bool) {
    let w = units.iter().map(|u| u.name.len()).max().unwrap_or(4).max(4);
    let header = format!(
        "{:w$}  {:8}  {:12}  {:10}  DESCRIPTION",
        "UNIT", "ENABLED", "ACTIVE", "SUB"
    );
    let _ = writeln!(
        out,
        "{}",
        if color {
            paint(&header, ansi::BOLD, true)
        } else {
            header
        }
    );
    for u in units {
        let enabled = if u.enabled { "enabled" } else { "disabled" };
        let (active, sub) = if u.loaded {
            (u.state.active_word(), u.state.as_str())
        } else {
            ("failed", "not-loaded")
        };
        let _ = writeln!(
            out,
            "{:w$}  {enabled:8}  {active:12}  {sub:10}  {}",
            u.name, u.description
        );
    }
    let _ = writeln!(out, "\n{} units listed.", units.len());
}

/// The line above a device's answer in `--device all`: `== dev1`.
pub fn device_header(device: &str, color: bool) -> String {
    format!(
        "{} {}",
        paint("==", ansi::BOLD, color),
        paint(device, ansi::BOLD, color)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use asyncmd_proto::UnitType;

    fn unit(state: UnitState) -> UnitStatus {
        UnitStatus {
            name: "hello.service".into(),
            source: "units/hello.service".into(),
            description: "Hello example runner".into(),
            version: "1.0".into(),
            docs: String::new(),
            kind: UnitType::Runtime,
            enabled: true,
            masked: false,
            requires: Vec::new(),
            after: Vec::new(),
            load_error: None,
            state,
            waiting_for: vec![],
            since_us: Some(1_000_000_000_000_000),
            started_us: Some(1_000_000_000_000_000),
            done_us: None,
            pid: Some(42),
            result: None,
            error: None,
            traceback: vec![],
            memory_bytes: None,
            cpu_us: None,
            cgroup: None,
            tasks: None,
            starts: 1,
            restarts: 0,
            last_exit: None,
            next_restart_us: None,
            stop_timeout_us: None,
            status_text: None,
            health: None,
            stats: Default::default(),
            schedule: None,
            task_result: None,
            loop_info: None,
            argv: vec![],
            args: vec![],
            kwargs: Default::default(),
            journal: vec![],
            host: "h".into(),
        }
    }

    const NOW: i64 = 1_000_000_000_000_000 + 4_000_000;

    #[test]
    fn compact_running_line() {
        let mut out = String::new();
        compact(&mut out, &unit(UnitState::Running), NOW, false);
        let t = local_time(1_000_000_000_000_000);
        assert_eq!(
            out,
            format!("● hello.service: status: running since {t}; 4 s ago\n")
        );
    }

    #[test]
    fn compact_finished_lines_carry_the_result() {
        let mut u = unit(UnitState::Done);
        u.result = Some(ExitResult::Exited { code: 0 });
        let mut out = String::new();
        compact(&mut out, &u, NOW, false);
        assert!(out.ends_with("; 4 s ago --> result: 0\n"), "{out}");
        u.state = UnitState::Failed;
        u.result = Some(ExitResult::Exited { code: 1 });
        u.traceback = vec!["ZeroDivisionError: divide by zero".into()];
        assert_eq!(
            result_text(&u),
            "exit status 1: ZeroDivisionError: divide by zero"
        );
        u.result = Some(ExitResult::Killed {
            signal: 15,
            name: "SIGTERM".into(),
            core_dumped: false,
        });
        assert_eq!(result_text(&u), "killed by SIGTERM");
        u.error = Some("cannot run x: not found".into());
        assert_eq!(result_text(&u), "cannot run x: not found");
    }

    #[test]
    fn not_loaded_and_disabled_units() {
        let mut u = unit(UnitState::Inactive);
        u.since_us = None;
        u.load_error = Some("units/x.service:1:1: bad".into());
        let mut out = String::new();
        compact(&mut out, &u, NOW, false);
        assert_eq!(
            out,
            "● hello.service: status: not loaded --> Error: units/x.service:1:1: bad\n"
        );
        u.load_error = None;
        u.enabled = false;
        out.clear();
        compact(&mut out, &u, NOW, false);
        assert_eq!(out, "● hello.service: status: inactive (disabled)\n");
    }

    #[test]
    fn a_waiting_unit_names_what_it_waits_for() {
        let mut u = unit(UnitState::Waiting);
        u.waiting_for = vec!["db.service".into(), "net.service".into()];
        let mut out = String::new();
        compact(&mut out, &u, u.since_us.unwrap() + 2_000_000, false);
        assert!(
            out.contains("status: waiting for db.service, net.service since "),
            "{out}"
        );
    }

    #[test]
    fn a_restarting_unit_says_when_and_why() {
        let mut u = unit(UnitState::Restarting);
        u.restarts = 3;
        u.last_exit = Some("exit status 1: boom".into());
        let now = u.since_us.unwrap();
        u.next_restart_us = Some(now + 2_500_000);
        let mut out = String::new();
        compact(&mut out, &u, now, false);
        assert!(
            out.contains(
                "restarting (restart 3; last exit: exit status 1: boom) --> next restart in 2.5 s"
            ),
            "{out}"
        );
    }

    #[test]
    fn a_scheduled_unit_shows_last_and_next_runs() {
        let mut u = unit(UnitState::Done);
        let now = u.since_us.unwrap();
        u.schedule = Some(asyncmd_proto::unit::ScheduleStatus {
            spec: "every 1m".into(),
            last_us: Some(now - 23_000_000),
            next_us: Some(now + 37_000_000),
        });
        let mut out = String::new();
        compact(&mut out, &u, now, false);
        let line = out.lines().nth(1).unwrap();
        assert!(line.starts_with("    ┗━► schedule: last @ "), "{out}");
        assert!(line.contains(" --> next in 37 s @ "), "{out}");
        assert!(line.ends_with("(every 1m)"), "{out}");
        u.schedule.as_mut().unwrap().last_us = None;
        let mut out = String::new();
        compact(&mut out, &u, now, false);
        assert!(out.contains("┗━► schedule: starts in 37 s @ "), "{out}");
    }

    #[test]
    fn colour_only_when_asked() {
        let mut out = String::new();
        compact(&mut out, &unit(UnitState::Running), NOW, true);
        assert!(
            out.starts_with("\x1b[92m●\x1b[0m hello.service: status: \x1b[32;1mrunning\x1b[0m"),
            "{out:?}"
        );
    }

    #[test]
    fn list_has_systemctl_columns() {
        let rows = vec![UnitSummary {
            name: "hello.service".into(),
            enabled: true,
            loaded: true,
            state: UnitState::Running,
            description: "Hello".into(),
            masked: false,
            kind: UnitType::Runtime,
            requires: Vec::new(),
            after: Vec::new(),
        }];
        let mut out = String::new();
        list(&mut out, &rows, false);
        let mut lines = out.lines();
        assert!(lines
            .next()
            .unwrap()
            .starts_with("UNIT           ENABLED   ACTIVE"));
        let row = lines.next().unwrap();
        assert!(
            row.contains("enabled")
                && row.contains("active")
                && row.contains("running")
                && row.ends_with("Hello")
        );
        assert!(out.ends_with("1 units listed.\n"));
    }
}
