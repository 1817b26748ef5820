//! Traceable tasks (asyncmd's aioctl): any tokio future factory becomes a named task that can
//! be started, stopped, restarted (re-created from its factory with its current kwargs) and
//! deleted, and that reports its state, result, error with its chain, or panic with its
//! location; how many times it was polled and how long those polls took; and stats it sets.
//!
//! Adding a second task named `blink` names it `blink@1`, then `blink@2`. Every call takes glob
//! patterns (`blink*`). Each task logs through its [`Ctx`] into the ring journal under its
//! name, so `asyncmjournal -u blink` shows it.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once};
use std::task::{Context as PollContext, Poll};
use std::time::Instant;

use asyncmd_proto::text::now_us;
use asyncmd_proto::unit::{LoopInfo, UnitSummary};
use asyncmd_proto::{Level, UnitState, UnitStatus, UnitType};
use serde_json::{Map, Value};

use crate::clock::HostClock;
use crate::journal::{Journal, UnitId};
use asyncmd_core::lifecycle::{Effect, End, Event, Life};
use asyncmd_core::status;
use asyncmd_core::table::Table;

/// How a task failed: its error and the chain of causes under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    /// The error, as it displays.
    pub message: String,
    /// Its causes, outermost first (a panic: the message and where it happened).
    pub chain: Vec<String>,
}

impl<E: std::error::Error> From<E> for TaskError {
    fn from(e: E) -> TaskError {
        let mut chain = Vec::new();
        let mut cause = e.source();
        while let Some(c) = cause {
            chain.push(c.to_string());
            cause = c.source();
        }
        TaskError {
            message: e.to_string(),
            chain,
        }
    }
}

impl TaskError {
    /// An error with just a message.
    pub fn msg(message: impl Into<String>) -> TaskError {
        TaskError {
            message: message.into(),
            chain: Vec::new(),
        }
    }
}

/// What a task's future resolves to: a result to show, or an error.
pub type TaskResult = Result<Value, TaskError>;

/// A task's future.
pub type TaskFuture = Pin<Box<dyn Future<Output = TaskResult> + Send>>;

/// Makes a task's future, each time it starts.
pub type Factory = Arc<dyn Fn(Ctx) -> TaskFuture + Send + Sync>;

/// Called with a task's name and how it ended.
pub type Callback = Arc<dyn Fn(&str, &TaskResult) + Send + Sync>;

/// What a running task is given: its name, args and kwargs, a logger and its stats.
#[derive(Clone)]
pub struct Ctx {
    /// The task's name (`blink@1`).
    pub name: String,
    /// Its positional arguments.
    pub args: Vec<Value>,
    /// Its keyword arguments, as they were when it started.
    pub kwargs: Map<String, Value>,
    journal: Arc<Journal>,
    id: UnitId,
    stats: Arc<Mutex<Map<String, Value>>>,
}

impl Ctx {
    /// Logs `msg` at `level` under the task's name.
    pub fn log(&self, level: Level, msg: &str) {
        self.journal.log(self.id, level, msg);
    }

    /// Logs `msg` at INFO.
    pub fn info(&self, msg: &str) {
        self.log(Level::Info, msg);
    }

    /// Sets one of the task's stats (shown under `Stats:`).
    pub fn set_stat(&self, key: &str, value: impl Into<Value>) {
        lock(&self.stats).insert(key.to_string(), value.into());
    }

