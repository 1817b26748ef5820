//! Request handling: a [`Request`] becomes a [`Response`] over a [`Host`], the trait for what a
//! runtime can do. The local socket and MQTT are only transports around [`answer`], and a
//! board's serial line around the handlers it serves ([`status`], [`list`], [`act`]); what a
//! host cannot do at all it refuses as [`Unsupported`], and the answer says so instead of
//! failing.
//!
//! Here live the rules every transport shares: which units and tasks a pattern names (a name
//! that is exactly a task's means the task only), what a pattern that matched nothing answers,
//! the checks on a request's arguments, and the order of the results.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use asyncmd_proto::request::{
    ActionOutcome, ActionResult, Change, ErrorCode, KillWhom, Request, Response,
};
use asyncmd_proto::unit::{is_glob, UnitFile, UnitStatus, UnitSummary, SUFFIX};
use serde_json::{Map, Value};

use crate::pattern::Patterns;

/// What a runtime cannot do at all, and why (a runtime of tasks only has no unit files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl core::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A refusal of a whole request: the runtime cannot do it, or doing it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The runtime cannot do this at all.
    Unsupported(Unsupported),
    /// It can, but this time it failed: why.
    Failed(String),
}

impl From<Unsupported> for Refusal {
    fn from(u: Unsupported) -> Refusal {
        Refusal::Unsupported(u)
    }
}

/// How each named unit's action went.
pub type Outcomes = BTreeMap<String, Result<(), String>>;

/// What a reload changed (or, for a dry run, would change).
#[derive(Debug, Clone, PartialEq)]
pub struct Reloaded {
    /// Nothing was changed.
    pub dry_run: bool,
    /// One change per affected unit, in name order.
    pub changes: Vec<Change>,
    /// Units left as they were.
    pub unchanged: u32,
}

