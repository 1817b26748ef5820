//! What a unit is ([`Definition`]: its file and its `services.config` entry) and what the driver
//! publishes of it ([`Unit`]: its definition and live state, which anyone may read and only the
//! driver writes).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use asyncmd_proto::unit::UnitSummary;
use asyncmd_proto::{UnitState, UnitStatus, UnitType};
use nix::sys::signal::Signal;
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::cgroup::Cgroups;
use crate::clock::HostClock;
use crate::journal::UnitId;
use crate::process;
use crate::services_config::{ServiceConfig, ServicesConfig};
use crate::unit_file::{self, Run, UnitFile};
use asyncmd_core::lifecycle::{Effect, Event, Life};
use asyncmd_core::plan::Node;
use asyncmd_core::status;

/// What the driver publishes of a unit: its definition and the state of its runs. Written by
/// the driver only; anyone may read it.
#[derive(Debug, Clone)]
pub(super) struct Live {
    /// What the unit is now (a run keeps the one it started with, `ran_with`).
    pub(super) def: Arc<Definition>,
    /// Set once it is being unloaded: it never starts again.
    pub(super) retired: bool,
    pub(super) life: Life,
    /// The process of the current run (None: a builtin service, or no run).
    pub(super) pid: Option<u32>,
    /// The definition the current or last run was started with.
    pub(super) ran_with: Option<Arc<Definition>>,
    /// The `ASYNCMD_INVOCATION` tag of the current or last run.
    pub(super) invocation: Option<String>,
    pub(super) status_text: Option<String>,
    pub(super) health: Option<String>,
    /// The last `WATCHDOG=1` (or the start) of the current run.
    pub(super) last_ping: Option<Instant>,
    /// `MAINPID=` as the service told it.
    pub(super) main_pid: Option<u32>,
    /// The main process has been reaped (its PID may be reused): signal it no more.
    pub(super) main_exited: bool,
    /// What the last run left behind is being stopped (see `clean_up`).
    pub(super) cleaning: bool,
    /// Stats a builtin service published: written by the builtin itself, which owns them
    /// (a fresh set for each run), so that what it reads back is what it wrote.
    pub(super) stats: Arc<Mutex<Map<String, Value>>>,
    /// When the last scheduled run was due, and the next one is.
    pub(super) schedule_last_us: Option<i64>,
    pub(super) schedule_next_us: Option<i64>,
    /// A builtin's polls and their time.
    pub(super) counters: Option<Arc<crate::task_runtime::Counters>>,
}

impl Live {
    pub(super) fn new(def: Arc<Definition>) -> Live {
        Live {
            def,
            retired: false,
            life: Life::default(),
            pid: None,
            ran_with: None,
            invocation: None,
            status_text: None,
            health: None,
            last_ping: None,
            main_pid: None,
            main_exited: false,
            cleaning: false,
            stats: Arc::default(),
            schedule_last_us: None,
            schedule_next_us: None,
            counters: None,
        }
    }

    /// Steps the lifecycle; a run that began gets a fresh host part, one that ended loses
    /// its process.
    pub(super) fn step(&mut self, event: Event) -> Vec<Effect> {
        let run = self.life.starts;
        let fx = self.life.step(event, &HostClock);
        if self.life.starts != run {
            self.last_ping = Some(Instant::now());
            self.main_pid = None;
            self.main_exited = false;
            self.status_text = None;
            self.health = None;
        }
        if !self.life.running {
            self.pid = None;
            self.main_pid = None;
        }
        fx
    }

    /// The live process of the current run, if it has one.
    pub(super) fn alive_pid(&self) -> Option<u32> {
        self.pid.filter(|_| !self.main_exited)
    }

    /// The current run's tag ("" before the first).
    pub(super) fn tag(&self) -> String {
        self.invocation.clone().unwrap_or_default()
    }
}

/// What a unit is: its file and its `services.config` entry. Replaced as a whole, never
/// edited, so a run always sees one consistent definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// The file it was loaded from, as given.
    pub source: String,
    /// The parsed unit, when it loaded.
    pub unit: Option<UnitFile>,
    /// Why it did not load (its file or its `services.config` entry is bad).
    pub load_error: Option<String>,
    /// Its `services.config` entry.
    pub config: ServiceConfig,
    /// The unit file as parsed, kept so a fixed `services.config` entry can be taken alone.
    file: Result<UnitFile, String>,
}

