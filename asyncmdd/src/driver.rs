//! The driver: the host side of the core's run lifecycle. It holds the loaded units and their
//! live state, feeds each unit's [`Life`] what happened (a spawn, an exit, a `READY=1`, a
//! watchdog's or health check's verdict, a stop) and carries out what the step asks for
//! (journal lines, a stop signal, a restart timer). It is where a unit's runs are spawned: its
//! process and the monitor that reaps it, the capture of its output, its watchdog and health
//! check, its restart timer, its scheduler, a builtin service's task. The modules below it
//! (process, sd_notify, health, capture, schedule, unit_file, services_config, control_socket,
//! task_runtime, builtins) do not know it: they get closures or traits.
//!
//! Each unit has a [`Slot`]: what was loaded (or why it was not), its `services.config` entry,
//! and its live state. Starts and stops of one unit are serialised by a per-unit lock. A unit's
//! status is the core's [`status::of`] over its lifecycle, with what only the host knows.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use asyncmd_proto::unit::UnitSummary;
use asyncmd_proto::{Entry, ExitResult, Level, UnitState, UnitStatus, UnitType};
use nix::sys::signal::Signal;
use tokio::sync::watch;

use crate::capture::capture;
use crate::cgroup::Cgroups;
use crate::clock::HostClock;
use crate::health;
use crate::journal::{records, Journal, Line, UnitId};
use crate::process;
use crate::schedule::{self, Scheduled};
use crate::services_config::{ServiceConfig, ServicesConfig};
use crate::unit_file::{self, Run, Unit};
use asyncmd_core::control::Unsupported;
use asyncmd_core::lifecycle::{Effect, End, Event, Life, TRACEBACK_LINES};
use asyncmd_core::plan::Node;
use asyncmd_core::status;
use asyncmd_core::table::Table;

/// How long a finished process's output may keep draining before its end is recorded.
const DRAIN_GRACE: Duration = Duration::from_secs(1);
/// How long a spawn that fails for want of file descriptors is tried again.
const SPAWN_RETRY: Duration = Duration::from_secs(10);
/// How many units may be starting at once, unless `asyncmdd --spawn-limit` says otherwise.
pub const DEFAULT_SPAWN_LIMIT: u32 = 64;
/// How long after SIGKILL a process group may take to go.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// Live state of a unit: its lifecycle, and what of the current run only the host knows.
#[derive(Debug, Default)]
struct Live {
    life: Life,
    /// The process of the current run (None: a builtin service, or no run).
    pid: Option<u32>,
    /// The definition the current or last run was started with.
    ran_with: Option<Arc<Def>>,
    /// The `ASYNCMD_INVOCATION` tag of the current or last run.
    invocation: Option<String>,
    status_text: Option<String>,
    health: Option<String>,
    /// The last `WATCHDOG=1` (or the start) of the current run.
    last_ping: Option<Instant>,
    /// `MAINPID=` as the service told it.
    main_pid: Option<u32>,
    /// The main process has been reaped (its PID may be reused): signal it no more.
    main_exited: bool,
    /// What the last run left behind is being stopped (see `clean_up`).
    cleaning: bool,
    /// Stats a builtin service published.
    stats: serde_json::Map<String, serde_json::Value>,
    /// When the last scheduled run was due, and the next one is.
    schedule_last_us: Option<i64>,
    schedule_next_us: Option<i64>,
    /// Asks a running builtin service to stop; aborts it when it does not.
    builtin: Option<(watch::Sender<bool>, tokio::task::AbortHandle)>,
    /// A builtin's polls and their time.
    counters: Option<Arc<crate::task_runtime::Counters>>,
}

impl Live {
    /// Steps the lifecycle; a run that began gets a fresh host part, one that ended loses
    /// its process.
    fn step(&mut self, event: Event) -> Vec<Effect> {
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
}

/// Which of the tasks that handle a unit a panic happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    /// What reaps its process or awaits its builtin, and records the run's end.
    Monitor,
    /// What reads its output into the journal.
    Capture,
    /// What checks its `WATCHDOG=1` pings.
    Watchdog,
    /// What runs its health check.
    Health,
    /// What waits for `READY=1` past the start timeout.
    Readiness,
    /// What starts it again after a failure.
    Restart,
    /// What starts it by its schedule.
    Scheduler,
}

impl Handler {
    fn name(self) -> &'static str {
        match self {
            Handler::Monitor => "its monitor",
            Handler::Capture => "its output capture",
            Handler::Watchdog => "its watchdog",
            Handler::Health => "its health check",
            Handler::Readiness => "its start timeout",
            Handler::Restart => "its restart timer",
            Handler::Scheduler => "its scheduler",
        }
    }
}

/// Who sent an sd_notify datagram.
enum Sender {
    /// A process of this unit's current run.
    Unit(Arc<Slot>),
    /// A process of no unit.
    Nobody,
    /// A process whose run tag is no current run's.
    WrongTag,
}

/// What a unit is: its file and its `services.config` entry. Replaced as a whole, never
/// edited, so a run always sees one consistent definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Def {
    /// The file it was loaded from, as given.
    pub source: String,
    /// The parsed unit, when it loaded.
    pub unit: Option<Unit>,
    /// Why it did not load (its file or its `services.config` entry is bad).
    pub load_error: Option<String>,
    /// Its `services.config` entry.
    pub config: ServiceConfig,
    /// The unit file as parsed, kept so a fixed `services.config` entry can be taken alone.
    file: Result<Unit, String>,
}

impl Def {
    /// Reads the unit file `path` and takes its entry of `config`.
    pub fn read(path: &Path, config: &ServicesConfig) -> (String, Def) {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = unit_file::load(path).map_err(|e| e.to_string());
        let def = Def::new(path.display().to_string(), file, config.get(&name));
        (name, def)
    }

    /// A definition from the unit file `source` as parsed (or why not) and its
    /// `services.config` entry (or why that is invalid).
    pub fn new(
        source: String,
        file: Result<Unit, String>,
        config: Result<ServiceConfig, String>,
    ) -> Def {
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
        Def {
            source,
            unit,
            load_error,
            config,
            file,
        }
    }

    /// The same unit file with another `services.config` entry (or the entry's error).
    pub fn with_config(&self, config: Result<ServiceConfig, String>) -> Def {
        Def::new(self.source.clone(), self.file.clone(), config)
    }

