//! The asyncmd agent: the runtime of a board, an embassy driver of `asyncmd-core`.
//!
//! A board runs a fixed set of traceable tasks ([`TaskDef`]): each can be started, stopped and
//! started again, runs on a schedule if it has one, and logs into a ring journal held in a
//! static buffer. The agent answers the same status, list, start, stop, restart and journal
//! requests as the daemon, over the serial link ([`asyncmd_proto::link`]): the requests go
//! through the core's request handling ([`asyncmd_core::control`]) with the agent as its
//! [`Host`](asyncmd_core::control::Host), and every run goes through the core's lifecycle.
//!
//! A board crate gives the agent its tasks and a byte stream, and spawns [`Agent::run_task`]
//! once per task (a fixed pool of embassy tasks), [`Agent::run_schedules`] and
//! [`Agent::serve`].

#![no_std]
#![warn(missing_docs)]

extern crate alloc;

mod host;
mod serve;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::Future;
use core::pin::Pin;

use asyncmd_core::clock::Clock;
use asyncmd_core::journal::{Names, Ring, TooSmall, UnitId};
use asyncmd_core::lifecycle::{Effect, End, Life};
use asyncmd_core::schedule::{Deadline, Spec, Turn};
use asyncmd_core::table::Table;
use asyncmd_proto::link::Stat;
use asyncmd_proto::Level;
use chrono::{DateTime, Utc};
use embassy_futures::select::{select, Either};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::signal::Signal;
use serde_json::Value;

pub use host::Board;

/// What a task's run returns: its result, or why it failed.
pub type TaskResult = Result<Value, String>;
/// A task's run, boxed so that tasks of different bodies share one pool.
pub type TaskFuture = Pin<Box<dyn Future<Output = TaskResult>>>;
/// Makes a task's run from its context.
pub type TaskFn = fn(Ctx) -> TaskFuture;

/// Keyword arguments or stats: names and values in the link's form, in the order they were
/// first set. A board keeps its values so, and carries no JSON map.
pub type Values = Vec<(String, Stat)>;

/// Sets `key` to `value` in `values`.
fn set(values: &mut Values, key: &str, value: Stat) {
    match values.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => values.push((key.into(), value)),
    }
}

/// A task of the board.
pub struct TaskDef {
    /// Its name (`blink`).
    pub name: &'static str,
    /// What it runs.
    pub run: TaskFn,
    /// Its arguments.
    pub args: Vec<Stat>,
    /// Its keyword arguments.
    pub kwargs: Values,
    /// Start it at boot.
    pub start: bool,
    /// Run it on this schedule.
    pub schedule: Option<Spec>,
}

impl TaskDef {
    /// Task `name` running `run`, with no arguments, not started at boot, unscheduled.
    pub fn new(name: &'static str, run: TaskFn) -> TaskDef {
        TaskDef {
            name,
            run,
            args: Vec::new(),
            kwargs: Values::new(),
            start: false,
            schedule: None,
        }
    }

    /// With these arguments.
    pub fn args(mut self, args: Vec<Stat>) -> TaskDef {
        self.args = args;
        self
    }

    /// With the keyword argument `key`.
    pub fn kwarg(mut self, key: &str, value: impl Into<Stat>) -> TaskDef {
        set(&mut self.kwargs, key, value.into());
        self
    }

    /// Started at boot.
    pub fn at_boot(mut self) -> TaskDef {
        self.start = true;
        self
    }

    /// Run on `schedule`.
    pub fn on(mut self, schedule: Option<Spec>) -> TaskDef {
        self.schedule = schedule;
        self
    }
}

/// What a task's run is given.
pub struct Ctx {
    agent: &'static Agent,
    index: usize,
    /// Its arguments.
    pub args: Vec<Stat>,
    /// Its keyword arguments, as they were when this run started.
    pub kwargs: Values,
}

impl Ctx {
    /// Logs `msg` under the task's name.
    pub fn log(&self, level: Level, msg: &str) {
        self.agent.log(self.index, level, msg);
    }

    /// Logs `msg` at INFO.
    pub fn info(&self, msg: &str) {
        self.log(Level::Info, msg);
    }

    /// Sets the stat `key` (shown under `Stats:` in status).
    pub fn set_stat(&self, key: &str, value: impl Into<Stat>) {
        let value = value.into();
        self.agent
            .with(|st| set(&mut st.slots[self.index].stats, key, value));
    }

