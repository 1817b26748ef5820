//! Reload: re-read the unit files and `services.config` and apply only the difference; and
//! loading or unloading single units at runtime.
//!
//! [`diff`] decides, per unit, what a reload does, from what is loaded and running now and
//! what is on disk; [`reload`] applies it: stops first, then the new definitions, then one start
//! plan, so new units start in dependency order. A unit nothing changed for keeps running
//! untouched, with the same PID.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use asyncmd_proto::{ActionOutcome, ActionResult, Change, ChangeAction};

use crate::boot;
use crate::driver::{self, Definition, Supervisor};
use crate::services_config::ServicesConfig;
use crate::unit_file;
use asyncmd_core::control::unit_name;
use asyncmd_core::plan;

/// A loaded unit as [`diff`] sees it.
#[derive(Debug, Clone)]
pub struct Current {
    /// Its definition now.
    pub def: Arc<Definition>,
    /// The definition its process was started with, while it runs.
    pub running: Option<Arc<Definition>>,
}

/// What a reload does to one unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The action.
    pub action: ChangeAction,
    /// Why, for a person.
    pub reason: String,
    /// The definition to take, if it takes one.
    pub def: Option<Definition>,
    /// What is wrong with the new definition, if anything.
    pub problem: Option<String>,
}

/// Per unit name, what a reload from `current` to `new` does; unchanged units are absent.
pub fn diff(
    current: &BTreeMap<String, Current>,
    new: &BTreeMap<String, Definition>,
) -> BTreeMap<String, Planned> {
    let names: BTreeSet<&String> = current.keys().chain(new.keys()).collect();
    let mut out = BTreeMap::new();
    for name in names {
        let planned = match (current.get(name), new.get(name)) {
            (None, Some(d)) => Some(if let Some(e) = &d.load_error {
                planned(ChangeAction::Update, "new unit file", Some(d), Some(e))
            } else if d.config.enabled {
                planned(ChangeAction::Start, "new unit", Some(d), None)
            } else {
                planned(
                    ChangeAction::Update,
                    "new unit, disabled in services.config",
                    Some(d),
                    None,
                )
            }),
            (Some(_), None) => Some(planned(
                ChangeAction::Remove,
                "unit file removed",
                None,
                None,
            )),
            (Some(c), Some(d)) => compare(c, d),
            (None, None) => None,
        };
        if let Some(mut p) = planned {
            // A masked unit is never started, by a reload either; one that runs goes on.
            let masked = p.def.as_ref().is_some_and(|d| d.config.masked);
            if masked && p.action == ChangeAction::Start {
                p.action = ChangeAction::Update;
                p.reason = format!("{}; masked, so not started", p.reason);
            }
            out.insert(name.clone(), p);
        }
    }
    out
}

fn planned(
    action: ChangeAction,
    reason: &str,
    def: Option<&Definition>,
    problem: Option<&String>,
) -> Planned {
    Planned {
        action,
        reason: reason.into(),
        def: def.cloned(),
        problem: problem.cloned(),
    }
}

fn compare(c: &Current, d: &Definition) -> Option<Planned> {
    let active = c.running.is_some();
    if let Some(e) = &d.load_error {
        if c.def.load_error.as_ref() == Some(e) {
            return None;
        }
        return Some(if active {
            // Never trade a working service for a broken file.
            planned(
                ChangeAction::Update,
                "unit file or config entry broken; it keeps running as it was",
                None,
                Some(e),
            )
        } else {
            planned(
                ChangeAction::Update,
                "unit file or config entry broken",
                Some(d),
                Some(e),
            )
        });
    }
    let base = c.running.as_ref().unwrap_or(&c.def);
    let changed = !base.runs_like(d);
    let reason = if base.unit != d.unit || base.load_error.is_some() {
        "unit file changed"
    } else {
        "services.config changed"
    };
    let was_enabled = c.def.config.enabled;
    Some(match (was_enabled, d.config.enabled, active, changed) {
        (true, false, true, _) => planned(
            ChangeAction::Stop,
            "disabled in services.config",
            Some(d),
            None,
        ),
        (true, false, false, _) => planned(
            ChangeAction::Update,
            "disabled in services.config",
            Some(d),
            None,
        ),
        (false, true, false, _) => planned(
            ChangeAction::Start,
            "enabled in services.config",
            Some(d),
            None,
        ),
        (_, _, true, true) => planned(ChangeAction::Restart, reason, Some(d), None),
        (_, true, false, true) => planned(ChangeAction::Start, reason, Some(d), None),
        (_, false, false, true) => planned(ChangeAction::Update, reason, Some(d), None),
        _ if c.def.unit != d.unit => planned(
            ChangeAction::Update,
            "unit file changed in nothing its process uses; no restart needed",
            Some(d),
            None,
        ),
        // Nothing a person would call a change (enabled while it already runs): take it quietly.
        _ if *c.def != *d => planned(ChangeAction::Update, "", Some(d), None),
        _ => return None,
    })
}

