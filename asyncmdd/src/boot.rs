//! Boot: running a start plan, each unit as soon as what it needs is ready, and the report
//! asyncmd prints for it.

use std::sync::Arc;

use asyncmd_proto::text::ansi;
use tokio::task::JoinSet;

use crate::driver::Supervisor;
use asyncmd_core::plan::{Boot, Plan, Problem, Shutdown};

/// What happened to one unit of a plan: started (for a oneshot: finished well), or why not.
pub type Outcome = Result<(), String>;

/// Runs `plan`: reports each of its problems, then starts every step as soon as what it waits
/// for is settled (its `requires` ready, its `after` ready or failed, and for a non-core unit
/// every core unit), lower priority first among steps free at the same moment. A step whose
/// requirement fails does not start, and says which one. `report` hears of each unit once.
pub async fn execute(sup: &Arc<Supervisor>, plan: &Plan, mut report: impl FnMut(&str, &Outcome)) {
    for (name, problem) in &plan.problems {
        let msg = problem.to_string();
        if let Some(slot) = sup.get(name) {
            // A unit running (or waiting in another plan) keeps its state.
            let busy = slot.state().is_active() || slot.is_waiting();
            if !matches!(problem, Problem::Broken(_)) && !busy {
                // Kept back by a requirement that cannot start now: once it is ready (a
                // reload fixed it, a person started it), this unit starts after all.
                let held_by = match problem {
                    Problem::Dependency(d) | Problem::Disabled(d) => Some(d.as_str()),
                    _ => None,
                };
                sup.not_started(&slot, &msg, held_by).await;
            }
        }
        report(name, &Err(msg));
    }
    let steps = &plan.steps;
    let n = steps.len();
    let mut boot = Boot::new(plan);
    // What each unit was like when the plan began: a unit another plan starts meanwhile is
    // not started twice, and one a stop cancelled while it waited is not started at all.
    let mut ready_before = vec![false; n];
    let mut cancels_before = vec![0; n];
    for i in 0..n {
        if let Some(slot) = sup.get(&steps[i].name) {
            ready_before[i] = slot.is_ready();
            cancels_before[i] = slot.cancels();
            if boot.is_waiting(i) && !slot.state().is_active() {
                sup.set_waiting(&slot, boot.waits_for(i)).await;
            }
        }
    }

    let mut running = JoinSet::new();
    let mut tasks = std::collections::HashMap::new();
    let mut done: Vec<(usize, Outcome)> = Vec::new();
    loop {
        while let Some((i, failed_dep)) = boot.next_free() {
            let name = &steps[i].name;
            let Some(slot) = sup.get(name) else {
                done.push((i, Err("unloaded before it could start".into())));
                continue;
            };
            if let Some(why) = failed_dep {
                if !slot.state().is_active() {
                    let held_by = boot.failed_requirement(i);
                    sup.not_started(&slot, &why, held_by).await;
                }
                done.push((i, Err(why)));
            } else if slot.cancels() != cancels_before[i] {
                done.push((i, Err("start cancelled while it waited".into())));
            } else if !ready_before[i] && slot.is_ready() {
                done.push((i, Ok(())));
            } else {
                let task = running.spawn(sup.start(&slot));
                tasks.insert(task.id(), i);
            }
        }
        if done.is_empty() {
            match running.join_next_with_id().await {
                Some(Ok((id, outcome))) => done.extend(tasks.remove(&id).map(|i| (i, outcome))),
                Some(Err(e)) => {
                    tracing::error!("a unit start task failed: {e}");
                    let why = format!("its start failed inside asyncmdd: {e}");
                    done.extend(tasks.remove(&e.id()).map(|i| (i, Err(why))));
                }
                None => break,
            }
        }
        for (i, outcome) in std::mem::take(&mut done) {
            if !boot.is_settled(i) {
                report(&steps[i].name, &outcome);
            }
            for k in boot.settle(i, outcome.as_ref().map(|_| ()).map_err(String::as_str)) {
                if let Some(slot) = sup.get(&steps[k].name) {
                    if slot.is_waiting() {
                        sup.set_waiting(&slot, boot.waits_for(k)).await;
                    }
                }
            }
        }
    }
}