    /// Keyword argument `key`.
    pub fn kwarg(&self, key: &str) -> Option<&Stat> {
        self.kwargs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A number of seconds from kwargs (`sleep = 0.5`), in milliseconds, or `default_ms`.
    /// Computed in `f32`, which the Cortex-M4F does in hardware: 1 ms steps up to hours.
    pub fn kwarg_ms(&self, key: &str, default_ms: u64) -> u64 {
        match self.kwarg(key) {
            Some(&Stat::Int(secs)) => u64::try_from(secs).map_or(0, |s| s.saturating_mul(1000)),
            Some(&Stat::Float(secs)) => (secs as f32 * 1000.0) as u64,
            Some(&Stat::Decimal(units, scale)) => {
                let ms = u64::try_from(units).map_or(0, |u| u.saturating_mul(1000));
                (0..scale).fold(ms, |ms, _| ms / 10)
            }
            _ => default_ms,
        }
    }
}

/// What a task's runner is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Start,
    Stop,
}

/// One task's live state.
struct Slot {
    id: UnitId,
    life: Life,
    kwargs: Values,
    stats: Values,
    /// When its last scheduled run was due, and its next one is (wall µs).
    schedule_last_us: Option<i64>,
    schedule_next_us: Option<i64>,
}

/// The state every part of the agent shares, behind one critical-section mutex.
struct State {
    ring: Ring<&'static mut [u8]>,
    names: Names,
    table: Table<usize>,
    slots: Vec<Slot>,
    /// Wall clock minus monotonic clock: 0 until a host tells the time.
    wall_offset_us: i64,
    /// The agent's own journal id (link errors, boot).
    me: UnitId,
}

impl State {
    /// The board's clocks as the host last set them.
    fn clock(&self) -> BoardClock {
        BoardClock {
            wall_offset_us: self.wall_offset_us,
        }
    }
}

/// The board's clocks: embassy-time's monotonic clock, and a wall clock set from the host.
#[derive(Debug, Clone, Copy)]
struct BoardClock {
    wall_offset_us: i64,
}

impl Clock for BoardClock {
    fn wall_us(&self) -> i64 {
        self.wall_offset_us.saturating_add(self.mono_us() as i64)
    }

    fn mono_us(&self) -> u64 {
        embassy_time::Instant::now().as_micros()
    }
}

/// Wall times below this (2001-09-09) were taken before a host told the board the time.
const CLOCK_SET: i64 = 1_000_000_000_000_000;

impl BoardClock {
    /// `us` as wall time: a time taken before the clock was set is moved by the offset the
    /// host has given since (it was counted from the boot, as the monotonic clock is).
    fn fix(&self, us: i64) -> i64 {
        if us < CLOCK_SET && self.wall_offset_us >= CLOCK_SET {
            us.saturating_add(self.wall_offset_us)
        } else {
            us
        }
    }

    fn wall(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.wall_us()).unwrap_or_default()
    }
}

/// The runtime of a board.
pub struct Agent {
    board: &'static str,
    firmware: &'static str,
    defs: Vec<TaskDef>,
    state: Mutex<CriticalSectionRawMutex, RefCell<State>>,
    cmds: Vec<Signal<CriticalSectionRawMutex, Cmd>>,
}

impl Agent {
    /// The agent of board `board` running `firmware`, with its journal in `ring` and the tasks
    /// `defs`; an error when `ring` is too small for a journal.
    pub fn new(
        board: &'static str,
        firmware: &'static str,
        ring: &'static mut [u8],
        defs: Vec<TaskDef>,
    ) -> Result<Agent, TooSmall> {
        let mut names = Names::default();
        let me = names.id("agent");
        let mut table = Table::new();
        let mut slots = Vec::with_capacity(defs.len());
        for (i, d) in defs.iter().enumerate() {
            table.insert(d.name.into(), i);
            slots.push(Slot {
                id: names.id(d.name),
                life: Life::new(Some(0)),
                kwargs: d.kwargs.clone(),
                stats: Values::new(),
                schedule_last_us: None,
                schedule_next_us: None,
            });
        }
        let state = State {
            ring: Ring::over(ring)?,
            names,
            table,
            slots,
            wall_offset_us: 0,
            me,
        };
        Ok(Agent {
            board,
            firmware,
            cmds: defs.iter().map(|_| Signal::new()).collect(),
            defs,
            state: Mutex::new(RefCell::new(state)),
        })
    }

