//! The control server: answers `asyncmctl` and `asyncmjournal` on the local socket.
//!
//! Every bound is explicit: request frames ([`MAX_REQUEST_BYTES`]), clients at once
//! ([`MAX_CLIENTS`]), time to send a request ([`IDLE_TIMEOUT`]), and bytes per journal batch.
//! A malformed frame gets an error reply; an oversized one gets an error reply and the
//! connection closed. Changes are allowed only to root and the daemon's own user (SO_PEERCRED).

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use asyncmd_proto::frame::{self, FrameBuffer, FrameError};
use asyncmd_proto::text::EntryFormatter;
use asyncmd_proto::{
    ActionOutcome, ActionResult, Envelope, ErrorCode, JournalQuery, Request, Response, TextStyle,
    MAX_REQUEST_BYTES, VERSION,
};
use interprocess::local_socket::tokio::{prelude::*, Stream};
use interprocess::local_socket::traits::Stream as SyncStream;
use interprocess::local_socket::{GenericFilePath, ListenerOptions};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use std::collections::HashMap;

use crate::boot;
use crate::config::{self, ServiceConfig, ServicesConfig};
use crate::journal::{records, Journal, Record, MAX_MESSAGE};
use crate::reload;
use crate::supervisor::{Slot, Supervisor, Unsupported};
use asyncmd_core::journal::{Filter, Grep};
use asyncmd_core::plan;

pub use interprocess::local_socket::tokio::Listener;

/// A runtime of in-process tasks for a tokio application, with a journal of `journal_bytes` for
/// entries logged on `host`: add tasks to `.tasks()`, then [`serve`] it. It has no unit files;
/// a reload or load asked of it is answered as unsupported.
pub fn standalone(host: &str, journal_bytes: usize) -> Arc<Supervisor> {
    Supervisor::tasks_only(Arc::new(Journal::new(journal_bytes, host)))
}

/// Serves `sup` (its units, its tasks and its journal) on the local socket `path`, so
/// `asyncmctl` and `asyncmjournal` work against it; runs until the task is dropped or aborted.
/// One call is all a tokio application needs to make its tasks controllable.
pub async fn serve(sup: Arc<Supervisor>, path: &Path) -> io::Result<()> {
    let listener = bind(path)?;
    Server::new(sup).serve(listener).await;
    Ok(())
}

/// Clients served at once; more are told the daemon is busy.
pub const MAX_CLIENTS: usize = 64;
/// How long a connection may take to send a whole request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Message bytes per journal batch frame.
const BATCH_BYTES: usize = 256 * 1024;
/// Most bytes read and dropped after an oversized frame, so the error reply is not lost to a
/// connection reset.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// Binds the control socket at `path` (mode 0660), creating its directory. A stale socket
/// file is replaced; a live one means another daemon runs, which is an error.
pub fn bind(path: &Path) -> io::Result<Listener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        let name = path.to_fs_name::<GenericFilePath>()?;
        if <interprocess::local_socket::Stream as SyncStream>::connect(name).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "another asyncmdd is already listening on {}",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let name = path.to_fs_name::<GenericFilePath>()?;
    let listener = ListenerOptions::new()
        .name(name)
        .mode(0o660)
        .reclaim_name(true)
        .create_tokio()?;
    // bind() masks the mode with the umask (0660 became 0640 under 022): set it as promised.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o660))?;
    Ok(listener)
}

/// Serves requests about a supervisor and its journal.
pub struct Server {
    sup: Arc<Supervisor>,
    journal: Arc<Journal>,
    clients: Arc<Semaphore>,
    owner: u32,
}

impl Server {
    /// A server for `sup`.
    pub fn new(sup: Arc<Supervisor>) -> Arc<Server> {
        Arc::new(Server {
            journal: sup.journal().clone(),
            sup,
            clients: Arc::new(Semaphore::new(MAX_CLIENTS)),
            owner: nix::unistd::geteuid().as_raw(),
        })
    }