impl Definition {
    /// Reads the unit file `path` and takes its entry of `config`.
    pub fn read(path: &Path, config: &ServicesConfig) -> (String, Definition) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = unit_file::load(path).map_err(|e| e.to_string());
        let def = Definition::new(path.display().to_string(), file, config.get(&name));
        (name, def)
    }

    /// A definition from the unit file `source` as parsed (or why not) and its
    /// `services.config` entry (or why that is invalid).
    pub fn new(
        source: String,
        file: Result<UnitFile, String>,
        config: Result<ServiceConfig, String>,
    ) -> Definition {
        let (unit, load_error, config) = match (&file, config) {
            (Ok(u), Ok(c)) => (Some(u.clone()), None, c),
            // Enabled, so the boot report names the bad entry.
            (Ok(_), Err(e)) => (None, Some(e), ServiceConfig::default_enabled()),
            (Err(e), c) => (
                None,
                Some(e.clone()),
                c.unwrap_or_else(|_| ServiceConfig::default_enabled()),
            ),
        };
        Definition {
            source,
            unit,
            load_error,
            config,
            file,
        }
    }

    /// The same unit file with another `services.config` entry (or the entry's error).
    pub fn with_config(&self, config: Result<ServiceConfig, String>) -> Definition {
        Definition::new(self.source.clone(), self.file.clone(), config)
    }

    /// Whether a run of `self` and a run of `other` would differ: the program, its
    /// environment, directory and type, and `args`/`kwargs`. Description, priority,
    /// dependencies, timeouts and `enabled` do not matter to a running process.
    pub fn runs_like(&self, other: &Definition) -> bool {
        fn run(d: &Definition) -> Option<RunKey<'_>> {
            d.unit
                .as_ref()
                .map(|u| (&u.run, &u.env, &u.workdir, u.kind, &u.schedule, u.watchdog))
        }
        run(self) == run(other)
            && self.load_error.is_some() == other.load_error.is_some()
            && self.config.args == other.config.args
            && self.config.kwargs == other.config.kwargs
    }

    /// What the planner needs to know of unit `name` with this definition.
    pub fn node(&self, name: &str, ready: bool) -> Node {
        let u = self.unit.as_ref();
        Node {
            name: name.to_string(),
            core: self.kind() == Some(UnitType::Core),
            priority: u.map_or(0, |u| u.priority),
            requires: u.map(|u| u.requires.clone()).unwrap_or_default(),
            after: u.map(|u| u.after.clone()).unwrap_or_default(),
            wants: u.map(|u| u.wants.clone()).unwrap_or_default(),
            broken: self.load_error.clone(),
            ready,
            enabled: self.config.enabled && !self.config.masked,
        }
    }

    /// The unit's type, when it loaded.
    pub fn kind(&self) -> Option<UnitType> {
        self.unit.as_ref().map(|u| u.kind)
    }
}

/// What of a unit a running process depends on.
type RunKey<'a> = (
    &'a Run,
    &'a BTreeMap<String, String>,
    &'a Option<PathBuf>,
    UnitType,
    &'a Option<unit_file::Schedule>,
    Option<Duration>,
);

/// A unit as the driver keeps it (its slot in the unit table): its name and what the driver
/// publishes of it.
pub struct Unit {
    /// Unit name.
    pub name: String,
    pub(super) id: UnitId,
    pub(super) live: watch::Sender<Live>,
    /// The delegated cgroup its processes go into, if the daemon has one.
    pub(super) cgroups: Option<Arc<Cgroups>>,
}

impl Unit {
    /// Reads its published state.
    pub(super) fn read<T>(&self, f: impl FnOnce(&Live) -> T) -> T {
        f(&self.live.borrow())
    }

    /// A copy of its published state.
    pub(super) fn live(&self) -> Live {
        self.live.borrow().clone()
    }

    /// Changes its state and tells whoever watches it (plans, its scheduler, waiting
    /// clients). The driver's only.
    pub(super) fn write<T>(&self, f: impl FnOnce(&mut Live) -> T) -> T {
        let mut out = None;
        self.live.send_modify(|l| out = Some(f(l)));
        out.expect("send_modify runs its closure")
    }

