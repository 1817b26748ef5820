//! The owner of the units' live state: the [`Driver`] task, which handles the supervisor's
//! inputs one at a time, feeds each unit's lifecycle the event, publishes the new state and
//! carries out the effects. Everything a unit's runs need spawned is spawned here.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use asyncmd_proto::{ExitResult, Level, UnitState, UnitType};
use nix::sys::signal::Signal;
use serde_json::Map;
use tokio::sync::{mpsc, watch};

use crate::capture::capture;
use crate::health;
use crate::journal::{Journal, Line};
use crate::process;
use crate::schedule::{self, Scheduled};
use crate::sd_notify::Message;
use crate::task_runtime::TaskError;
use crate::unit_file::Run;
use asyncmd_core::lifecycle::{Effect, End, Event, Life, TRACEBACK_LINES};

use super::unit::{of_run, Definition, Live, Unit};
use super::{
    Input, Reply, StartReq, Supervisor, Timer, DRAIN_GRACE, FIRST_MOMENT, KILL_GRACE, SPAWN_RETRY,
    SPAWN_RETRY_EVERY,
};

/// Which of the tasks that handle a unit a panic happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Handler {
    /// What reaps its process or awaits its builtin, and records the run's end.
    Monitor,
    /// What reads its output into the journal.
    Capture,
    /// What checks its `WATCHDOG=1` pings.
    Watchdog,
    /// What runs its health check.
    Health,
    /// What starts it by its schedule.
    Scheduler,
    /// The driver itself, handling an input of the unit.
    Driver,
}

impl Handler {
    pub(super) fn name(self) -> &'static str {
        match self {
            Handler::Monitor => "its monitor",
            Handler::Capture => "its output capture",
            Handler::Watchdog => "its watchdog",
            Handler::Health => "its health check",
            Handler::Scheduler => "its scheduler",
            Handler::Driver => "the driver, handling it,",
        }
    }
}

/// Who sent an sd_notify datagram.
enum Speaker {
    /// A process of this unit's current run.
    Unit(Arc<Unit>),
    /// A process of no unit.
    Nobody,
    /// A process whose run tag is no current run's.
    WrongTag,
}

/// What a start waits for, once its unit's run has begun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A `notify` unit's `READY=1`.
    Ready,
    /// A oneshot's end.
    End,
    /// The first moment of run `run` to be over with it still running: a run that fails at
    /// once is a start that failed (the boot report says `[ ERROR ]`).
    Moment(u32),
}

impl Want {
    /// Whether a unit in `state` answers it.
    fn met(self, state: UnitState) -> bool {
        match self {
            Want::Ready => state != UnitState::Starting,
            Want::End => !matches!(state, UnitState::Running | UnitState::Starting),
            // Its end within the moment answers it; the moment's timer answers the rest.
            Want::Moment(_) => !matches!(state, UnitState::Running | UnitState::Starting),
        }
    }

    /// The answer, once met.
    fn outcome(self, life: &Life) -> Result<(), String> {
        match (self, life.state) {
            (Want::Ready, UnitState::Running)
            | (Want::End | Want::Moment(_), UnitState::Done)
            | (Want::Moment(_), UnitState::Stopping | UnitState::Stopped) => Ok(()),
            (Want::End, UnitState::Stopped) => Err(format!(
                "stopped before it finished ({})",
                life.result_text()
            )),
            _ => Err(life.failure_reason()),
        }
    }
}

/// A stop waiting for its unit's run to be over.
enum StopReq {
    /// `stop`: answer how it went.
    Stop(Reply),
    /// `unload`: forget the unit once it is stopped, then answer.
    Unload(Reply),
    /// A unit it requires is stopping or went: it waits for that one to be ready again.
    Cascade,
}

/// A spawn that waits for file descriptors to be free.
struct Spawn {
    start: StartReq,
    def: Arc<Definition>,
    argv: Vec<String>,
    tag: String,
    extra: Vec<(String, String)>,
    cgroup: Option<std::ffi::CString>,
    /// When to give up.
    until: Instant,
}

/// What only the driver keeps of a unit: who waits for what, and its run's handles.
#[derive(Default)]
struct Private {
    /// Starts waiting for the run to be ready or to end.
    waiters: Vec<(Want, StartReq)>,
    /// Stops waiting for the run to be over.
    stops: Vec<StopReq>,
    /// Starts asked for while it was being stopped or started: taken once that is over.
    deferred: Vec<StartReq>,
    /// Asks a running builtin service to stop; aborts it when it does not.
    builtin: Option<(watch::Sender<bool>, tokio::task::AbortHandle)>,
    /// It holds one of the places of `--spawn-limit` until this is met.
    permit: Option<Want>,
    /// A start waiting for a place.
    queued: Option<StartReq>,
    /// A spawn waiting for file descriptors.
    spawn: Option<Spawn>,
    /// The requirement it waits for: stopped (or kept from starting) for want of it, it starts
    /// once that one is ready.
    held: Option<String>,
    /// Stops asked for while units that require it still run: carried out once they are down.
    stop_after: Vec<StopReq>,
    /// Whether it was ready at the last look: a unit becoming ready lets what waits for it
    /// start; one that falls takes down what requires it.
    was_ready: bool,
}

/// The owner of the units' live state: handles the [`Input`]s of its supervisor one at a
/// time, never waiting inside one.
pub(super) struct Driver {
    sup: Weak<Supervisor>,
    inbox: mpsc::UnboundedReceiver<Input>,
    /// By the address of the unit's slot.
    units: HashMap<usize, Private>,
    /// How many units may be starting at once, and how many are.
    limit: usize,
    starting: usize,
    /// Units waiting for a place to start, in the order they asked.
    queue: VecDeque<Arc<Unit>>,
    /// sd_notify datagrams ignored because their sender's run tag is no current run's.
    forged_notify: u64,
}

fn key(slot: &Arc<Unit>) -> usize {
    Arc::as_ptr(slot) as usize
}

impl Driver {
    pub(super) fn new(
        sup: Weak<Supervisor>,
        inbox: mpsc::UnboundedReceiver<Input>,
        limit: usize,
    ) -> Driver {
        Driver {
            sup,
            inbox,
            units: HashMap::new(),
            limit: limit.max(1),
            starting: 0,
            queue: VecDeque::new(),
            forged_notify: 0,
        }
    }