/// What a runtime can do, as requests need it. Unit and task names given to it are names it
/// listed, never patterns. A board without unit files keeps the defaults of the `Unsupported`
/// methods.
// The futures are not required to be Send: a board's executor runs on one core, and a host
// that spawns them (tokio) knows its own concrete futures are.
#[allow(async_fn_in_trait)]
pub trait Host {
    /// Whether it has units at all. A board's agent has tasks only: what only units need is
    /// left out of its answers, and of its firmware. Such a runtime also answers
    /// [`Host::act_on_units`] with nothing, as a const cannot leave out async code.
    const UNITS: bool = true;
    /// The loaded units' names, in name order.
    fn units(&self) -> Vec<String>;
    /// The tasks' names, in name order.
    fn tasks(&self) -> Vec<String>;
    /// Status of `units`, then of `tasks`, each with its newest `lines` journal entries. Async
    /// so that a host may scan a large journal in slices, letting other requests in between.
    async fn status(&self, units: &[String], tasks: &[String], lines: usize) -> Vec<UnitStatus>;
    /// The `list` rows of `units`, then of `tasks`.
    fn list(&self, units: &[String], tasks: &[String]) -> Vec<UnitSummary>;
    /// Whether status answers should show every unit in full.
    fn debug(&self) -> bool;
    /// Turns debug mode on or off.
    fn set_debug(&self, on: bool);
    /// Whether unit `unit` is running or being started or stopped.
    fn is_active(&self, unit: &str) -> bool;
    /// A person starts `units` (with what they require, in dependency order): each one's start
    /// limit counts from zero again.
    async fn start(&self, units: &[String]) -> Outcomes;
    /// Stops `units`.
    async fn stop(&self, units: &[String]) -> Outcomes;
    /// Starts those of `tasks` that are not running.
    fn start_tasks(&self, tasks: &[String]);
    /// Stops `tasks`.
    fn stop_tasks(&self, tasks: &[String]);
    /// Stops `tasks` and starts them again, each from its factory.
    async fn restart_tasks(&self, tasks: &[String]);
    /// Turns unit `unit` from failed to inactive and forgets its restart history; whether it
    /// was failed.
    async fn reset_failed(&self, unit: &str) -> bool;
    /// Replaces task `task`'s kwargs for its next start; false when there is no such task.
    fn set_task_kwargs(&self, task: &str, kwargs: Map<String, Value>) -> bool;
    /// Whether `kwargs` can be a unit's kwargs here (the host passes them as environment
    /// variables, say).
    fn check_kwargs(&self, kwargs: &Value) -> Result<(), String> {
        match kwargs {
            Value::Object(_) => Ok(()),
            other => Err(format!("kwargs must be a JSON object, not {other}")),
        }
    }
    /// Sets `enabled` of each of `units` in the runtime's configuration.
    async fn set_enabled(&self, units: &[String], enabled: bool) -> Outcomes {
        let _ = enabled;
        let why = "unsupported: this runtime has no configuration to enable units in";
        units.iter().map(|u| (u.clone(), Err(why.into()))).collect()
    }
    /// Sets `args` and/or `kwargs` of unit `unit` in the runtime's configuration.
    async fn configure(&self, unit: &str, edit: Vec<(&'static str, Value)>) -> Result<(), String> {
        let _ = (unit, edit);
        Err("unsupported: this runtime has no configuration to edit".into())
    }
    /// Re-reads the unit definitions and applies the difference.
    async fn reload(&self, dry_run: bool) -> Result<Reloaded, Refusal> {
        let _ = dry_run;
        Err(Unsupported("unsupported: this runtime has no unit files to reload".into()).into())
    }
    /// Loads the units `names` added since boot, and starts them.
    async fn load(&self, names: &[String]) -> Result<Vec<ActionResult>, Unsupported> {
        let _ = names;
        Err(Unsupported(
            "unsupported: this runtime has no unit files to load".into(),
        ))
    }
    /// Stops and forgets the units matching `patterns`.
    async fn unload(&self, patterns: &[String]) -> Result<Vec<ActionResult>, Refusal> {
        let _ = patterns;
        Err(Unsupported("unsupported: this runtime cannot unload units".into()).into())
    }
    /// The running units that require any of `units`, and theirs, each with the unit it
    /// requires: what a stop of `units` takes down first. None of `units` itself.
    fn dependents(&self, units: &[String]) -> Vec<(String, String)> {
        let _ = units;
        Vec::new()
    }
    /// Sends `signal` (a name or number) to `whom` of each of `units`.
    async fn kill(&self, units: &[String], signal: &str, whom: KillWhom) -> Outcomes {
        let _ = (signal, whom);
        unsupported_each(
            units,
            "unsupported: this runtime has no processes to signal",
        )
    }
    /// Masks (or unmasks) `units` in the runtime's configuration.
    async fn set_masked(&self, units: &[String], masked: bool) -> Outcomes {
        let _ = masked;
        unsupported_each(
            units,
            "unsupported: this runtime has no configuration to mask units in",
        )
    }
    /// Asks each of `units` to reload its configuration (its reload signal).
    async fn reload_units(&self, units: &[String]) -> Outcomes {
        unsupported_each(
            units,
            "unsupported: this runtime has no processes to reload",
        )
    }
    /// The unit files of `units`, with their configuration entries as written.
    async fn cat(&self, units: &[String]) -> Result<Vec<UnitFile>, Unsupported> {
        let _ = units;
        Err(Unsupported(
            "unsupported: this runtime has no unit files".into(),
        ))
    }
    /// The units whose files it could load but has not (added since boot): what a name that
    /// matched nothing may have meant.
    fn unloaded(&self) -> Vec<String> {
        Vec::new()
    }
    /// The units' part of a start, stop or restart request ([`act_on_units`]), for `units` it
    /// listed. A runtime without units (a board) answers nothing here, so that its firmware
    /// carries none of that part: an async method's code comes along whether or not its
    /// branch can be taken, so only an override leaves it out.
    async fn act_on_units(&self, verb: Verb, units: &[String]) -> Vec<ActionResult>
    where
        Self: Sized,
    {
        act_on_units(self, verb, units).await
    }
}

/// The units and tasks a request's patterns name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The units, in name order.
    pub units: Vec<String>,
    /// The tasks, in name order.
    pub tasks: Vec<String>,
    /// The patterns that matched neither.
    pub missing: Vec<String>,
}

/// The names of `names` matching `patterns` (all when empty), and the patterns that matched
/// none; an error names a bad pattern.
pub fn select_names(
    names: &[String],
    patterns: &[String],
) -> Result<(Vec<String>, Vec<String>), String> {
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (hits, missing) = Patterns::new(patterns)?.split(&refs);
    Ok((hits.into_iter().map(String::from).collect(), missing))
}

/// How many names are matched against a request's patterns between two yields: with the most
/// complex patterns allowed, well under a millisecond of work.
const SELECT_SLICE: usize = 16;

/// As [`select_names`], a slice of names at a time with a yield between slices, so that a
/// request with the most costly patterns lets the executor's other work in.
async fn select_names_sliced(
    names: &[String],
    patterns: &[String],
) -> Result<(Vec<String>, Vec<String>), String> {
    let compiled = Patterns::new(patterns)?;
    let mut hits = Vec::new();
    // The patterns no slice matched so far; all of them before the first.
    let mut missing: Option<Vec<String>> = None;
    for (i, slice) in names.chunks(SELECT_SLICE).enumerate() {
        if i > 0 {
            yield_now().await;
        }
        let refs: Vec<&str> = slice.iter().map(String::as_str).collect();
        let (h, m) = compiled.split(&refs);
        hits.extend(h.into_iter().map(String::from));
        missing = Some(match missing {
            None => m,
            Some(before) => before.into_iter().filter(|p| m.contains(p)).collect(),
        });
    }
    let missing = missing.unwrap_or_else(|| compiled.split(&[]).1);
    Ok((hits, missing))
}

/// Lets the executor run its other work before going on: pending once, and woken at once.
/// The same on tokio and on a board's executor.
async fn yield_now() {
    let mut yielded = false;
    core::future::poll_fn(|cx| {
        if yielded {
            core::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            core::task::Poll::Pending
        }
    })
    .await
}