    /// How many tasks it has: spawn [`Agent::run_task`] for each index below.
    pub fn tasks(&self) -> usize {
        self.defs.len()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.state.lock(|s| f(&mut s.borrow_mut()))
    }

    fn clock(&self) -> BoardClock {
        self.with(|st| st.clock())
    }

    /// Logs `msg` under task `index`'s name.
    fn log(&self, index: usize, level: Level, msg: &str) {
        let clock = self.clock();
        self.with(|st| {
            let id = st.slots[index].id;
            push(st, &clock, id, level, msg);
        });
    }

    /// Logs `msg` under the agent's own name.
    pub fn log_agent(&self, level: Level, msg: &str) {
        let clock = self.clock();
        self.with(|st| {
            let id = st.me;
            push(st, &clock, id, level, msg);
        });
    }

    /// Steps task `index`'s lifecycle by `step` (a transition a task has: started, ended,
    /// stop), writes the journal lines it asks for, and tells its runner to stop when it asks
    /// to end the run.
    fn apply(&self, index: usize, step: impl FnOnce(&mut Life, &BoardClock) -> Vec<Effect>) {
        let clock = self.clock();
        let fx = self.with(|st| step(&mut st.slots[index].life, &clock));
        self.carry_out(index, fx, &clock);
    }

    /// What [`Agent::apply`] does with a step's effects (apart, so it is in flash once).
    fn carry_out(&self, index: usize, fx: Vec<Effect>, clock: &BoardClock) {
        let mut stop = false;
        self.with(|st| {
            let id = st.slots[index].id;
            for e in fx {
                match e {
                    Effect::Log(level, text) => push(st, clock, id, level, &text),
                    Effect::Terminate | Effect::Kill => stop = true,
                    // A task has no restart policy.
                    Effect::ArmRestart { .. } => {}
                }
            }
        });
        if stop {
            self.cmds[index].signal(Cmd::Stop);
        }
    }

    /// Asks task `index` to start, unless a run goes.
    fn start(&self, index: usize) {
        if !self.with(|st| st.slots[index].life.is_active()) {
            self.cmds[index].signal(Cmd::Start);
        }
    }

    /// Asks task `index`'s run to stop.
    fn stop(&self, index: usize) {
        if self.with(|st| st.slots[index].life.state) == asyncmd_proto::UnitState::Running {
            self.apply(index, |life, clock| life.stop(clock));
        }
    }

    /// Runs task `index`: each start it is asked for (at boot, by a request, by its schedule)
    /// becomes a run from its factory, until it returns or is stopped. Never returns.
    pub async fn run_task(&'static self, index: usize) -> ! {
        let def = &self.defs[index];
        if def.start {
            self.cmds[index].signal(Cmd::Start);
        }
        loop {
            if self.cmds[index].wait().await != Cmd::Start {
                continue;
            }
            let kwargs = self.with(|st| st.slots[index].kwargs.clone());
            let ctx = Ctx {
                agent: self,
                index,
                args: def.args.clone(),
                kwargs,
            };
            let run = (def.run)(ctx);
            self.with(|st| st.slots[index].stats.clear());
            self.apply(index, |life, clock| life.started(true, None, clock));
            let number = self.with(|st| st.slots[index].life.starts);
            let end = match select(run, self.until_stop(index)).await {
                Either::First(Ok(v)) => End::Value(v),
                Either::First(Err(e)) => End::Error {
                    chain: vec![e.clone()],
                    message: e,
                },
                Either::Second(()) => End::Error {
                    message: "stopped".into(),
                    chain: Vec::new(),
                },
            };
            // A task has no restart policy: it runs again when asked, or when it is due.
            self.apply(index, |life, clock| life.ended(number, end, None, clock));
        }
    }

    async fn until_stop(&self, index: usize) {
        while self.cmds[index].wait().await != Cmd::Stop {}
    }