    /// Whether a run of `self` and a run of `other` would differ: the program, its
    /// environment, directory and type, and `args`/`kwargs`. Description, priority,
    /// dependencies, timeouts and `enabled` do not matter to a running process.
    pub fn runs_like(&self, other: &Def) -> bool {
        fn run(d: &Def) -> Option<RunKey<'_>> {
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
            broken: self.load_error.clone(),
            ready,
            enabled: self.config.enabled,
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

/// One unit known to the supervisor.
pub struct Slot {
    /// Unit name.
    pub name: String,
    def: Mutex<Arc<Def>>,
    /// Set once it is being unloaded: it never starts again.
    retired: std::sync::atomic::AtomicBool,
    id: UnitId,
    live: Mutex<Live>,
    changed: watch::Sender<u64>,
    op: tokio::sync::Mutex<()>,
    /// The delegated cgroup its processes go into, if the daemon has one.
    cgroups: Option<Arc<Cgroups>>,
}

impl Slot {
    fn live(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells whoever watches this unit (plans, its scheduler, waiting clients) it changed.
    fn changed(&self) {
        self.changed.send_modify(|g| *g += 1);
    }

    /// The processes of the run tagged `tag`: those that carry the tag, and every process in
    /// its cgroup.
    fn run_pids(&self, tag: &str) -> Vec<u32> {
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
    fn signal_run(&self, group: Option<u32>, tag: &str, sig: Signal) {
        if !tag.is_empty() {
            process::signal_invocation(group, tag, sig);
        }
        match &self.cgroups {
            Some(cg) if sig == Signal::SIGKILL => cg.kill(&self.name),
            Some(cg) => cg.signal(&self.name, sig),
            None => {}
        }
    }

    /// Applies `event` to its lifecycle; returns the effects, journal lines included.
    fn apply(&self, event: Event) -> Vec<Effect> {
        let fx = self.live().step(event);
        self.changed();
        fx
    }

    /// Current state.
    pub fn state(&self) -> UnitState {
        self.live().life.state
    }

    /// Its current definition.
    pub fn def(&self) -> Arc<Def> {
        self.def.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces its definition; a running process keeps the one it was started with.
    pub fn set_def(&self, def: Def) {
        *self.def.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(def);
        self.changed();
    }

    /// The definition its current or last run was started with.
    pub fn ran_with(&self) -> Option<Arc<Def>> {
        self.live().ran_with.clone()
    }

    /// Whether units that require this one may start: a oneshot once it exited 0, any other
    /// unit while its process runs.
    pub fn is_ready(&self) -> bool {
        let oneshot = self.def().kind() == Some(UnitType::Oneshot);
        match self.state() {
            UnitState::Running => !oneshot,
            UnitState::Done => oneshot,
            _ => false,
        }
    }

    /// Marks it as waiting for `deps` (or, with none left, no longer waiting).
    pub fn set_waiting(&self, deps: Vec<String>) {
        self.apply(Event::Wait(deps));
    }

    /// Whether it still waits to be started by a plan.
    pub fn is_waiting(&self) -> bool {
        self.state() == UnitState::Waiting
    }

    /// Forgets its restart history and gives up on a pending automatic restart: a person
    /// started it (or reset it), so the start limit counts from zero again.
    pub fn reset_restarts(&self) {
        self.live().step(Event::Manual);
    }

    /// `asyncmctl reset-failed`: forgets the restart history and turns `failed` into
    /// `inactive`; returns whether it was failed.
    pub fn reset_failed(&self) -> bool {
        let was = self.state() == UnitState::Failed;
        self.apply(Event::ResetFailed);
        was
    }

    /// Whether run number `run` is the current one and its process is alive.
    pub fn is_run(&self, run: u32) -> bool {
        let live = self.live();
        live.life.starts == run && live.pid.is_some() && !live.main_exited
    }

    /// The last watchdog ping of run `run`, while it is the current one.
    pub fn last_ping(&self, run: u32) -> Option<Instant> {
        let live = self.live();
        (live.life.starts == run && live.pid.is_some())
            .then_some(live.last_ping)
            .flatten()
    }

    /// A receiver that sees every change of this unit (state or definition).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
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

    /// Publishes a builtin service's stats.
    pub fn set_stats(&self, stats: serde_json::Map<String, serde_json::Value>) {
        self.live().stats = stats;
        self.changed();
    }

    /// Records the last health check's result.
    pub fn set_health(&self, text: String) {
        self.live().health = Some(text);
        self.changed();
    }

    /// How many pending starts a stop has cancelled: a plan compares it before it starts.
    pub fn cancels(&self) -> u64 {
        self.live().life.cancels
    }

    /// Waits until `done(state)` holds, or `limit` passes; returns whether it held.
    async fn wait_for(&self, limit: Duration, done: impl Fn(UnitState) -> bool) -> bool {
        let mut rx = self.changed.subscribe();
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
    /// [`Supervisor::attach_journal`]).
    pub fn status(&self, host: &str) -> UnitStatus {
        let current = self.def();
        let live = self.live();
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
        UnitStatus {
            description: u.map(|u| u.description.clone()).unwrap_or_default(),
            version: u.map(|u| u.version.clone()).unwrap_or_default(),
            docs: u.map(|u| u.docs.clone()).unwrap_or_default(),
            enabled: current.config.enabled,
            load_error: current.load_error.clone(),
            pid: live.pid,
            memory_bytes,
            cpu_us,
            status_text: live.status_text.clone(),
            health: live.health.clone(),
            stats: live.stats.clone(),
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
            ..status::of(&self.name, &def.source, kind, &live.life, host)
        }
    }

    /// The row of this unit in `asyncmctl list`.
    pub fn summary(&self) -> UnitSummary {
        let def = self.def();
        let description = def.unit.as_ref().map_or("", |u| u.description.as_str());
        let loaded = def.unit.is_some();
        status::summary(
            &self.name,
            def.config.enabled,
            loaded,
            &self.live().life,
            description,
        )
    }

    /// What the planner needs to know of it.
    pub fn node(&self) -> Node {
        self.def().node(&self.name, self.is_ready())
    }
}

/// Reads every unit file of `dir`, each with its entry of `config`, in name order.
pub fn read_dir(dir: &Path, config: &ServicesConfig) -> std::io::Result<Vec<(String, Def)>> {
    Ok(unit_file::files_in(dir)?
        .iter()
        .map(|p| Def::read(p, config))
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

/// The units of a daemon and their processes.
pub struct Supervisor {
    journal: Arc<Journal>,
    units: RwLock<Table<Arc<Slot>>>,
    /// None for a runtime of in-process tasks only.
    paths: Option<Paths>,
    notify_socket: Mutex<Option<PathBuf>>,
    /// Set once the daemon shuts down: nothing starts any more.
    shutting_down: std::sync::atomic::AtomicBool,
    tasks: Arc<crate::task_runtime::Registry>,
    /// The boards reached through `[agent]` units.
    boards: Arc<crate::boards::Boards>,
    debug: std::sync::atomic::AtomicBool,
    /// Held by whatever changes the set of units or `services.config`, one at a time.
    pub changes: tokio::sync::Mutex<()>,
    /// Its request handling, which a builtin that is a transport (MQTT) is given.
    answer: std::sync::OnceLock<crate::answer::Answer>,
    /// sd_notify datagrams ignored because their sender's run tag is no current run's.
    forged_notify: std::sync::atomic::AtomicU64,
    /// A permit per unit being started, from its spawn until it runs.
    starting: tokio::sync::Semaphore,
    /// The delegated cgroup units' processes go into, if there is one.
    cgroups: std::sync::OnceLock<Arc<Cgroups>>,
}

impl Supervisor {
    /// An empty supervisor for the units of `paths`, logging into `journal`, starting at most
    /// `spawn_limit` units at once.
    pub fn new(journal: Arc<Journal>, paths: Paths, spawn_limit: usize) -> Arc<Supervisor> {
        Supervisor::build(journal, Some(paths), spawn_limit)
    }

    /// A runtime of in-process tasks only, logging into `journal`: no units directory and no
    /// `services.config`, so what needs them (reload, load) is answered as unsupported.
    pub fn tasks_only(journal: Arc<Journal>) -> Arc<Supervisor> {
        Supervisor::build(journal, None, DEFAULT_SPAWN_LIMIT as usize)
    }

    fn build(journal: Arc<Journal>, paths: Option<Paths>, spawn_limit: usize) -> Arc<Supervisor> {
        Arc::new(Supervisor {
            journal: journal.clone(),
            units: RwLock::new(Table::new()),
            paths,
            notify_socket: Mutex::new(None),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            tasks: crate::task_runtime::Registry::new(journal.clone()),
            boards: Arc::default(),
            debug: std::sync::atomic::AtomicBool::new(false),
            changes: tokio::sync::Mutex::new(()),
            answer: std::sync::OnceLock::new(),
            forged_notify: std::sync::atomic::AtomicU64::new(0),
            starting: tokio::sync::Semaphore::new(spawn_limit.max(1)),
            cgroups: std::sync::OnceLock::new(),
        })
    }

    /// Where its units and their configuration live; an error saying so for a runtime of
    /// tasks only.
    pub fn paths(&self) -> Result<&Paths, Unsupported> {
        self.paths.as_ref().ok_or_else(|| {
            Unsupported(
                "unsupported: this runtime serves in-process tasks only; it has no units \
                 directory and no services.config"
                    .into(),
            )
        })
    }

    /// The boards its `[agent]` units reach, whose tasks requests serve beside its own.
    pub fn boards(&self) -> &Arc<crate::boards::Boards> {
        &self.boards
    }

    /// Its registry of in-process tasks, which the control socket serves beside the units.
    pub fn tasks(&self) -> &Arc<crate::task_runtime::Registry> {
        &self.tasks
    }

    /// From now on nothing starts: the daemon is shutting down.
    pub fn shut_down(&self) {
        self.shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The sd_notify socket given to services as `NOTIFY_SOCKET`, once it is bound.
    pub fn notify_socket(&self) -> Option<PathBuf> {
        self.notify_socket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets the sd_notify socket path services are given.
    pub fn set_notify_socket(&self, path: PathBuf) {
        *self.notify_socket.lock().unwrap_or_else(|e| e.into_inner()) = Some(path);
    }

    /// Puts the processes of units added from now on in cgroups under `cgroups` (once).
    pub fn set_cgroups(&self, cgroups: Cgroups) {
        let _ = self.cgroups.set(Arc::new(cgroups));
    }

    /// Sets the request handling builtins that carry requests are given (once).
    pub fn set_answer(&self, answer: crate::answer::Answer) {
        let _ = self.answer.set(answer);
    }

    /// The journal units log into.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// Whether `slot` is still the loaded unit of its name (not unloaded, nor replaced).
    pub fn is_loaded(&self, slot: &Arc<Slot>) -> bool {
        !slot.retired.load(std::sync::atomic::Ordering::SeqCst)
            && self.get(&slot.name).is_some_and(|s| Arc::ptr_eq(&s, slot))
    }

    /// Adds the unit `name`, replacing any unit of that name.
    pub fn add(self: &Arc<Self>, name: String, def: Def) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            id: self.journal.unit_id(&name),
            name: name.clone(),
            def: Mutex::new(Arc::new(def)),
            retired: std::sync::atomic::AtomicBool::new(false),
            live: Mutex::new(Live::default()),
            changed: watch::channel(0).0,
            op: tokio::sync::Mutex::new(()),
            cgroups: self.cgroups.get().cloned(),
        });
        self.units
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, slot.clone());
        // Every unit has a scheduler; it sleeps until the unit has a [schedule].
        if tokio::runtime::Handle::try_current().is_ok() {
            let me = OnSchedule {
                sup: self.clone(),
                slot: slot.clone(),
            };
            self.spawn_for(
                &slot,
                Handler::Scheduler,
                schedule::run(me, slot.subscribe()),
            );
        }
        slot
    }

    /// Stops `slot` for good and forgets it. No start can slip in between: it is marked
    /// retired under its operation lock before the stop.
    pub async fn unload(&self, slot: &Arc<Slot>) -> Result<(), String> {
        {
            let _op = slot.op.lock().await;
            slot.retired
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        if let Err(e) = self.stop(slot).await {
            slot.retired
                .store(false, std::sync::atomic::Ordering::SeqCst);
            return Err(e);
        }
        {
            let mut units = self.units.write().unwrap_or_else(|e| e.into_inner());
            if units.get(&slot.name).is_some_and(|s| Arc::ptr_eq(s, slot)) {
                units.remove(&slot.name);
            }
        }
        if let Some(cg) = &slot.cgroups {
            cg.remove(&slot.name);
        }
        // Wakes its scheduler, which sees the unit is gone and ends.
        slot.changed();
        Ok(())
    }

    /// Whether `name` starts by its schedule rather than at boot or reload.
    pub fn scheduled(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|s| s.def().unit.as_ref().is_some_and(|u| u.schedule.is_some()))
    }

    /// What the planner needs to know of every unit.
    pub fn nodes(&self) -> Vec<Node> {
        self.all().iter().map(|s| s.node()).collect()
    }

    /// The units as the planner would see them before any started: every edge kept, which
    /// is what a shutdown orders its stops by.
    pub fn nodes_unready(&self) -> Vec<Node> {
        self.all()
            .iter()
            .map(|s| s.def().node(&s.name, false))
            .collect()
    }

    /// The unit named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Slot>> {
        self.units
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// All units, in name order.
    pub fn all(&self) -> Vec<Arc<Slot>> {
        self.units
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .rows()
            .cloned()
            .collect()
    }

    /// The units matching `patterns` (all when empty), and the patterns that matched none.
    pub fn select(&self, patterns: &[String]) -> Result<(Vec<Arc<Slot>>, Vec<String>), String> {
        let units = self.units.read().unwrap_or_else(|e| e.into_inner());
        let (hits, missing) = units.select(patterns)?;
        Ok((hits.into_iter().cloned().collect(), missing))
    }

    /// Fills the `journal` of each status with its newest `lines` entries, in one pass over
    /// the ring, taken in slices with a yield between them: a large journal never holds up
    /// another peer's request for more than a slice.
    pub async fn attach_journal(&self, statuses: &mut [UnitStatus], lines: usize) {
        if lines == 0 || statuses.is_empty() {
            return;
        }
        let wanted: HashMap<UnitId, usize> = statuses
            .iter()
            .enumerate()
            .map(|(i, s)| (self.journal.unit_id(&s.name), i))
            .collect();
        let mut per_unit: HashMap<usize, VecDeque<Entry>> = HashMap::new();
        let mut copy = Vec::new();
        // What was there when the request came; later entries are not waited for.
        let (mut cursor, end) = self.journal.with_ring(|r| (r.oldest(), r.newest().seq()));
        while cursor.seq() < end {
            copy.clear();
            let got = self.journal.with_ring(|r| {
                r.read_until(&mut cursor, &mut copy, crate::journal::SCAN_SLICE, end)
            });
            for rec in records(&copy) {
                if let Some(&i) = wanted.get(&rec.unit) {
                    let q = per_unit.entry(i).or_default();
                    if q.len() == lines {
                        q.pop_front();
                    }
                    q.push_back(rec.to_entry(&statuses[i].name));
                }
            }
            if got.copied == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        for (i, q) in per_unit {
            statuses[i].journal = Vec::from(q);
        }
    }

    /// Whether status answers should show every unit in full (`asyncmctl debug on`).
    pub fn debug(&self) -> bool {
        self.debug.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Turns debug mode on or off.
    pub fn set_debug(&self, on: bool) {
        self.debug.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Spawns `fut`, one of the tasks that handle `slot`: a panic in it is a fault of the unit
    /// ([`Supervisor::fault`]), never a task that silently vanished and left a state no one
    /// keeps.
    fn spawn_for<F>(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        handler: Handler,
        fut: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (sup, s) = (self.clone(), slot.clone());
        let counters = Arc::new(crate::task_runtime::Counters::default());
        tokio::spawn(async move {
            if let Err(e) = crate::task_runtime::traced(fut, counters).await {
                sup.fault(&s, handler, e);
            }
        })
    }

    /// A panic in `handler` of `slot`: the unit is marked failed with the panic and where it
    /// happened. A run still going is killed (a run no task watches any more is not left
    /// running); when the monitor was the one that died, its end is recorded here.
    fn fault(&self, slot: &Arc<Slot>, handler: Handler, e: crate::task_runtime::TaskError) {
        let why = format!("internal error: {} {}", handler.name(), e.chain.join(" "));
        let (kill, fx) = {
            let mut live = slot.live();
            if live.life.running {
                let run = live.life.starts;
                let kill = (
                    live.pid.filter(|_| !live.main_exited),
                    live.invocation.clone().unwrap_or_default(),
                    live.builtin.take(),
                );
                let mut fx = live.step(Event::Condemn {
                    run,
                    why: why.clone(),
                });
                if handler == Handler::Monitor {
                    fx.extend(live.step(Event::Ended {
                        run,
                        end: End::Lost(why.clone()),
                        restart: None,
                    }));
                }
                (Some(kill), fx)
            } else {
                (None, live.step(Event::StartFailed(why.clone())))
            }
        };
        slot.changed();
        self.log(slot, Level::Error, &why);
        self.carry_out(slot, fx);
        if let Some((pid, tag, builtin)) = kill {
            slot.signal_run(pid, &tag, Signal::SIGKILL);
            if let Some((_, abort)) = builtin {
                abort.abort();
            }
        }
    }

    fn log(&self, slot: &Slot, level: Level, msg: &str) {
        self.journal.log(slot.id, level, msg);
    }

    /// Starts `slot`. Returns once the process is spawned (for a oneshot unit: once it ended);
    /// an error says why it could not start or, for a oneshot, how it failed.
    pub async fn start(self: &Arc<Self>, slot: &Arc<Slot>) -> Result<(), String> {
        self.start_inner(slot, None).await
    }

    /// Starts `slot`; with `due`, only if the automatic restart of that generation is still
    /// pending once the unit's operation lock is held (a stop or start may have come first).
    async fn start_inner(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        due: Option<u64>,
    ) -> Result<(), String> {
        let op = slot.op.lock().await;
        if let Some(gen) = due {
            if !slot.live().life.restart_due(gen) {
                return Ok(());
            }
        }
        if slot.retired.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("unloaded".into());
        }
        if self.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("asyncmdd is shutting down".into());
        }
        if slot.state() == UnitState::Stopping {
            return Err("it is still stopping; try again once it has stopped".into());
        }
        let def = slot.def();
        let Some(unit) = def.unit.as_ref() else {
            return Err(format!(
                "not loaded: {}",
                def.load_error.as_deref().unwrap_or("unknown error")
            ));
        };
        if matches!(slot.state(), UnitState::Running | UnitState::Starting) {
            drop(op);
            // Whoever started it waits for the oneshot to end, or the notify unit to be
            // ready; so does this caller.
            if unit.kind == UnitType::Oneshot {
                return self.oneshot_outcome(slot).await;
            }
            if unit.kind == UnitType::Notify {
                let run = slot.live().life.starts;
                return self.readiness(slot, run, unit.start_timeout).await;
            }
            return Ok(());
        }
        let exec = match &unit.run {
            Run::Exec(exec) => exec,
            Run::Builtin(_) | Run::Agent(_) => {
                let r = self.start_builtin(slot, &def, &unit.run);
                drop(op);
                if r.is_ok() && unit.kind == UnitType::Oneshot {
                    return self.oneshot_outcome(slot).await;
                }
                return r;
            }
        };
        // Its turn among the units being started; held until it runs (below), so a boot of
        // thousands of oneshots never has more than the limit in flight.
        let Ok(_starting) = self.starting.acquire().await else {
            return Err("asyncmdd is shutting down".into());
        };
        if self.shutting_down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("asyncmdd is shutting down".into());
        }
        let argv = process::argv(exec, &def.config);
        let tag = {
            let mut live = slot.live();
            live.step(Event::Spawning);
            live.ran_with = Some(def.clone());
            let run = live.life.starts + 1;
            let tag = process::new_tag(&slot.name, run);
            live.invocation = Some(tag.clone());
            tag
        };
        let extra = self.child_env(unit);
        let cgroup = match slot.cgroups.as_ref().map(|cg| cg.prepare(&slot.name)) {
            None => None,
            Some(Ok(procs)) => Some(procs),
            Some(Err(e)) => {
                let msg = format!(
                    "cannot make its cgroup {}: {e}",
                    slot.cgroups
                        .as_ref()
                        .map_or(PathBuf::new(), |cg| cg.dir(&slot.name))
                        .display()
                );
                self.fail_start(slot, &msg);
                return Err(msg);
            }
        };
        // Out of descriptors (EMFILE, ENFILE) is a moment's want: other runs end and give
        // theirs back. Try again for a while before calling it a failure.
        let mut spawned = process::spawn(unit, &argv, &def.config, &tag, &extra, cgroup.clone());
        let until = Instant::now() + SPAWN_RETRY;
        while let Err(e) = &spawned {
            let out_of_fds = matches!(
                e.raw_os_error(),
                Some(n) if n == nix::libc::EMFILE || n == nix::libc::ENFILE
            );
            if !out_of_fds || Instant::now() >= until {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            spawned = process::spawn(unit, &argv, &def.config, &tag, &extra, cgroup.clone());
        }
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                // The OS says ENOENT for a missing workdir as for a missing program.
                let msg = match unit.workdir.as_ref().map(|w| (w, std::fs::metadata(w))) {
                    Some((w, Err(we))) => {
                        format!("cannot run {}: workdir {}: {we}", argv[0], w.display())
                    }
                    Some((w, Ok(m))) if !m.is_dir() => {
                        format!(
                            "cannot run {}: workdir {} is not a directory",
                            argv[0],
                            w.display()
                        )
                    }
                    _ => format!("cannot run {}: {e}", argv[0]),
                };
                self.fail_start(slot, &msg);
                return Err(msg);
            }
        };
        let pid = child.id().unwrap_or(0);
        let notify = unit.kind == UnitType::Notify;
        let (run, fx) = {
            let mut live = slot.live();
            let fx = live.step(Event::Started {
                ready: !notify,
                what: Some(format!("pid {pid}")),
            });
            live.pid = Some(pid);
            live.counters = None;
            (live.life.starts, fx)
        };
        slot.changed();
        self.carry_out(slot, fx);

        let mut pipes = Vec::new();
        if let Some(out) = child.stdout.take() {
            let (j, id) = (self.journal.clone(), slot.id);
            let c = capture(out, j, id, Level::Info, |_| {});
            pipes.push(self.spawn_for(slot, Handler::Capture, c));
        }
        if let Some(err) = child.stderr.take() {
            let (j, id, s) = (self.journal.clone(), slot.id, slot.clone());
            let c = capture(
                err,
                j,
                id,
                Level::Error,
                move |lines: &mut dyn Iterator<Item = Line<'_>>| {
                    // Only the last lines of a batch matter: keep slices until it ends.
                    let mut last: VecDeque<&[u8]> = VecDeque::with_capacity(TRACEBACK_LINES);
                    for l in lines {
                        if last.len() == TRACEBACK_LINES {
                            last.pop_front();
                        }
                        last.push_back(l.msg);
                    }
                    let mut live = s.live();
                    for msg in last {
                        live.life
                            .push_traceback(crate::journal::text(msg).into_owned());
                    }
                },
            );
            pipes.push(self.spawn_for(slot, Handler::Capture, c));
        }
        let (sup, s) = (self.clone(), slot.clone());
        self.spawn_for(slot, Handler::Monitor, async move {
            let status = child.wait().await;
            s.live().main_exited = true;
            process::unregister(pid);
            // Whatever the run left behind (a double-forked daemon, a background job) goes
            // with it: no process of a unit outlives its main process.
            sup.clean_up(&s, &tag).await;
            // Let the pipes drain so the traceback is complete; a leftover grandchild holding
            // them open must not keep the unit "running".
            let _ = tokio::time::timeout(DRAIN_GRACE, async {
                for p in pipes {
                    let _ = p.await;
                }
            })
            .await;
            sup.finished(&s, run, status.map(process::exit_result));
        });
        if let Some(every) = unit.watchdog {
            let (sup, s) = (self.clone(), slot.clone());
            self.spawn_for(slot, Handler::Watchdog, async move {
                if let Some(why) = health::watchdog(|| s.last_ping(run), every).await {
                    sup.kill_run(&s, run, &why, Signal::SIGABRT).await;
                }
            });
        }
        if let Some(check) = &unit.health {
            let (sup, s, check) = (self.clone(), slot.clone(), check.clone());
            self.spawn_for(slot, Handler::Health, async move {
                let report = |text| s.set_health(text);
                if let Some(why) = health::health(&check, || s.is_run(run), report).await {
                    let sig = s.stop_settings().0;
                    sup.kill_run(&s, run, &why, sig).await;
                }
            });
        }
        drop(op);

        if unit.kind == UnitType::Oneshot {
            return self.oneshot_outcome(slot).await;
        }
        if notify {
            return self.readiness(slot, run, unit.start_timeout).await;
        }
        Ok(())
    }

    /// Starts builtin service `name` of `slot` as a task of the daemon.
    fn start_builtin(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        def: &Arc<Def>,
        run: &Run,
    ) -> Result<(), String> {
        // The bridge of an [agent] unit is a builtin of the daemon's own, named by no file.
        let (name, agent) = match run {
            Run::Agent(link) => ("agent", Some(link.clone())),
            Run::Builtin(b) => (b.as_str(), None),
            Run::Exec(_) => unreachable!("a process is not started as a builtin"),
        };
        if agent.is_none() && !crate::builtins::NAMES.contains(&name) {
            let msg = format!(
                "builtin service '{name}' does not exist in this version of asyncmdd (there is: {})",
                crate::builtins::NAMES.join(", ")
            );
            self.fail_start(slot, &msg);
            return Err(msg);
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let (me, sup) = (slot.clone(), Arc::downgrade(self));
        let ctx = crate::builtins::Context {
            name: slot.name.clone(),
            args: def.config.args.clone(),
            kwargs: def.config.kwargs.clone(),
            stop: stop_rx,
            journal: self.journal.clone(),
            id: slot.id,
            agent,
            boards: self.boards.clone(),
            answer: self.answer.get().cloned(),
            config: self.paths.as_ref().map(|p| p.config.clone()),
            stats: Arc::new(move |stats| me.set_stats(stats)),
            units: Box::new(move || {
                sup.upgrade()
                    .map(|s| s.all().iter().map(|u| u.status("")).collect())
                    .unwrap_or_default()
            }),
        };
        let owned = name.to_string();
        // Made traceable as tasks are: loop info, and a panic becomes an error with its place.
        let counters = Arc::new(crate::task_runtime::Counters::default());
        let inner = tokio::spawn(crate::task_runtime::traced(
            async move { crate::builtins::run(&owned, ctx).await },
            counters.clone(),
        ));
        let (run, fx) = {
            let mut live = slot.live();
            let fx = live.step(Event::Started {
                ready: true,
                what: Some(format!("builtin {name}")),
            });
            live.ran_with = Some(def.clone());
            live.stats.clear();
            live.counters = Some(counters);
            live.builtin = Some((stop_tx, inner.abort_handle()));
            (live.life.starts, fx)
        };
        slot.changed();
        self.carry_out(slot, fx);
        let (sup, s) = (self.clone(), slot.clone());
        self.spawn_for(slot, Handler::Monitor, async move {
            let outcome = match inner.await {
                Ok(Ok(r)) => r,
                Ok(Err(panic)) => Err(std::iter::once(panic.message)
                    .chain(panic.chain.into_iter().skip(1))
                    .collect::<Vec<_>>()
                    .join(" ")),
                Err(e) if e.is_cancelled() => {
                    Err("aborted: it did not stop within its stop timeout".into())
                }
                Err(e) => Err(format!("panicked: {e}")),
            };
            let code = i32::from(outcome.is_err());
            {
                let mut live = s.live();
                if live.life.starts == run {
                    if let Err(why) = outcome {
                        // Its error is the reason it failed; the Kill asked for is moot. A
                        // stopped run keeps the error too (an abort after its stop timeout).
                        if live.life.stop_requested() {
                            live.life.error = Some(why);
                        } else {
                            live.step(Event::Condemn { run, why });
                        }
                    }
                    live.builtin = None;
                }
            }
            sup.finished(&s, run, Ok(ExitResult::Exited { code }));
        });
        Ok(())
    }

    /// Waits for a `notify` unit's `READY=1`; kills it if none comes within `limit`.
    async fn readiness(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        run: u32,
        limit: Duration,
    ) -> Result<(), String> {
        slot.wait_for(limit, |st| st != UnitState::Starting).await;
        let state = slot.state();
        if state == UnitState::Starting && slot.is_run(run) {
            let why = format!("no READY=1 within {}", humantime::format_duration(limit));
            let sup = self.clone();
            let (s, w) = (slot.clone(), why.clone());
            let sig = slot.stop_settings().0;
            self.spawn_for(slot, Handler::Readiness, async move {
                sup.kill_run(&s, run, &w, sig).await
            });
            return Err(why);
        }
        match state {
            UnitState::Running => Ok(()),
            _ => Err(slot.live().life.failure_reason()),
        }
    }

    /// Waits for a started oneshot to end; an error says how it failed.
    async fn oneshot_outcome(&self, slot: &Slot) -> Result<(), String> {
        slot.wait_for(Duration::MAX, |st| {
            !matches!(st, UnitState::Running | UnitState::Starting)
        })
        .await;
        let life = &slot.live().life;
        match life.state {
            UnitState::Done => Ok(()),
            UnitState::Stopped => Err(format!(
                "stopped before it finished ({})",
                life.result_text()
            )),
            _ => Err(life.failure_reason()),
        }
    }

    /// Extra environment for a unit's process: the notify socket, and the watchdog interval.
    fn child_env(&self, unit: &Unit) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if let Some(path) = self.notify_socket() {
            env.push(("NOTIFY_SOCKET".into(), path.display().to_string()));
        }
        if let Some(w) = unit.watchdog {
            env.push(("WATCHDOG_USEC".into(), w.as_micros().to_string()));
        }
        env
    }

    /// Ends what a run left behind once its main process is gone: SIGTERM, then SIGKILL
    /// after the unit's stop timeout.
    async fn clean_up(&self, slot: &Slot, tag: &str) {
        let left = slot.run_pids(tag);
        if left.is_empty() {
            return;
        }
        slot.live().cleaning = true;
        self.clean_up_left(slot, tag, left).await;
        slot.live().cleaning = false;
    }

    async fn clean_up_left(&self, slot: &Slot, tag: &str, left: Vec<u32>) {
        self.log(
            slot,
            Level::Info,
            &format!(
                "Stopping {} leftover process(es) of this run: {left:?}",
                left.len()
            ),
        );
        let (sig, timeout) = slot.stop_settings();
        slot.signal_run(None, tag, sig);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if slot.run_pids(tag).is_empty() {
                return;
            }
        }
        let left = slot.run_pids(tag);
        self.log(
            slot,
            Level::Warning,
            &format!("Leftover process(es) {left:?} outlived {timeout:?}: sending SIGKILL"),
        );
        slot.signal_run(None, tag, Signal::SIGKILL);
    }

    /// Kills run `run` of `slot` because of `why` (a watchdog or health check gave up on it):
    /// `sig` to its processes, SIGKILL after its stop timeout. The run then ends as failed
    /// with `why` as its reason, and the restart policy applies.
    pub async fn kill_run(&self, slot: &Arc<Slot>, run: u32, why: &str, sig: Signal) {
        let (pid, tag) = {
            let mut live = slot.live();
            let Some(pid) = live.pid.filter(|_| !live.main_exited) else {
                return;
            };
            let why = why.to_string();
            if !live
                .step(Event::Condemn { run, why })
                .contains(&Effect::Kill)
            {
                return;
            }
            (pid, live.invocation.clone().unwrap_or_default())
        };
        self.log(slot, Level::Error, &format!("{why}: sending {sig}"));
        process::signal_invocation(Some(pid), &tag, sig);
        let timeout = slot.stop_settings().1;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if !slot.is_run(run) {
                return;
            }
        }
        slot.signal_run(Some(pid), &tag, Signal::SIGKILL);
    }

    /// Kills orphans whose run is over: left behind by a run whose main process ended, and
    /// missed by its clean-up (one that was mid-exec, say). Orphans of a run still going, or
    /// being cleaned up, are left alone; so are processes with no run tag.
    pub fn sweep_strays(&self) {
        let strays: Vec<(u32, String)> = process::orphans()
            .into_iter()
            .filter_map(|(pid, tag)| Some((pid, tag?)))
            .collect();
        if strays.is_empty() {
            return;
        }
        let all = self.all();
        for (pid, tag) in strays {
            let owner = all
                .iter()
                .find(|s| s.live().invocation.as_deref() == Some(&tag));
            let over = owner.is_none_or(|s| {
                let live = s.live();
                !live.cleaning && (live.main_exited || live.pid.is_none())
            });
            if over && tag.starts_with(&format!("{}:", std::process::id())) {
                if let Some(s) = owner {
                    self.log(
                        s,
                        Level::Warning,
                        &format!("Killing stray process {pid} of an ended run"),
                    );
                }
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
    }

    /// Applies an sd_notify datagram; its sender's PID says which unit it is from.
    pub fn on_notify(&self, msg: &crate::sd_notify::Message) {
        let Some(pid) = msg.pid else { return };
        let slot = match self.sender(pid) {
            Sender::Unit(s) => s,
            Sender::Nobody => {
                tracing::debug!("sd_notify from pid {pid}, which belongs to no unit: ignored");
                return;
            }
            Sender::WrongTag => {
                let n = self
                    .forged_notify
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                    + 1;
                // The first, then every hundredth: a forger cannot flood the journal.
                if n == 1 || n.is_multiple_of(100) {
                    let me = self.journal.unit_id(crate::journal::SELF_UNIT);
                    self.journal.log(
                        me,
                        Level::Warning,
                        &format!(
                            "sd_notify from pid {pid}, whose run tag is no current run's: \
                             ignored ({n} so far)"
                        ),
                    );
                }
                return;
            }
        };
        let mut fx = Vec::new();
        {
            let mut live = slot.live();
            for (k, v) in &msg.fields {
                match (k.as_str(), v.as_str()) {
                    ("READY", "1") => fx.extend(live.step(Event::Ready)),
                    ("STATUS", text) => live.status_text = Some(text.to_string()),
                    ("WATCHDOG", "1") => live.last_ping = Some(Instant::now()),
                    ("MAINPID", p) => {
                        // Only a process of this very run may be named its main process.
                        let claimed = p.parse().ok().filter(|&p| of_run(p, &live));
                        if claimed.is_some() {
                            live.main_pid = claimed;
                        }
                    }
                    ("STOPPING", "1") => {
                        fx.push(Effect::Log(Level::Info, "Stopping (STOPPING=1)".into()));
                    }
                    _ => {}
                }
            }
        }
        slot.changed();
        self.carry_out(&slot, fx);
    }

    /// The unit whose process `pid` is: its main process, its `MAINPID=`, or any process
    /// carrying its current run's `ASYNCMD_INVOCATION`.
    fn sender(&self, pid: u32) -> Sender {
        let all = self.all();
        // The run tag in its environment is the surest sign; PIDs come second. A process
        // with a tag that is no current run's (guessed, or left from an earlier run) is not
        // heard, whatever its PID.
        if let Some(tag) = process::invocation_of(pid) {
            return match all
                .iter()
                .find(|s| s.live().invocation.as_deref() == Some(&tag))
            {
                Some(s) => Sender::Unit(s.clone()),
                None => Sender::WrongTag,
            };
        }
        all.into_iter()
            .find(|s| {
                let live = s.live();
                !live.main_exited && (live.pid == Some(pid) || live.main_pid == Some(pid))
            })
            .map_or(Sender::Nobody, Sender::Unit)
    }

    /// Records that `slot` will not start because of `msg` (a dependency failed).
    pub fn not_started(&self, slot: &Slot, msg: &str) {
        self.fail_start(slot, msg);
    }

    fn fail_start(&self, slot: &Slot, msg: &str) {
        let fx = slot.apply(Event::StartFailed(msg.to_string()));
        self.carry_out(slot, fx);
    }

    /// Writes the journal lines of `fx` under `slot`'s name; returns the other effects.
    fn carry_out(&self, slot: &Slot, fx: Vec<Effect>) -> Vec<Effect> {
        fx.into_iter()
            .filter(|e| match e {
                Effect::Log(level, text) => {
                    self.log(slot, *level, text);
                    false
                }
                _ => true,
            })
            .collect()
    }

    fn finished(self: &Arc<Self>, slot: &Arc<Slot>, run: u32, status: std::io::Result<ExitResult>) {
        let end = match status {
            Ok(r) => End::Exit(r),
            Err(e) => End::Lost(e.to_string()),
        };
        let fx = {
            let mut live = slot.live();
            let restart = live
                .ran_with
                .as_ref()
                .and_then(|d| d.unit.as_ref())
                .map(|u| (u.restart, u.backoff));
            live.step(Event::Ended { run, end, restart })
        };
        slot.changed();
        for effect in self.carry_out(slot, fx) {
            if let Effect::ArmRestart { delay, gen } = effect {
                let (sup, s) = (self.clone(), slot.clone());
                self.spawn_for(slot, Handler::Restart, async move {
                    tokio::time::sleep(delay).await;
                    if let Err(e) = sup.start_inner(&s, Some(gen)).await {
                        // Not started (its file broke, say): failed, not restarting.
                        let down = sup.shutting_down.load(std::sync::atomic::Ordering::SeqCst);
                        if s.state() == UnitState::Restarting && !down {
                            sup.fail_start(&s, &format!("restart failed: {e}"));
                        }
                    }
                });
            }
        }
    }

    /// Stops `slot`: SIGTERM to its process group, SIGKILL after its `stop_timeout`.
    pub async fn stop(&self, slot: &Arc<Slot>) -> Result<(), String> {
        let _op = slot.op.lock().await;
        let (fx, builtin, pid, tag) = {
            let mut live = slot.live();
            let fx = live.step(Event::Stop);
            let tag = live.invocation.clone().unwrap_or_default();
            (fx, live.builtin.clone(), live.pid, tag)
        };
        slot.changed();
        if self.carry_out(slot, fx).is_empty() {
            return Ok(());
        }
        if let Some((tx, abort)) = builtin {
            return self.stop_builtin(slot, tx, abort).await;
        }
        let Some(pid) = pid else {
            return Ok(());
        };
        let (sig, timeout) = slot.stop_settings();
        let gone = |st: UnitState| {
            !matches!(
                st,
                UnitState::Running | UnitState::Stopping | UnitState::Starting
            )
        };
        // The group now; whatever escaped it is an orphan once the main process is gone, and
        // the monitor's clean-up stops it.
        let leader_alive = || !slot.live().main_exited;
        if leader_alive() {
            if let Err(e) = process::signal_group(pid, sig) {
                slot.apply(Event::StopFailed);
                return Err(format!("cannot signal process group {pid}: {e}"));
            }
        }
        if slot.wait_for(timeout, gone).await {
            return Ok(());
        }
        self.log(
            slot,
            Level::Warning,
            &format!("Did not stop within {timeout:?} of {sig}: sending SIGKILL"),
        );
        let group = leader_alive().then_some(pid);
        slot.signal_run(group, &tag, Signal::SIGKILL);
        if slot.wait_for(KILL_GRACE + timeout, gone).await {
            Ok(())
        } else {
            Err(format!("process {pid} survived SIGKILL for {KILL_GRACE:?}"))
        }
    }

    /// Asks a builtin to stop; aborts it after the unit's stop timeout.
    async fn stop_builtin(
        &self,
        slot: &Arc<Slot>,
        tx: watch::Sender<bool>,
        abort: tokio::task::AbortHandle,
    ) -> Result<(), String> {
        let timeout = slot.stop_settings().1;
        let _ = tx.send(true);
        let gone = |st: UnitState| !matches!(st, UnitState::Running | UnitState::Stopping);
        if slot.wait_for(timeout, gone).await {
            return Ok(());
        }
        self.log(
            slot,
            Level::Warning,
            &format!("Did not stop within {timeout:?}: aborting it"),
        );
        abort.abort();
        if slot.wait_for(KILL_GRACE, gone).await {
            Ok(())
        } else {
            Err("the builtin service did not end after it was aborted".into())
        }
    }
}

/// Whether process `pid` belongs to the current run of `live`: it carries the run's tag, or it
/// was started (directly or further down) by the run's spawned process or by a process that
/// carries the tag, and has shed its environment since (`env -i`, an `execve` with its own).
fn of_run(pid: u32, live: &Live) -> bool {
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

/// A unit as its scheduler sees it.
struct OnSchedule {
    sup: Arc<Supervisor>,
    slot: Arc<Slot>,
}

impl Scheduled for OnSchedule {
    fn schedule(&self) -> Option<Option<(asyncmd_core::schedule::Spec, bool)>> {
        if !self.sup.is_loaded(&self.slot) {
            return None;
        }
        let def = self.slot.def();
        let spec = def.unit.as_ref().and_then(|u| u.schedule.clone());
        Some(spec.map(|sc| (sc.spec, def.config.enabled)))
    }

    fn busy(&self) -> bool {
        !matches!(
            self.slot.state(),
            UnitState::Inactive | UnitState::Done | UnitState::Failed | UnitState::Stopped
        )
    }

    fn show_next(&self, next_us: Option<i64>) {
        self.slot.live().schedule_next_us = next_us;
    }

    fn log(&self, level: Level, line: &str) {
        self.sup.log(&self.slot, level, line);
    }

    fn start(&self, due_us: i64) {
        self.slot.live().schedule_last_us = Some(due_us);
        let (sup, slot) = (self.sup.clone(), self.slot.clone());
        self.sup
            .spawn_for(&self.slot, Handler::Scheduler, async move {
                let _ = sup.start(&slot).await;
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(text: &str) -> Def {
        let unit = unit_file::parse("p.service", Path::new("p.service"), text);
        Def::new(
            "p.service".into(),
            unit.map_err(|e| e.to_string()),
            Ok(ServiceConfig::default_enabled()),
        )
    }

    /// Waits (with a deadline a loaded machine never reaches) until `pid` is gone.
    async fn gone(pid: u32) -> bool {
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        for _ in 0..3000 {
            if nix::sys::signal::kill(pid, None).is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test]
    async fn a_panic_in_a_handler_fails_the_unit_with_where_and_kills_its_run() {
        let sup = Supervisor::tasks_only(Arc::new(Journal::new(64 * 1024, "t")));
        let slot = sup.add(
            "p.service".into(),
            def("[service]\nexec = [\"sleep\", \"60\"]\n"),
        );
        for handler in [Handler::Health, Handler::Monitor] {
            sup.start(&slot).await.expect("it starts");
            let pid = slot.live().pid.expect("a process");
            sup.spawn_for(&slot, handler, async { panic!("boom") });
            let failed = |s| s == UnitState::Failed;
            assert!(slot.wait_for(Duration::from_secs(30), failed).await);
            let error = slot.live().life.error.clone().unwrap_or_default();
            let want = format!(
                "internal error: {} panicked: boom at asyncmdd/src/driver.rs:",
                handler.name()
            );
            assert!(error.starts_with(&want), "{error}");
            assert!(gone(pid).await, "process {pid} of the failed run lives on");
            // Nothing is left wedged: the unit starts again.
        }
        sup.start(&slot).await.expect("it starts after its faults");
        assert_eq!(slot.state(), UnitState::Running);
        sup.stop(&slot).await.expect("it stops");
    }
}
