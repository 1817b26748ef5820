//! The driver: the one owner of the units' live state. Everything that happens to a unit comes
//! to it as an input on one channel (a request and its reply, a process's exit, an
//! sd_notify datagram, a watchdog's or health check's verdict, a timer) and is handled there, one
//! at a time and without waiting: it feeds the unit's lifecycle (`asyncmd_core::lifecycle`) the
//! event, publishes the new state, and carries out the effects (journal lines, signals, spawns,
//! replies, timers). It is the only place a unit's work is spawned: its process and the monitor
//! that reaps it, the capture of its output, its watchdog and health check, its scheduler, a
//! builtin service's task, and the timers that come back to it as inputs. Those tasks own no
//! state: they report what they see as inputs. The traceable tasks of an application are not
//! units: [`crate::task_runtime`] is their driver, over the same core lifecycle, table and
//! scheduler. The modules below it (process, sd_notify, health, capture, schedule, unit_file,
//! services_config, control_socket, task_runtime, builtins) do not know it.
//!
//! Each unit has a [`Unit`]: its name and what the driver publishes of it (its definition and
//! live state), which anyone may read and only the driver writes. A [`Supervisor`] is the
//! handle the rest of the daemon holds: reads go to the published state, changes to the driver.

mod owner;
mod unit;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use asyncmd_proto::{Entry, ExitResult, Level, UnitStatus};
use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot};

use crate::cgroup::Cgroups;
use crate::journal::{records, Journal, UnitId};
use crate::sd_notify::Message;
use crate::task_runtime::TaskError;
use crate::unit_file::UnitFile;
use asyncmd_core::control::Unsupported;
use asyncmd_core::lifecycle::Effect;
use asyncmd_core::plan::Node;
use asyncmd_core::table::Table;

use owner::{Driver, Handler};
pub use unit::{read_dir, Definition, Paths, Unit};

/// How long a finished process's output may keep draining before its end is recorded.
const DRAIN_GRACE: Duration = Duration::from_secs(1);
/// How long a spawn that fails for want of file descriptors is tried again, and how often.
const SPAWN_RETRY: Duration = Duration::from_secs(10);
const SPAWN_RETRY_EVERY: Duration = Duration::from_millis(50);
/// How many units may be starting at once, unless `asyncmdd --spawn-limit` says otherwise.
pub const DEFAULT_SPAWN_LIMIT: u32 = 64;
/// How long a run must last before whoever started it hears it started well: a process that
/// exits with an error at once (or a builtin whose start returns one) is a start that failed.
const FIRST_MOMENT: Duration = Duration::from_millis(200);
/// How long after SIGKILL a process group may take to go.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// A reply the driver sends once it has carried a request out.
type Reply<T = Result<(), String>> = oneshot::Sender<T>;