    /// Changes what no watcher waits for (the time of its next scheduled run), without waking
    /// them. The driver's only.
    pub(super) fn write_quietly(&self, f: impl FnOnce(&mut Live)) {
        self.live.send_if_modified(|l| {
            f(l);
            false
        });
    }

    /// The processes of the run tagged `tag`: those that carry the tag, and every process in
    /// its cgroup.
    pub(super) fn run_pids(&self, tag: &str) -> Vec<u32> {
        let mut pids = process::invocation_pids(tag);
        if let Some(cg) = &self.cgroups {
            pids.extend(cg.pids(&self.name));
            pids.sort_unstable();
            pids.dedup();
        }
        pids
    }

    /// Sends `sig` to the run tagged `tag` (and to process group `group`): what carries the
    /// tag, and its cgroup, which SIGKILL empties by `cgroup.kill`.
    pub(super) fn signal_run(&self, group: Option<u32>, tag: &str, sig: Signal) {
        if !tag.is_empty() {
            process::signal_invocation(group, tag, sig);
        }
        match &self.cgroups {
            Some(cg) if sig == Signal::SIGKILL => cg.kill(&self.name),
            Some(cg) => cg.signal(&self.name, sig),
            None => {}
        }
    }

    /// Current state.
    pub fn state(&self) -> UnitState {
        self.read(|l| l.life.state)
    }

    /// Its current definition.
    pub fn def(&self) -> Arc<Definition> {
        self.read(|l| l.def.clone())
    }

    /// The definition its current or last run was started with.
    pub fn ran_with(&self) -> Option<Arc<Definition>> {
        self.read(|l| l.ran_with.clone())
    }

    /// Whether units that require this one may start: a oneshot once it exited 0, any other
    /// unit while its process runs.
    pub fn is_ready(&self) -> bool {
        self.read(|l| {
            let oneshot = l.def.kind() == Some(UnitType::Oneshot);
            match l.life.state {
                UnitState::Running => !oneshot,
                UnitState::Done => oneshot,
                _ => false,
            }
        })
    }

    /// Whether it still waits to be started by a plan.
    pub fn is_waiting(&self) -> bool {
        self.state() == UnitState::Waiting
    }

    /// Whether run number `run` is the current one and its process is alive.
    pub fn is_run(&self, run: u32) -> bool {
        self.read(|l| l.life.starts == run && l.alive_pid().is_some())
    }

    /// The last watchdog ping of run `run`, while it is the current one.
    pub fn last_ping(&self, run: u32) -> Option<Instant> {
        self.read(|l| {
            (l.life.starts == run && l.pid.is_some())
                .then_some(l.last_ping)
                .flatten()
        })
    }

    /// The signal a stop sends first and how long it then waits before SIGKILL.
    pub fn stop_settings(&self) -> (Signal, Duration) {
        self.def()
            .unit
            .as_ref()
            .map_or((Signal::SIGTERM, unit_file::DEFAULT_STOP_TIMEOUT), |u| {
                (u.stop_signal, u.stop_timeout)
            })
    }

    /// How many pending starts a stop has cancelled: a plan compares it before it starts.
    pub fn cancels(&self) -> u64 {
        self.read(|l| l.life.cancels)
    }

