//! `asyncmctl show`: a unit's status as `KEY=VALUE` lines, with systemd's property names where
//! one means the same, so that `systemctl show -p ActiveState --value` habits carry over.

use asyncmd_proto::text::timestamp;
use asyncmd_proto::{ExitResult, UnitState, UnitStatus, UnitType};

/// The properties of `u`, in a fixed order.
pub fn of(u: &UnitStatus) -> Vec<(&'static str, String)> {
    let time = |t: Option<i64>| t.map(timestamp).unwrap_or_default();
    let not_set = |v: Option<u64>| v.map_or_else(|| "[not set]".to_string(), |v| v.to_string());
    let file_state = match (u.kind, u.masked, u.enabled) {
        (UnitType::Task, _, _) => "static",
        (_, true, _) => "masked",
        (_, false, true) => "enabled",
        (_, false, false) => "disabled",
    };
    let (status, result) = match &u.result {
        Some(ExitResult::Exited { code: 0 }) => ("0".to_string(), "success"),
        Some(ExitResult::Exited { code }) => (code.to_string(), "exit-code"),
        Some(ExitResult::Killed {
            signal,
            core_dumped,
            ..
        }) => (
            signal.to_string(),
            if *core_dumped { "core-dump" } else { "signal" },
        ),
        None if u.state == UnitState::Failed => ("0".to_string(), "failure"),
        None => ("0".to_string(), "success"),
    };
    let schedule = u.schedule.as_ref();
    vec![
        ("Id", u.name.clone()),
        ("Description", u.description.clone()),
        ("Documentation", u.docs.clone()),
        ("Version", u.version.clone()),
        ("Type", u.kind.as_str().into()),
        (
            "LoadState",
            if u.load_error.is_some() {
                "error"
            } else {
                "loaded"
            }
            .into(),
        ),
        ("LoadError", u.load_error.clone().unwrap_or_default()),
        ("FragmentPath", u.source.clone()),
        ("UnitFileState", file_state.into()),
        ("ActiveState", u.state.active_word().into()),
        ("SubState", u.state.as_str().into()),
        ("StateChangeTimestamp", time(u.since_us)),
        ("ExecMainStartTimestamp", time(u.started_us)),
        ("ExecMainExitTimestamp", time(u.done_us)),
        ("MainPID", u.pid.unwrap_or(0).to_string()),
        ("ExecMainStatus", status),
        ("Result", result.into()),
        ("Error", u.error.clone().unwrap_or_default()),
        ("LastExit", u.last_exit.clone().unwrap_or_default()),
        ("NRestarts", u.restarts.to_string()),
        ("NStarts", u.starts.to_string()),
        ("NextRestartTimestamp", time(u.next_restart_us)),
        ("MemoryCurrent", not_set(u.memory_bytes)),
        ("CPUUsageNSec", not_set(u.cpu_us.map(|c| c * 1000))),
        ("TasksCurrent", not_set(u.tasks.map(u64::from))),
        ("ControlGroup", u.cgroup.clone().unwrap_or_default()),
        ("StatusText", u.status_text.clone().unwrap_or_default()),
        ("Health", u.health.clone().unwrap_or_default()),
        ("Requires", u.requires.join(" ")),
        ("After", u.after.join(" ")),
        ("ExecStart", command_line(&u.argv)),
        (
            "Schedule",
            schedule.map(|s| s.spec.clone()).unwrap_or_default(),
        ),
        (
            "LastTriggerTimestamp",
            time(schedule.and_then(|s| s.last_us)),
        ),
        (
            "NextElapseTimestamp",
            time(schedule.and_then(|s| s.next_us)),
        ),
    ]
}

/// `argv` as one line: a word with spaces, quotes or control characters in it is written as a
/// JSON string (its newlines as `\n`).
fn command_line(argv: &[String]) -> String {
    let words: Vec<String> = argv
        .iter()
        .map(|a| {
            let plain = !a.is_empty()
                && !a
                    .chars()
                    .any(|c| c.is_whitespace() || c.is_control() || c == '"');
            if plain {
                a.clone()
            } else {
                serde_json::to_string(a).unwrap_or_default()
            }
        })
        .collect();
    words.join(" ")
}

/// `KEY=VALUE` lines of the `wanted` properties of `u` (all when none), or only the values.
pub fn render(out: &mut String, u: &UnitStatus, wanted: &[String], values_only: bool) {
    for (key, value) in of(u) {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == key) {
            continue;
        }
        if !values_only {
            out.push_str(key);
            out.push('=');
        }
        // One line per property, whatever the value holds.
        out.push_str(&value.replace('\n', "\\n"));
        out.push('\n');
    }
}

/// The names among `wanted` that are no property, for a clear error.
pub fn unknown<'a>(wanted: &'a [String], sample: &UnitStatus) -> Vec<&'a str> {
    let known = of(sample);
    wanted
        .iter()
        .filter(|w| !known.iter().any(|(k, _)| k == w))
        .map(String::as_str)
        .collect()
}