/// The units and tasks matching `patterns` (all of both when empty). A name that is exactly a
/// task's means the task only, not `NAME.service` too.
pub async fn select(
    units: &[String],
    tasks: &[String],
    patterns: &[String],
) -> Result<Selection, String> {
    let (tasks, missing_tasks) = select_names_sliced(tasks, patterns).await?;
    let for_units: Vec<String> = patterns
        .iter()
        .filter(|p| !tasks.contains(p))
        .cloned()
        .collect();
    let (units, missing_units) = if for_units.is_empty() && !patterns.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        select_names_sliced(units, &for_units).await?
    };
    let missing = missing_units
        .into_iter()
        .filter(|m| missing_tasks.contains(m))
        .collect();
    Ok(Selection {
        units,
        tasks,
        missing,
    })
}

/// The unit name for `arg`: `hello` and `hello.service` both name `hello.service`.
pub fn unit_name(arg: &str) -> String {
    if arg.ends_with(SUFFIX) {
        arg.to_string()
    } else {
        format!("{arg}{SUFFIX}")
    }
}

/// The most journal lines a status answer attaches to each unit.
pub const MAX_STATUS_LINES: u32 = 10_000;

/// Answers `req` on `host`. A journal query streams, so its transport answers it; given here
/// it is a bad request.
pub async fn answer<H: Host>(host: &H, req: Request) -> Response {
    match req {
        Request::Status { .. }
        | Request::List { .. }
        | Request::Debug { .. }
        | Request::Start { .. }
        | Request::Stop { .. }
        | Request::Restart { .. } => answer_tasks(host, req).await,
        Request::Journal(_) => error(
            ErrorCode::BadRequest,
            "a journal query is answered by a stream, which this transport does not carry".into(),
        ),
        Request::Enable { units, now } => enable(host, &units, true, now).await,
        Request::Disable { units, now } => enable(host, &units, false, now).await,
        Request::Config { unit, args, kwargs } => config(host, &unit, args, kwargs).await,
        Request::Reload { dry_run } => match host.reload(dry_run).await {
            Ok(r) => Response::Reload {
                dry_run: r.dry_run,
                changes: r.changes,
                unchanged: r.unchanged,
            },
            Err(r) => refused(r),
        },
        Request::Load { units } => {
            if units.is_empty() {
                return error(ErrorCode::BadRequest, "name at least one unit".into());
            }
            match host.load(&units).await {
                Ok(results) => Response::Actions { results },
                Err(u) => error(ErrorCode::Unsupported, u.0),
            }
        }
        Request::ResetFailed { units } => match select_names(&host.units(), &units) {
            Ok((names, missing)) => {
                let mut results = not_found(host, missing);
                for name in names {
                    if host.reset_failed(&name).await {
                        results.push(ok(&name, "reset"));
                    } else if !units.is_empty() {
                        results.push(ok(&name, ""));
                    }
                }
                Response::Actions { results }
            }
            Err(e) => error(ErrorCode::BadRequest, e),
        },
        Request::Kill {
            units,
            signal,
            whom,
        } => {
            on_units(host, &units, "", async |u: &[String]| {
                host.kill(u, &signal, whom).await
            })
            .await
        }
        Request::Mask { units } => {
            on_units(host, &units, "masked", async |u: &[String]| {
                host.set_masked(u, true).await
            })
            .await
        }
        Request::Unmask { units } => {
            on_units(host, &units, "unmasked", async |u: &[String]| {
                host.set_masked(u, false).await
            })
            .await
        }
        Request::ReloadUnits { units } => {
            on_units(host, &units, "", async |u: &[String]| {
                host.reload_units(u).await
            })
            .await
        }
        Request::Cat { units } => cat(host, &units).await,
        Request::Unload { units } => {
            if units.is_empty() {
                return error(ErrorCode::BadRequest, "name at least one unit".into());
            }
            match host.unload(&units).await {
                Ok(results) => Response::Actions { results },
                Err(Refusal::Failed(e)) => error(ErrorCode::BadRequest, e),
                Err(r) => refused(r),
            }
        }
    }
}

/// Answers the requests every runtime serves: status, list, debug, start, stop and restart.
/// Anything else is answered as unsupported (a runtime that serves more calls [`answer`]; a
/// board's agent calls the handlers of what it serves directly).
pub async fn answer_tasks<H: Host>(host: &H, req: Request) -> Response {
    match req {
        Request::Status { patterns, lines } => status(host, &patterns, lines).await,
        Request::List { patterns } => list(host, &patterns).await,
        Request::Debug { on } => {
            if let Some(on) = on {
                host.set_debug(on);
            }
            let word = if host.debug() { "on" } else { "off" };
            Response::Actions {
                results: vec![ok("debug", word)],
            }
        }
        Request::Start { units } => act(host, Verb::Start, &units, false).await,
        Request::Stop { units, dry_run } => act(host, Verb::Stop, &units, dry_run).await,
        Request::Restart { units, dry_run } => act(host, Verb::Restart, &units, dry_run).await,
        _ => error(
            ErrorCode::Unsupported,
            "unsupported: this runtime serves status, list, debug, start, stop and restart".into(),
        ),
    }
}