    /// A keyword argument as a number, or `default`.
    pub fn kwarg_f64(&self, key: &str, default: f64) -> f64 {
        self.kwargs
            .get(key)
            .and_then(Value::as_f64)
            .unwrap_or(default)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Options of a task beyond its factory.
#[derive(Clone, Default)]
pub struct Options {
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Map<String, Value>,
    /// Called whenever a run ends (done, failed, or stopped).
    pub on_stop: Option<Callback>,
    /// Called when a run fails (an error or a panic).
    pub on_error: Option<Callback>,
    /// Start it as soon as it is added.
    pub start: bool,
    /// Run it on a schedule (start_in after it is added, at, every).
    pub schedule: Option<asyncmd_core::schedule::Spec>,
}

/// A task's lifecycle, and how to abort its current run.
struct Live {
    life: Life,
    abort: Option<tokio::task::AbortHandle>,
}

struct Task {
    name: String,
    factory: Factory,
    args: Vec<Value>,
    kwargs: Mutex<Map<String, Value>>,
    on_stop: Option<Callback>,
    on_error: Option<Callback>,
    id: UnitId,
    live: Mutex<Live>,
    counters: Arc<Counters>,
    stats: Arc<Mutex<Map<String, Value>>>,
    /// Turns true when the task is deleted: its scheduler ends.
    gone: tokio::sync::watch::Sender<bool>,
    /// Told when a run's end is recorded, for a restart waiting on it.
    ended: tokio::sync::Notify,
}

/// The registry of traceable tasks.
pub struct Registry {
    journal: Arc<Journal>,
    tasks: Mutex<Table<Arc<Task>>>,
    weak: Mutex<std::sync::Weak<Registry>>,
}

impl Registry {
    /// An empty registry whose tasks log into `journal`.
    pub fn new(journal: Arc<Journal>) -> Arc<Registry> {
        install_panic_hook();
        let reg = Arc::new(Registry {
            journal,
            tasks: Mutex::new(Table::new()),
            weak: Mutex::new(std::sync::Weak::new()),
        });
        *lock(&reg.weak) = Arc::downgrade(&reg);
        reg
    }

    /// The journal its tasks log into.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// Adds a task named `name` (or `name@1`, `name@2`... when taken) made by `factory`;
    /// returns the name it got. With `opts.start` it starts at once.
    pub fn add<F, Fut>(&self, name: &str, factory: F, opts: Options) -> String
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = TaskResult> + Send + 'static,
    {
        let factory: Factory = Arc::new(move |ctx| Box::pin(factory(ctx)));
        let name = {
            let mut tasks = lock(&self.tasks);
            let unique = tasks.free_name(name);
            let task = Arc::new(Task {
                name: unique.clone(),
                factory,
                args: opts.args,
                kwargs: Mutex::new(opts.kwargs),
                on_stop: opts.on_stop,
                on_error: opts.on_error,
                id: self.journal.unit_id(&unique),
                live: Mutex::new(Live {
                    life: Life::new(Some(now_us())),
                    abort: None,
                }),
                counters: Arc::new(Counters::default()),
                stats: Arc::new(Mutex::new(Map::new())),
                gone: tokio::sync::watch::channel(false).0,
                ended: tokio::sync::Notify::new(),
            });
            tasks.insert(unique.clone(), task);
            unique
        };
        if opts.start {
            self.start(std::slice::from_ref(&name));
        }
        if let Some(spec) = opts.schedule {
            let task = lock(&self.tasks).get(&name).cloned();
            if let (Some(task), Some(me)) = (task, self.me()) {
                let changes = task.gone.subscribe();
                let unit = ScheduledTask {
                    reg: me,
                    task,
                    spec,
                };
                tokio::spawn(crate::schedule::run(unit, changes));
            }
        }
        name
    }

    fn me(&self) -> Option<Arc<Registry>> {
        lock(&self.weak).upgrade()
    }

    /// The tasks matching `patterns` (all when empty) and the patterns that matched none, or
    /// why a pattern is bad (`blink[`).
    fn try_select(&self, patterns: &[String]) -> Result<(Vec<Arc<Task>>, Vec<String>), String> {
        let tasks = lock(&self.tasks);
        let (hits, missing) = tasks.select(patterns).map_err(|e| e.to_string())?;
        Ok((hits.into_iter().cloned().collect(), missing))
    }

    /// The tasks matching `patterns`, for the calls that act on them: a bad pattern matches
    /// nothing there ([`Registry::names`] says why it is bad; requests have had theirs checked
    /// by the core already).
    fn select(&self, patterns: &[String]) -> (Vec<Arc<Task>>, Vec<String>) {
        self.try_select(patterns).unwrap_or_default()
    }

    /// The names of the tasks matching `patterns` (all when empty) and the patterns that
    /// matched none, or why a pattern is bad.
    pub fn names(&self, patterns: &[String]) -> Result<(Vec<String>, Vec<String>), String> {
        let (t, missing) = self.try_select(patterns)?;
        Ok((t.iter().map(|t| t.name.clone()).collect(), missing))
    }

    /// Starts the matching tasks that are not running; returns their names.
    pub fn start(&self, patterns: &[String]) -> Vec<String> {
        let (tasks, _) = self.select(patterns);
        tasks
            .into_iter()
            .filter(|t| self.run(t))
            .map(|t| t.name.clone())
            .collect()
    }

    fn run(&self, task: &Arc<Task>) -> bool {
        let mut live = lock(&task.live);
        if live.life.is_active() {
            return false;
        }
        let ctx = Ctx {
            name: task.name.clone(),
            args: task.args.clone(),
            kwargs: lock(&task.kwargs).clone(),
            journal: self.journal.clone(),
            id: task.id,
            stats: task.stats.clone(),
        };
        task.counters.reset();
        let fut = traced((task.factory)(ctx), task.counters.clone());
        // tracing events inside the task land in the journal under its name (with
        // crate::tracing_journal::JournalLayer installed).
        let span = tracing::info_span!(crate::tracing_journal::TASK_SPAN, task = %task.name);
        let handle = tokio::spawn(tracing::Instrument::instrument(fut, span));
        let started = Event::Started {
            ready: true,
            what: None,
        };
        let fx = live.life.step(started, &HostClock);
        live.abort = Some(handle.abort_handle());
        let run = live.life.starts;
        drop(live);
        log_effects(&self.journal, task.id, fx);
        let (t, journal) = (task.clone(), self.journal.clone());
        tokio::spawn(async move {
            let outcome: TaskResult = match handle.await {
                Ok(r) => r.and_then(|r| r),
                Err(e) if e.is_cancelled() => Err(TaskError::msg("stopped")),
                Err(e) => Err(panic_error(e.into_panic())),
            };
            finish(&t, run, outcome, &journal);
        });
        true
    }

    /// Stops the matching running tasks; returns their names.
    pub fn stop(&self, patterns: &[String]) -> Vec<String> {
        let (tasks, _) = self.select(patterns);
        let mut out = Vec::new();
        for t in tasks {
            let mut live = lock(&t.live);
            if live.life.state != UnitState::Running {
                continue;
            }
            if live.life.step(Event::Stop, &HostClock) == [Effect::Terminate] {
                if let Some(a) = live.abort.take() {
                    a.abort();
                }
                out.push(t.name.clone());
            }
        }
        out
    }

    /// Stops and starts the matching tasks again, each from its factory with its current
    /// kwargs; returns their names.
    pub async fn restart(&self, patterns: &[String]) -> Vec<String> {
        self.stop(patterns);
        let (tasks, _) = self.select(patterns);
        let mut restarted = Vec::new();
        for t in &tasks {
            // The abort lands at the task's next await; wait for its end to be recorded (a task
            // that never awaits is left running, and not started twice).
            let ended = async {
                loop {
                    let told = t.ended.notified();
                    tokio::pin!(told);
                    told.as_mut().enable();
                    if !lock(&t.live).life.is_active() {
                        return;
                    }
                    told.await;
                }
            };
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), ended).await;
            let registered = lock(&self.tasks)
                .get(&t.name)
                .is_some_and(|x| Arc::ptr_eq(x, t));
            if registered && self.run(t) {
                restarted.push(t.name.clone());
            }
        }
        restarted
    }

