//! Unit status as it crosses the wire.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::journal::Entry;

/// The file-name suffix of a unit, which a name may leave out (`hello` for `hello.service`).
pub const SUFFIX: &str = ".service";

/// The shortest name that names unit `unit` alone: `hello` for `hello.service`. A unit whose
/// bare name would itself end in the suffix (`h.service.service`) keeps its full name, since
/// `h.service` is another unit's.
pub fn short_name(unit: &str) -> &str {
    match unit.strip_suffix(SUFFIX) {
        Some(bare) if !bare.is_empty() && !bare.ends_with(SUFFIX) => bare,
        _ => unit,
    }
}

/// Whether a name pattern has wildcards (`*`, `?`, `[...]`, `{a,b}`), so that it may name many
/// units; without them it names one unit. The daemon and the clients decide it the same way.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{'])
}

/// What kind of service a unit is, as declared by `type` in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitType {
    /// Boots before every other unit.
    Core,
    /// A long-running service; ready once spawned.
    #[default]
    Runtime,
    /// Runs on a schedule.
    Schedule,
    /// Runs to completion; ready once it exits 0.
    Oneshot,
    /// Signals readiness with `READY=1`.
    Notify,
    /// An in-process task of a task registry (not a unit file).
    Task,
}

impl UnitType {
    /// The name used in unit files and status (`runtime`).
    pub fn as_str(self) -> &'static str {
        match self {
            UnitType::Core => "core",
            UnitType::Runtime => "runtime",
            UnitType::Schedule => "schedule",
            UnitType::Oneshot => "oneshot",
            UnitType::Notify => "notify",
            UnitType::Task => "task",
        }
    }
}

/// Lifecycle state of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitState {
    /// Never started since boot (disabled, or not loaded).
    Inactive,
    /// Waiting for the units it depends on before it starts.
    Waiting,
    /// Being spawned.
    Starting,
    /// Its process is alive.
    Running,
    /// Being stopped.
    Stopping,
    /// Ran to completion with exit status 0.
    Done,
    /// Failed to start, or exited with an error.
    Failed,
    /// Stopped on request.
    Stopped,
    /// Ended by itself, and waits for its automatic restart.
    Restarting,
}

impl UnitState {
    /// The word shown in status lines (`running`).
    pub fn as_str(self) -> &'static str {
        match self {
            UnitState::Inactive => "inactive",
            UnitState::Waiting => "waiting",
            UnitState::Starting => "starting",
            UnitState::Running => "running",
            UnitState::Stopping => "stopping",
            UnitState::Done => "done",
            UnitState::Failed => "failed",
            UnitState::Stopped => "stopped",
            UnitState::Restarting => "restarting",
        }
    }

    /// systemctl's ACTIVE column: `active`, `activating`, `deactivating`, `failed` or `inactive`.
    pub fn active_word(self) -> &'static str {
        match self {
            UnitState::Running => "active",
            UnitState::Waiting | UnitState::Starting | UnitState::Restarting => "activating",
            UnitState::Stopping => "deactivating",
            UnitState::Failed => "failed",
            UnitState::Inactive | UnitState::Done | UnitState::Stopped => "inactive",
        }
    }

    /// Whether the unit counts as running for exit codes (systemctl's "active").
    pub fn is_active(self) -> bool {
        matches!(self, UnitState::Running | UnitState::Stopping)
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ExitResult {
    /// It exited with this status.
    Exited {
        /// Exit status.
        code: i32,
    },
    /// A signal ended it.
    Killed {
        /// Signal number.
        signal: i32,
        /// Signal name, such as `SIGTERM`.
        name: String,
        /// Whether it dumped core.
        #[serde(default)]
        core_dumped: bool,
    },
}

impl core::fmt::Display for ExitResult {
    /// `exit status 1`, `killed by SIGTERM`, `killed by SIGSEGV (core dumped)`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ExitResult::Exited { code } => write!(f, "exit status {code}"),
            ExitResult::Killed {
                name, core_dumped, ..
            } => {
                write!(f, "killed by {name}")?;
                if *core_dumped {
                    f.write_str(" (core dumped)")?;
                }
                Ok(())
            }
        }
    }
}

impl ExitResult {
    /// Whether this is a clean exit (status 0).
    pub fn success(&self) -> bool {
        matches!(self, ExitResult::Exited { code: 0 })
    }
}