    /// Handles inputs until its supervisor is gone. A panic while handling one is a fault of
    /// the unit it concerns; the driver goes on with the next.
    pub(super) async fn run(mut self) {
        while let Some(input) = self.inbox.recv().await {
            let Some(sup) = self.sup.upgrade() else {
                return;
            };
            let slot = input.slot().cloned();
            let handled =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.on(&sup, input)));
            if let Err(panic) = handled {
                let error = crate::task_runtime::panic_error(panic);
                match slot {
                    Some(s) => self.fault(&sup, &s, Handler::Driver, error),
                    None => tracing::error!("the driver panicked: {}", error.chain.join(" ")),
                }
            }
        }
    }

    fn private(&mut self, slot: &Arc<Unit>) -> &mut Private {
        self.units.entry(key(slot)).or_default()
    }

    fn on(&mut self, sup: &Arc<Supervisor>, input: Input) {
        match input {
            Input::Add { name, def, reply } => {
                let _ = reply.send(self.add(sup, name, def));
            }
            Input::SetDef { slot, def, reply } => {
                slot.write(|l| l.def = Arc::new(def));
                let _ = reply.send(());
            }
            Input::Start { slot, start } => self.start(sup, &slot, start),
            Input::Stop { slot, reply } => self.stop(sup, &slot, StopReq::Stop(reply)),
            Input::Unload { slot, reply } => {
                slot.write(|l| l.retired = true);
                self.stop(sup, &slot, StopReq::Unload(reply));
            }
            Input::Wait { slot, deps, reply } => {
                let fx = slot.write(|l| l.step(Event::Wait(deps)));
                sup.carry_out(&slot, fx);
                let _ = reply.send(());
            }
            Input::NotStarted {
                slot,
                why,
                held_by,
                reply,
            } => {
                self.private(&slot).held = held_by;
                self.fail_start(sup, &slot, &why);
                let _ = reply.send(());
            }
            Input::Manual { slot, reply } => {
                slot.write_quietly(|l| {
                    l.step(Event::Manual);
                });
                let _ = reply.send(());
            }
            Input::ResetFailed { slot, reply } => {
                let (was, fx) = slot.write(|l| {
                    let was = l.life.state == UnitState::Failed;
                    (was, l.step(Event::ResetFailed))
                });
                sup.carry_out(&slot, fx);
                let _ = reply.send(was);
            }
            Input::Kill {
                slot,
                sig,
                all,
                reply,
            } => {
                let _ = reply.send(self.signal(sup, &slot, sig, all));
            }
            Input::ReloadUnit { slot, reply } => {
                let sig = slot.def().unit.as_ref().map(|u| u.reload_signal);
                let r = match sig {
                    Some(sig) => self.signal(sup, &slot, sig, false),
                    None => Err("not loaded".into()),
                };
                let _ = reply.send(r);
            }
            Input::MainExited {
                slot,
                run,
                cleaning,
            } => slot.write_quietly(|l| {
                if l.life.starts == run {
                    l.main_exited = true;
                    l.cleaning = cleaning;
                }
            }),
            Input::CleanedUp { slot, run } => slot.write_quietly(|l| {
                if l.life.starts == run {
                    l.cleaning = false;
                }
            }),
            Input::Traceback { slot, run, lines } => slot.write_quietly(|l| {
                if l.life.starts == run {
                    for line in lines {
                        l.life.push_traceback(line);
                    }
                }
            }),
            Input::Exited { slot, run, status } => self.finished(sup, &slot, run, status),
            Input::BuiltinEnded { slot, run, outcome } => {
                self.builtin_ended(sup, &slot, run, outcome)
            }
            Input::Verdict {
                slot,
                run,
                why,
                sig,
            } => self.kill_run(sup, &slot, run, &why, sig),
            Input::Health { slot, run, text } => slot.write(|l| {
                if l.life.starts == run {
                    l.health = Some(text);
                }
            }),
            Input::Notify(msg) => self.on_notify(sup, &msg),
            Input::Fault {
                slot,
                handler,
                error,
            } => self.fault(sup, &slot, handler, error),
            Input::Sweep => self.sweep_strays(sup),
            Input::ShowNext { slot, next_us } => {
                slot.write_quietly(|l| l.schedule_next_us = next_us)
            }
            Input::Due { slot, due_us } => {
                slot.write_quietly(|l| l.schedule_last_us = Some(due_us));
                self.start(sup, &slot, StartReq::internal(None));
            }
            Input::Timer { slot, timer } => self.timer(sup, &slot, timer),
        }
    }

    /// Adds unit `name` (replacing any of that name) and its scheduler, which sleeps until
    /// the unit has a `[schedule]`.
    fn add(&mut self, sup: &Arc<Supervisor>, name: String, def: Definition) -> Arc<Unit> {
        let slot = Arc::new(Unit {
            id: sup.journal.unit_id(&name),
            name: name.clone(),
            live: watch::channel(Live::new(Arc::new(def))).0,
            cgroups: sup.cgroups.get().cloned(),
        });
        sup.units
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, slot.clone());
        let me = OnSchedule {
            sup: self.sup.clone(),
            slot: slot.clone(),
        };
        sup.spawn_for(
            &slot,
            Handler::Scheduler,
            schedule::run(me, slot.live.subscribe()),
        );
        slot
    }

    /// Sends `sig` to the main process of `slot`'s run (`all`: its group, what carries its run
    /// tag and its cgroup), saying so in its journal.
    fn signal(
        &mut self,
        sup: &Arc<Supervisor>,
        slot: &Arc<Unit>,
        sig: Signal,
        all: bool,
    ) -> Result<(), String> {
        if self.private(slot).builtin.is_some() {
            return Err(
                "a builtin service runs inside asyncmdd: it has no process to signal".into(),
            );
        }
        let (alive, main, tag) = slot.read(|l| (l.alive_pid(), l.main_pid, l.tag()));
        let Some(pid) = alive else {
            return Err("it is not running".into());
        };
        if all {
            slot.signal_run(Some(pid), &tag, sig);
            sup.log(
                slot,
                Level::Info,
                &format!("Sent {sig} to every process of this run"),
            );
        } else {
            let target = main.unwrap_or(pid);
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(target as i32), sig)
                .map_err(|e| format!("cannot signal process {target}: {e}"))?;
            sup.log(
                slot,
                Level::Info,
                &format!("Sent {sig} to main process {target}"),
            );
        }
        Ok(())
    }

    /// Answers `start` with `r`. An automatic restart that could not start (its file broke,
    /// say) leaves the unit failed, not restarting.
    fn answer(
        &mut self,
        sup: &Arc<Supervisor>,
        slot: &Arc<Unit>,
        start: StartReq,
        r: Result<(), String>,
    ) {
        if let (Some(_), Err(e)) = (start.due, &r) {
            if slot.state() == UnitState::Restarting && !sup.is_shutting_down() {
                self.fail_start(sup, slot, &format!("restart failed: {e}"));
            }
        }
        if let Some(reply) = start.reply {
            let _ = reply.send(r);
        }
    }

    fn fail_start(&mut self, sup: &Arc<Supervisor>, slot: &Arc<Unit>, msg: &str) {
        let fx = slot.write(|l| l.step(Event::StartFailed(msg.to_string())));
        sup.carry_out(slot, fx);
        self.settle(sup, slot);
    }

    /// Starts `slot`, or joins the start under way; answers `start` once the run has begun
    /// (a oneshot: ended; a `notify` unit: is ready).
    fn start(&mut self, sup: &Arc<Supervisor>, slot: &Arc<Unit>, start: StartReq) {
        if let Some(gen) = start.due {
            if !slot.read(|l| l.life.restart_due(gen)) {
                return self.answer(sup, slot, start, Ok(()));
            }
        }
        if slot.read(|l| l.retired) {
            return self.answer(sup, slot, start, Err("unloaded".into()));
        }
        if sup.is_shutting_down() {
            return self.answer(sup, slot, start, Err("asyncmdd is shutting down".into()));
        }
        let state = slot.state();
        let p = self.private(slot);
        // Being started, or stopped, already: this start comes once that is over.
        if p.queued.is_some() || p.spawn.is_some() || !p.stops.is_empty() {
            p.deferred.push(start);
            return;
        }
        if state == UnitState::Stopping {
            let why = "it is still stopping; try again once it has stopped";
            return self.answer(sup, slot, start, Err(why.into()));
        }
        let def = slot.def();
        let Some(unit) = def.unit.as_ref() else {
            let why = def.load_error.as_deref().unwrap_or("unknown error");
            return self.answer(sup, slot, start, Err(format!("not loaded: {why}")));
        };
        if def.config.masked && !matches!(state, UnitState::Running | UnitState::Starting) {
            let name = asyncmd_proto::unit::short_name(&slot.name);
            let why = format!("it is masked: asyncmctl unmask {name} first");
            return self.answer(sup, slot, start, Err(why));
        }
        if start.reply.is_some() {
            // A person started it: it waits for nothing it was held back for.
            self.private(slot).held = None;
        } else if !matches!(state, UnitState::Running | UnitState::Starting) {
            // A start of the driver's own (a restart, a schedule, a rule) waits for what the
            // unit requires; a person's start was planned with its requirements first.
            let waits: Vec<String> = unit
                .requires
                .iter()
                .filter(|r| !sup.get(r).is_some_and(|s| s.is_ready()))
                .cloned()
                .collect();
            if let Some(first) = waits.first() {
                let msg = format!("Waiting for its requirement {first} before it starts");
                sup.log(slot, Level::Info, &msg);
                self.private(slot).held = Some(first.clone());
                let fx = slot.write(|l| l.step(Event::Wait(waits.clone())));
                sup.carry_out(slot, fx);
                return;
            }
        }
        if matches!(state, UnitState::Running | UnitState::Starting) {
            // Whoever started it waits for the oneshot to end, or the notify unit to be
            // ready; so does this caller.
            return match unit.kind {
                UnitType::Oneshot => self.wait(sup, slot, Want::End, start),
                UnitType::Notify => self.wait(sup, slot, Want::Ready, start),
                _ => self.answer(sup, slot, start, Ok(())),
            };
        }
        match &unit.run {
            Run::Exec(_) => {
                // Its turn among the units being started, held until it runs: a boot of
                // thousands of oneshots never has more than the limit in flight.
                if self.starting >= self.limit {
                    self.private(slot).queued = Some(start);
                    self.queue.push_back(slot.clone());
                    return;
                }
                self.starting += 1;
                self.spawn_process(sup, slot, def.clone(), start);
            }
            Run::Builtin(_) | Run::Agent(_) => {
                let r = self.start_builtin(sup, slot, &def, &unit.run);
                let run = slot.read(|l| l.life.starts);
                match r {
                    Ok(()) if unit.kind == UnitType::Oneshot => {
                        self.wait(sup, slot, Want::End, start)
                    }
                    Ok(()) if start.reply.is_some() => self.first_moment(sup, slot, run, start),
                    r => {
                        self.answer(sup, slot, start, r);
                        self.settle(sup, slot);
                    }
                }
            }
        }
    }

    /// Answers `start` once run `run` has lasted its first moment, or ended within it (then
    /// the start failed, as the boot report says).
    fn first_moment(&mut self, sup: &Arc<Supervisor>, slot: &Arc<Unit>, run: u32, start: StartReq) {
        sup.after(FIRST_MOMENT, slot, Timer::FirstMoment { run });
        self.wait(sup, slot, Want::Moment(run), start);
    }

    /// Answers `start` once the unit is ready or has ended, as `want` says.
    fn wait(&mut self, sup: &Arc<Supervisor>, slot: &Arc<Unit>, want: Want, start: StartReq) {
        self.private(slot).waiters.push((want, start));
        self.settle(sup, slot);
    }

    /// Gives up a place among the units being started; the next in line takes it.
    fn release(&mut self, sup: &Arc<Supervisor>) {
        self.starting = self.starting.saturating_sub(1);
        while self.starting < self.limit {
            let Some(next) = self.queue.pop_front() else {
                break;
            };
            if let Some(start) = self.private(&next).queued.take() {
                self.start(sup, &next, start);
            }
        }
    }

    /// Answers whatever the state of `slot` now settles: starts waiting for it to be ready
    /// or to end, its place among the units being started, stops waiting for it to be over,
    /// and starts deferred until then.
    fn settle(&mut self, sup: &Arc<Supervisor>, slot: &Arc<Unit>) {
        let state = slot.state();
        let p = self.private(slot);
        let (met, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut p.waiters)
            .into_iter()
            .partition(|(want, _)| want.met(state));
        p.waiters = waiting;
        let permit = p.permit.is_some_and(|want| want.met(state));
        if permit {
            p.permit = None;
        }
        let over = !matches!(
            state,
            UnitState::Running | UnitState::Stopping | UnitState::Starting
        );
        let stops = if over {
            std::mem::take(&mut p.stops)
        } else {
            Vec::new()
        };
        let free = state != UnitState::Stopping && p.queued.is_none() && p.spawn.is_none();
        let deferred = if free && p.stops.is_empty() {
            std::mem::take(&mut p.deferred)
        } else {
            Vec::new()
        };
        if permit {
            self.release(sup);
        }
        for (want, start) in met {
            let r = slot.read(|l| want.outcome(&l.life));
            self.answer(sup, slot, start, r);
        }
        for stop in stops {
            self.stopped(sup, slot, stop, Ok(()));
        }
        for start in deferred {
            self.start(sup, slot, start);
        }
        // Requirements: what waits for this unit may start; what needs it goes if it fell.
        let ready = slot.is_ready();
        let was = std::mem::replace(&mut self.private(slot).was_ready, ready);
        if ready && !was {
            self.requirement_up(sup, slot);
        }
        let why = match slot.state() {
            UnitState::Failed => "failed",
            UnitState::Restarting => "ended, and is to be restarted",
            UnitState::Stopping | UnitState::Stopped | UnitState::Inactive => "stopped",
            _ => "",
        };
        if was && !ready && !why.is_empty() {
            self.take_down(sup, slot, why);
        }
        if over {
            self.resume_stops(sup, slot);
        }
    }

    /// The loaded units that require `name` (itself aside).
    fn dependents(sup: &Supervisor, name: &str) -> Vec<Arc<Unit>> {
        sup.all()
            .into_iter()
            .filter(|s| s.name != name)
            .filter(|s| {
                let def = s.def();
                def.unit
                    .as_ref()
                    .is_some_and(|u| u.requires.iter().any(|r| r == name))
            })
            .collect()
    }

    /// `slot` is ready: each unit held back for want of it starts, once every unit it requires
    /// is ready.
    fn requirement_up(&mut self, sup: &Arc<Supervisor>, slot: &Arc<Unit>) {
        for d in Self::dependents(sup, &slot.name) {
            if self.private(&d).held.as_deref() != Some(slot.name.as_str()) {
                continue;
            }
            let waits: Vec<String> = d
                .def()
                .unit
                .as_ref()
                .map(|u| u.requires.clone())
                .unwrap_or_default()
                .into_iter()
                .filter(|r| !sup.get(r).is_some_and(|s| s.is_ready()))
                .collect();
            if let Some(first) = waits.first() {
                self.private(&d).held = Some(first.clone());
                let fx = d.write(|l| l.step(Event::Wait(waits.clone())));
                sup.carry_out(&d, fx);
                continue;
            }
            self.private(&d).held = None;
            let msg = format!(
                "Starting {}: its requirement {} is ready",
                d.name, slot.name
            );
            sup.log(&d, Level::Info, &msg);
            self.start(sup, &d, StartReq::internal(None));
        }
    }

    /// `slot` fell (`why`: it failed, stopped...): each unit that requires it and runs is
    /// stopped, and waits for it to be ready again.
    fn take_down(&mut self, sup: &Arc<Supervisor>, slot: &Arc<Unit>, why: &str) {
        for d in Self::dependents(sup, &slot.name) {
            match d.state() {
                UnitState::Running | UnitState::Starting => {
                    let msg = format!("Stopping {}: its requirement {} {why}", d.name, slot.name);
                    sup.log(&d, Level::Info, &msg);
                    self.private(&d).held = Some(slot.name.clone());
                    self.stop(sup, &d, StopReq::Cascade);
                }
                // A restart of its own would find its requirement gone: it waits instead.
                UnitState::Restarting => {
                    let msg = format!(
                        "{}: its requirement {} {why}; it restarts once that one is ready",
                        d.name, slot.name
                    );
                    sup.log(&d, Level::Info, &msg);
                    self.private(&d).held = Some(slot.name.clone());
                    let fx = d.write(|l| l.step(Event::Wait(vec![slot.name.clone()])));
                    sup.carry_out(&d, fx);
                }
                _ => {}
            }
        }
    }

    /// `slot` is down: a stop of a unit it requires that waited for it (and for the other
    /// units that require that one) goes ahead.
    fn resume_stops(&mut self, sup: &Arc<Supervisor>, slot: &Arc<Unit>) {
        let requires = slot.def().unit.as_ref().map(|u| u.requires.clone());
        for r in requires.unwrap_or_default() {
            let Some(req) = sup.get(&r) else { continue };
            if self.private(&req).stop_after.is_empty() || Self::has_running_dependents(sup, &req) {
                continue;
            }
            for stop in std::mem::take(&mut self.private(&req).stop_after) {
                self.stop(sup, &req, stop);
            }
        }
    }

    /// Whether a unit that requires `slot` still runs (or is on its way down).
    fn has_running_dependents(sup: &Supervisor, slot: &Unit) -> bool {
        Self::dependents(sup, &slot.name).iter().any(|d| {
            matches!(
                d.state(),
                UnitState::Running | UnitState::Starting | UnitState::Stopping
            )
        })
    }

    /// Spawns the process of `slot` (whose place among the units starting it holds).
    fn spawn_process(
        &mut self,
        sup: &Arc<Supervisor>,
        slot: &Arc<Unit>,
        def: Arc<Definition>,
        start: StartReq,
    ) {
        let unit = def.unit.as_ref().expect("a loaded unit is started");
        let Run::Exec(exec) = &unit.run else {
            unreachable!("a builtin is not spawned")
        };
        let argv = process::argv(exec, &def.config);
        let tag = slot.write(|l| {
            l.step(Event::Spawning);
            l.ran_with = Some(def.clone());
            let tag = process::new_tag(&slot.name, l.life.starts + 1);
            l.invocation = Some(tag.clone());
            tag
        });
        let mut extra = sup.child_env(unit);
        extra.extend(start.env.iter().cloned());
        let cgroup = match slot.cgroups.as_ref().map(|cg| (cg, cg.prepare(&slot.name))) {
            None => None,
            Some((_, Ok(procs))) => Some(procs),
            Some((cg, Err(e))) => {
                let msg = format!(
                    "cannot make its cgroup {}: {e}",
                    cg.dir(&slot.name).display()
                );
                self.release(sup);
                self.fail_start(sup, slot, &msg);
                return self.answer(sup, slot, start, Err(msg));
            }
        };
        let spawn = Spawn {
            start,
            def: def.clone(),
            argv,
            tag,
            extra,
            cgroup,
            until: Instant::now() + SPAWN_RETRY,
        };
        self.try_spawn(sup, slot, spawn);
    }

    fn try_spawn(&mut self, sup: &Arc<Supervisor>, slot: &Arc<Unit>, spawn: Spawn) {
        let unit = spawn.def.unit.as_ref().expect("a loaded unit is started");
        let s = &spawn;
        match process::spawn(
            unit,
            &s.argv,
            &s.def.config,
            &s.tag,
            &s.extra,
            s.cgroup.clone(),
        ) {
            Ok(child) => self.started_process(sup, slot, spawn, child),
            Err(e) => {
                // Out of descriptors (EMFILE, ENFILE) is a moment's want: other runs end and
                // give theirs back. Try again for a while before calling it a failure.
                let out_of_fds = matches!(
                    e.raw_os_error(),
                    Some(n) if n == nix::libc::EMFILE || n == nix::libc::ENFILE
                );
                if out_of_fds && Instant::now() < spawn.until {
                    self.private(slot).spawn = Some(spawn);
                    sup.after(SPAWN_RETRY_EVERY, slot, Timer::SpawnRetry);
                    return;
                }
                let program = &spawn.argv[0];
                // The OS says ENOENT for a missing workdir as for a missing program.
                let msg = match unit.workdir.as_ref().map(|w| (w, std::fs::metadata(w))) {
                    Some((w, Err(we))) => {
                        format!("cannot run {program}: workdir {}: {we}", w.display())
                    }
                    Some((w, Ok(m))) if !m.is_dir() => format!(
                        "cannot run {program}: workdir {} is not a directory",
                        w.display()
                    ),
                    _ => format!("cannot run {program}: {e}"),
                };
                self.release(sup);
                self.fail_start(sup, slot, &msg);
                self.on_failure(sup, slot, &msg);
                self.answer(sup, slot, spawn.start, Err(msg));
            }
        }
    }

    /// `slot` failed (`why`): its `on_failure` units start, told which unit failed and how.
    fn on_failure(&mut self, sup: &Arc<Supervisor>, slot: &Arc<Unit>, why: &str) {
        let def = slot.def();
        let Some(unit) = def.unit.as_ref() else {
            return;
        };
        for name in &unit.on_failure {
            let Some(alert) = sup.get(name) else {
                let msg = format!("on_failure: there is no unit {name} to start");
                sup.log(slot, Level::Warning, &msg);
                continue;
            };
            let msg = format!("Starting {name}: on_failure of {}", slot.name);
            sup.log(slot, Level::Info, &msg);
            let start = StartReq {
                env: vec![
                    ("ASYNCMD_FAILED_UNIT".into(), slot.name.clone()),
                    ("ASYNCMD_FAILURE".into(), why.to_string()),
                ],
                ..StartReq::internal(None)
            };
            self.start(sup, &alert, start);
        }
    }

    /// The process of a run is spawned: its output capture, its monitor, its watchdog and
    /// health check go with it.
    fn started_process(
        &mut self,
        sup: &Arc<Supervisor>,
        slot: &Arc<Unit>,
        spawn: Spawn,
        mut child: crate::spawn::Child,
    ) {
        let Spawn {
            start, def, tag, ..
        } = spawn;
        let unit = def.unit.as_ref().expect("a loaded unit is started");
        let pid = child.id();
        let notify = unit.kind == UnitType::Notify;
        let (run, fx) = slot.write(|l| {
            let fx = l.step(Event::Started {
                ready: !notify,
                what: Some(format!("pid {pid}")),
            });
            l.pid = Some(pid);
            l.counters = None;
            (l.life.starts, fx)
        });
        sup.carry_out(slot, fx);

        let mut pipes = Vec::new();
        if let Some(out) = child.stdout.take() {
            let c = capture(out, sup.journal.clone(), slot.id, Level::Info, |_| {});
            pipes.push(sup.spawn_for(slot, Handler::Capture, c));
        }
        if let Some(err) = child.stderr.take() {
            let (inbox, s) = (sup.inbox.clone(), slot.clone());
            let tap = move |lines: &mut dyn Iterator<Item = Line<'_>>| {
                // Only the last lines of a batch matter: keep slices until it ends.
                let mut last: VecDeque<&[u8]> = VecDeque::with_capacity(TRACEBACK_LINES);
                for l in lines {
                    if last.len() == TRACEBACK_LINES {
                        last.pop_front();
                    }
                    last.push_back(l.msg);
                }
                if !last.is_empty() {
                    let lines = last
                        .into_iter()
                        .map(|m| crate::journal::text(m).into_owned())
                        .collect();
                    let slot = s.clone();
                    let _ = inbox.send(Input::Traceback { slot, run, lines });
                }
            };
            let c = capture(err, sup.journal.clone(), slot.id, Level::Error, tap);
            pipes.push(sup.spawn_for(slot, Handler::Capture, c));
        }
        let (inbox, s, journal) = (sup.inbox.clone(), slot.clone(), sup.journal.clone());
        sup.spawn_for(slot, Handler::Monitor, async move {
            let status = child.wait().await;
            process::unregister(pid);
            // Whatever the run left behind (a double-forked daemon, a background job) goes
            // with it: no process of a unit outlives its main process.
            let left = s.run_pids(&tag);
            let cleaning = !left.is_empty();
            let _ = inbox.send(Input::MainExited {
                slot: s.clone(),
                run,
                cleaning,
            });
            if cleaning {
                clean_up(&journal, &s, &tag, left).await;
                let _ = inbox.send(Input::CleanedUp {
                    slot: s.clone(),
                    run,
                });
            }
            // Let the pipes drain so the traceback is complete; a leftover grandchild holding
            // them open must not keep the unit "running".
            let _ = tokio::time::timeout(DRAIN_GRACE, async {
                for p in pipes {
                    let _ = p.await;
                }
            })
            .await;
            let status = status.map(process::exit_result);
            let _ = inbox.send(Input::Exited {
                slot: s,
                run,
                status,
            });
        });
        if let Some(every) = unit.watchdog {
            let (inbox, s) = (sup.inbox.clone(), slot.clone());
            sup.spawn_for(slot, Handler::Watchdog, async move {
                if let Some(why) = health::watchdog(|| s.last_ping(run), every).await {
                    let (slot, sig) = (s.clone(), Signal::SIGABRT);
                    let _ = inbox.send(Input::Verdict {
                        slot,
                        run,
                        why,
                        sig,
                    });
                }
            });
        }
        if let Some(check) = &unit.health {
            let (inbox, s, check) = (sup.inbox.clone(), slot.clone(), check.clone());
            sup.spawn_for(slot, Handler::Health, async move {
                let report = |text| {
                    let slot = s.clone();
                    let _ = inbox.send(Input::Health { slot, run, text });
                };
                if let Some(why) = health::health(&check, || s.is_run(run), report).await {
                    let (slot, sig) = (s.clone(), s.stop_settings().0);
                    let _ = inbox.send(Input::Verdict {
                        slot,
                        run,
                        why,
                        sig,
                    });
                }
            });
        }
        match unit.kind {
            UnitType::Oneshot => {
                self.private(slot).permit = Some(Want::End);
                self.wait(sup, slot, Want::End, start);
            }
            UnitType::Notify => {
                self.private(slot).permit = Some(Want::Ready);
                let limit = unit.start_timeout;
                sup.after(limit, slot, Timer::Ready { run, limit });
                self.wait(sup, slot, Want::Ready, start);
            }
            _ => {
                self.release(sup);
                if start.reply.is_some() {
                    self.first_moment(sup, slot, run, start);
                } else {
                    self.answer(sup, slot, start, Ok(()));
                    self.settle(sup, slot);
                }
            }
        }
    }

    /// Starts builtin service `run` of `slot` as a task of the daemon.
    fn start_builtin(
        &mut self,
        sup: &Arc<Supervisor>,
        slot: &Arc<Unit>,
        def: &Arc<Definition>,
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
            self.fail_start(sup, slot, &msg);
            return Err(msg);
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let (stats, weak) = (Arc::new(Mutex::new(Map::new())), self.sup.clone());
        let sink = stats.clone();
        let ctx = crate::builtins::Context {
            name: slot.name.clone(),
            args: def.config.args.clone(),
            kwargs: def.config.kwargs.clone(),
            stop: stop_rx,
            journal: sup.journal.clone(),
            id: slot.id,
            agent,
            boards: sup.boards.clone(),
            answer: sup.answer.get().cloned(),
            config: sup.paths.as_ref().map(|p| p.config.clone()),
            stats: Arc::new(move |now| *sink.lock().unwrap_or_else(|e| e.into_inner()) = now),
            units: Box::new(move || {
                weak.upgrade()
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
        let (run, fx) = slot.write(|l| {
            let fx = l.step(Event::Started {
                ready: true,
                what: Some(format!("builtin {name}")),
            });
            l.ran_with = Some(def.clone());
            l.stats = stats;
            l.counters = Some(counters);
            (l.life.starts, fx)
        });
        self.private(slot).builtin = Some((stop_tx, inner.abort_handle()));
        sup.carry_out(slot, fx);
        let (inbox, s) = (sup.inbox.clone(), slot.clone());
        sup.spawn_for(slot, Handler::Monitor, async move {
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
            let _ = inbox.send(Input::BuiltinEnded {
                slot: s,
                run,
                outcome,
            });
        });
        Ok(())
    }

    fn builtin_ended(
        &mut self,
        sup: &Arc<Supervisor>,
        slot: &Arc<Unit>,
        run: u32,
        outcome: Result<(), String>,
    ) {
        let code = i32::from(outcome.is_err());
        let current = slot.write(|l| {
            if l.life.starts != run {
                return false;
            }
            if let Err(why) = outcome {
                // Its error is the reason it failed; the Kill asked for is moot. A stopped
                // run keeps the error too (an abort after its stop timeout).
                if l.life.stop_requested() {
                    l.life.error = Some(why);
                } else {
                    l.step(Event::Condemn { run, why });
                }
            }
            true
        });
        if current {
            self.private(slot).builtin = None;
        }
        self.finished(sup, slot, run, Ok(ExitResult::Exited { code }));
    }

    /// Run `run` of `slot` is over: its lifecycle decides what comes next (a restart, say).
    fn finished(
        &mut self,
        sup: &Arc<Supervisor>,
        slot: &Arc<Unit>,
        run: u32,
        status: std::io::Result<ExitResult>,
    ) {
        let end = match status {
            Ok(r) => End::Exit(r),
            Err(e) => End::Lost(e.to_string()),
        };
        let (fx, failed) = slot.write(|l| {
            let restart = l
                .ran_with
                .as_ref()
                .and_then(|d| d.unit.as_ref())
                .map(|u| (u.restart, u.backoff));
            let current = l.life.starts == run;
            let fx = l.step(Event::Ended { run, end, restart });
            let failed = (current && l.life.last_failed).then(|| l.life.failure_reason());
            (fx, failed)
        });
        for effect in sup.carry_out(slot, fx) {
            if let Effect::ArmRestart { delay, gen } = effect {
                sup.after(delay, slot, Timer::Restart { gen });
            }
        }
        self.settle(sup, slot);
        if let Some(why) = failed {
            self.on_failure(sup, slot, &why);
        }
    }

    /// Stops `slot`: its stop signal to its process group (a builtin: its stop request), then
    /// SIGKILL after its stop timeout (a builtin: an abort); `stop` is answered once it is
    /// over. A stop under way is joined.
    fn stop(&mut self, sup: &Arc<Supervisor>, slot: &Arc<Unit>, stop: StopReq) {
        let p = self.private(slot);
        let (queued, spawn) = (p.queued.take(), p.spawn.take());
        if queued.is_some() || spawn.is_some() {
            let why = "stopped before it could start";
            let deferred = std::mem::take(&mut p.deferred);
            if let Some(start) = queued {
                self.queue.retain(|s| !Arc::ptr_eq(s, slot));
                self.answer(sup, slot, start, Err(why.into()));
            }
            if let Some(spawn) = spawn {
                self.release(sup);
                self.fail_start(sup, slot, why);
                self.answer(sup, slot, spawn.start, Err(why.into()));
            }
            for start in deferred {
                self.answer(sup, slot, start, Err(why.into()));
            }
        }
        if !self.private(slot).stops.is_empty() {
            self.private(slot).stops.push(stop);
            return;
        }
        // Asked to stop (not taken down by its own requirement), it no longer waits for one.
        if !matches!(stop, StopReq::Cascade) {
            self.private(slot).held = None;
        }
        // What requires it goes first, in dependency order: each of those waits for its own
        // dependents in turn, and this stop goes ahead once they are all down.
        if !self.private(slot).stop_after.is_empty() {
            self.private(slot).stop_after.push(stop);
            return;
        }
        if Self::has_running_dependents(sup, slot) {
            for d in Self::dependents(sup, &slot.name) {
                if matches!(d.state(), UnitState::Running | UnitState::Starting) {
                    let msg = format!(
                        "Stopping {}: its requirement {} is stopping",
                        d.name, slot.name
                    );
                    sup.log(&d, Level::Info, &msg);
                    self.private(&d).held = Some(slot.name.clone());
                    self.stop(sup, &d, StopReq::Cascade);
                }
            }
            self.private(slot).stop_after.push(stop);
            return;
        }
        let (fx, pid, alive, run) = slot.write(|l| {
            let fx = l.step(Event::Stop);
            (fx, l.pid, l.alive_pid(), l.life.starts)
        });
        if sup.carry_out(slot, fx).is_empty() {
            return self.stopped(sup, slot, stop, Ok(()));
        }
        let (sig, timeout) = slot.stop_settings();
        if let Some((tx, _)) = &self.private(slot).builtin {
            let _ = tx.send(true);
        } else if pid.is_none() {
            return self.stopped(sup, slot, stop, Ok(()));
        } else if let Some(pid) = alive {
            // The group now; whatever escaped it is an orphan once the main process is gone,
            // and the monitor's clean-up stops it.
            if let Err(e) = process::signal_group(pid, sig) {
                slot.write(|l| l.step(Event::StopFailed));
                let why = format!("cannot signal process group {pid}: {e}");
                return self.stopped(sup, slot, stop, Err(why));
            }
        }
        self.private(slot).stops.push(stop);
        sup.after(timeout, slot, Timer::StopTimeout { run });
        self.settle(sup, slot);
    }

    /// A stop of `slot` is over, as `r` says.
    fn stopped(
        &mut self,
        sup: &Arc<Supervisor>,
        slot: &Arc<Unit>,
        stop: StopReq,
        r: Result<(), String>,
    ) {
        match stop {
            StopReq::Stop(reply) => {
                let _ = reply.send(r);
            }
            StopReq::Cascade => {
                // Down for want of its requirement: it waits for that one, as status shows.
                let held = self.private(slot).held.clone();
                if let (Some(req), Ok(())) = (held, r) {
                    let fx = slot.write(|l| l.step(Event::Wait(vec![req])));
                    sup.carry_out(slot, fx);
                }
            }
            StopReq::Unload(reply) => {
                if r.is_ok() {
                    {
                        let mut units = sup.units.write().unwrap_or_else(|e| e.into_inner());
                        if units.get(&slot.name).is_some_and(|s| Arc::ptr_eq(s, slot)) {
                            units.remove(&slot.name);
                        }
                    }
                    if let Some(cg) = &slot.cgroups {
                        cg.remove(&slot.name);
                    }
                    self.units.remove(&key(slot));
                    // Wakes its scheduler, which sees the unit is gone and ends.
                    slot.write(|_| {});
                } else {
                    slot.write(|l| l.retired = false);
                }
                let _ = reply.send(r);
            }
        }
    }

    fn timer(&mut self, sup: &Arc<Supervisor>, slot: &Arc<Unit>, timer: Timer) {
        let current = |run: u32| slot.read(|l| l.life.starts == run && l.life.running);
        match timer {
            Timer::StopTimeout { run } => {
                if !current(run) || self.private(slot).stops.is_empty() {
                    return;
                }
                let (sig, timeout) = slot.stop_settings();
                if let Some((_, abort)) = &self.private(slot).builtin {
                    let msg = format!("Did not stop within {timeout:?}: aborting it");
                    sup.log(slot, Level::Warning, &msg);
                    abort.abort();
                    sup.after(KILL_GRACE, slot, Timer::KillTimeout { run });
                } else {
                    let msg = format!("Did not stop within {timeout:?} of {sig}: sending SIGKILL");
                    sup.log(slot, Level::Warning, &msg);
                    let (group, tag) = slot.read(|l| (l.alive_pid(), l.tag()));
                    slot.signal_run(group, &tag, Signal::SIGKILL);
                    sup.after(KILL_GRACE + timeout, slot, Timer::KillTimeout { run });
                }
            }
            Timer::KillTimeout { run } => {
                if !current(run) {
                    return;
                }
                let why = if self.private(slot).builtin.is_some() {
                    "the builtin service did not end after it was aborted".to_string()
                } else {
                    let pid = slot.read(|l| l.pid).unwrap_or_default();
                    format!("process {pid} survived SIGKILL for {KILL_GRACE:?}")
                };
                for stop in std::mem::take(&mut self.private(slot).stops) {
                    self.stopped(sup, slot, stop, Err(why.clone()));
                }
            }
            Timer::Condemned { run } => {
                if slot.is_run(run) {
                    let (pid, tag) = slot.read(|l| (l.alive_pid(), l.tag()));
                    slot.signal_run(pid, &tag, Signal::SIGKILL);
                }
            }
            Timer::Ready { run, limit } => {
                if slot.state() != UnitState::Starting || !slot.is_run(run) {
                    return;
                }
                let why = format!("no READY=1 within {}", humantime::format_duration(limit));
                let p = self.private(slot);
                let (ready, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut p.waiters)
                    .into_iter()
                    .partition(|(want, _)| *want == Want::Ready);
                p.waiters = rest;
                if p.permit == Some(Want::Ready) {
                    p.permit = None;
                    self.release(sup);
                }
                for (_, start) in ready {
                    self.answer(sup, slot, start, Err(why.clone()));
                }
                let sig = slot.stop_settings().0;
                self.kill_run(sup, slot, run, &why, sig);
            }
            Timer::Restart { gen } => self.start(sup, slot, StartReq::internal(Some(gen))),
            Timer::FirstMoment { run } => {
                let p = self.private(slot);
                let (moment, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut p.waiters)
                    .into_iter()
                    .partition(|(want, _)| *want == Want::Moment(run));
                p.waiters = rest;
                for (_, start) in moment {
                    self.answer(sup, slot, start, Ok(()));
                }
            }
            Timer::SpawnRetry => {
                if let Some(spawn) = self.private(slot).spawn.take() {
                    self.try_spawn(sup, slot, spawn);
                }
            }
        }
    }

    /// Kills run `run` of `slot` because of `why` (a watchdog, a health check or its start
    /// timeout gave up on it): `sig` to its processes, SIGKILL after its stop timeout. The
    /// run then ends as failed with `why` as its reason, and the restart policy applies.
    fn kill_run(
        &mut self,
        sup: &Arc<Supervisor>,
        slot: &Arc<Unit>,
        run: u32,
        why: &str,
        sig: Signal,
    ) {
        let target = slot.write(|l| {
            let pid = l.alive_pid()?;
            let condemn = Event::Condemn {
                run,
                why: why.to_string(),
            };
            l.step(condemn)
                .contains(&Effect::Kill)
                .then(|| (pid, l.tag()))
        });
        let Some((pid, tag)) = target else {
            return;
        };
        sup.log(slot, Level::Error, &format!("{why}: sending {sig}"));
        process::signal_invocation(Some(pid), &tag, sig);
        sup.after(slot.stop_settings().1, slot, Timer::Condemned { run });
    }

    /// A panic in `handler` of `slot`: the unit is marked failed with the panic and where it
    /// happened. A run still going is killed (a run no task watches any more is not left
    /// running); when the monitor was the one that died, its end is recorded here.
    fn fault(&mut self, sup: &Arc<Supervisor>, slot: &Arc<Unit>, handler: Handler, e: TaskError) {
        let why = format!("internal error: {} {}", handler.name(), e.chain.join(" "));
        let (kill, fx) = slot.write(|l| {
            if l.life.running {
                let run = l.life.starts;
                let kill = (l.alive_pid(), l.tag());
                let mut fx = l.step(Event::Condemn {
                    run,
                    why: why.clone(),
                });
                if handler == Handler::Monitor {
                    fx.extend(l.step(Event::Ended {
                        run,
                        end: End::Lost(why.clone()),
                        restart: None,
                    }));
                }
                (Some(kill), fx)
            } else {
                (None, l.step(Event::StartFailed(why.clone())))
            }
        });
        sup.log(slot, Level::Error, &why);
        sup.carry_out(slot, fx);
        if let Some((pid, tag)) = kill {
            slot.signal_run(pid, &tag, Signal::SIGKILL);
            if let Some((_, abort)) = self.private(slot).builtin.take() {
                abort.abort();
            }
        }
        self.settle(sup, slot);
    }

    /// Applies an sd_notify datagram; its sender's PID says which unit it is from.
    fn on_notify(&mut self, sup: &Arc<Supervisor>, msg: &Message) {
        let Some(pid) = msg.pid else { return };
        let slot = match self.speaker(sup, pid) {
            Speaker::Unit(s) => s,
            Speaker::Nobody => {
                tracing::debug!("sd_notify from pid {pid}, which belongs to no unit: ignored");
                return;
            }
            Speaker::WrongTag => {
                self.forged_notify += 1;
                let n = self.forged_notify;
                // The first, then every hundredth: a forger cannot flood the journal.
                if n == 1 || n.is_multiple_of(100) {
                    let me = sup.journal.unit_id(crate::journal::SELF_UNIT);
                    sup.journal.log(
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
        let fx = slot.write(|l| {
            let mut fx = Vec::new();
            for (k, v) in &msg.fields {
                match (k.as_str(), v.as_str()) {
                    ("READY", "1") => fx.extend(l.step(Event::Ready)),
                    ("STATUS", text) => l.status_text = Some(text.to_string()),
                    ("WATCHDOG", "1") => l.last_ping = Some(Instant::now()),
                    ("MAINPID", p) => {
                        // Only a process of this very run may be named its main process.
                        let claimed = p.parse().ok().filter(|&p| of_run(p, l));
                        if claimed.is_some() {
                            l.main_pid = claimed;
                        }
                    }
                    ("STOPPING", "1") => {
                        fx.push(Effect::Log(Level::Info, "Stopping (STOPPING=1)".into()));
                    }
                    _ => {}
                }
            }
            fx
        });
        sup.carry_out(&slot, fx);
        self.settle(sup, &slot);
    }

    /// The unit whose process `pid` is: its main process, its `MAINPID=`, or any process
    /// carrying its current run's `ASYNCMD_INVOCATION`.
    fn speaker(&self, sup: &Supervisor, pid: u32) -> Speaker {
        let all = sup.all();
        // The run tag in its environment is the surest sign; PIDs come second. A process
        // with a tag that is no current run's (guessed, or left from an earlier run) is not
        // heard, whatever its PID.
        if let Some(tag) = process::invocation_of(pid) {
            return match all
                .iter()
                .find(|s| s.read(|l| l.invocation.as_deref() == Some(&tag)))
            {
                Some(s) => Speaker::Unit(s.clone()),
                None => Speaker::WrongTag,
            };
        }
        all.into_iter()
            .find(|s| s.read(|l| !l.main_exited && (l.pid == Some(pid) || l.main_pid == Some(pid))))
            .map_or(Speaker::Nobody, Speaker::Unit)
    }

    /// Kills orphans whose run is over: left behind by a run whose main process ended, and
    /// missed by its clean-up (one that was mid-exec, say). Orphans of a run still going, or
    /// being cleaned up, are left alone; so are processes with no run tag, or the tag of no
    /// unit of this daemon.
    fn sweep_strays(&mut self, sup: &Arc<Supervisor>) {
        let strays: Vec<(u32, String)> = process::orphans()
            .into_iter()
            .filter_map(|(pid, tag)| Some((pid, tag?)))
            .collect();
        if strays.is_empty() {
            return;
        }
        let all = sup.all();
        for (pid, tag) in strays {
            let ours = all.iter().any(|s| {
                tag.strip_prefix(s.name.as_str())
                    .is_some_and(|t| t.starts_with(':'))
            });
            let owner = all
                .iter()
                .find(|s| s.read(|l| l.invocation.as_deref() == Some(&tag)));
            let over =
                owner.is_none_or(|s| s.read(|l| !l.cleaning && (l.main_exited || l.pid.is_none())));
            if ours && over {
                if let Some(s) = owner {
                    let msg = format!("Killing stray process {pid} of an ended run");
                    sup.log(s, Level::Warning, &msg);
                }
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
    }
}

/// Ends what a run left behind once its main process is gone: the unit's stop signal, then
/// SIGKILL after its stop timeout.
async fn clean_up(journal: &Journal, slot: &Unit, tag: &str, left: Vec<u32>) {
    let n = left.len();
    let msg = format!("Stopping {n} leftover process(es) of this run: {left:?}");
    journal.log(slot.id, Level::Info, &msg);
    let (sig, timeout) = slot.stop_settings();
    let signal = |s| slot.signal_run(None, tag, s);
    let stayed = process::stop_within(sig, timeout, signal, || slot.run_pids(tag)).await;
    if !stayed.is_empty() {
        let msg = format!("Leftover process(es) {stayed:?} outlived {timeout:?}: sent SIGKILL");
        journal.log(slot.id, Level::Warning, &msg);
    }
}

/// A unit as its scheduler sees it.
struct OnSchedule {
    sup: Weak<Supervisor>,
    slot: Arc<Unit>,
}

impl Scheduled for OnSchedule {
    fn schedule(&self) -> Option<Option<(asyncmd_core::schedule::Spec, bool)>> {
        let sup = self.sup.upgrade()?;
        if !sup.is_loaded(&self.slot) {
            return None;
        }
        let def = self.slot.def();
        let spec = def.unit.as_ref().and_then(|u| u.schedule.clone());
        Some(spec.map(|sc| (sc.spec, def.config.enabled && !def.config.masked)))
    }

    fn busy(&self) -> bool {
        !matches!(
            self.slot.state(),
            UnitState::Inactive | UnitState::Done | UnitState::Failed | UnitState::Stopped
        )
    }

    fn show_next(&self, next_us: Option<i64>) {
        if let Some(sup) = self.sup.upgrade() {
            let slot = self.slot.clone();
            sup.send(Input::ShowNext { slot, next_us });
        }
    }

    fn log(&self, level: Level, line: &str) {
        if let Some(sup) = self.sup.upgrade() {
            sup.log(&self.slot, level, line);
        }
    }

    fn start(&self, due_us: i64) {
        if let Some(sup) = self.sup.upgrade() {
            let slot = self.slot.clone();
            sup.send(Input::Due { slot, due_us });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::Journal;
    use crate::services_config::ServiceConfig;
    use crate::unit_file;
    use std::path::Path;
    use std::time::Duration;

    fn def(text: &str) -> Definition {
        let unit = unit_file::parse("p.service", Path::new("p.service"), text);
        Definition::new(
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
        let slot = sup
            .add(
                "p.service".into(),
                def("[service]\nexec = [\"sleep\", \"60\"]\n"),
            )
            .await;
        for handler in [Handler::Health, Handler::Monitor] {
            sup.start(&slot).await.expect("it starts");
            let pid = slot.read(|l| l.pid).expect("a process");
            sup.spawn_for(&slot, handler, async { panic!("boom") });
            let failed = |s| s == UnitState::Failed;
            assert!(slot.wait_for(Duration::from_secs(30), failed).await);
            let error = slot.read(|l| l.life.error.clone()).unwrap_or_default();
            let want = format!(
                "internal error: {} panicked: boom at asyncmdd/src/driver/owner.rs:",
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

    #[tokio::test]
    async fn starts_and_stops_asked_at_once_are_each_answered_once_it_is_settled() {
        let sup = Supervisor::tasks_only(Arc::new(Journal::new(64 * 1024, "t")));
        let slot = sup
            .add(
                "p.service".into(),
                def("[unit]\ntype = \"oneshot\"\n[service]\nexec = [\"sleep\", \"0.2\"]\n"),
            )
            .await;
        // Three starts of one oneshot: one run, and each answered once it has ended.
        let starts: Vec<_> = (0..3).map(|_| sup.start(&slot)).collect();
        for s in starts {
            s.await.expect("the oneshot finished well");
        }
        assert_eq!(slot.read(|l| l.life.starts), 1);
        assert_eq!(slot.state(), UnitState::Done);
        // A stop and a start asked together: the start waits for the stop to be over.
        let long = sup
            .add(
                "q.service".into(),
                def("[service]\nexec = [\"sleep\", \"60\"]\n"),
            )
            .await;
        sup.start(&long).await.expect("it starts");
        let first = long.read(|l| l.pid).expect("a process");
        let (stop, start) = (sup.stop(&long), sup.start(&long));
        stop.await.expect("it stops");
        start.await.expect("it starts again after the stop");
        assert!(gone(first).await);
        assert_eq!(long.state(), UnitState::Running);
        assert_eq!(long.read(|l| l.life.starts), 2);
        sup.stop(&long).await.expect("it stops");
    }
}