    /// Starts the scheduled tasks when their runs are due, on the core's one scheduling
    /// policy: absolute deadlines, a run still going is skipped and the journal says so,
    /// missed periods are skipped. Never returns.
    pub async fn run_schedules(&'static self) -> ! {
        let clock = self.clock();
        let mut due: Vec<(usize, Deadline<Utc>)> = self
            .defs
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                Some((
                    i,
                    Deadline::new(d.schedule?, &clock.wall(), clock.mono_us()),
                ))
            })
            .collect();
        loop {
            let clock = self.clock();
            let (wall, mono) = (clock.wall(), clock.mono_us());
            // At most a second, so a wall clock the host sets meanwhile is seen.
            let mut sleep = core::time::Duration::from_secs(1);
            for (i, d) in due.iter_mut() {
                let next = d.due().map(|w| w.timestamp_micros());
                self.with(|st| st.slots[*i].schedule_next_us = next);
                let Some(wait) = d.wait(&wall, mono) else {
                    continue;
                };
                if !wait.is_zero() {
                    sleep = sleep.min(wait);
                    continue;
                }
                let Some(when) = d.due().cloned() else {
                    continue;
                };
                let busy = self.with(|st| st.slots[*i].life.is_active());
                let turn = Turn::when_busy(busy);
                // Due times count from the boot until a host sets the clock, and are said so.
                let shown = clock.fix(when.timestamp_micros());
                let (level, line) = match DateTime::from_timestamp_micros(shown) {
                    Some(at) if shown >= CLOCK_SET => turn.line(&at),
                    _ => turn.line_at(&since_boot(shown)),
                };
                self.log(*i, level, &line);
                if turn == Turn::Start {
                    self.with(|st| st.slots[*i].schedule_last_us = Some(when.timestamp_micros()));
                    self.cmds[*i].signal(Cmd::Start);
                }
                d.advance(&wall, mono);
                sleep = core::time::Duration::ZERO;
            }
            if !sleep.is_zero() {
                embassy_time::Timer::after_micros(sleep.as_micros() as u64).await;
            }
        }
    }
}

/// `us` after the boot, as a person reads it: `5.000s after boot`. In u32 parts, whose
/// formatting a board has already (136 years of seconds).
fn since_boot(us: i64) -> String {
    let ms = (us.max(0) / 1000) as u64;
    alloc::format!(
        "{}.{:03}s after boot",
        (ms / 1000) as u32,
        (ms % 1000) as u32
    )
}

/// Appends `msg` to the journal under `id`, a line per line.
fn push(st: &mut State, clock: &BoardClock, id: UnitId, level: Level, msg: &str) {
    let (wall, mono) = (clock.wall_us(), clock.mono_us());
    for line in msg.split('\n') {
        st.ring.push(wall, mono, id, level, line.as_bytes());
    }
}

/// Tasks a board can run as they are (its demo tasks are its own).
pub mod demo {
    use alloc::boxed::Box;
    use alloc::format;
    use core::time::Duration;

    use asyncmd_core::schedule::Spec;
    use serde_json::Value;

    use crate::{Ctx, TaskFuture};

    /// Says how long the board has been up (its result, in seconds): a run that finishes,
    /// made to be scheduled.
    pub fn report(ctx: Ctx) -> TaskFuture {
        Box::pin(async move {
            let up = embassy_time::Instant::now().as_secs();
            ctx.info(&format!("up {up} s"));
            Ok(Value::from(up))
        })
    }

    /// A schedule: first after `first_s` seconds, then every `every_s`.
    pub fn every(first_s: u64, every_s: u64) -> Option<Spec> {
        Spec::new(
            Some(Duration::from_secs(first_s)),
            Some(Duration::from_secs(every_s)),
            None,
        )
        .ok()
    }
}

/// Declares the embassy tasks that run an agent on a board (a pool of `$n` task runners, and
/// its scheduler) and `spawn_agent(spawner, agent)`, which spawns them; the board spawns its
/// link task itself, as its line's type is its own. Embassy tasks cannot be generic, so each
/// board's firmware declares them with this.
#[macro_export]
macro_rules! embassy_tasks {
    ($n:expr) => {
        #[embassy_executor::task(pool_size = $n)]
        async fn asyncmd_runner(agent: &'static $crate::Agent, index: usize) {
            agent.run_task(index).await
        }

        #[embassy_executor::task]
        async fn asyncmd_schedules(agent: &'static $crate::Agent) {
            agent.run_schedules().await
        }

        /// Spawns a runner per task of `agent`, and its scheduler.
        fn spawn_agent(spawner: embassy_executor::Spawner, agent: &'static $crate::Agent) {
            assert!(agent.tasks() <= $n, "a runner slot per task");
            for i in 0..agent.tasks() {
                spawner.spawn(asyncmd_runner(agent, i).expect("a runner slot per task"));
            }
            spawner.spawn(asyncmd_schedules(agent).expect("one scheduler"));
        }
    };
}