/// Answers a status request: the units and tasks `patterns` name (all when empty), each with
/// its newest `lines` journal entries. A board's agent calls it (and [`list`], [`act`]) from
/// its link's requests directly.
pub async fn status<H: Host>(host: &H, patterns: &[String], lines: u32) -> Response {
    match select(&host.units(), &host.tasks(), patterns).await {
        Ok(s) if s.units.is_empty() && s.tasks.is_empty() && !s.missing.is_empty() => {
            error(ErrorCode::NoSuchUnit, no_such(host, &s.missing))
        }
        Ok(s) => {
            let lines = lines.min(MAX_STATUS_LINES) as usize;
            Response::Status {
                units: host.status(&s.units, &s.tasks, lines).await,
                debug: host.debug(),
                missing: not_found(host, s.missing),
            }
        }
        Err(e) => error(ErrorCode::BadRequest, e),
    }
}

/// Answers a list request: the rows of the units and tasks `patterns` name.
pub async fn list<H: Host>(host: &H, patterns: &[String]) -> Response {
    match select(&host.units(), &host.tasks(), patterns).await {
        Ok(s) if s.units.is_empty() && s.tasks.is_empty() && !s.missing.is_empty() => {
            error(ErrorCode::NoSuchUnit, no_such(host, &s.missing))
        }
        Ok(s) => Response::List {
            units: host.list(&s.units, &s.tasks),
            missing: not_found(host, s.missing),
        },
        Err(e) => error(ErrorCode::BadRequest, e),
    }
}

/// What a start, stop or restart request does to what it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// Start.
    Start,
    /// Stop.
    Stop,
    /// Stop, then start again.
    Restart,
}

/// Answers a start, stop or restart (`verb`) of what `patterns` name; `dry_run` says what it
/// would do.
pub async fn act<H: Host>(host: &H, verb: Verb, patterns: &[String], dry_run: bool) -> Response {
    if patterns.is_empty() {
        return error(ErrorCode::BadRequest, "name at least one unit".into());
    }
    let s = match select(&host.units(), &host.tasks(), patterns).await {
        Ok(s) => s,
        Err(e) => return error(ErrorCode::BadRequest, e),
    };
    if dry_run {
        let word = match verb {
            Verb::Start => "would start",
            Verb::Stop => "would stop",
            Verb::Restart => "would restart",
        };
        let mut results = not_found(host, s.missing);
        results.extend(s.units.iter().chain(&s.tasks).map(|n| ok(n, word)));
        if H::UNITS {
            for (d, r) in knock_on(host, verb, &s.units) {
                results.push(ok(&d, &format!("would be {}", too(verb, &r))));
            }
        }
        by_unit(&mut results);
        return Response::Actions { results };
    }
    // What goes down with them, as it stands before anything is done. Worked out here and in
    // the dry run apart, not once above both: kept in the future across the awaits, even an
    // empty Vec costs a board 164 B of flash.
    let knocked = if H::UNITS {
        knock_on(host, verb, &s.units)
    } else {
        Vec::new()
    };
    if !s.tasks.is_empty() {
        match verb {
            Verb::Start => host.start_tasks(&s.tasks),
            Verb::Stop => host.stop_tasks(&s.tasks),
            Verb::Restart => host.restart_tasks(&s.tasks).await,
        }
    }
    let mut results = not_found(host, s.missing);
    results.extend(s.tasks.iter().map(|t| ok(t, "")));
    if !s.units.is_empty() {
        results.extend(host.act_on_units(verb, &s.units).await);
    }
    for (d, r) in &knocked {
        results.push(ok(d, &too(verb, r)));
    }
    by_unit(&mut results);
    Response::Actions { results }
}

/// The units' part of a start, stop or restart of `units`: each one's result
/// ([`Host::act_on_units`]; what went down with them is said apart).
pub async fn act_on_units<H: Host>(host: &H, verb: Verb, units: &[String]) -> Vec<ActionResult> {
    let outcomes = match verb {
        Verb::Stop => stop(host, units).await,
        Verb::Start => start(host, units).await,
        Verb::Restart => {
            let mut stopped = stop(host, units).await;
            let again: Vec<String> = units
                .iter()
                .filter(|n| matches!(stopped.get(*n), Some(Ok(()))))
                .cloned()
                .collect();
            stopped.extend(start(host, &again).await);
            stopped
        }
    };
    let mut results = Vec::new();
    for name in units {
        results.push(match outcomes.get(name) {
            Some(Err(e)) => failed(name, e.clone()),
            _ => ok(name, ""),
        });
    }
    results
}

