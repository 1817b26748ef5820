//! The bridge of an `[agent]` unit: keeps the line to a board's agent, shows its tasks as the
//! daemon's own (`BOARD:TASK`, in status, list, start, stop and restart) and copies its journal
//! into the daemon's under those names.
//!
//! The line is served by one blocking thread: it connects (again and again, with a backoff up
//! to 10 s, when the board is gone or stops answering), polls the board's status and journal
//! twice a second, and carries out the commands requests queue. Nothing of the daemon waits
//! on it. A board that resets or goes away shows its tasks as failed with the reason, and the
//! unit's stats say whether it is connected.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use asyncmd_proto::agent::AgentClient;
use asyncmd_proto::link::{Ask, Reply};
use asyncmd_proto::{Level, Request, Response, UnitState};
use serde_json::{json, Map};

use super::Context;
use crate::boards::{Boards, Command};
use crate::journal::Journal;
use crate::unit_file::AgentLink;

/// How often the board's status and journal are read.
const POLL: Duration = Duration::from_millis(500);
/// The longest wait between two tries to reach the board.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Runs the bridge of `ctx`'s unit until it is stopped.
pub async fn run(mut ctx: Context) -> Result<(), String> {
    let link = ctx
        .agent
        .clone()
        .ok_or("the agent bridge runs only for a unit with an [agent] section")?;
    let (tx, rx) = mpsc::channel();
    ctx.boards.attach(&link.board, tx);
    let stop = Arc::new(AtomicBool::new(false));
    let line = Line {
        link: link.clone(),
        journal: ctx.journal.clone(),
        boards: ctx.boards.clone(),
        commands: rx,
        stop: stop.clone(),
        unit: ctx.id,
    };
    let stats = ctx.stats_handle();
    let thread = tokio::task::spawn_blocking(move || line.serve(stats));
    ctx.stopped().await;
    stop.store(true, Ordering::SeqCst);
    let _ = thread.await;
    ctx.boards.detach(&link.board);
    Ok(())
}

/// What the bridge's thread holds.
struct Line {
    link: AgentLink,
    journal: Arc<Journal>,
    boards: Arc<Boards>,
    commands: Receiver<Command>,
    stop: Arc<AtomicBool>,
    unit: crate::journal::UnitId,
}

impl Line {
    fn log(&self, level: Level, msg: &str) {
        self.journal.log(self.unit, level, msg);
    }

    /// Sleeps `d` in short steps; whether it was asked to stop meanwhile.
    fn nap(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while Instant::now() < until {
            if self.stop.load(Ordering::SeqCst) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
        }
        self.stop.load(Ordering::SeqCst)
    }

    fn serve(self, stats: super::StatsSink) {
        let mut backoff = Duration::from_millis(500);
        let mut last_error = String::new();
        // Where the copy of its journal stands, kept across reconnections (not across resets).
        let mut next_seq = None;
        let show = |connected: bool, why: &str| {
            let mut m = Map::new();
            m.insert("connected".into(), json!(connected));
            if !why.is_empty() {
                m.insert("error".into(), json!(why));
            }
            stats(m);
        };
        while !self.stop.load(Ordering::SeqCst) {
            let why = match AgentClient::connect(&self.link.port) {
                Ok(mut c) => {
                    backoff = Duration::from_millis(500);
                    last_error.clear();
                    self.log(
                        Level::Info,
                        &format!("Connected to board {} at {}", c.board(), self.link.port),
                    );
                    show(true, "");
                    self.session(&mut c, &mut next_seq)
                }
                Err(e) => e.to_string(),
            };
            if self.stop.load(Ordering::SeqCst) {
                break;
            }
            self.disconnected(&why);
            show(false, &why);
            if why != last_error {
                self.log(
                    Level::Warning,
                    &format!("Board {} unreachable: {why}; trying again", self.link.board),
                );
                last_error = why;
            }
            if self.nap(backoff) {
                break;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Polls a connected board until the line fails (the reason) or a stop.
    fn session(&self, c: &mut AgentClient, next_seq: &mut Option<u64>) -> String {
        loop {
            while let Ok(cmd) = self.commands.try_recv() {
                let req = match cmd {
                    Command::Start(units) => Request::Start { units },
                    Command::Stop(units) => Request::Stop {
                        units,
                        dry_run: false,
                    },
                    Command::Restart(units) => Request::Restart {
                        units,
                        dry_run: false,
                    },
                };
                if let Err(e) = c.call(req) {
                    return e.to_string();
                }
            }
            match c.call(Request::Status {
                patterns: Vec::new(),
                lines: 0,
            }) {
                Ok(Response::Status { units, .. }) => {
                    let board = &self.link.board;
                    let tasks = units
                        .into_iter()
                        .map(|mut t| {
                            t.name = format!("{board}:{}", t.name);
                            t.source = format!("agent {}", self.link.port);
                            t
                        })
                        .collect();
                    self.boards.update(board, tasks);
                }
                Ok(other) => return format!("the board answered status with {other:?}"),
                Err(e) => return e.to_string(),
            }
            if c.take_reset() {
                self.log(
                    Level::Warning,
                    &format!("Board {} reset: its journal starts again", self.link.board),
                );
                *next_seq = None;
            }
            // Its journal, page by page, into ours.
            loop {
                let ask = Ask::Journal {
                    units: Vec::new(),
                    after_seq: *next_seq,
                    lines: None,
                    level: None,
                };
                match c.ask(&ask) {
                    Ok(Reply::Entries {
                        entries,
                        next_seq: n,
                        ..
                    }) => {
                        let done = entries.is_empty();
                        for e in entries {
                            let name = format!("{}:{}", self.link.board, e.unit);
                            self.journal
                                .log(self.journal.unit_id(&name), e.level, &e.msg);
                        }
                        *next_seq = Some(n);
                        if done {
                            break;
                        }
                    }
                    Ok(other) => {
                        return format!("the board answered a journal read with {other:?}")
                    }
                    Err(e) => return e.to_string(),
                }
            }
            if self.nap(POLL) {
                return String::from("stopped");
            }
        }
    }

    /// The board is out of reach: its tasks show as failed, saying why.
    fn disconnected(&self, why: &str) {
        let names = self.boards.names();
        let prefix = format!("{}:", self.link.board);
        let mine: Vec<String> = names
            .into_iter()
            .filter(|n| n.starts_with(&prefix))
            .collect();
        let tasks = self
            .boards
            .status(&mine)
            .into_iter()
            .map(|mut t| {
                t.state = UnitState::Failed;
                t.error = Some(format!("board disconnected: {why}"));
                t
            })
            .collect();
        self.boards.update(&self.link.board, tasks);
    }
}