/// What the driver is told: a request with its reply, or what happened to a unit.
enum Input {
    /// Add unit `name`, replacing any unit of that name.
    Add {
        name: String,
        def: Definition,
        reply: Reply<Arc<Unit>>,
    },
    /// Replace its definition; a running process keeps the one it was started with.
    SetDef {
        slot: Arc<Unit>,
        def: Definition,
        reply: Reply<()>,
    },
    /// Start it: by a request (with a reply), by its restart timer (with the restart
    /// generation it is for) or by its schedule (neither).
    Start { slot: Arc<Unit>, start: StartReq },
    /// Stop it.
    Stop { slot: Arc<Unit>, reply: Reply },
    /// Stop it for good and forget it.
    Unload { slot: Arc<Unit>, reply: Reply },
    /// A plan holds it back until `deps` are ready (none: no longer).
    Wait {
        slot: Arc<Unit>,
        deps: Vec<String>,
        reply: Reply<()>,
    },
    /// It will not start: why (a dependency failed), and the requirement whose readiness may
    /// start it after all.
    NotStarted {
        slot: Arc<Unit>,
        why: String,
        held_by: Option<String>,
        reply: Reply<()>,
    },
    /// A person starts it: its restart history counts from zero again.
    Manual { slot: Arc<Unit>, reply: Reply<()> },
    /// `reset-failed`; the reply says whether it was failed.
    ResetFailed { slot: Arc<Unit>, reply: Reply<bool> },
    /// Send `sig` to its main process (`all`: every process of its run).
    Kill {
        slot: Arc<Unit>,
        sig: Signal,
        all: bool,
        reply: Reply,
    },
    /// Send its `reload_signal` to its main process.
    ReloadUnit { slot: Arc<Unit>, reply: Reply },
    /// The main process of run `run` was reaped; `cleaning`: what it left is being stopped.
    MainExited {
        slot: Arc<Unit>,
        run: u32,
        cleaning: bool,
    },
    /// What run `run` left behind is gone.
    CleanedUp { slot: Arc<Unit>, run: u32 },
    /// The newest stderr lines of run `run`.
    Traceback {
        slot: Arc<Unit>,
        run: u32,
        lines: Vec<String>,
    },
    /// Run `run` is over: its processes are gone and its output drained.
    Exited {
        slot: Arc<Unit>,
        run: u32,
        status: std::io::Result<ExitResult>,
    },
    /// Run `run` of a builtin service returned.
    BuiltinEnded {
        slot: Arc<Unit>,
        run: u32,
        outcome: Result<(), String>,
    },
    /// A watchdog or health check gave up on run `run`: it is to be killed with `sig`.
    Verdict {
        slot: Arc<Unit>,
        run: u32,
        why: String,
        sig: Signal,
    },
    /// The last health check of run `run`.
    Health {
        slot: Arc<Unit>,
        run: u32,
        text: String,
    },
    /// An sd_notify datagram.
    Notify(Message),
    /// A task handling the unit panicked.
    Fault {
        slot: Arc<Unit>,
        handler: Handler,
        error: TaskError,
    },
    /// Look for orphans of ended runs.
    Sweep,
    /// Its scheduler's next run is due at `next_us` (wall µs).
    ShowNext {
        slot: Arc<Unit>,
        next_us: Option<i64>,
    },
    /// Its scheduler starts the run due at `due_us`.
    Due { slot: Arc<Unit>, due_us: i64 },
    /// A timer the driver set for it went off.
    Timer { slot: Arc<Unit>, timer: Timer },
}

impl Input {
    /// The unit it concerns, if one.
    fn slot(&self) -> Option<&Arc<Unit>> {
        match self {
            Input::Add { .. } | Input::Notify(_) | Input::Sweep => None,
            Input::SetDef { slot, .. }
            | Input::Start { slot, .. }
            | Input::Stop { slot, .. }
            | Input::Unload { slot, .. }
            | Input::Wait { slot, .. }
            | Input::NotStarted { slot, .. }
            | Input::Manual { slot, .. }
            | Input::ResetFailed { slot, .. }
            | Input::Kill { slot, .. }
            | Input::ReloadUnit { slot, .. }
            | Input::MainExited { slot, .. }
            | Input::CleanedUp { slot, .. }
            | Input::Traceback { slot, .. }
            | Input::Exited { slot, .. }
            | Input::BuiltinEnded { slot, .. }
            | Input::Verdict { slot, .. }
            | Input::Health { slot, .. }
            | Input::Fault { slot, .. }
            | Input::ShowNext { slot, .. }
            | Input::Due { slot, .. }
            | Input::Timer { slot, .. } => Some(slot),
        }
    }
}