/// What goes down with `units` when they stop: the running units that require them, each
/// with the one it requires.
fn knock_on<H: Host>(host: &H, verb: Verb, units: &[String]) -> Vec<(String, String)> {
    match verb {
        Verb::Start => Vec::new(),
        Verb::Stop | Verb::Restart => host.dependents(units),
    }
}

/// What a unit that went down with one it requires is told.
fn too(verb: Verb, requirement: &str) -> String {
    match verb {
        Verb::Restart => format!(
            "stopped too: it requires {requirement}; it starts again once that one is ready"
        ),
        _ => format!("stopped too: it requires {requirement}"),
    }
}

async fn cat<H: Host>(host: &H, patterns: &[String]) -> Response {
    if patterns.is_empty() {
        return error(ErrorCode::BadRequest, "name at least one unit".into());
    }
    let (names, missing) = match select_names(&host.units(), patterns) {
        Ok(x) => x,
        Err(e) => return error(ErrorCode::BadRequest, e),
    };
    if names.is_empty() {
        return error(ErrorCode::NoSuchUnit, no_such(host, &missing));
    }
    match host.cat(&names).await {
        Ok(files) => Response::Files {
            files,
            missing: not_found(host, missing),
        },
        Err(u) => error(ErrorCode::Unsupported, u.0),
    }
}

async fn enable<H: Host>(host: &H, patterns: &[String], enabled: bool, now: bool) -> Response {
    if patterns.is_empty() {
        return error(ErrorCode::BadRequest, "name at least one unit".into());
    }
    let (names, missing) = match select_names(&host.units(), patterns) {
        Ok(x) => x,
        Err(e) => return error(ErrorCode::BadRequest, e),
    };
    let mut results = not_found(host, missing);
    let mut done = Vec::new();
    for (name, r) in host.set_enabled(&names, enabled).await {
        match r {
            Ok(()) => done.push(name),
            Err(e) => results.push(failed(&name, e)),
        }
    }
    let word = if enabled { "enabled" } else { "disabled" };
    if now {
        let outcomes = if enabled {
            start(host, &done).await
        } else {
            stop(host, &done).await
        };
        for name in &done {
            results.push(match outcomes.get(name) {
                Some(Err(e)) => failed(name, format!("{word}, but: {e}")),
                _ => ok(name, word),
            });
        }
    } else {
        results.extend(done.iter().map(|n| ok(n, word)));
    }
    by_unit(&mut results);
    Response::Actions { results }
}

async fn config<H: Host>(
    host: &H,
    unit: &str,
    args: Option<Value>,
    kwargs: Option<Value>,
) -> Response {
    let mut edit = Vec::new();
    if let Some(a) = args {
        if !a.is_array() {
            return error(
                ErrorCode::BadRequest,
                format!("args must be a JSON array, not {a}"),
            );
        }
        edit.push(("args", a));
    }
    if let Some(k) = kwargs {
        if let Err(e) = host.check_kwargs(&k) {
            return error(ErrorCode::BadRequest, e);
        }
        edit.push(("kwargs", k));
    }
    if edit.is_empty() {
        return error(ErrorCode::BadRequest, "give --args and/or --kwargs".into());
    }
    let name = unit_name(unit);
    if !host.units().contains(&name) {
        // A task: its kwargs change for its next start (tasks have no configuration file).
        let not_found = || error(ErrorCode::NoSuchUnit, missing_message(host, unit));
        return match edit.as_slice() {
            [("kwargs", Value::Object(kw))] => {
                if host.set_task_kwargs(unit, kw.clone()) {
                    Response::Actions {
                        results: vec![ok(unit, "kwargs set; they apply at its next start")],
                    }
                } else {
                    not_found()
                }
            }
            _ if host.tasks().iter().any(|t| t == unit) => error(
                ErrorCode::BadRequest,
                "a task takes --kwargs only; its args are fixed when it is added".into(),
            ),
            _ => not_found(),
        };
    }
    let result = match host.configure(&name, edit).await {
        Ok(()) if host.is_active(&name) => ok(
            &name,
            &format!(
                "set in services.config; it applies at the next start (asyncmctl restart {name})"
            ),
        ),
        Ok(()) => ok(&name, "set in services.config"),
        Err(e) => failed(&name, e),
    };
    Response::Actions {
        results: vec![result],
    }
}

/// Starts `units` unless there are none.
async fn start<H: Host>(host: &H, units: &[String]) -> Outcomes {
    if units.is_empty() {
        return Outcomes::new();
    }
    host.start(units).await
}

/// Stops `units` unless there are none.
async fn stop<H: Host>(host: &H, units: &[String]) -> Outcomes {
    if units.is_empty() {
        return Outcomes::new();
    }
    host.stop(units).await
}

fn refused(r: Refusal) -> Response {
    match r {
        Refusal::Unsupported(u) => error(ErrorCode::Unsupported, u.0),
        Refusal::Failed(e) => error(ErrorCode::Internal, e),
    }
}

/// An action went as asked.
pub fn ok(unit: &str, message: &str) -> ActionResult {
    ActionResult {
        unit: unit.to_string(),
        outcome: ActionOutcome::Ok,
        message: message.to_string(),
    }
}

