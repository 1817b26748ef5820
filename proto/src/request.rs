//! Requests, responses and their envelope.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::journal::{Entry, JournalQuery};
use crate::unit::{UnitFile, UnitStatus, UnitSummary};

/// A request as framed on the wire: the protocol version beside the request itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Protocol version of the sender ([`crate::VERSION`]).
    pub v: u32,
    /// What is asked.
    pub req: Request,
}

/// What a client asks the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Status of the units matching `patterns` (all when empty), each with up to `lines` of its
    /// newest journal entries.
    Status {
        /// Unit names or globs; `hello` also matches `hello.service`.
        #[serde(default)]
        patterns: Vec<String>,
        /// Journal lines to attach to each unit.
        #[serde(default)]
        lines: u32,
    },
    /// One summary row per unit matching `patterns` (all when empty).
    List {
        /// Unit names or globs.
        #[serde(default)]
        patterns: Vec<String>,
    },
    /// Start the matching units.
    Start {
        /// Unit names or globs.
        units: Vec<String>,
    },
    /// Stop the matching units (and, first, the running units that require them).
    Stop {
        /// Unit names or globs.
        units: Vec<String>,
        /// Only say what would be stopped.
        #[serde(default)]
        dry_run: bool,
    },
    /// Stop then start the matching units (the units that require them come back once they
    /// are ready).
    Restart {
        /// Unit names or globs.
        units: Vec<String>,
        /// Only say what would be restarted.
        #[serde(default)]
        dry_run: bool,
    },
    /// Read (and possibly follow) the journal.
    Journal(JournalQuery),
    /// Enable the matching units in `services.config`; with `now`, start them too.
    Enable {
        /// Unit names or globs.
        units: Vec<String>,
        /// Also start them.
        #[serde(default)]
        now: bool,
    },
    /// Disable the matching units in `services.config`; with `now`, stop them too.
    Disable {
        /// Unit names or globs.
        units: Vec<String>,
        /// Also stop them.
        #[serde(default)]
        now: bool,
    },
    /// Set a unit's `args` and/or `kwargs` in `services.config`, for its next start.
    Config {
        /// Unit name.
        unit: String,
        /// New `args` (a JSON array), if given.
        #[serde(default)]
        args: Option<Value>,
        /// New `kwargs` (a JSON object), if given.
        #[serde(default)]
        kwargs: Option<Value>,
    },
    /// Re-read unit files and `services.config` and apply the difference.
    Reload {
        /// Only say what would change.
        #[serde(default)]
        dry_run: bool,
    },
    /// Load unit files added to the units directory after boot, and start them.
    Load {
        /// Unit names (`new` or `new.service`).
        units: Vec<String>,
    },
    /// Stop units and forget them.
    Unload {
        /// Unit names or globs.
        units: Vec<String>,
    },
    /// Turn debug mode on or off (every status in full); `None` only asks.
    Debug {
        /// On or off.
        #[serde(default)]
        on: Option<bool>,
    },
    /// Forget the restart history of units and turn `failed` into `inactive`.
    ResetFailed {
        /// Unit names or globs; all failed units when empty.
        #[serde(default)]
        units: Vec<String>,
    },
    /// Send a signal to the processes of the matching running units.
    Kill {
        /// Unit names or globs.
        units: Vec<String>,
        /// The signal's name (`SIGTERM`, `TERM`) or number.
        #[serde(default = "default_kill_signal")]
        signal: String,
        /// Its main process only, or every process of its run.
        #[serde(default)]
        whom: KillWhom,
    },
    /// Mask units (`masked: true` in `services.config`): nothing starts them until they are
    /// unmasked.
    Mask {
        /// Unit names or globs.
        units: Vec<String>,
    },
    /// Unmask units.
    Unmask {
        /// Unit names or globs.
        units: Vec<String>,
    },
    /// Ask the matching running units to reload their configuration: their `reload_signal`
    /// (SIGHUP) to their main process. (Re-reading the unit files is [`Request::Reload`].)
    ReloadUnits {
        /// Unit names or globs.
        units: Vec<String>,
    },
    /// The unit files of the matching units, each with its `services.config` entry as written.
    Cat {
        /// Unit names or globs.
        units: Vec<String>,
    },
}

fn default_kill_signal() -> String {
    "SIGTERM".into()
}

/// Whom `kill` signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KillWhom {
    /// The unit's main process.
    Main,
    /// Every process of its run: its process group, what carries its run tag, its cgroup.
    #[default]
    All,
}

impl Request {
    /// Whether the request changes the daemon's state (and so needs a privileged peer).
    pub fn mutates(&self) -> bool {
        !matches!(
            self,
            Request::Status { .. }
                | Request::List { .. }
                | Request::Journal(_)
                | Request::Reload { dry_run: true }
                | Request::Stop { dry_run: true, .. }
                | Request::Restart { dry_run: true, .. }
                | Request::Debug { on: None }
                | Request::Cat { .. }
        )
    }

    /// Whether only a privileged peer may ask it: every change, and reading unit files, which
    /// may hold what their directory keeps from other users.
    pub fn privileged(&self) -> bool {
        self.mutates() || matches!(self, Request::Cat { .. })
    }
}