    /// Accepts connections on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: Listener) {
        loop {
            let conn = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let server = self.clone();
            tokio::spawn(async move {
                match server.clients.clone().try_acquire_owned() {
                    Ok(_permit) => server.connection(conn).await,
                    Err(_) => {
                        let tx = &conn;
                        let msg = format!("asyncmdd is serving its limit of {MAX_CLIENTS} clients");
                        let _ = send(tx, &mut Vec::new(), &error(ErrorCode::Busy, msg)).await;
                        // Take in the request as after an oversized frame: closed on it unread,
                        // the client would see a broken pipe or a reset, not this answer.
                        let _ = (&mut { tx }).shutdown().await;
                        drain(&conn).await;
                    }
                }
            });
        }
    }

    async fn connection(self: Arc<Self>, conn: Stream) {
        let privileged = conn
            .peer_creds()
            .ok()
            .and_then(|c| c.euid())
            .is_some_and(|uid| uid == 0 || uid == self.owner);
        let (mut rx, tx) = (&conn, &conn);
        let mut frames = FrameBuffer::new(MAX_REQUEST_BYTES);
        let mut out = Vec::with_capacity(4096);
        // The whole request must come within IDLE_TIMEOUT, however it is split into reads.
        let mut deadline = tokio::time::Instant::now() + IDLE_TIMEOUT;
        loop {
            let parsed = match frames.next_frame() {
                Ok(Some(f)) => frame::decode::<Envelope>(f),
                Ok(None) => {
                    let read = tokio::time::timeout_at(deadline, rx.read(frames.spare())).await;
                    match read {
                        Ok(Ok(n)) if n > 0 => frames.filled(n),
                        _ => return,
                    }
                    continue;
                }
                Err(FrameError::TooLarge { limit }) => {
                    let msg = format!("request larger than the limit of {limit} bytes");
                    let _ = send(tx, &mut out, &error(ErrorCode::TooLarge, msg)).await;
                    let _ = (&mut { tx }).shutdown().await;
                    drain(rx).await;
                    return;
                }
                Err(e) => Err(e),
            };
            let result = match parsed {
                Err(e) => {
                    let msg = format!(
                        "malformed request: {}",
                        e.to_string().trim_start_matches("malformed frame: ")
                    );
                    send(tx, &mut out, &error(ErrorCode::BadRequest, msg)).await
                }
                Ok(env) if env.v != VERSION => {
                    let msg = format!(
                        "protocol version {} is not supported; this asyncmdd speaks {VERSION}",
                        env.v
                    );
                    send(tx, &mut out, &error(ErrorCode::Version, msg)).await
                }
                Ok(env) if env.req.mutates() && !privileged => {
                    let msg =
                        "permission denied: only root and the daemon's own user may change units"
                            .into();
                    send(tx, &mut out, &error(ErrorCode::PermissionDenied, msg)).await
                }
                Ok(Envelope {
                    req: Request::Journal(q),
                    ..
                }) => self.journal_query(q, rx, tx, &mut out).await,
                Ok(env) => {
                    let resp = self.answer(env.req).await;
                    send(tx, &mut out, &resp).await
                }
            };
            if result.is_err() {
                return;
            }
            deadline = tokio::time::Instant::now() + IDLE_TIMEOUT;
        }
    }

    async fn answer(&self, req: Request) -> Response {
        match req {
            Request::Status { patterns, lines } => match self.select(&patterns) {
                Ok((slots, tasks, missing))
                    if slots.is_empty() && tasks.is_empty() && !missing.is_empty() =>
                {
                    error(ErrorCode::NoSuchUnit, no_such(&missing))
                }
                Ok((slots, tasks, _)) => {
                    let host = self.sup.journal().host();
                    let mut units: Vec<_> = slots.iter().map(|s| s.status(host)).collect();
                    if !tasks.is_empty() {
                        units.extend(self.sup.tasks().status(&tasks, host));
                    }
                    self.sup
                        .attach_journal(&mut units, lines.min(10_000) as usize);
                    Response::Status {
                        units,
                        debug: self.sup.debug(),
                    }
                }
                Err(e) => error(ErrorCode::BadRequest, e),
            },
            Request::List { patterns } => match self.select(&patterns) {
                Ok((slots, tasks, _)) => {
                    let mut units: Vec<_> = slots.iter().map(|s| s.summary()).collect();
                    if !tasks.is_empty() {
                        let host = self.sup.journal().host();
                        units.extend(self.sup.tasks().status(&tasks, host).into_iter().map(|t| {
                            asyncmd_proto::unit::UnitSummary {
                                name: t.name,
                                enabled: true,
                                loaded: true,
                                state: t.state,
                                description: "task".into(),
                            }
                        }));
                    }
                    Response::List { units }
                }
                Err(e) => error(ErrorCode::BadRequest, e),
            },
            Request::Debug { on } => {
                if let Some(on) = on {
                    self.sup.set_debug(on);
                }
                let word = if self.sup.debug() { "on" } else { "off" };
                Response::Actions {
                    results: vec![ok("debug", word)],
                }
            }
            Request::Start { units } => self.act(Verb::Start, &units).await,
            Request::Stop { units } => self.act(Verb::Stop, &units).await,
            Request::Restart { units } => self.act(Verb::Restart, &units).await,
            Request::Journal(_) => unreachable!("journal queries stream"),
            Request::Enable { units, now } => self.enable(&units, true, now).await,
            Request::Disable { units, now } => self.enable(&units, false, now).await,
            Request::Config { unit, args, kwargs } => self.config(&unit, args, kwargs).await,
            Request::Reload { .. } if self.sup.paths().is_err() => {
                error(ErrorCode::Unsupported, Unsupported.to_string())
            }
            Request::Reload { dry_run } => match reload::reload(&self.sup, dry_run).await {
                Ok(r) => Response::Reload {
                    dry_run: r.dry_run,
                    changes: r.changes,
                    unchanged: r.unchanged,
                },
                Err(e) => error(ErrorCode::Internal, e),
            },
            Request::Load { units } => {
                if units.is_empty() {
                    return error(ErrorCode::BadRequest, "name at least one unit".into());
                }
                Response::Actions {
                    results: reload::load(&self.sup, &units).await,
                }
            }
            Request::ResetFailed { units } => match self.sup.select(&units) {
                Ok((slots, missing)) => {
                    let mut results = not_found(missing);
                    for slot in slots {
                        if slot.reset_failed() {
                            results.push(ok(&slot.name, "reset"));
                        } else if !units.is_empty() {
                            results.push(ok(&slot.name, ""));
                        }
                    }
                    Response::Actions { results }
                }
                Err(e) => error(ErrorCode::BadRequest, e),
            },
            Request::Unload { units } => {
                if units.is_empty() {
                    return error(ErrorCode::BadRequest, "name at least one unit".into());
                }
                match reload::unload(&self.sup, &units).await {
                    Ok(results) => Response::Actions { results },
                    Err(e) => error(ErrorCode::BadRequest, e),
                }
            }
        }
    }

    /// The units and the tasks matching `patterns` (all when empty), and the patterns that
    /// matched neither.
    fn select(&self, patterns: &[String]) -> Result<Selection, String> {
        let (tasks, missing_tasks) = self.sup.tasks().names(patterns);
        // A name that is exactly a task's means the task only, not NAME.service too.
        let for_units: Vec<String> = patterns
            .iter()
            .filter(|p| !tasks.contains(p))
            .cloned()
            .collect();
        let (slots, missing_units) = if for_units.is_empty() && !patterns.is_empty() {
            (Vec::new(), Vec::new())
        } else {
            self.sup.select(&for_units)?
        };
        let missing = missing_units
            .into_iter()
            .filter(|m| missing_tasks.contains(m))
            .collect();
        Ok((slots, tasks, missing))
    }

    /// Sets `enabled` for the matching units in `services.config`; with `now`, starts or
    /// stops them too.
    async fn enable(&self, units: &[String], enabled: bool, now: bool) -> Response {
        if units.is_empty() {
            return error(ErrorCode::BadRequest, "name at least one unit".into());
        }
        let guard = self.sup.changes.lock().await;
        let (slots, missing) = match self.sup.select(units) {
            Ok(x) => x,
            Err(e) => return error(ErrorCode::BadRequest, e),
        };
        let mut results = not_found(missing);
        let mut done = Vec::new();
        for slot in slots {
            let edit = vec![("enabled", serde_json::Value::Bool(enabled))];
            match self.edit_config(&slot.name, edit).await {
                Ok(()) => done.push(slot),
                Err(e) => results.push(failed(&slot.name, e)),
            }
        }
        drop(guard);
        let word = if enabled { "enabled" } else { "disabled" };
        if now {
            let outcomes = if enabled {
                for s in &done {
                    s.reset_restarts();
                }
                let names: Vec<String> = done.iter().map(|s| s.name.clone()).collect();
                self.start_plan(&names).await
            } else {
                self.stop_each(&done).await
            };
            for slot in &done {
                results.push(match outcomes.get(&slot.name) {
                    Some(Err(e)) => failed(&slot.name, format!("{word}, but: {e}")),
                    _ => ok(&slot.name, word),
                });
            }
        } else {
            results.extend(done.iter().map(|s| ok(&s.name, word)));
        }
        results.sort_by(|a, b| a.unit.cmp(&b.unit));
        Response::Actions { results }
    }

    /// Sets `args` and/or `kwargs` of one unit in `services.config`, for its next start.
    async fn config(
        &self,
        unit: &str,
        args: Option<serde_json::Value>,
        kwargs: Option<serde_json::Value>,
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
            if let Err(e) = ServiceConfig::check_kwargs(&k) {
                return error(ErrorCode::BadRequest, e);
            }
            edit.push(("kwargs", k));
        }
        if edit.is_empty() {
            return error(ErrorCode::BadRequest, "give --args and/or --kwargs".into());
        }
        let _guard = self.sup.changes.lock().await;
        let Some(slot) = self.sup.get(&reload::unit_name(unit)) else {
            // A task: its kwargs change for its next start (tasks have no services.config).
            return match edit.iter().find(|(k, _)| *k == "kwargs") {
                Some((_, serde_json::Value::Object(kw))) if edit.len() == 1 => {
                    if self.sup.tasks().set_kwargs(unit, kw.clone()) {
                        Response::Actions {
                            results: vec![ok(unit, "kwargs set; they apply at its next start")],
                        }
                    } else {
                        error(ErrorCode::NoSuchUnit, format!("Unit {unit} not found."))
                    }
                }
                _ if self.sup.tasks().matches_any(&[unit.to_string()]) => error(
                    ErrorCode::BadRequest,
                    "a task takes --kwargs only; its args are fixed when it is added".into(),
                ),
                _ => error(ErrorCode::NoSuchUnit, format!("Unit {unit} not found.")),
            };
        };
        let result = match self.edit_config(&slot.name, edit).await {
            Ok(()) if slot.state().is_active() => ok(
                &slot.name,
                &format!(
                    "set in services.config; it applies at the next start (asyncmctl restart {})",
                    slot.name
                ),
            ),
            Ok(()) => ok(&slot.name, "set in services.config"),
            Err(e) => failed(&slot.name, e),
        };
        Response::Actions {
            results: vec![result],
        }
    }

    /// Edits the entry of `name` in `services.config`, then takes the entry as the file now
    /// says (with `${VAR}` substituted) into the unit's definition.
    async fn edit_config(
        &self,
        name: &str,
        edit: Vec<(&'static str, serde_json::Value)>,
    ) -> Result<(), String> {
        let path = self.sup.paths().map_err(|e| e.to_string())?.config.clone();
        let unit = name.to_string();
        let written = tokio::task::spawn_blocking(move || {
            config::edit(&path, &unit, &edit)?;
            ServicesConfig::load(&path)
        })
        .await
        .map_err(|e| format!("editing services.config failed: {e}"))?
        .map_err(|e| e.to_string())?;
        if let Some(slot) = self.sup.get(name) {
            slot.set_def(slot.def().with_config(written.get(name)));
        }
        Ok(())
    }

    /// Starts `names` with what they require, in dependency order; the outcome per unit.
    async fn start_plan(&self, names: &[String]) -> HashMap<String, boot::Outcome> {
        let plan = plan::plan(&self.sup.nodes(), names, plan::Pull::Any);
        let mut outcomes = HashMap::new();
        boot::execute(&self.sup, &plan, |name, outcome| {
            outcomes.insert(name.to_string(), outcome.clone());
        })
        .await;
        outcomes
    }

    /// Stops every slot at once; the outcome per unit.
    async fn stop_each(&self, slots: &[Arc<Slot>]) -> HashMap<String, boot::Outcome> {
        let mut set = tokio::task::JoinSet::new();
        for slot in slots {
            let (sup, slot) = (self.sup.clone(), slot.clone());
            set.spawn(async move { (slot.name.clone(), sup.stop(&slot).await) });
        }
        let mut out = HashMap::new();
        while let Some(r) = set.join_next().await {
            match r {
                Ok((name, r)) => {
                    out.insert(name, r);
                }
                Err(e) => tracing::error!("unit action panicked: {e}"),
            }
        }
        out
    }

    async fn act(&self, action: Verb, units: &[String]) -> Response {
        if units.is_empty() {
            return error(ErrorCode::BadRequest, "name at least one unit".into());
        }
        let (slots, tasks, missing) = match self.select(units) {
            Ok(x) => x,
            Err(e) => return error(ErrorCode::BadRequest, e),
        };
        let mut task_results = Vec::new();
        if !tasks.is_empty() {
            let reg = self.sup.tasks();
            match action {
                Verb::Start => {
                    reg.start(&tasks);
                }
                Verb::Stop => {
                    reg.stop(&tasks);
                }
                Verb::Restart => {
                    reg.restart(&tasks).await;
                }
            }
            task_results = tasks.iter().map(|t| ok(t, "")).collect();
        }
        let names: Vec<String> = slots.iter().map(|s| s.name.clone()).collect();
        if !matches!(action, Verb::Stop) {
            // A person's start always works and clears the start limit.
            for s in &slots {
                s.reset_restarts();
            }
        }
        let outcomes = match action {
            Verb::Stop => self.stop_each(&slots).await,
            Verb::Start => self.start_plan(&names).await,
            Verb::Restart => {
                let mut stopped = self.stop_each(&slots).await;
                let again: Vec<String> = names
                    .iter()
                    .filter(|n| matches!(stopped.get(*n), Some(Ok(()))))
                    .cloned()
                    .collect();
                stopped.extend(self.start_plan(&again).await);
                stopped
            }
        };
        let mut results = not_found(missing);
        for name in names {
            results.push(match outcomes.get(&name) {
                Some(Err(e)) => failed(&name, e.clone()),
                _ => ok(&name, ""),
            });
        }
        results.extend(task_results);
        results.sort_by(|a, b| a.unit.cmp(&b.unit));
        Response::Actions { results }
    }

    async fn journal_query(
        &self,
        q: JournalQuery,
        mut rx: &Stream,
        tx: &Stream,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        let mut filter = match journal_filter(&q) {
            Ok(f) => f,
            Err(e) => return send(tx, out, &error(ErrorCode::BadRequest, e)).await,
        };
        let mut sink = match q.text {
            Some(t) => Sink::Text {
                style: t.style,
                fmt: EntryFormatter::new(t.color),
                buf: String::with_capacity(BATCH_BYTES + MAX_MESSAGE + 256),
            },
            None => Sink::Entries,
        };
        let mut appended = self.journal.subscribe();
        appended.borrow_and_update();
        let mut copy = Vec::new();
        let start = |r: &crate::journal::Ring| match q.after_seq {
            Some(seq) => r.cursor_at(seq),
            None => r.oldest(),
        };
        let mut cursor = match q.lines {
            Some(n) => {
                // The newest n matches: everything from the start must be looked at.
                let (c, _) = self.journal.with_ring(|r| {
                    let mut c = start(r);
                    let o = r.read(&mut c, &mut copy, usize::MAX);
                    (c, o)
                });
                let matched: Vec<Record<'_>> = records(&copy)
                    .filter(|r| filter.matches(&*self.journal, r))
                    .collect();
                let skip = matched.len().saturating_sub(n as usize);
                let recs = matched[skip..].iter().copied();
                self.send_records(&mut filter, &mut sink, recs, 0, tx, out)
                    .await?;
                c
            }
            None => {
                let mut c = self.journal.with_ring(start);
                self.pump(&mut c, &mut filter, &mut sink, &mut copy, tx, out)
                    .await?;
                c
            }
        };
        if !q.follow {
            return send(
                tx,
                out,
                &Response::End {
                    next_seq: cursor.seq(),
                },
            )
            .await;
        }
        let mut scratch = [0u8; 512];
        loop {
            tokio::select! {
                changed = appended.changed() => if changed.is_err() { return Ok(()) },
                // The client never sends while following: any byte or EOF ends the follow.
                _ = rx.read(&mut scratch) => return Ok(()),
            }
            self.pump(&mut cursor, &mut filter, &mut sink, &mut copy, tx, out)
                .await?;
        }
    }

    /// Sends every matching entry from `cursor` to the newest, in bounded batches.
    async fn pump(
        &self,
        cursor: &mut crate::journal::Cursor,
        filter: &mut Filter<Regex>,
        sink: &mut Sink,
        copy: &mut Vec<u8>,
        tx: &Stream,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        loop {
            copy.clear();
            let got = self
                .journal
                .with_ring(|r| r.read(cursor, copy, BATCH_BYTES));
            if got.copied == 0 && got.missed == 0 {
                return Ok(());
            }
            self.send_records(filter, sink, records(copy), got.missed, tx, out)
                .await?;
        }
    }

    /// Sends the records of `recs` that match `filter` through `sink`, in bounded batches.
    async fn send_records<'a>(
        &self,
        filter: &mut Filter<Regex>,
        sink: &mut Sink,
        recs: impl Iterator<Item = Record<'a>>,
        mut missed: u64,
        tx: &Stream,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        if let Sink::Text { style, fmt, buf } = sink {
            let host = self.journal.host();
            buf.clear();
            for r in recs {
                if !filter.matches(&*self.journal, &r) {
                    continue;
                }
                let msg = crate::journal::text(r.msg);
                let unit = filter.name(&*self.journal, r.unit);
                fmt.line(buf, *style, host, r.wall_us, r.level, unit, &msg);
                if buf.len() >= BATCH_BYTES {
                    send_text(tx, out, buf, missed).await?;
                    missed = 0;
                    buf.clear();
                }
            }
            if !buf.is_empty() || missed > 0 {
                send_text(tx, out, buf, missed).await?;
            }
            return Ok(());
        }
        let mut entries = Vec::new();
        let mut bytes = 0;
        let host = self.journal.host().to_string();
        for r in recs {
            if !filter.matches(&*self.journal, &r) {
                continue;
            }
            bytes += r.msg.len() + 64;
            entries.push(r.to_entry(filter.name(&*self.journal, r.unit)));
            if bytes >= BATCH_BYTES {
                let batch = std::mem::take(&mut entries);
                let resp = Response::Entries {
                    host: host.clone(),
                    entries: batch,
                    missed,
                };
                send(tx, out, &resp).await?;
                missed = 0;
                bytes = 0;
            }
        }
        if !entries.is_empty() || missed > 0 {
            send(
                tx,
                out,
                &Response::Entries {
                    host,
                    entries,
                    missed,
                },
            )
            .await?;
        }
        Ok(())
    }
}