    /// Stops and removes the matching tasks; returns their names.
    pub fn delete(&self, patterns: &[String]) -> Vec<String> {
        let names = self.stop(patterns);
        let (tasks, _) = self.select(patterns);
        let mut all = lock(&self.tasks);
        for t in &tasks {
            all.remove(&t.name);
            t.gone.send_replace(true);
        }
        let _ = names;
        tasks.iter().map(|t| t.name.clone()).collect()
    }

    /// Replaces a task's kwargs for its next start; false when there is no such task.
    pub fn set_kwargs(&self, name: &str, kwargs: Map<String, Value>) -> bool {
        match lock(&self.tasks).get(name) {
            Some(t) => {
                *lock(&t.kwargs) = kwargs;
                true
            }
            None => false,
        }
    }

    /// Status of the matching tasks, in the same shape as units' (type `task`).
    pub fn status(&self, patterns: &[String], host: &str) -> Vec<UnitStatus> {
        let (tasks, _) = self.select(patterns);
        tasks.iter().map(|t| t.status(host)).collect()
    }
}

impl Registry {
    /// The `list` rows of the matching tasks.
    pub fn summaries(&self, patterns: &[String]) -> Vec<UnitSummary> {
        let (tasks, _) = self.select(patterns);
        tasks
            .iter()
            .map(|t| {
                status::summary(
                    &t.name,
                    UnitType::Task,
                    true,
                    true,
                    &lock(&t.live).life,
                    "task",
                )
            })
            .collect()
    }
}

