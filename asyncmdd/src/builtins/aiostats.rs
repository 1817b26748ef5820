//! asyncmd's status schema (`aiostats.stats`), which its fleet tools read: over MQTT from the
//! `mqtt` builtin, over HTTP from the `stats` builtin.

use asyncmd_proto::text::EntryFormatter;
use asyncmd_proto::{UnitState, UnitStatus, UnitType};
use serde_json::{json, Map, Value};

/// Seconds since the epoch, as asyncmd's times are.
pub fn epoch(us: Option<i64>) -> Value {
    us.map_or(Value::Null, |us| json!(us as f64 / 1e6))
}

/// A unit's status in asyncmd's schema (`aiostats.stats`); with `debug`, its `:/debug` fields.
pub fn task_stats(u: &UnitStatus, debug: bool) -> Value {
    let word = match u.state {
        UnitState::Running | UnitState::Starting | UnitState::Stopping => "running",
        UnitState::Done => "done",
        UnitState::Stopped | UnitState::Inactive => "stopped",
        UnitState::Failed | UnitState::Restarting => "error",
        UnitState::Waiting => "unknown",
    };
    let status = match (&u.schedule, u.starts) {
        (Some(_), 0) => "scheduled - scheduled".to_string(),
        (Some(_), _) => format!("scheduled - {word}"),
        (None, _) => word.to_string(),
    };
    let result = match (&u.task_result, &u.last_exit, u.state) {
        (Some(v), _, _) => v.clone(),
        (None, Some(why), UnitState::Failed | UnitState::Restarting) => json!(why),
        _ => Value::Null,
    };
    let mut m = Map::new();
    m.insert("status".into(), json!(status));
    m.insert("since".into(), epoch(u.since_us));
    m.insert("done_at".into(), epoch(u.done_us));
    m.insert("result".into(), result);
    m.insert("service".into(), json!(u.kind != UnitType::Task));
    m.insert(
        "stats".into(),
        if u.stats.is_empty() {
            Value::Null
        } else {
            Value::Object(u.stats.clone())
        },
    );
    if let Some(sc) = &u.schedule {
        m.insert(
            "schedule".into(),
            json!({"spec": sc.spec, "last": epoch(sc.last_us), "next": epoch(sc.next_us)}),
        );
    }
    if debug {
        let last_line = u.journal.last().map_or(String::new(), |e| {
            let mut line = String::new();
            EntryFormatter::new(false).short(&mut line, &u.host, e);
            line
        });
        m.insert("log".into(), json!(last_line));
        m.insert("ctasks".into(), json!([]));
        m.insert("docs".into(), json!(u.docs));
        let kind = match u.kind {
            UnitType::Task => "task".to_string(),
            k => format!("{}.service", k.as_str()),
        };
        m.insert("type".into(), json!(kind));
        m.insert("path".into(), json!(u.source));
        m.insert("info".into(), json!(u.description));
        m.insert("args".into(), Value::Array(u.args.clone()));
        m.insert("kwargs".into(), Value::Object(u.kwargs.clone()));
        m.insert("traceback".into(), json!(traceback(u)));
    }
    Value::Object(m)
}

/// A unit's last stderr lines as asyncmd's traceback text (`NAME: Traceback` first).
pub fn traceback(u: &UnitStatus) -> String {
    if u.traceback.is_empty() {
        return String::new();
    }
    let mut t = format!("{}: Traceback\n", u.name);
    for line in &u.traceback {
        t.push_str(line);
        t.push('\n');
    }
    t
}