/// How a journal answer leaves: as entry frames, or as text rendered here.
enum Sink {
    Entries,
    Text {
        style: TextStyle,
        fmt: EntryFormatter,
        buf: String,
    },
}

/// Matching units, matching task names, and the patterns that matched neither.
type Selection = (Vec<Arc<Slot>>, Vec<String>, Vec<String>);

#[derive(Clone, Copy)]
enum Verb {
    Start,
    Stop,
    Restart,
}

fn ok(unit: &str, message: &str) -> ActionResult {
    ActionResult {
        unit: unit.to_string(),
        outcome: ActionOutcome::Ok,
        message: message.to_string(),
    }
}

fn failed(unit: &str, message: String) -> ActionResult {
    ActionResult {
        unit: unit.to_string(),
        outcome: ActionOutcome::Failed,
        message,
    }
}

fn not_found(missing: Vec<String>) -> Vec<ActionResult> {
    missing
        .into_iter()
        .map(|m| ActionResult {
            message: format!("Unit {m} not found."),
            unit: m,
            outcome: ActionOutcome::NoSuchUnit,
        })
        .collect()
}

fn error(code: ErrorCode, message: String) -> Response {
    Response::Error { code, message }
}

fn no_such(missing: &[String]) -> String {
    let names: Vec<String> = missing
        .iter()
        .map(|m| format!("Unit {m} could not be found."))
        .collect();
    names.join(" ")
}