/// An action on `unit` failed, saying why.
pub fn failed(unit: &str, message: String) -> ActionResult {
    ActionResult {
        unit: unit.to_string(),
        outcome: ActionOutcome::Failed,
        message,
    }
}

/// One result per pattern that named nothing, each saying so as [`missing_message`] does.
pub fn not_found<H: Host>(host: &H, missing: Vec<String>) -> Vec<ActionResult> {
    missing
        .into_iter()
        .map(|m| ActionResult {
            message: missing_message(host, &m),
            unit: m,
            outcome: ActionOutcome::NoSuchUnit,
        })
        .collect()
}

/// What a name or pattern that matched nothing is told, the same by every request: `Unit helo
/// not found. Did you mean hello.service?`, or that its unit file is there but not loaded.
pub fn missing_message<H: Host>(host: &H, pattern: &str) -> String {
    if is_glob(pattern) {
        return format!("No unit matches {pattern}.");
    }
    let tasks = host.tasks();
    let tasks = tasks.iter().map(String::as_str);
    let near = if H::UNITS {
        let unloaded = host.unloaded();
        if unloaded.contains(&unit_name(pattern)) {
            return format!(
                "Unit {pattern} not found. Its unit file is there but not loaded: asyncmctl load {pattern}"
            );
        }
        let units = host.units();
        let known = units.iter().chain(&unloaded).map(String::as_str);
        crate::suggest::nearest(pattern, known.chain(tasks)).map(String::from)
    } else {
        crate::suggest::nearest(pattern, tasks).map(String::from)
    };
    match near {
        Some(n) => format!("Unit {pattern} not found. Did you mean {n}?"),
        None => format!("Unit {pattern} not found."),
    }
}