/// What a reload did (or, dry, would do).
#[derive(Debug, Clone, PartialEq)]
pub struct Reloaded {
    /// Nothing was changed.
    pub dry_run: bool,
    /// One change per affected unit, in name order.
    pub changes: Vec<Change>,
    /// Units left as they were.
    pub unchanged: u32,
}

/// Re-reads unit files and `services.config` and applies the difference (with `dry_run`, only
/// says what it would do). A `services.config` that cannot be parsed changes nothing.
pub async fn reload(sup: &Arc<Supervisor>, dry_run: bool) -> Result<Reloaded, String> {
    let one_at_a_time = sup.changes.lock().await;
    let paths = sup.paths().map_err(|e| e.to_string())?.clone();
    let config =
        ServicesConfig::load(&paths.config).map_err(|e| format!("{e}; nothing was changed"))?;
    if !dry_run {
        let _ = config.keep_good_copy();
    }
    let new: BTreeMap<String, Definition> = driver::read_dir(&paths.units, &config)
        .map_err(|e| {
            format!(
                "cannot read the units directory {}: {e}; nothing was changed",
                paths.units.display()
            )
        })?
        .into_iter()
        .collect();
    let current: BTreeMap<String, Current> = sup
        .all()
        .iter()
        .map(|s| {
            let running = if s.state().is_active() {
                Some(s.ran_with().unwrap_or_else(|| s.def()))
            } else {
                None
            };
            (
                s.name.clone(),
                Current {
                    def: s.def(),
                    running,
                },
            )
        })
        .collect();
    let plan = diff(&current, &new);
    let unchanged = current
        .keys()
        .filter(|n| plan.get(*n).is_none_or(|p| p.reason.is_empty()))
        .count() as u32;
    let visible = |p: &Planned| !p.reason.is_empty();
    if dry_run {
        let changes = plan
            .iter()
            .filter(|(_, p)| visible(p))
            .map(|(name, p)| change(name, p, p.problem.clone()))
            .collect();
        return Ok(Reloaded {
            dry_run,
            changes,
            unchanged,
        });
    }

    let mut failures: HashMap<String, String> = HashMap::new();
    // Every stop is asked for before any answer is awaited: they go on together.
    let mut stops = Vec::new();
    for (name, p) in &plan {
        let stop = matches!(
            p.action,
            ChangeAction::Stop | ChangeAction::Remove | ChangeAction::Restart
        );
        if let (true, Some(slot)) = (stop, sup.get(name)) {
            let r: Pin<Box<dyn Future<Output = Result<(), String>> + Send>> =
                if p.action == ChangeAction::Remove {
                    Box::pin(sup.unload(&slot))
                } else {
                    Box::pin(sup.stop(&slot))
                };
            stops.push((name.clone(), r));
        }
    }
    for (name, r) in stops {
        if let Err(e) = r.await {
            failures.insert(name, e);
        }
    }
    let mut wanted = Vec::new();
    for (name, p) in &plan {
        if failures.contains_key(name) {
            continue;
        }
        if p.action == ChangeAction::Remove {
            continue;
        }
        if let Some(def) = &p.def {
            sup.define(name, def.clone()).await;
        }
        // A scheduled unit starts when its schedule says, not now.
        if matches!(p.action, ChangeAction::Start | ChangeAction::Restart) && !sup.scheduled(name) {
            wanted.push(name.clone());
        }
    }
    let start_plan = plan::plan(&sup.nodes(), &wanted, plan::Pull::Enabled);
    // Starting may wait on slow oneshots: let other changes in meanwhile.
    drop(one_at_a_time);
    boot::execute(sup, &start_plan, |name, outcome| {
        if let Err(e) = outcome {
            failures.insert(name.to_string(), e.clone());
        }
    })
    .await;
    let changes = plan
        .iter()
        .filter(|(_, p)| visible(p))
        .map(|(name, p)| {
            let failure = failures.remove(name).or_else(|| p.problem.clone());
            change(name, p, failure)
        })
        .collect();
    Ok(Reloaded {
        dry_run,
        changes,
        unchanged,
    })
}