async fn send(mut tx: &Stream, out: &mut Vec<u8>, resp: &Response) -> io::Result<()> {
    out.clear();
    frame::encode(resp, out)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    tx.write_all(out).await
}

/// Sends `text` as a [`Response::Text`] header and its raw payload.
async fn send_text(mut tx: &Stream, out: &mut Vec<u8>, text: &str, missed: u64) -> io::Result<()> {
    let header = Response::Text {
        bytes: text.len() as u64,
        missed,
    };
    send(tx, out, &header).await?;
    tx.write_all(text.as_bytes()).await
}

async fn drain(mut rx: &Stream) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while total < DRAIN_LIMIT {
            match rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

/// The host's `grep`: a regular expression, with a size limit so a hostile one cannot take the
/// daemon's memory.
struct Regex(regex::bytes::Regex);

impl Grep for Regex {
    fn is_match(&self, msg: &[u8]) -> bool {
        self.0.is_match(msg)
    }
}

/// The core's journal filter, with the query's `grep` compiled here.
fn journal_filter(q: &JournalQuery) -> Result<Filter<Regex>, String> {
    let grep = match &q.grep {
        Some(g) => Some(Regex(
            regex::bytes::RegexBuilder::new(g)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("invalid regular expression '{g}': {e}"))?,
        )),
        None => None,
    };
    Filter::new(q, grep)
}
