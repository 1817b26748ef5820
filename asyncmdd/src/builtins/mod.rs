//! Builtin services: units that run inside the daemon as tasks (`builtin = "name"` in a unit
//! file) rather than as processes. A builtin gets a narrow [`Context`]: its unit's name, `args`
//! and `kwargs`, a way to log and to publish stats, a read-only view of the other units, and a
//! stop signal it must honour; it returns `Ok` when it ends well. It never sees the supervisor.

pub mod aiostats;
pub mod bridge;
pub mod demo;
pub mod kwargs;
pub mod mqtt;
pub mod stats;
pub mod watcher;

use std::path::PathBuf;
use std::sync::Arc;

use asyncmd_proto::{Level, UnitStatus};
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::answer::Answer;
use crate::boards::Boards;
use crate::journal::{Journal, UnitId};
use crate::unit_file::AgentLink;

/// Publishes a builtin's stats on its unit.
pub type StatsSink = Arc<dyn Fn(Map<String, Value>) + Send + Sync>;
/// Tells the status of every loaded unit, as it is now.
pub type UnitsView = Box<dyn Fn() -> Vec<UnitStatus> + Send + Sync>;

/// What a builtin service is given.
pub struct Context {
    /// Its unit's name.
    pub name: String,
    /// `args` from `services.config`.
    pub args: Vec<Value>,
    /// `kwargs` from `services.config`.
    pub kwargs: Map<String, Value>,
    /// Turns `true` when it is asked to stop.
    pub stop: watch::Receiver<bool>,
    /// The journal, and its unit's id there.
    pub journal: Arc<Journal>,
    /// Its unit's id in the journal.
    pub id: UnitId,
    /// Where its stats go.
    pub stats: StatsSink,
    /// The other units, read-only (the watcher reports their failures).
    pub units: UnitsView,
    /// The unit's `[agent]` section, for the bridge to a board.
    pub agent: Option<AgentLink>,
    /// The boards the daemon reaches, which the bridge keeps up to date.
    pub boards: Arc<Boards>,
    /// The runtime's request handling, for a builtin that carries requests (MQTT).
    pub answer: Option<Answer>,
    /// `services.config`, which MQTT's `config get` reads as written.
    pub config: Option<PathBuf>,
}

impl Context {
    /// Logs `msg` under its unit.
    pub fn log(&self, level: Level, msg: &str) {
        self.journal.log(self.id, level, msg);
    }

    /// Publishes its stats (shown under `Stats:` in status).
    pub fn set_stats(&self, stats: Map<String, Value>) {
        (self.stats)(stats);
    }

    /// Where its stats go, for a thread of its own.
    pub fn stats_handle(&self) -> StatsSink {
        self.stats.clone()
    }

    /// Resolves once it is asked to stop.
    pub async fn stopped(&mut self) {
        while !*self.stop.borrow() {
            if self.stop.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Kwargs whose values are secrets (the MQTT broker's password): status shows them masked.
pub const SECRET_KWARGS: &[&str] = &["password"];

/// `kwargs` as status shows them: secrets masked.
pub fn shown_kwargs(kwargs: &Map<String, Value>) -> Map<String, Value> {
    let mut shown = kwargs.clone();
    for key in SECRET_KWARGS {
        if let Some(v) = shown.get_mut(*key) {
            *v = Value::from("********");
        }
    }
    shown
}

/// The names of the builtin services of this version.
pub const NAMES: &[&str] = &["hello", "mqtt", "sensor", "stats", "watcher", "world"];

/// Runs builtin `name` until it ends or is stopped.
pub async fn run(name: &str, ctx: Context) -> Result<(), String> {
    match name {
        "watcher" => watcher::run(ctx).await,
        "mqtt" => mqtt::run(ctx).await,
        "stats" => stats::run(ctx).await,
        "agent" => bridge::run(ctx).await,
        "hello" => demo::hello(ctx).await,
        "world" => demo::world(ctx).await,
        "sensor" => demo::sensor(ctx).await,
        other => Err(format!(
            "builtin service '{other}' does not exist in this version of asyncmdd (there is: {})",
            NAMES.join(", ")
        )),
    }
}