fn change(name: &str, p: &Planned, failure: Option<String>) -> Change {
    Change {
        unit: name.to_string(),
        action: p.action,
        reason: p.reason.clone(),
        outcome: if failure.is_some() {
            ActionOutcome::Failed
        } else {
            ActionOutcome::Ok
        },
        message: failure.unwrap_or_default(),
    }
}

/// One line per change and a summary, as `asyncmctl reload` and the SIGHUP report print them.
pub fn describe(r: &Reloaded) -> Vec<String> {
    let mut lines: Vec<String> = r.changes.iter().map(|c| c.line(r.dry_run)).collect();
    lines.push(Change::summary(r.dry_run, r.changes.len(), r.unchanged));
    lines
}

/// Loads the unit files `names` from the units directory and starts them; a unit that is
/// already loaded and running is refused.
pub async fn load(sup: &Arc<Supervisor>, names: &[String]) -> Vec<ActionResult> {
    let one_at_a_time = sup.changes.lock().await;
    let paths = match sup.paths() {
        Ok(p) => p.clone(),
        Err(e) => {
            return names
                .iter()
                .map(|n| ActionResult {
                    unit: unit_name(n),
                    outcome: ActionOutcome::Failed,
                    message: e.to_string(),
                })
                .collect()
        }
    };
    let mut results = Vec::new();
    let mut wanted = Vec::new();
    let fail = |unit: String, outcome, message: String| ActionResult {
        unit,
        outcome,
        message,
    };
    let config = match ServicesConfig::load(&paths.config) {
        Ok(c) => c,
        Err(e) => {
            return names
                .iter()
                .map(|n| fail(unit_name(n), ActionOutcome::Failed, e.to_string()))
                .collect()
        }
    };
    for arg in names {
        let name = unit_name(arg);
        if !unit_file::valid_name(&name) {
            results.push(fail(
                name,
                ActionOutcome::Failed,
                "not a valid unit name".into(),
            ));
            continue;
        }
        let path = paths.units.join(&name);
        if !path.is_file() {
            let msg = format!("no unit file {}", path.display());
            results.push(fail(name, ActionOutcome::NoSuchUnit, msg));
            continue;
        }
        if let Some(slot) = sup.get(&name) {
            if slot.state().is_active() || slot.is_waiting() {
                let msg = format!(
                    "{name} is already loaded and {}: refusing a second instance \
                     (use `asyncmctl restart {name}`, or `asyncmctl reload` to apply a changed file)",
                    slot.state().as_str()
                );
                results.push(fail(name, ActionOutcome::Failed, msg));
                continue;
            }
        }
        let (_, def) = Definition::read(&path, &config);
        if let Some(e) = &def.load_error {
            let msg = e.clone();
            sup.define(&name, def).await;
            results.push(fail(name, ActionOutcome::Failed, msg));
            continue;
        }
        sup.define(&name, def).await;
        if sup.scheduled(&name) {
            results.push(fail(
                name,
                ActionOutcome::Ok,
                "loaded; it runs on its schedule".into(),
            ));
            continue;
        }
        wanted.push(name);
    }
    let plan = plan::plan(&sup.nodes(), &wanted, plan::Pull::Any);
    drop(one_at_a_time);
    let mut outcomes: HashMap<String, boot::Outcome> = HashMap::new();
    boot::execute(sup, &plan, |name, outcome| {
        outcomes.insert(name.to_string(), outcome.clone());
    })
    .await;
    for name in wanted {
        let r = match outcomes.remove(&name) {
            Some(Err(e)) => fail(name, ActionOutcome::Failed, e),
            _ => fail(name, ActionOutcome::Ok, "loaded and started".into()),
        };
        results.push(r);
    }
    results
}

