//! Builtin services: units that run inside the daemon as tasks (`builtin = "name"` in a unit
//! file) rather than as processes. A builtin gets its unit's `kwargs`, a way to log and to
//! publish stats, and a stop signal it must honour; it returns `Ok` when it ends well.

use std::sync::Arc;

use asyncmd_proto::Level;
use serde_json::{Map, Value};
use tokio::sync::watch;

use crate::supervisor::{Slot, Supervisor};

/// What a builtin service is given.
pub struct Context {
    /// The supervisor it runs in (the watcher looks at the other units).
    pub sup: Arc<Supervisor>,
    /// Its own unit.
    pub slot: Arc<Slot>,
    /// `args` from `services.config`.
    pub args: Vec<Value>,
    /// `kwargs` from `services.config`.
    pub kwargs: Map<String, Value>,
    /// Turns `true` when it is asked to stop.
    pub stop: watch::Receiver<bool>,
}

impl Context {
    /// Logs `msg` under its unit.
    pub fn log(&self, level: Level, msg: &str) {
        self.sup.log_for(&self.slot, level, msg);
    }

    /// Publishes its stats (shown under `Stats:` in status).
    pub fn set_stats(&self, stats: Map<String, Value>) {
        self.slot.set_stats(stats);
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

/// The names of the builtin services of this version.
pub const NAMES: &[&str] = &["hello", "sensor", "watcher", "world"];

/// Runs builtin `name` until it ends or is stopped.
pub async fn run(name: &str, ctx: Context) -> Result<(), String> {
    match name {
        "watcher" => crate::watcher::run(ctx).await,
        "hello" => crate::examples::hello(ctx).await,
        "world" => crate::examples::world(ctx).await,
        "sensor" => crate::examples::sensor(ctx).await,
        other => Err(format!(
            "builtin service '{other}' does not exist in this version of asyncmdd (there is: {})",
            NAMES.join(", ")
        )),
    }
}