impl Task {
    fn status(&self, host: &str) -> UnitStatus {
        let live = lock(&self.live);
        UnitStatus {
            stats: lock(&self.stats).clone(),
            args: self.args.clone(),
            kwargs: lock(&self.kwargs).clone(),
            loop_info: Some(self.counters.loop_info()),
            task_result: live.life.value.clone(),
            ..status::of(&self.name, "task", UnitType::Task, &live.life, host)
        }
    }
}

/// A scheduled task, as the one scheduler ([`crate::schedule::run`]) sees it: its schedule
/// holds until the task is deleted, and a due run starts unless the previous one still goes.
struct ScheduledTask {
    reg: Arc<Registry>,
    task: Arc<Task>,
    spec: asyncmd_core::schedule::Spec,
}

impl crate::schedule::Scheduled for ScheduledTask {
    fn schedule(&self) -> Option<Option<(asyncmd_core::schedule::Spec, bool)>> {
        (!*self.task.gone.borrow()).then_some(Some((self.spec, true)))
    }

    fn busy(&self) -> bool {
        lock(&self.task.live).life.is_active()
    }

    fn show_next(&self, _next_us: Option<i64>) {}

    fn log(&self, level: Level, line: &str) {
        self.reg.journal.log(self.task.id, level, line);
    }

    fn start(&self, _due_us: i64) {
        self.reg.run(&self.task);
    }
}

fn finish(task: &Arc<Task>, run: u32, outcome: TaskResult, journal: &Journal) {
    let end = match &outcome {
        Ok(v) => End::Value(v.clone()),
        Err(e) => End::Error {
            message: e.message.clone(),
            chain: e.chain.clone(),
        },
    };
    let (fx, failed) = {
        let mut live = lock(&task.live);
        if live.life.starts != run {
            return;
        }
        live.abort = None;
        let restart = None;
        let fx = live
            .life
            .step(Event::Ended { run, end, restart }, &HostClock);
        (fx, live.life.state == UnitState::Failed)
    };
    task.ended.notify_waiters();
    log_effects(journal, task.id, fx);
    if failed {
        if let Some(cb) = &task.on_error {
            cb(&task.name, &outcome);
        }
    }
    if let Some(cb) = &task.on_stop {
        cb(&task.name, &outcome);
    }
}

