//! The host's one scheduler, of units and tasks alike: carries out the core's scheduling
//! policy ([`asyncmd_core::schedule`]) for a scheduled unit or task, on tokio timers and the
//! system clocks.

use asyncmd_core::schedule::{describe, Deadline, Spec, Turn};
use asyncmd_proto::Level;
use chrono::Local;
use tokio::sync::watch;

use crate::clock::mono_us;

/// What the scheduler sees of its unit, and what it may do with it; the driver gives it.
pub trait Scheduled {
    /// The unit's schedule and whether it is enabled (None: it has none); None when the unit
    /// is no longer loaded, which ends the scheduler.
    fn schedule(&self) -> Option<Option<(Spec, bool)>>;
    /// Whether its previous run still goes (anything but ended).
    fn busy(&self) -> bool;
    /// Shows when its next run is due (wall µs).
    fn show_next(&self, next_us: Option<i64>);
    /// Writes a line under its name.
    fn log(&self, level: Level, line: &str);
    /// Starts the run due at `due_us`, without waiting for it.
    fn start(&self, due_us: i64);
}

/// Runs the schedule of `unit` for as long as it is loaded: starts it when a run is due,
/// unless the previous run still goes (then the journal says it skipped one). Follows changes
/// of its definition (reload, enable, disable), which `changes` announces.
pub async fn run<T>(unit: impl Scheduled, mut changes: watch::Receiver<T>) {
    let mut current: Option<(Spec, bool)> = None;
    let mut deadline: Option<Deadline<Local>> = None;
    loop {
        let Some(now_spec) = unit.schedule() else {
            return;
        };
        if now_spec != current {
            current = now_spec;
            deadline = match current {
                Some((spec, true)) => Some(Deadline::new(spec, &Local::now(), mono_us())),
                _ => None,
            };
            if let (Some((spec, true)), None) = (current, deadline.as_ref().and_then(|d| d.due())) {
                unit.log(
                    Level::Warning,
                    &format!(
                        "Schedule {}: no run ahead, it will not run",
                        describe(&spec)
                    ),
                );
            }
        }
        let due = deadline.as_ref().and_then(|d| d.due().cloned());
        unit.show_next(due.as_ref().map(|d| d.timestamp_micros()));
        let (Some(d), Some(when)) = (deadline.as_mut(), due) else {
            // Disabled, unscheduled or with no run ahead: wait for the definition to change.
            if changes.changed().await.is_err() {
                return;
            }
            continue;
        };
        let wait = d.wait(&Local::now(), mono_us()).unwrap_or_default();
        if !wait.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                r = changes.changed() => if r.is_err() { return },
            }
            continue;
        }
        let turn = Turn::when_busy(unit.busy());
        let (level, line) = turn.line(&when);
        unit.log(level, &line);
        if turn == Turn::Start {
            unit.start(when.timestamp_micros());
        }
        d.advance(&Local::now(), mono_us());
    }
}