    /// Waits until `done(state)` holds, or `limit` passes; returns whether it held.
    pub async fn wait_for(&self, limit: Duration, done: impl Fn(UnitState) -> bool) -> bool {
        let mut rx = self.live.subscribe();
        let wait = async {
            loop {
                if done(self.state()) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok() && done(self.state())
    }

    /// The wire form of this unit's state (its journal lines are attached by
    /// [`super::Supervisor::attach_journal`]).
    pub fn status(&self, host: &str) -> UnitStatus {
        let live = self.live();
        let current = live.def.clone();
        // While it runs, show what it runs with; otherwise what it would start with.
        let def = match (&live.ran_with, live.pid) {
            (Some(d), Some(_)) => d.clone(),
            _ => current.clone(),
        };
        // As the file wrote them: a value from `.env` is shown as `${VAR}`.
        let written = def.config.as_written();
        let argv = match def.unit.as_ref().map(|u| &u.run) {
            Some(Run::Exec(exec)) => process::argv(exec, &written),
            _ => Vec::new(),
        };
        let alive = live.pid.filter(|_| !live.main_exited);
        let (mut memory_bytes, mut cpu_us) = match alive.and_then(process::stats) {
            Some((m, c)) => (Some(m), Some(c)),
            None => (None, None),
        };
        // Where it has a cgroup, its use is all of its processes'.
        let mut tasks = None;
        if let Some(cg) = &self.cgroups {
            let (m, c) = cg.stats(&self.name);
            memory_bytes = m.or(memory_bytes);
            cpu_us = c.or(cpu_us);
            tasks = Some(cg.pids(&self.name).len() as u32);
        }
        let u = def.unit.as_ref();
        let kind = u.map(|u| u.kind).unwrap_or_default();
        let stats = live.stats.lock().unwrap_or_else(|e| e.into_inner()).clone();
        UnitStatus {
            description: u.map(|u| u.description.clone()).unwrap_or_default(),
            version: u.map(|u| u.version.clone()).unwrap_or_default(),
            docs: u.map(|u| u.docs.clone()).unwrap_or_default(),
            enabled: current.config.enabled,
            masked: current.config.masked,
            stop_timeout_us: u.map(|u| u.stop_timeout.as_micros() as u64),
            requires: u.map(|u| u.requires.clone()).unwrap_or_default(),
            after: u.map(|u| u.after.clone()).unwrap_or_default(),
            load_error: current.load_error.clone(),
            pid: live.pid,
            memory_bytes,
            cpu_us,
            status_text: live.status_text.clone(),
            health: live.health.clone(),
            stats,
            schedule: current
                .unit
                .as_ref()
                .and_then(|u| u.schedule.as_ref())
                .map(|sc| asyncmd_proto::unit::ScheduleStatus {
                    spec: asyncmd_core::schedule::describe(&sc.spec),
                    last_us: live.schedule_last_us,
                    next_us: live.schedule_next_us,
                }),
            argv,
            args: written.args.clone(),
            kwargs: crate::builtins::shown_kwargs(&written.kwargs),
            loop_info: live.counters.as_ref().map(|c| c.loop_info()),
            cgroup: (self.cgroups.as_ref()).map(|cg| cg.dir(&self.name).display().to_string()),
            tasks,
            task_result: live.life.value.clone(),
            ..status::of(&self.name, &def.source, kind, &live.life, host)
        }
    }

    /// The row of this unit in `asyncmctl list`.
    pub fn summary(&self) -> UnitSummary {
        self.read(|l| {
            let u = l.def.unit.as_ref();
            let description = u.map_or("", |u| u.description.as_str());
            UnitSummary {
                masked: l.def.config.masked,
                requires: u.map(|u| u.requires.clone()).unwrap_or_default(),
                after: u.map(|u| u.after.clone()).unwrap_or_default(),
                ..status::summary(
                    &self.name,
                    u.map(|u| u.kind).unwrap_or_default(),
                    l.def.config.enabled,
                    u.is_some(),
                    &l.life,
                    description,
                )
            }
        })
    }

    /// What the planner needs to know of it.
    pub fn node(&self) -> Node {
        self.def().node(&self.name, self.is_ready())
    }
}

/// Reads every unit file of `dir`, each with its entry of `config`, in name order.
pub fn read_dir(dir: &Path, config: &ServicesConfig) -> std::io::Result<Vec<(String, Definition)>> {
    Ok(unit_file::files_in(dir)?
        .iter()
        .map(|p| Definition::read(p, config))
        .collect())
}

/// Where a daemon's units and their configuration live.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The units directory.
    pub units: PathBuf,
    /// `services.config`.
    pub config: PathBuf,
}

/// Whether process `pid` belongs to the current run of `live`: it carries the run's tag, or it
/// was started (directly or further down) by the run's spawned process or by a process that
/// carries the tag, and has shed its environment since (`env -i`, an `execve` with its own).
pub(super) fn of_run(pid: u32, live: &Live) -> bool {
    let Some(tag) = live.invocation.as_deref() else {
        return false;
    };
    let mut p = pid;
    // A bounded walk up the parents: the run's processes are its spawned process's
    // descendants, or orphans that kept the tag.
    for _ in 0..64 {
        if p <= 1 || p == std::process::id() {
            return false;
        }
        if (!live.main_exited && live.pid == Some(p))
            || process::invocation_of(p).as_deref() == Some(tag)
        {
            return true;
        }
        match process::parent_of(p) {
            Some(parent) => p = parent,
            None => return false,
        }
    }
    false
}
