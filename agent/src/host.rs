//! The agent as the core's control [`Host`]: a board has tasks and no units, so what needs unit
//! files or a configuration keeps the trait's `unsupported` answers.
//!
//! A task's args, kwargs and stats are kept in the link's form ([`crate::Values`]), not as
//! JSON; its schedule goes as its parts, for the host to describe; its last value is put in
//! the link's form without a JSON copy. The serve loop puts them all into a status answer
//! ([`Agent::add_values`]), so the status here leaves them empty.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use asyncmd_core::control::{Host, Outcomes, Verb};
use asyncmd_core::status;
use asyncmd_proto::link::{LinkSpec, Reply, Stat, TaskStatus};
use asyncmd_proto::unit::UnitSummary;
use asyncmd_proto::{ActionResult, Entry, UnitStatus, UnitType};
use serde_json::{Map, Value};

use crate::Agent;

/// A board's agent as the host of requests.
#[derive(Clone, Copy)]
pub struct Board(pub &'static Agent);

impl Board {
    fn index(&self, name: &str) -> Option<usize> {
        self.0.with(|st| st.table.get(name).copied())
    }
}

impl Host for Board {
    const UNITS: bool = false;

    fn units(&self) -> Vec<String> {
        Vec::new()
    }

    fn tasks(&self) -> Vec<String> {
        self.0.with(|st| st.table.names())
    }

    async fn status(&self, _units: &[String], tasks: &[String], lines: usize) -> Vec<UnitStatus> {
        let agent = self.0;
        let mut out: Vec<UnitStatus> = tasks
            .iter()
            .filter_map(|n| self.index(n))
            .map(|i| {
                let def = &agent.defs[i];
                agent.with(|st| {
                    let slot = &st.slots[i];
                    status::of(def.name, "task", UnitType::Task, &slot.life, agent.board)
                })
            })
            .collect();
        let clock = agent.clock();
        for s in out.iter_mut() {
            if lines > 0 {
                s.journal = newest(agent, &s.name, lines);
            }
            for t in [&mut s.since_us, &mut s.started_us, &mut s.done_us]
                .into_iter()
                .flatten()
            {
                *t = clock.fix(*t);
            }
        }
        out
    }

    fn list(&self, _units: &[String], tasks: &[String]) -> Vec<UnitSummary> {
        tasks
            .iter()
            .filter_map(|n| self.index(n))
            .map(|i| {
                let name = self.0.defs[i].name;
                self.0.with(|st| {
                    status::summary(name, UnitType::Task, true, true, &st.slots[i].life, "task")
                })
            })
            .collect()
    }

    fn debug(&self) -> bool {
        false
    }

    fn set_debug(&self, _on: bool) {}

    fn is_active(&self, _unit: &str) -> bool {
        false
    }

    async fn start(&self, _units: &[String]) -> Outcomes {
        Outcomes::new()
    }

    async fn stop(&self, _units: &[String]) -> Outcomes {
        Outcomes::new()
    }

    fn start_tasks(&self, tasks: &[String]) {
        for i in tasks.iter().filter_map(|n| self.index(n)) {
            self.0.start(i);
        }
    }

    fn stop_tasks(&self, tasks: &[String]) {
        for i in tasks.iter().filter_map(|n| self.index(n)) {
            self.0.stop(i);
        }
    }

    async fn restart_tasks(&self, tasks: &[String]) {
        let found: Vec<usize> = tasks.iter().filter_map(|n| self.index(n)).collect();
        for &i in &found {
            self.0.stop(i);
        }
        // The stop lands at the run's next await; wait for its end to be recorded.
        for &i in &found {
            for _ in 0..1000 {
                if !self.0.with(|st| st.slots[i].life.is_active()) {
                    break;
                }
                embassy_time::Timer::after_millis(1).await;
            }
            self.0.start(i);
        }
    }

    async fn reset_failed(&self, _unit: &str) -> bool {
        false
    }

    async fn act_on_units(&self, _verb: Verb, _units: &[String]) -> Vec<ActionResult> {
        Vec::new()
    }

    fn set_task_kwargs(&self, task: &str, kwargs: Map<String, Value>) -> bool {
        let Some(i) = self.index(task) else {
            return false;
        };
        let kwargs = kwargs
            .into_iter()
            .map(|(k, v)| (k, Stat::from(v)))
            .collect();
        self.0.with(|st| st.slots[i].kwargs = kwargs);
        true
    }
}

impl Agent {
    /// Puts the args, kwargs, stats, schedule and last value of the task `status` is of into it.
    pub(crate) fn add_values(&self, status: &mut TaskStatus) {
        self.with(|st| {
            let Some(&i) = st.table.get(&status.name) else {
                return;
            };
            let slot = &st.slots[i];
            status.args = self.defs[i].args.clone();
            status.kwargs = slot.kwargs.clone();
            status.stats = slot.stats.clone();
            status.result = slot.life.value.as_ref().map(Stat::from);
            let clock = st.clock();
            let fix = |t: Option<i64>| t.map(|t| clock.fix(t));
            status.schedule = self.defs[i].schedule.map(|spec| {
                let last = fix(slot.schedule_last_us);
                (LinkSpec::from(&spec), last, fix(slot.schedule_next_us))
            });
        });
    }
}

/// Journal bytes a task's status carries at most: three tasks' fit one frame.
const STATUS_JOURNAL_BYTES: usize = asyncmd_proto::link::MAX_LINK_FRAME / 6;

/// The newest `lines` journal entries of task `name`, bounded by bytes too (whatever `lines`
/// asks, a status must fit a frame).
fn newest(agent: &Agent, name: &str, lines: usize) -> Vec<Entry> {
    let lines = Some(u32::try_from(lines).unwrap_or(u32::MAX));
    let units = vec![String::from(name)];
    match agent.entries(units, None, lines, None, STATUS_JOURNAL_BYTES) {
        Reply::Entries { entries, .. } => entries,
        _ => Vec::new(),
    }
}
