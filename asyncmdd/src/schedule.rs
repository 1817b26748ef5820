//! The host's unit scheduler: carries out the core's scheduling policy
//! ([`asyncmd_core::schedule`]) for a scheduled unit, on tokio timers and the system clocks.

use std::sync::Arc;

use asyncmd_core::schedule::{describe, Deadline, Spec, Turn};
use asyncmd_proto::{Level, UnitState};
use chrono::Local;

use crate::clock::mono_us;
use crate::supervisor::{Slot, Supervisor};

/// Runs the schedule of `slot` for as long as the unit is loaded: starts the unit when a run is
/// due, unless the previous run still goes (then the journal says it skipped one). Follows
/// changes of the unit's definition (reload, enable, disable).
pub async fn run(sup: Arc<Supervisor>, slot: Arc<Slot>) {
    let mut changes = slot.subscribe();
    let mut current: Option<(Spec, bool)> = None;
    let mut deadline: Option<Deadline<Local>> = None;
    loop {
        if !sup.holds(&slot) {
            return;
        }
        let def = slot.def();
        let now_spec = def
            .unit
            .as_ref()
            .and_then(|u| u.schedule.clone())
            .map(|sc| (sc.spec, def.config.enabled));
        if now_spec != current {
            current = now_spec;
            deadline = match current {
                Some((spec, true)) => Some(Deadline::new(spec, &Local::now(), mono_us())),
                _ => None,
            };
            if let (Some((spec, true)), None) = (current, deadline.as_ref().and_then(|d| d.due())) {
                sup.log_for(
                    &slot,
                    Level::Warning,
                    &format!(
                        "Schedule {}: no run ahead, it will not run",
                        describe(&spec)
                    ),
                );
            }
        }
        let due = deadline.as_ref().and_then(|d| d.due().cloned());
        slot.set_schedule(due.as_ref().map(|d| d.timestamp_micros()));
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
        // Due now. Anything but ended means the previous run still goes.
        let busy = !matches!(
            slot.state(),
            UnitState::Inactive | UnitState::Done | UnitState::Failed | UnitState::Stopped
        );
        let turn = Turn::when_busy(busy);
        let (level, line) = turn.line(&when);
        sup.log_for(&slot, level, &line);
        if turn == Turn::Start {
            slot.ran_on_schedule(when.timestamp_micros());
            let (sup2, s2) = (sup.clone(), slot.clone());
            tokio::spawn(async move {
                let _ = sup2.start(&s2).await;
            });
        }
        d.advance(&Local::now(), mono_us());
    }
}