/// The timers the driver sets; each names the run (or restart generation) it is for, so one
/// that goes off late leaves a newer run alone.
#[derive(Debug, Clone, Copy)]
enum Timer {
    /// A stop's first signal had its stop timeout: SIGKILL (a builtin: abort).
    StopTimeout { run: u32 },
    /// Nor did SIGKILL (or the abort) end it.
    KillTimeout { run: u32 },
    /// A run's first moment is over: whoever started it hears how it is doing.
    FirstMoment { run: u32 },
    /// A condemned run had its stop timeout: SIGKILL.
    Condemned { run: u32 },
    /// A `notify` unit's start timeout, `limit`, is over.
    Ready { run: u32, limit: Duration },
    /// An automatic restart is due.
    Restart { gen: u64 },
    /// Try a spawn that wanted file descriptors again.
    SpawnRetry,
}

/// A start asked for, and whom to answer.
struct StartReq {
    /// The automatic restart of this generation, if it is one.
    due: Option<u64>,
    /// Who waits for the outcome.
    reply: Option<Reply>,
    /// More environment for its process (an `on_failure` unit is told what failed).
    env: Vec<(String, String)>,
}

impl StartReq {
    fn asked(reply: Reply) -> StartReq {
        StartReq {
            due: None,
            reply: Some(reply),
            env: Vec::new(),
        }
    }

    /// A start the driver makes itself: by a schedule, a restart timer or a rule.
    fn internal(due: Option<u64>) -> StartReq {
        StartReq {
            due,
            reply: None,
            env: Vec::new(),
        }
    }
}