/// Writes the journal lines a lifecycle step asked for under unit `id`.
fn log_effects(journal: &Journal, id: UnitId, fx: Vec<Effect>) {
    for e in fx {
        if let Effect::Log(level, text) = e {
            journal.log(id, level, &text);
        }
    }
}

/// How many times a future was polled and how long its polls took.
#[derive(Debug, Default)]
pub struct Counters {
    polls: AtomicU64,
    busy_ns: AtomicU64,
}

impl Counters {
    /// The counts so far, as status shows them.
    pub fn loop_info(&self) -> LoopInfo {
        LoopInfo {
            polls: self.polls.load(Ordering::Relaxed),
            busy_us: self.busy_ns.load(Ordering::Relaxed) / 1000,
        }
    }

    fn reset(&self) {
        self.polls.store(0, Ordering::Relaxed);
        self.busy_ns.store(0, Ordering::Relaxed);
    }
}

/// Wraps `fut` so its polls are counted and timed into `counters`, and a panic inside it
/// becomes an error with its message and location instead of unwinding: what makes any
/// future traceable, tasks and the daemon's builtin services alike.
pub fn traced<F: Future>(fut: F, counters: Arc<Counters>) -> Traced<F> {
    install_panic_hook();
    Traced {
        inner: Box::pin(fut),
        counters,
    }
}

/// A future made traceable by [`traced`].
pub struct Traced<F> {
    inner: Pin<Box<F>>,
    counters: Arc<Counters>,
}

impl<F: Future> Future for Traced<F> {
    type Output = Result<F::Output, TaskError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut PollContext<'_>) -> Poll<Self::Output> {
        let t0 = Instant::now();
        // A panic is caught here, on the thread it happened on, so its location (recorded by
        // the hook on this same thread a moment ago) is its own.
        let inner = &mut self.inner;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.as_mut().poll(cx)));
        let ns = t0.elapsed().as_nanos() as u64;
        self.counters.polls.fetch_add(1, Ordering::Relaxed);
        self.counters.busy_ns.fetch_add(ns, Ordering::Relaxed);
        match r {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_error(payload))),
        }
    }
}

/// A panic's payload as a task error, with where it happened when the hook saw it on this
/// thread.
pub(crate) fn panic_error(payload: Box<dyn std::any::Any + Send>) -> TaskError {
    let msg = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    let at = LAST_PANIC
        .try_with(|p| p.borrow_mut().take())
        .ok()
        .flatten();
    let mut chain = vec![format!("panicked: {msg}")];
    if let Some(at) = at {
        chain.push(format!("at {at}"));
    }
    TaskError {
        message: format!("panicked: {msg}"),
        chain,
    }
}

