//! The one status builder: what `asyncmctl status` shows of a unit or a task, from its
//! lifecycle. A host adds what only it knows (a unit's file and argv, a process's memory and
//! CPU time, sd_notify's status text) over [`of`]'s answer.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use asyncmd_proto::unit::UnitSummary;
use asyncmd_proto::{UnitStatus, UnitType};
use serde_json::Map;

use crate::lifecycle::Life;

/// The status of `name` (a `kind` loaded from `source`, on `host`) as its lifecycle `life`
/// tells it; every field the lifecycle does not know is empty, and so is the value of its last
/// run (`task_result`): a host puts that in, in the form it carries it (the daemon as JSON, a
/// board in its link's form), so that a board clones no JSON.
pub fn of(name: &str, source: &str, kind: UnitType, life: &Life, host: &str) -> UnitStatus {
    UnitStatus {
        name: name.to_string(),
        source: source.to_string(),
        description: String::new(),
        version: String::new(),
        docs: String::new(),
        kind,
        enabled: true,
        masked: false,
        requires: Vec::new(),
        after: Vec::new(),
        load_error: None,
        state: life.state,
        waiting_for: life.waiting_for.clone(),
        since_us: life.since_us,
        started_us: life.started_us,
        done_us: life.done_us,
        pid: None,
        result: life.result.clone(),
        error: life.error.clone(),
        traceback: life.traceback.iter().cloned().collect(),
        memory_bytes: None,
        cpu_us: None,
        cgroup: None,
        tasks: None,
        starts: life.starts,
        restarts: life.restarts.count,
        last_exit: life.last_exit.clone(),
        next_restart_us: life.next_restart_us,
        stop_timeout_us: None,
        status_text: None,
        health: None,
        schedule: None,
        stats: Map::new(),
        argv: Vec::new(),
        args: Vec::new(),
        kwargs: Map::new(),
        journal: Vec::new(),
        host: host.to_string(),
        task_result: None,
        loop_info: None,
    }
}

/// The `asyncmctl list` row of `name`, a `kind`; what the lifecycle does not know (masked,
/// dependencies) is empty.
pub fn summary(
    name: &str,
    kind: UnitType,
    enabled: bool,
    loaded: bool,
    life: &Life,
    description: &str,
) -> UnitSummary {
    UnitSummary {
        name: name.to_string(),
        enabled,
        loaded,
        state: life.state,
        description: description.to_string(),
        masked: false,
        kind,
        requires: Vec::new(),
        after: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MockClock;
    use crate::lifecycle::{End, Event};
    use asyncmd_proto::{ExitResult, UnitState};

    #[test]
    fn a_status_tells_the_lifecycle_as_it_stands() {
        let clock = MockClock::new(7, 0);
        let mut life = Life::new(Some(1));
        life.step(
            Event::Started {
                ready: true,
                what: None,
            },
            &clock,
        );
        life.push_traceback("oops".into());
        clock.pass(3);
        let end = End::Exit(ExitResult::Exited { code: 3 });
        life.step(
            Event::Ended {
                run: 1,
                end,
                restart: None,
            },
            &clock,
        );
        let s = of(
            "a.service",
            "units/a.service",
            UnitType::Runtime,
            &life,
            "box",
        );
        assert_eq!(s.state, UnitState::Failed);
        assert_eq!((s.started_us, s.done_us, s.starts), (Some(7), Some(10), 1));
        assert_eq!(s.result, Some(ExitResult::Exited { code: 3 }));
        assert_eq!(s.traceback, ["oops"]);
        assert_eq!(s.last_exit.as_deref(), Some("exit status 3: oops"));
        assert_eq!((s.host.as_str(), s.kind), ("box", UnitType::Runtime));
        assert_eq!(s.task_result, None, "the host's to put in");
        let row = summary("a.service", UnitType::Runtime, false, true, &life, "A");
        assert_eq!((row.state, row.enabled), (UnitState::Failed, false));
    }
}