/// Everything status shows about one unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitStatus {
    /// Unit name, `hello.service`.
    pub name: String,
    /// The file it was loaded from, as the daemon was told to find it.
    pub source: String,
    /// `description` from the unit file.
    #[serde(default)]
    pub description: String,
    /// `version` from the unit file.
    #[serde(default)]
    pub version: String,
    /// `docs` from the unit file.
    #[serde(default)]
    pub docs: String,
    /// `type` from the unit file.
    #[serde(rename = "type", default)]
    pub kind: UnitType,
    /// Whether `services.config` enables it.
    pub enabled: bool,
    /// Whether `services.config` masks it: nothing may start it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub masked: bool,
    /// The units it requires (`requires` in its file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<String>,
    /// The units it starts after (`after` in its file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Why the unit could not be loaded, when it could not.
    #[serde(default)]
    pub load_error: Option<String>,
    /// Current state.
    pub state: UnitState,
    /// While [`UnitState::Waiting`]: the units it still waits for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
    /// When the current state began (µs since the Unix epoch).
    #[serde(default)]
    pub since_us: Option<i64>,
    /// When the last run started (µs since the Unix epoch).
    #[serde(default)]
    pub started_us: Option<i64>,
    /// When the last run ended (µs since the Unix epoch).
    #[serde(default)]
    pub done_us: Option<i64>,
    /// Main process ID while running.
    #[serde(default)]
    pub pid: Option<u32>,
    /// How the last run ended.
    #[serde(default)]
    pub result: Option<ExitResult>,
    /// Why the last start failed, when it failed before the process ran.
    #[serde(default)]
    pub error: Option<String>,
    /// The last stderr lines of the last run.
    #[serde(default)]
    pub traceback: Vec<String>,
    /// Resident memory of the main process (of its cgroup, where it has one), in bytes.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// CPU time used by the main process (by its cgroup, where it has one), in µs.
    #[serde(default)]
    pub cpu_us: Option<u64>,
    /// Its cgroup's directory, where the daemon has a delegated cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Processes in its cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tasks: Option<u32>,
    /// How many times it was started since the daemon booted.
    #[serde(default)]
    pub starts: u32,
    /// Automatic restarts since it was last started by hand.
    #[serde(default)]
    pub restarts: u32,
    /// Why its last run ended, when it ended badly (kept across restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    /// While [`UnitState::Restarting`]: when the restart is due (µs since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_restart_us: Option<i64>,
    /// How long a stop waits after its first signal before SIGKILL, in µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout_us: Option<u64>,
    /// The service's own `STATUS=` line (sd_notify).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_text: Option<String>,
    /// The last health check's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<String>,
    /// Its schedule, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleStatus>,
    /// Stats a builtin service publishes (`Stats:` in the detailed view).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub stats: Map<String, Value>,
    /// The full command line, `exec` plus `args` from `services.config`.
    #[serde(default)]
    pub argv: Vec<String>,
    /// `args` from `services.config`.
    #[serde(default)]
    pub args: Vec<Value>,
    /// `kwargs` from `services.config`.
    #[serde(default)]
    pub kwargs: Map<String, Value>,
    /// The newest journal entries of the unit, oldest first, when asked for.
    #[serde(default)]
    pub journal: Vec<Entry>,
    /// Host the journal entries were logged on.
    #[serde(default)]
    pub host: String,
    /// A task's result, once it returned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_result: Option<Value>,
    /// A task's polls and the time they took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_info: Option<LoopInfo>,
}

/// How much a task ran: asyncmd's `Loop info: exec time: 5 ms; # loops: 186`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoopInfo {
    /// Times it was polled.
    pub polls: u64,
    /// Time spent in those polls, in µs.
    pub busy_us: u64,
}

/// Where a scheduled unit stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleStatus {
    /// The schedule, for a person: `first in 20s, every 1m`.
    pub spec: String,
    /// When the last scheduled run was due (µs since the Unix epoch).
    #[serde(default)]
    pub last_us: Option<i64>,
    /// When the next run is due, if one is ahead.
    #[serde(default)]
    pub next_us: Option<i64>,
}

/// One row of `asyncmctl list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitSummary {
    /// Unit name.
    pub name: String,
    /// Whether `services.config` enables it.
    pub enabled: bool,
    /// Whether the file loaded.
    pub loaded: bool,
    /// Current state.
    pub state: UnitState,
    /// `description` from the unit file.
    #[serde(default)]
    pub description: String,
    /// Whether `services.config` masks it: nothing may start it.
    // Every field is written, always: a board's link encodes rows with postcard, which
    // cannot tell a field left out.
    #[serde(default)]
    pub masked: bool,
    /// What it is: a unit's `type`, or `task`.
    #[serde(rename = "type", default)]
    pub kind: UnitType,
    /// The units it requires (`requires` in its file).
    #[serde(default)]
    pub requires: Vec<String>,
    /// The units it starts after (`after` in its file).
    #[serde(default)]
    pub after: Vec<String>,
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

/// A unit's file and its `services.config` entry, as `asyncmctl cat` shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitFile {
    /// Unit name.
    pub unit: String,
    /// The file it was loaded from.
    pub path: String,
    /// The file's text as it is on disk now.
    #[serde(default)]
    pub text: String,
    /// Why the file could not be read, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Its entry of `services.config` as the file writes it, if it has one.
    #[serde(default)]
    pub config: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::short_name;

    #[test]
    fn a_short_name_never_names_another_unit() {
        assert_eq!(short_name("hello.service"), "hello");
        assert_eq!(short_name("hello"), "hello");
        assert_eq!(short_name("h.service.service"), "h.service.service");
        assert_eq!(short_name(".service"), ".service");
    }
}