thread_local! {
    /// Where the last panic on this thread happened: the hook sees it, the task's watcher
    /// (on the same thread in a current-thread runtime) reads it.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(loc) = info.location() {
                let at = format!("{}:{}:{}", loc.file(), loc.line(), loc.column());
                let _ = LAST_PANIC.try_with(|p| *p.borrow_mut() = Some(at));
            }
            previous(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn registry() -> Arc<Registry> {
        Registry::new(Arc::new(Journal::new(64 * 1024, "test")))
    }

    /// Polls `name`'s status until `cond` holds, failing with `what` after a deadline that a
    /// loaded machine never reaches.
    async fn until(
        reg: &Registry,
        name: &str,
        what: &str,
        cond: impl Fn(&UnitStatus) -> bool,
    ) -> UnitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = reg.status(&[name.to_string()], "h").remove(0);
            if cond(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    async fn settle(reg: &Registry, name: &str) -> UnitStatus {
        until(reg, name, &format!("{name} to end"), |s| {
            !matches!(s.state, UnitState::Running | UnitState::Stopping)
        })
        .await
    }

    fn p(s: &str) -> Vec<String> {
        vec![s.to_string()]
    }

    #[tokio::test]
    async fn names_results_errors_and_globs() {
        let reg = registry();
        let f = |ctx: Ctx| async move {
            Ok(json!({"sum": ctx.args.iter().filter_map(Value::as_i64).sum::<i64>()}))
        };
        let opts = |a: i64| Options {
            args: vec![json!(a), json!(1)],
            ..Default::default()
        };
        assert_eq!(reg.add("blink", f, opts(1)), "blink");
        assert_eq!(reg.add("blink", f, opts(2)), "blink@1");
        assert_eq!(reg.add("blink", f, opts(3)), "blink@2");
        reg.add("other", f, opts(0));
        assert_eq!(reg.start(&p("blink*")), vec!["blink", "blink@1", "blink@2"]);
        let s = settle(&reg, "blink@1").await;
        assert_eq!(s.state, UnitState::Done);
        assert_eq!(s.task_result, Some(json!({"sum": 3})));
        assert_eq!(reg.status(&p("other"), "h")[0].state, UnitState::Inactive);

        let failing = |_ctx: Ctx| async move {
            let e = std::io::Error::other("disk gone");
            Err(TaskError {
                message: "cannot save".into(),
                chain: vec![e.to_string()],
            })
        };
        reg.add(
            "save",
            failing,
            Options {
                start: true,
                ..Default::default()
            },
        );
        let s = settle(&reg, "save").await;
        assert_eq!(s.state, UnitState::Failed);
        assert_eq!(s.error.as_deref(), Some("cannot save"));
        assert_eq!(s.traceback, vec!["disk gone"]);
        assert_eq!(reg.delete(&p("blink@*")), vec!["blink@1", "blink@2"]);
        assert_eq!(reg.names(&[]).unwrap().0, vec!["blink", "other", "save"]);
        let (hits, missing) = reg.names(&p("nope*")).unwrap();
        assert!(hits.is_empty() && missing == p("nope*"));
        let bad = reg.names(&p("blink[")).unwrap_err();
        assert!(
            bad.contains("blink["),
            "a bad pattern is said, not missed: {bad}"
        );
        assert!(reg.start(&p("blink[")).is_empty());
    }

    #[tokio::test]
    async fn a_panic_is_a_traceback_naming_where_and_the_rest_goes_on() {
        let reg = registry();
        let stops = Arc::new(Mutex::new(Vec::new()));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let (s2, e2) = (stops.clone(), errors.clone());
        reg.add(
            "boom",
            |_ctx: Ctx| async move {
                let v: Vec<u8> = Vec::new();
                #[allow(clippy::out_of_bounds_indexing)]
                let x = v[3];
                Ok(json!(x))
            },
            Options {
                start: true,
                on_stop: Some(Arc::new(move |n, _| lock(&s2).push(n.to_string()))),
                on_error: Some(Arc::new(move |n, r| {
                    lock(&e2).push(format!("{n}: {}", r.as_ref().unwrap_err().message))
                })),
                ..Default::default()
            },
        );
        let s = settle(&reg, "boom").await;
        assert_eq!(s.state, UnitState::Failed);
        let err = s.error.unwrap();
        assert!(err.starts_with("panicked: index out of bounds"), "{err}");
        assert!(
            s.traceback
                .iter()
                .any(|l| l.starts_with("at asyncmdd/src/task_runtime.rs:")),
            "{:?}",
            s.traceback
        );
        assert_eq!(*lock(&stops), vec!["boom"]);
        assert!(lock(&errors)[0].starts_with("boom: panicked"));
    }

    #[tokio::test]
    async fn a_scheduled_task_runs_every_period_and_never_overlaps() {
        let reg = registry();
        let runs = Arc::new(AtomicU64::new(0));
        let active = Arc::new(AtomicU64::new(0));
        let most = Arc::new(AtomicU64::new(0));
        let (r2, a2, m2) = (runs.clone(), active.clone(), most.clone());
        reg.add(
            "job",
            move |_ctx: Ctx| {
                let (r, a, m) = (r2.clone(), a2.clone(), m2.clone());
                async move {
                    let now = a.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    let n = r.fetch_add(1, Ordering::SeqCst);
                    // The second run lasts over two periods.
                    let ms = if n == 1 { 45 } else { 1 };
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    a.fetch_sub(1, Ordering::SeqCst);
                    Ok(json!(n))
                }
            },
            Options {
                schedule: Some(
                    asyncmd_core::schedule::Spec::new(None, Some(Duration::from_millis(20)), None)
                        .unwrap(),
                ),
                ..Default::default()
            },
        );
        let said = |what: &str| {
            let mut copy = Vec::new();
            reg.journal()
                .with_ring(|r| r.read(&mut r.oldest(), &mut copy, usize::MAX));
            crate::journal::records(&copy)
                .filter(|r| String::from_utf8_lossy(r.msg).starts_with(what))
                .count()
        };
        let skipped = || said("Skipped the run due at");
        for _ in 0..5000 {
            if runs.load(Ordering::SeqCst) >= 5 && skipped() >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert!(runs.load(Ordering::SeqCst) >= 5);
        assert!(
            skipped() >= 1,
            "the overlapping run was skipped and said so"
        );
        assert_eq!(most.load(Ordering::SeqCst), 1, "never two runs at once");
        assert!(
            said("Starting the run due at") >= 5,
            "each scheduled start is said, as a unit's"
        );
    }

    #[tokio::test]
    async fn delete_ends_a_schedule() {
        let reg = registry();
        let runs = Arc::new(AtomicU64::new(0));
        let r2 = runs.clone();
        reg.add(
            "job",
            move |_ctx: Ctx| {
                let r = r2.clone();
                async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    Ok(json!(null))
                }
            },
            Options {
                schedule: Some(
                    asyncmd_core::schedule::Spec::new(None, Some(Duration::from_millis(5)), None)
                        .unwrap(),
                ),
                ..Default::default()
            },
        );
        for _ in 0..5000 {
            if runs.load(Ordering::SeqCst) >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(reg.delete(&p("job")), vec!["job"]);
        let after_delete = runs.load(Ordering::SeqCst);
        // Several periods later, nothing more ran.
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(runs.load(Ordering::SeqCst), after_delete);
        assert!(reg.names(&[]).unwrap().0.is_empty());
    }

    #[tokio::test]
    async fn stop_restart_with_new_kwargs_loop_info_and_stats() {
        let reg = registry();
        reg.add(
            "tick",
            |ctx: Ctx| async move {
                let every = ctx.kwarg_f64("ms", 1.0);
                ctx.set_stat("every_ms", every);
                loop {
                    tokio::time::sleep(Duration::from_millis(every as u64)).await;
                }
            },
            Options {
                kwargs: json!({"ms": 1}).as_object().unwrap().clone(),
                start: true,
                ..Default::default()
            },
        );
        let s = until(&reg, "tick", "tick to loop a few times", |s| {
            s.loop_info.as_ref().is_some_and(|l| l.polls > 5) && !s.stats.is_empty()
        })
        .await;
        assert_eq!(s.state, UnitState::Running);
        assert_eq!(s.stats["every_ms"], json!(1.0));
        assert_eq!(reg.stop(&p("t*")), vec!["tick"]);
        assert_eq!(settle(&reg, "tick").await.state, UnitState::Stopped);
        assert!(reg.set_kwargs("tick", json!({"ms": 2}).as_object().unwrap().clone()));
        reg.restart(&p("tick")).await;
        let s = until(&reg, "tick", "the restarted tick to set its stat", |s| {
            s.starts == 2 && s.stats.get("every_ms") == Some(&json!(2.0))
        })
        .await;
        assert_eq!(s.state, UnitState::Running);
        reg.restart(&p("tick")).await;
        assert_eq!(reg.status(&p("tick"), "h")[0].starts, 3);
    }
}