/// Puts `results` in unit name order, keeping the order of a unit's own. An insertion sort:
/// results are few, and `slice::sort` costs a board 3 KiB of flash.
fn by_unit(results: &mut [ActionResult]) {
    for i in 1..results.len() {
        let mut j = i;
        while j > 0 && results[j - 1].unit > results[j].unit {
            results.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// The same `unsupported` answer for each of `units`.
fn unsupported_each(units: &[String], why: &str) -> Outcomes {
    units.iter().map(|u| (u.clone(), Err(why.into()))).collect()
}

/// What each of the units matching `patterns` is to `f`, as one result per unit (a task, which
/// has no unit file or process of its own, is said to be one); names that matched nothing are
/// said as always.
async fn on_units<H: Host>(
    host: &H,
    patterns: &[String],
    done: &str,
    f: impl AsyncFnOnce(&[String]) -> Outcomes,
) -> Response {
    if patterns.is_empty() {
        return error(ErrorCode::BadRequest, "name at least one unit".into());
    }
    let s = match select(&host.units(), &host.tasks(), patterns).await {
        Ok(s) => s,
        Err(e) => return error(ErrorCode::BadRequest, e),
    };
    let mut results = not_found(host, s.missing);
    let outcomes = f(&s.units).await;
    for name in &s.units {
        results.push(match outcomes.get(name) {
            Some(Err(e)) => failed(name, e.clone()),
            _ => ok(name, done),
        });
    }
    for t in &s.tasks {
        let why = "a task runs inside its runtime: it has no unit file or process of its own";
        results.push(failed(t, why.into()));
    }
    by_unit(&mut results);
    Response::Actions { results }
}

/// A whole request failed.
pub fn error(code: ErrorCode, message: String) -> Response {
    Response::Error { code, message }
}

fn no_such<H: Host>(host: &H, missing: &[String]) -> String {
    let names: Vec<String> = missing.iter().map(|m| missing_message(host, m)).collect();
    names.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Life;
    use asyncmd_proto::{UnitState, UnitType};
    use core::cell::RefCell;
    use core::future::Future;
    use core::pin::pin;
    use core::task::{Context, Poll, Waker};

    /// Runs a future whose awaits are ready at once or yields (the board below never waits
    /// for anything).
    fn run<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        for _ in 0..10_000 {
            if let Poll::Ready(out) = f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
                return out;
            }
        }
        panic!("the test host never waits, but this future did not end")
    }

    /// A runtime with units and tasks and nothing else: the shape of a board's agent.
    #[derive(Default)]
    struct Board {
        units: Vec<String>,
        tasks: Vec<String>,
        /// Units whose stop fails.
        stuck: Vec<String>,
        calls: RefCell<Vec<String>>,
    }

    impl Board {
        fn new() -> Board {
            Board {
                units: vec!["blink.service".into(), "net.service".into()],
                tasks: vec!["blink".into(), "sense".into()],
                ..Board::default()
            }
        }
        fn called(&self, what: String) {
            self.calls.borrow_mut().push(what);
        }
        fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
    }

    impl Host for Board {
        fn units(&self) -> Vec<String> {
            self.units.clone()
        }
        fn tasks(&self) -> Vec<String> {
            self.tasks.clone()
        }
        async fn status(
            &self,
            units: &[String],
            tasks: &[String],
            lines: usize,
        ) -> Vec<UnitStatus> {
            self.called(format!("status {units:?} {tasks:?} {lines}"));
            Vec::new()
        }
        fn list(&self, units: &[String], tasks: &[String]) -> Vec<UnitSummary> {
            units
                .iter()
                .chain(tasks)
                .map(|n| UnitSummary {
                    state: UnitState::Running,
                    ..crate::status::summary(n, UnitType::Runtime, true, true, &Life::new(None), "")
                })
                .collect()
        }
        fn debug(&self) -> bool {
            false
        }
        fn set_debug(&self, _: bool) {}
        fn is_active(&self, _: &str) -> bool {
            true
        }
        async fn start(&self, units: &[String]) -> Outcomes {
            self.called(format!("start {units:?}"));
            units.iter().map(|u| (u.clone(), Ok(()))).collect()
        }
        async fn stop(&self, units: &[String]) -> Outcomes {
            self.called(format!("stop {units:?}"));
            units
                .iter()
                .map(|u| {
                    let r = if self.stuck.contains(u) {
                        Err("it would not stop".into())
                    } else {
                        Ok(())
                    };
                    (u.clone(), r)
                })
                .collect()
        }
        fn start_tasks(&self, tasks: &[String]) {
            self.called(format!("start tasks {tasks:?}"));
        }
        fn stop_tasks(&self, tasks: &[String]) {
            self.called(format!("stop tasks {tasks:?}"));
        }
        async fn restart_tasks(&self, tasks: &[String]) {
            self.called(format!("restart tasks {tasks:?}"));
        }
        async fn reset_failed(&self, unit: &str) -> bool {
            unit == "net.service"
        }
        fn set_task_kwargs(&self, task: &str, _: Map<String, Value>) -> bool {
            self.tasks.iter().any(|t| t == task)
        }
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn results(r: Response) -> Vec<(String, ActionOutcome, String)> {
        match r {
            Response::Actions { results } => results
                .into_iter()
                .map(|r| (r.unit, r.outcome, r.message))
                .collect(),
            other => panic!("not actions: {other:?}"),
        }
    }

    fn error_of(r: Response) -> (ErrorCode, String) {
        match r {
            Response::Error { code, message } => (code, message),
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn a_selection_taken_in_slices_is_the_selection_taken_at_once() {
        // 40 names: three slices, with a pattern that only the last one matches.
        let units: Vec<String> = (0..40).map(|i| format!("u{i:02}.service")).collect();
        let pats = names(&["u0*", "u39", "{x,y}*", "u1[0-2].service"]);
        let sliced = run(select_names_sliced(&units, &pats)).unwrap();
        assert_eq!(sliced, select_names(&units, &pats).unwrap());
        assert_eq!(sliced.1, vec!["{x,y}*".to_string()]);
        assert_eq!(sliced.0.len(), 10 + 1 + 3);
        assert_eq!(run(select_names_sliced(&[], &pats)).unwrap().1.len(), 4);
    }

    #[test]
    fn a_task_name_means_the_task_only_and_globs_take_both() {
        let b = Board::new();
        let r = run(answer(
            &b,
            Request::Start {
                units: names(&["blink"]),
            },
        ));
        assert_eq!(
            results(r),
            vec![("blink".into(), ActionOutcome::Ok, String::new())]
        );
        assert_eq!(b.calls(), ["start tasks [\"blink\"]"]);
        let s = run(select(&b.units, &b.tasks, &names(&["b*"]))).unwrap();
        assert_eq!(
            (s.units, s.tasks),
            (names(&["blink.service"]), names(&["blink"]))
        );
        // `net` is net.service's short name; it is no task.
        let s = run(select(&b.units, &b.tasks, &names(&["net"]))).unwrap();
        assert_eq!((s.units, s.tasks.len()), (names(&["net.service"]), 0));
    }

    #[test]
    fn what_matched_nothing_is_named_and_the_rest_is_done() {
        let b = Board::new();
        let r = run(answer(
            &b,
            Request::Stop {
                units: names(&["nope", "net"]),
                dry_run: false,
            },
        ));
        assert_eq!(
            results(r),
            vec![
                ("net.service".into(), ActionOutcome::Ok, String::new()),
                (
                    "nope".into(),
                    ActionOutcome::NoSuchUnit,
                    "Unit nope not found.".into()
                ),
            ]
        );
        let r = run(answer(
            &b,
            Request::Status {
                patterns: names(&["nope"]),
                lines: 5,
            },
        ));
        assert_eq!(
            error_of(r),
            (ErrorCode::NoSuchUnit, "Unit nope not found.".into())
        );
        // A typo of a name it has gets the name it likely meant.
        let r = run(answer(
            &b,
            Request::Stop {
                units: names(&["blnk"]),
                dry_run: false,
            },
        ));
        assert_eq!(
            results(r)[0].2,
            "Unit blnk not found. Did you mean blink?".to_string()
        );
    }

    #[test]
    fn bad_patterns_and_empty_actions_are_bad_requests() {
        let b = Board::new();
        let (code, msg) = error_of(run(answer(
            &b,
            Request::Start {
                units: names(&["a["]),
            },
        )));
        assert_eq!(code, ErrorCode::BadRequest);
        assert!(msg.contains("a["), "{msg}");
        let (code, msg) = error_of(run(answer(
            &b,
            Request::Restart {
                units: Vec::new(),
                dry_run: false,
            },
        )));
        assert_eq!(
            (code, msg.as_str()),
            (ErrorCode::BadRequest, "name at least one unit")
        );
        assert!(b.calls().is_empty(), "nothing was done: {:?}", b.calls());
    }

    #[test]
    fn a_restart_starts_only_what_stopped() {
        let mut b = Board::new();
        b.stuck = names(&["net.service"]);
        let r = run(answer(
            &b,
            Request::Restart {
                units: names(&["*.service"]),
                dry_run: false,
            },
        ));
        assert_eq!(
            results(r),
            vec![
                ("blink.service".into(), ActionOutcome::Ok, String::new()),
                (
                    "net.service".into(),
                    ActionOutcome::Failed,
                    "it would not stop".into()
                ),
            ]
        );
        assert_eq!(
            b.calls(),
            [
                "stop [\"blink.service\", \"net.service\"]",
                "start [\"blink.service\"]"
            ]
        );
    }

    #[test]
    fn a_host_without_unit_files_says_unsupported() {
        let b = Board::new();
        for req in [
            Request::Reload { dry_run: false },
            Request::Load {
                units: names(&["new"]),
            },
            Request::Unload {
                units: names(&["net"]),
            },
        ] {
            let (code, msg) = error_of(run(answer(&b, req)));
            assert_eq!(code, ErrorCode::Unsupported);
            assert!(msg.starts_with("unsupported: "), "{msg}");
        }
        let r = run(answer(
            &b,
            Request::Enable {
                units: names(&["net"]),
                now: true,
            },
        ));
        let r = results(r);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].1, ActionOutcome::Failed);
        assert!(r[0].2.starts_with("unsupported: "));
        assert!(
            !b.calls().iter().any(|c| c.starts_with("start")),
            "not started"
        );
    }

    #[test]
    fn config_checks_its_arguments_and_a_task_takes_kwargs_only() {
        let b = Board::new();
        let cfg = |unit: &str, args: Option<Value>, kwargs: Option<Value>| {
            run(answer(
                &b,
                Request::Config {
                    unit: unit.into(),
                    args,
                    kwargs,
                },
            ))
        };
        let (code, msg) = error_of(cfg("net", Some(Value::from(1)), None));
        assert_eq!(code, ErrorCode::BadRequest);
        assert_eq!(msg, "args must be a JSON array, not 1");
        let (_, msg) = error_of(cfg("net", None, Some(Value::from("x"))));
        assert_eq!(msg, "kwargs must be a JSON object, not \"x\"");
        let (_, msg) = error_of(cfg("net", None, None));
        assert_eq!(msg, "give --args and/or --kwargs");
        let kw = || Some(Value::Object(Map::new()));
        let r = results(cfg("sense", None, kw()));
        assert_eq!(r[0].2, "kwargs set; they apply at its next start");
        let (_, msg) = error_of(cfg("sense", Some(Value::Array(Vec::new())), kw()));
        assert_eq!(
            msg,
            "a task takes --kwargs only; its args are fixed when it is added"
        );
        let (code, _) = error_of(cfg("nope", None, kw()));
        assert_eq!(code, ErrorCode::NoSuchUnit);
        // A unit on a host with no configuration to edit.
        let r = results(cfg("net", None, kw()));
        assert_eq!(r[0].1, ActionOutcome::Failed);
    }

    #[test]
    fn reset_failed_reports_what_it_reset() {
        let b = Board::new();
        let r = results(run(answer(&b, Request::ResetFailed { units: Vec::new() })));
        assert_eq!(
            r,
            vec![("net.service".into(), ActionOutcome::Ok, "reset".into())]
        );
        let r = results(run(answer(
            &b,
            Request::ResetFailed {
                units: names(&["*"]),
            },
        )));
        assert_eq!(r.len(), 2, "each named unit answers: {r:?}");
    }

    #[test]
    fn status_attaches_at_most_the_limit_of_lines_and_a_journal_query_is_refused() {
        let b = Board::new();
        run(answer(
            &b,
            Request::Status {
                patterns: Vec::new(),
                lines: u32::MAX,
            },
        ));
        assert_eq!(
            b.calls(),
            [format!(
                "status [\"blink.service\", \"net.service\"] [\"blink\", \"sense\"] {MAX_STATUS_LINES}"
            )]
        );
        let q = serde_json::from_str("{}").unwrap();
        let (code, _) = error_of(run(answer(&b, Request::Journal(q))));
        assert_eq!(code, ErrorCode::BadRequest);
    }
}