/// The units of a daemon and their processes: the handle on the driver that owns them.
pub struct Supervisor {
    journal: Arc<Journal>,
    /// The units, in name order; changed by the driver only.
    units: RwLock<Table<Arc<Unit>>>,
    /// None for a runtime of in-process tasks only.
    paths: Option<Paths>,
    notify_socket: Mutex<Option<PathBuf>>,
    /// Set once the daemon shuts down: nothing starts any more.
    shutting_down: AtomicBool,
    tasks: Arc<crate::task_runtime::Registry>,
    /// The boards reached through `[agent]` units.
    boards: Arc<crate::boards::Boards>,
    debug: AtomicBool,
    /// Held by whatever changes the set of units or `services.config`, one at a time.
    pub changes: tokio::sync::Mutex<()>,
    /// Its request handling, which a builtin that is a transport (MQTT) is given.
    answer: OnceLock<crate::answer::Answer>,
    /// The delegated cgroup units' processes go into, if there is one.
    cgroups: OnceLock<Arc<Cgroups>>,
    /// The driver's inbox.
    inbox: mpsc::UnboundedSender<Input>,
    /// The driver, until its first input gives it a runtime to run on.
    idle: Mutex<Option<Driver>>,
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
        let (inbox, rx) = mpsc::unbounded_channel();
        Arc::new_cyclic(|me| Supervisor {
            journal: journal.clone(),
            units: RwLock::new(Table::new()),
            paths,
            notify_socket: Mutex::new(None),
            shutting_down: AtomicBool::new(false),
            tasks: crate::task_runtime::Registry::new(journal.clone()),
            boards: Arc::default(),
            debug: AtomicBool::new(false),
            changes: tokio::sync::Mutex::new(()),
            answer: OnceLock::new(),
            cgroups: OnceLock::new(),
            inbox,
            idle: Mutex::new(Some(Driver::new(me.clone(), rx, spawn_limit))),
        })
    }

    /// Hands `input` to the driver (started on the current tokio runtime by the first one).
    fn send(&self, input: Input) {
        if let Some(driver) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).take() {
            tokio::spawn(driver.run());
        }
        // It only fails once the driver is gone, with the supervisor.
        let _ = self.inbox.send(input);
    }

    /// Sends the request `make` builds and waits for its reply; None when the driver is gone.
    fn ask<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<T>) -> Input,
    ) -> impl Future<Output = Option<T>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx));
        async move { rx.await.ok() }
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
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
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
    pub fn is_loaded(&self, slot: &Arc<Unit>) -> bool {
        !slot.read(|l| l.retired) && self.get(&slot.name).is_some_and(|s| Arc::ptr_eq(&s, slot))
    }

    /// Adds the unit `name`, replacing any unit of that name.
    pub async fn add(&self, name: String, def: Definition) -> Arc<Unit> {
        self.ask(|reply| Input::Add { name, def, reply })
            .await
            .expect("the driver lives as long as its supervisor")
    }

    /// Replaces the definition of `slot`; a running process keeps the one it was started
    /// with.
    pub async fn set_def(&self, slot: &Arc<Unit>, def: Definition) {
        let slot = slot.clone();
        self.ask(|reply| Input::SetDef { slot, def, reply }).await;
    }

    /// Starts `slot`. Answers once the process is spawned (a oneshot: once it ended; a
    /// `notify` unit: once it is ready); an error says why it could not start or, for a
    /// oneshot, how it failed. The request is sent at once, before the answer is awaited.
    pub fn start(
        &self,
        slot: &Arc<Unit>,
    ) -> impl Future<Output = Result<(), String>> + Send + 'static {
        let slot = slot.clone();
        let r = self.ask(|reply| Input::Start {
            slot,
            start: StartReq::asked(reply),
        });
        async move {
            r.await
                .unwrap_or_else(|| Err("asyncmdd is shutting down".into()))
        }
    }

    /// Stops `slot`: its stop signal, SIGKILL after its `stop_timeout`. Answers once it is
    /// gone. The request is sent at once, before the answer is awaited.
    pub fn stop(
        &self,
        slot: &Arc<Unit>,
    ) -> impl Future<Output = Result<(), String>> + Send + 'static {
        let slot = slot.clone();
        let r = self.ask(|reply| Input::Stop { slot, reply });
        async move {
            r.await
                .unwrap_or_else(|| Err("asyncmdd is shutting down".into()))
        }
    }

    /// Stops `slot` for good and forgets it. No start can slip in between. The request is
    /// sent at once, before the answer is awaited.
    pub fn unload(
        &self,
        slot: &Arc<Unit>,
    ) -> impl Future<Output = Result<(), String>> + Send + 'static {
        let slot = slot.clone();
        let r = self.ask(|reply| Input::Unload { slot, reply });
        async move {
            r.await
                .unwrap_or_else(|| Err("asyncmdd is shutting down".into()))
        }
    }

    /// Gives unit `name` the definition `def`, adding it if there is none of that name.
    pub async fn define(&self, name: &str, def: Definition) {
        match self.get(name) {
            Some(slot) => self.set_def(&slot, def).await,
            None => {
                self.add(name.to_string(), def).await;
            }
        }
    }

    /// Marks `slot` as waiting for `deps` (or, with none left, no longer waiting).
    pub async fn set_waiting(&self, slot: &Arc<Unit>, deps: Vec<String>) {
        let slot = slot.clone();
        self.ask(|reply| Input::Wait { slot, deps, reply }).await;
    }

    /// Records that `slot` will not start because of `why` (a dependency failed); once
    /// `held_by` (the requirement that kept it back) is ready, it starts after all.
    pub async fn not_started(&self, slot: &Arc<Unit>, why: &str, held_by: Option<&str>) {
        let (slot, why) = (slot.clone(), why.to_string());
        let held_by = held_by.map(String::from);
        self.ask(|reply| Input::NotStarted {
            slot,
            why,
            held_by,
            reply,
        })
        .await;
    }

    /// Forgets the restart history of `slot` and gives up on a pending automatic restart: a
    /// person started it, so the start limit counts from zero again.
    pub async fn reset_restarts(&self, slot: &Arc<Unit>) {
        let slot = slot.clone();
        self.ask(|reply| Input::Manual { slot, reply }).await;
    }

    /// `asyncmctl reset-failed`: forgets the restart history and turns `failed` into
    /// `inactive`; returns whether it was failed.
    pub async fn reset_failed(&self, slot: &Arc<Unit>) -> bool {
        let slot = slot.clone();
        self.ask(|reply| Input::ResetFailed { slot, reply })
            .await
            .unwrap_or(false)
    }

    /// Sends `sig` to the main process of `slot`'s run (`all`: to every process of it).
    pub async fn kill(&self, slot: &Arc<Unit>, sig: Signal, all: bool) -> Result<(), String> {
        let slot = slot.clone();
        self.ask(|reply| Input::Kill {
            slot,
            sig,
            all,
            reply,
        })
        .await
        .unwrap_or_else(|| Err("asyncmdd is shutting down".into()))
    }

    /// Sends `slot`'s `reload_signal` to its main process.
    pub async fn reload_unit(&self, slot: &Arc<Unit>) -> Result<(), String> {
        let slot = slot.clone();
        self.ask(|reply| Input::ReloadUnit { slot, reply })
            .await
            .unwrap_or_else(|| Err("asyncmdd is shutting down".into()))
    }

    /// Hands an sd_notify datagram to the driver; its sender's PID says which unit it is from.
    pub fn on_notify(&self, msg: Message) {
        self.send(Input::Notify(msg));
    }

    /// Asks the driver to kill orphans whose run is over: left behind by an ended run and
    /// missed by its clean-up.
    pub fn sweep_strays(&self) {
        self.send(Input::Sweep);
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
    pub fn get(&self, name: &str) -> Option<Arc<Unit>> {
        self.units
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// All units, in name order.
    pub fn all(&self) -> Vec<Arc<Unit>> {
        self.units
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .rows()
            .cloned()
            .collect()
    }

    /// The units matching `patterns` (all when empty), and the patterns that matched none.
    pub fn select(&self, patterns: &[String]) -> Result<(Vec<Arc<Unit>>, Vec<String>), String> {
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
        self.debug.load(Ordering::SeqCst)
    }

    /// Turns debug mode on or off.
    pub fn set_debug(&self, on: bool) {
        self.debug.store(on, Ordering::SeqCst);
    }

    /// Spawns `fut`, one of the tasks that handle `slot`: a panic in it is a fault of the unit
    /// (an [`Input::Fault`]), never a task that silently vanished and left a state no one
    /// keeps. The driver's only.
    fn spawn_for<F>(
        &self,
        slot: &Arc<Unit>,
        handler: Handler,
        fut: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (inbox, slot) = (self.inbox.clone(), slot.clone());
        let counters = Arc::new(crate::task_runtime::Counters::default());
        tokio::spawn(async move {
            if let Err(error) = crate::task_runtime::traced(fut, counters).await {
                let _ = inbox.send(Input::Fault {
                    slot,
                    handler,
                    error,
                });
            }
        })
    }

    /// Hands `timer` of `slot` to the driver after `delay`. The driver's only.
    fn after(&self, delay: Duration, slot: &Arc<Unit>, timer: Timer) {
        let (inbox, slot) = (self.inbox.clone(), slot.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = inbox.send(Input::Timer { slot, timer });
        });
    }

    fn log(&self, slot: &Unit, level: Level, msg: &str) {
        self.journal.log(slot.id, level, msg);
    }

    /// Writes the journal lines of `fx` under `slot`'s name; returns the other effects.
    fn carry_out(&self, slot: &Unit, fx: Vec<Effect>) -> Vec<Effect> {
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

    /// Extra environment for a unit's process: the notify socket, and the watchdog interval.
    fn child_env(&self, unit: &UnitFile) -> Vec<(String, String)> {
        let mut env = Vec::new();
        if let Some(path) = self.notify_socket() {
            env.push(("NOTIFY_SOCKET".into(), path.display().to_string()));
        }
        if let Some(w) = unit.watchdog {
            env.push(("WATCHDOG_USEC".into(), w.as_micros().to_string()));
        }
        env
    }
}