/// Stops every unit that runs (or waits to), in the reverse of the order they start in: a
/// unit stops only once every unit that requires it or starts after it has stopped, and core
/// units stop last. Returns the names in the order their stops completed.
pub async fn stop_all(sup: &Arc<Supervisor>) -> Vec<String> {
    use asyncmd_proto::UnitState;
    let busy = |st: UnitState| {
        st.is_active()
            || matches!(
                st,
                UnitState::Starting | UnitState::Waiting | UnitState::Restarting
            )
    };
    let active: Vec<String> = sup
        .all()
        .iter()
        .filter(|s| busy(s.state()))
        .map(|s| s.name.clone())
        .collect();
    // The start plan of what runs now gives the edges; stops go against them.
    let plan =
        asyncmd_core::plan::plan(&sup.nodes_unready(), &active, asyncmd_core::plan::Pull::Any);
    let steps = &plan.steps;
    let mut shutdown = Shutdown::new(&plan, |n| active.iter().any(|a| a == n));
    let mut stopping = JoinSet::new();
    let mut tasks = std::collections::HashMap::new();
    let mut order = Vec::new();
    let launch =
        |i: usize, stopping: &mut JoinSet<_>, tasks: &mut std::collections::HashMap<_, _>| {
            let stop = sup.get(&steps[i].name).map(|slot| sup.stop(&slot));
            let t = stopping.spawn(async move {
                match stop {
                    Some(stop) => stop.await,
                    None => Ok(()),
                }
            });
            tasks.insert(t.id(), i);
        };
    // Units outside the plan (a cycle, a unit unloaded meanwhile) have no order to keep.
    for name in active
        .iter()
        .filter(|a| !steps.iter().any(|s| &s.name == *a))
    {
        if let Some(slot) = sup.get(name) {
            let _ = sup.stop(&slot).await;
            order.push(name.clone());
        }
    }
    for i in shutdown.free() {
        launch(i, &mut stopping, &mut tasks);
    }
    while let Some(done) = stopping.join_next_with_id().await {
        let id = match &done {
            Ok((id, _)) => *id,
            Err(e) => e.id(),
        };
        let Some(i) = tasks.remove(&id) else { continue };
        if shutdown.was_active(i) {
            order.push(steps[i].name.clone());
        }
        for j in shutdown.stopped(i) {
            launch(j, &mut stopping, &mut tasks);
        }
    }
    order
}

/// `[ Booting ] Order: --> a.service --> b.service`, as asyncmd prints before it boots.
pub fn order_line<'a>(order: impl Iterator<Item = &'a str>, color: bool) -> String {
    let (b, z) = if color {
        (ansi::BOLD, ansi::RESET)
    } else {
        ("", "")
    };
    let mut s = format!("[ {b}Booting{z} ] Order:");
    for name in order {
        s.push_str(" --> ");
        s.push_str(name);
    }
    s
}

/// `[ OK ] Service: hello.service from units/hello.service loaded`, or the `[ ERROR ]` line
/// with the reason.
pub fn report_line(name: &str, source: &str, error: Option<&str>, color: bool) -> String {
    let (g, r, z) = if color {
        (ansi::BRIGHT_GREEN, ansi::RED, ansi::RESET)
    } else {
        ("", "", "")
    };
    match error {
        None => format!("[ {g}OK{z} ] Service: {name} from {source} loaded"),
        Some(e) => format!("[ {r}ERROR{z} ] Service: {name} from {source} not loaded: Error: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_line_matches_asyncmd() {
        assert_eq!(
            order_line(["a.service", "b.service"].into_iter(), false),
            "[ Booting ] Order: --> a.service --> b.service"
        );
    }

    #[test]
    fn report_lines_match_asyncmd() {
        assert_eq!(
            report_line("hello.service", "units/hello.service", None, false),
            "[ OK ] Service: hello.service from units/hello.service loaded"
        );
        assert_eq!(
            report_line("dofail.service", "units/dofail.service", Some("exit status 1"), false),
            "[ ERROR ] Service: dofail.service from units/dofail.service not loaded: Error: exit status 1"
        );
        assert!(report_line("a", "b", None, true).contains("\x1b[92mOK\x1b[0m"));
    }
}