/// What the daemon answers; a journal query is answered by a stream of frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Response {
    /// Answer to [`Request::Status`].
    Status {
        /// The matching units, then the matching tasks, each in name order.
        units: Vec<UnitStatus>,
        /// Debug mode is on: show every unit in full.
        #[serde(default)]
        debug: bool,
        /// The names and patterns that matched nothing (when others did), each with its
        /// message: a `no-such-unit` result per name.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        missing: Vec<ActionResult>,
    },
    /// Answer to [`Request::List`].
    List {
        /// The matching units, in name order.
        units: Vec<UnitSummary>,
        /// The names and patterns that matched nothing (when others did).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        missing: Vec<ActionResult>,
    },
    /// Answer to start/stop/restart: one result per matched unit.
    Actions {
        /// Outcome per unit.
        results: Vec<ActionResult>,
    },
    /// Answer to [`Request::Reload`]: what changed (or, for a dry run, what would).
    Reload {
        /// Nothing was changed: this is what a reload would do.
        dry_run: bool,
        /// One change per affected unit, in name order.
        changes: Vec<Change>,
        /// Units left as they were.
        unchanged: u32,
    },
    /// Answer to [`Request::Cat`].
    Files {
        /// One per matching unit, in name order.
        files: Vec<UnitFile>,
        /// The names and patterns that matched nothing (when others did).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        missing: Vec<ActionResult>,
    },
    /// A batch of journal entries, oldest first.
    Entries {
        /// Host name the entries were logged on.
        host: String,
        /// The entries.
        entries: Vec<Entry>,
        /// Entries that matched nothing yet were lost because this reader fell behind the ring.
        #[serde(default)]
        missed: u64,
    },
    /// Journal entries rendered as text: the `bytes` bytes of UTF-8 lines that follow this
    /// frame's newline are the payload (they are not JSON).
    Text {
        /// Length of the payload.
        bytes: u64,
        /// Entries lost because this reader fell behind the ring, before these lines.
        #[serde(default)]
        missed: u64,
    },
    /// End of a journal answer that does not follow.
    End {
        /// Sequence number the next entry will carry: resume a later read from here.
        next_seq: u64,
    },
    /// The request failed as a whole.
    Error {
        /// Machine-readable class of the failure.
        code: ErrorCode,
        /// What went wrong, for a person.
        message: String,
    },
}

/// Class of a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The frame was not a valid request.
    BadRequest,
    /// The frame was larger than [`crate::MAX_REQUEST_BYTES`].
    TooLarge,
    /// The request's protocol version is not spoken here.
    Version,
    /// A named unit does not exist.
    NoSuchUnit,
    /// The peer may read but not change.
    PermissionDenied,
    /// The daemon is at its client limit.
    Busy,
    /// This runtime cannot do that at all (a runtime of tasks only has no unit files to reload).
    Unsupported,
    /// The daemon failed to carry the request out.
    Internal,
}

/// Outcome of an action on one unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionResult {
    /// Unit name (or the pattern that matched nothing).
    pub unit: String,
    /// What happened.
    pub outcome: ActionOutcome,
    /// Details for a person, empty when there is nothing to add.
    #[serde(default)]
    pub message: String,
}

/// One unit's part in a reload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Unit name.
    pub unit: String,
    /// What is done to it.
    pub action: ChangeAction,
    /// Why, for a person: `unit file changed`, `disabled in services.config`...
    pub reason: String,
    /// How it went (always `ok` in a dry run).
    pub outcome: ActionOutcome,
    /// Details when it failed.
    #[serde(default)]
    pub message: String,
}

impl Change {
    /// `hello.service: restarted (unit file changed)`, with the error when it failed.
    pub fn line(&self, dry_run: bool) -> String {
        let verb = if dry_run {
            self.action.plan_word()
        } else {
            self.action.done_word()
        };
        let mut s = alloc::format!("{}: {verb} ({})", self.unit, self.reason);
        if self.outcome != ActionOutcome::Ok {
            s.push_str("; error: ");
            s.push_str(&self.message);
        }
        s
    }

    /// The closing line of a reload report.
    pub fn summary(dry_run: bool, changed: usize, unchanged: u32) -> String {
        let head = if dry_run {
            "Reload (dry run)"
        } else {
            "Reload"
        };
        alloc::format!("{head}: {changed} changed, {unchanged} unchanged")
    }
}

/// What a reload does to one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChangeAction {
    /// Start it (new, newly enabled, or changed while not running).
    Start,
    /// Stop it (disabled).
    Stop,
    /// Stop it and start it with its new definition.
    Restart,
    /// Stop it if it runs and forget it (its file is gone).
    Remove,
    /// Take its new definition without starting or stopping it.
    Update,
}

impl ChangeAction {
    /// The past-tense word shown by `asyncmctl reload`.
    pub fn done_word(self) -> &'static str {
        match self {
            ChangeAction::Start => "started",
            ChangeAction::Stop => "stopped",
            ChangeAction::Restart => "restarted",
            ChangeAction::Remove => "removed",
            ChangeAction::Update => "updated",
        }
    }

    /// The word shown by `asyncmctl reload --dry-run`.
    pub fn plan_word(self) -> &'static str {
        match self {
            ChangeAction::Start => "would start",
            ChangeAction::Stop => "would stop",
            ChangeAction::Restart => "would restart",
            ChangeAction::Remove => "would remove",
            ChangeAction::Update => "would update",
        }
    }
}

/// What an action did to one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionOutcome {
    /// Done as asked.
    Ok,
    /// No unit by that name or pattern.
    NoSuchUnit,
    /// The unit exists but the action failed (see the message).
    Failed,
}