/// Stops the units matching `patterns` and forgets them.
pub async fn unload(
    sup: &Arc<Supervisor>,
    patterns: &[String],
) -> Result<Vec<ActionResult>, String> {
    let _one_at_a_time = sup.changes.lock().await;
    let (slots, missing) = sup.select(patterns)?;
    let mut results: Vec<ActionResult> = missing
        .into_iter()
        .map(|m| ActionResult {
            message: format!("Unit {m} not found."),
            unit: m,
            outcome: ActionOutcome::NoSuchUnit,
        })
        .collect();
    for slot in slots {
        let r = match sup.unload(&slot).await {
            Ok(()) => ActionResult {
                unit: slot.name.clone(),
                outcome: ActionOutcome::Ok,
                message: "stopped and unloaded".into(),
            },
            Err(e) => ActionResult {
                unit: slot.name.clone(),
                outcome: ActionOutcome::Failed,
                message: format!("not unloaded: {e}"),
            },
        };
        results.push(r);
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services_config::ServiceConfig;
    use serde_json::json;

    fn def(exec: &str, enabled: bool) -> Definition {
        let text = format!("[service]\nexec = [\"{exec}\"]\n");
        let unit = unit_file::parse("x.service", std::path::Path::new("units/x.service"), &text);
        let config = ServiceConfig {
            enabled,
            ..Default::default()
        };
        Definition::new("units/x.service".into(), Ok(unit.unwrap()), Ok(config))
    }

    fn cur(d: Definition, running: bool) -> Current {
        let d = Arc::new(d);
        Current {
            running: running.then(|| d.clone()),
            def: d,
        }
    }

    fn actions(p: &BTreeMap<String, Planned>) -> Vec<(&str, ChangeAction)> {
        p.iter().map(|(n, p)| (n.as_str(), p.action)).collect()
    }

    #[test]
    fn only_what_changed_changes() {
        let mut kw = def("a", true);
        kw.config.kwargs.insert("sleep".into(), json!(3));
        let current = BTreeMap::from([
            ("same".to_string(), cur(def("a", true), true)),
            ("edited".to_string(), cur(def("a", true), true)),
            ("kwargs".to_string(), cur(def("a", true), true)),
            ("gone".to_string(), cur(def("a", true), true)),
            ("off".to_string(), cur(def("a", true), true)),
            ("on".to_string(), cur(def("a", false), false)),
            ("stopped".to_string(), cur(def("a", true), false)),
            ("fixed".to_string(), cur(def("a", true), false)),
        ]);
        let new = BTreeMap::from([
            ("same".to_string(), def("a", true)),
            ("edited".to_string(), def("b", true)),
            ("kwargs".to_string(), kw),
            ("off".to_string(), def("a", false)),
            ("on".to_string(), def("a", true)),
            ("stopped".to_string(), def("a", true)),
            ("fixed".to_string(), def("b", true)),
            ("new".to_string(), def("a", true)),
        ]);
        let p = diff(&current, &new);
        assert_eq!(
            actions(&p),
            vec![
                ("edited", ChangeAction::Restart),
                ("fixed", ChangeAction::Start),
                ("gone", ChangeAction::Remove),
                ("kwargs", ChangeAction::Restart),
                ("new", ChangeAction::Start),
                ("off", ChangeAction::Stop),
                ("on", ChangeAction::Start),
            ]
        );
        assert_eq!(p["edited"].reason, "unit file changed");
        assert_eq!(p["kwargs"].reason, "services.config changed");
    }

    #[test]
    fn a_description_change_restarts_nothing() {
        let mut described = def("a", true);
        if let Some(u) = described.unit.as_mut() {
            u.description = "new words".into();
        }
        let current = BTreeMap::from([("x".to_string(), cur(def("a", true), true))]);
        let p = diff(&current, &BTreeMap::from([("x".to_string(), described)]));
        assert_eq!(p["x"].action, ChangeAction::Update);
        assert!(p["x"].reason.contains("no restart needed"));
    }

    #[test]
    fn a_broken_file_never_replaces_a_running_unit() {
        let broken = Definition::new(
            "units/x.service".into(),
            Err("units/x.service:2:1: bad".into()),
            Ok(ServiceConfig::default_enabled()),
        );
        let current = BTreeMap::from([("x".to_string(), cur(def("a", true), true))]);
        let p = diff(&current, &BTreeMap::from([("x".to_string(), broken)]));
        assert_eq!(p["x"].action, ChangeAction::Update);
        assert!(p["x"].def.is_none(), "the running definition is kept");
        assert!(p["x"].problem.as_deref().unwrap().contains(":2:1:"));
    }

    #[test]
    fn a_config_edit_waiting_for_its_restart_is_applied_by_reload() {
        let mut edited = def("a", true);
        edited.config.args = vec![json!(5)];
        let current = BTreeMap::from([(
            "x".to_string(),
            Current {
                def: Arc::new(edited.clone()),
                running: Some(Arc::new(def("a", true))),
            },
        )]);
        let p = diff(&current, &BTreeMap::from([("x".to_string(), edited)]));
        assert_eq!(p["x"].action, ChangeAction::Restart);
    }
}
