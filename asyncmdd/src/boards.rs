//! The boards the daemon reaches through `[agent]` units: each board's tasks as its bridge last
//! saw them (named `BOARD:TASK`), and the way to the bridge for requests about them.
//!
//! A bridge ([`crate::builtins::bridge`]) fills this in; requests read it and queue commands,
//! never waiting on a board: a slow or gone board cannot hold up the daemon.

use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::sync::Mutex;

use asyncmd_proto::unit::UnitSummary;
use asyncmd_proto::UnitStatus;

/// What a request asks of a board's tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Start these tasks (their names on the board).
    Start(Vec<String>),
    /// Stop them.
    Stop(Vec<String>),
    /// Restart them.
    Restart(Vec<String>),
}

struct Board {
    tasks: Vec<UnitStatus>,
    commands: Sender<Command>,
}

/// The boards, by name.
#[derive(Default)]
pub struct Boards {
    boards: Mutex<BTreeMap<String, Board>>,
}

impl Boards {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Board>> {
        self.boards.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A bridge to `board` is up: requests about its tasks go to `commands`.
    pub fn attach(&self, board: &str, commands: Sender<Command>) {
        self.lock().insert(
            board.into(),
            Board {
                tasks: Vec::new(),
                commands,
            },
        );
    }

    /// The bridge to `board` ended: its tasks are gone.
    pub fn detach(&self, board: &str) {
        self.lock().remove(board);
    }

    /// The bridge's latest view of `board`'s tasks, named `BOARD:TASK` already.
    pub fn update(&self, board: &str, tasks: Vec<UnitStatus>) {
        if let Some(b) = self.lock().get_mut(board) {
            b.tasks = tasks;
        }
    }

    /// Every board task's name, in order.
    pub fn names(&self) -> Vec<String> {
        self.lock()
            .values()
            .flat_map(|b| b.tasks.iter().map(|t| t.name.clone()))
            .collect()
    }

    /// Whether `name` is a board task's.
    pub fn has(&self, name: &str) -> bool {
        self.lock()
            .values()
            .any(|b| b.tasks.iter().any(|t| t.name == name))
    }

    /// The status of the board tasks `names`.
    pub fn status(&self, names: &[String]) -> Vec<UnitStatus> {
        let boards = self.lock();
        names
            .iter()
            .filter_map(|n| {
                boards
                    .values()
                    .find_map(|b| b.tasks.iter().find(|t| &t.name == n))
                    .cloned()
            })
            .collect()
    }

    /// Their `list` rows.
    pub fn summaries(&self, names: &[String]) -> Vec<UnitSummary> {
        self.status(names)
            .into_iter()
            .map(|t| UnitSummary {
                name: t.name,
                enabled: true,
                loaded: true,
                state: t.state,
                description: String::from("task"),
                masked: false,
                kind: asyncmd_proto::UnitType::Task,
                requires: Vec::new(),
                after: Vec::new(),
            })
            .collect()
    }

    /// Queues `verb` for the board tasks `names` with their bridges.
    pub fn command(&self, names: &[String], verb: fn(Vec<String>) -> Command) {
        for (board, b) in self.lock().iter() {
            let prefix = format!("{board}:");
            let mine: Vec<String> = names
                .iter()
                .filter_map(|n| n.strip_prefix(&prefix))
                .map(String::from)
                .collect();
            if !mine.is_empty() {
                let _ = b.commands.send(verb(mine));
            }
        }
    }
}
