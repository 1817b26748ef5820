//! The daemon as the core's control [`Host`]: what a request asks of units and tasks, carried
//! out on the supervisor, its task registry, its units directory and `services.config`. The
//! rules of request handling are the core's ([`asyncmd_core::control`]); this is only the
//! doing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use asyncmd_core::control::{self, Host, Outcomes, Refusal, Reloaded, Unsupported};
use asyncmd_core::plan;
use asyncmd_proto::unit::{UnitFile, UnitSummary};
use asyncmd_proto::{ActionResult, KillWhom, UnitStatus};
use serde_json::{Map, Value};

use crate::answer::Answer;
use crate::boards::Command;
use crate::boot;
use crate::control_socket::{self, Server};
use crate::driver::Supervisor;
use crate::journal::Journal;
use crate::reload;
use crate::services_config::{self, ServiceConfig, ServicesConfig};

/// A runtime of in-process tasks for a tokio application, with a journal of `journal_bytes` for
/// entries logged on `host`: add tasks to `.tasks()`, then [`serve`] it. It has no unit files;
/// a reload or load asked of it is answered as unsupported.
pub fn standalone(host: &str, journal_bytes: usize) -> Arc<Supervisor> {
    Supervisor::tasks_only(Arc::new(Journal::new(journal_bytes, host)))
}

/// Serves `sup` (its units, its tasks and its journal) on the local socket `path`, so
/// `asyncmctl` and `asyncmjournal` work against it; runs until the task is dropped or aborted.
/// One call is all a tokio application needs to make its tasks controllable.
pub async fn serve(sup: Arc<Supervisor>, path: &Path) -> std::io::Result<()> {
    let listener = control_socket::bind(path)?;
    let journal = sup.journal().clone();
    Server::new(Daemon(sup).answer(), journal)
        .serve(listener)
        .await;
    Ok(())
}

/// A supervisor (with its tasks) as the host requests are answered on.
#[derive(Clone)]
pub struct Daemon(pub Arc<Supervisor>);

impl Daemon {
    /// `tasks` parted into those of boards and the daemon's own.
    fn split(&self, tasks: &[String]) -> (Vec<String>, Vec<String>) {
        let boards = self.0.boards();
        tasks.iter().cloned().partition(|t| boards.has(t))
    }

    /// Its request handling, for a transport: the core's [`control::answer`] on it.
    pub fn answer(self) -> Answer {
        Arc::new(move |req| {
            let me = self.clone();
            Box::pin(async move { control::answer(&me, req).await })
        })
    }

    /// Its request handling for what `sup` itself holds (its builtins): the same answers, through
    /// a weak reference, so the supervisor holding it is not kept alive by it.
    pub fn answer_for(sup: &Arc<Supervisor>) -> Answer {
        let weak = Arc::downgrade(sup);
        Arc::new(move |req| {
            let sup = weak.upgrade();
            Box::pin(async move {
                match sup {
                    Some(s) => control::answer(&Daemon(s), req).await,
                    None => control::error(
                        asyncmd_proto::ErrorCode::Internal,
                        "the runtime is gone".into(),
                    ),
                }
            })
        })
    }

    /// Starts `names` with what they require, in dependency order; the outcome per unit.
    async fn start_plan(&self, names: &[String]) -> HashMap<String, boot::Outcome> {
        let plan = plan::plan(&self.0.nodes(), names, plan::Pull::Any);
        let mut outcomes = HashMap::new();
        boot::execute(&self.0, &plan, |name, outcome| {
            outcomes.insert(name.to_string(), outcome.clone());
        })
        .await;
        outcomes
    }

    /// Edits the entry of `name` in `services.config`, then takes the entry as the file now
    /// says (with `${VAR}` substituted) into the unit's definition.
    async fn edit_config(
        &self,
        name: &str,
        edit: Vec<(&'static str, Value)>,
    ) -> Result<(), String> {
        let path = self.0.paths().map_err(|e| e.to_string())?.config.clone();
        let unit = name.to_string();
        let written = tokio::task::spawn_blocking(move || {
            services_config::edit(&path, &unit, &edit)?;
            let now = ServicesConfig::load(&path)?;
            // Best effort: a units directory we cannot write to keeps the older copy.
            let _ = now.keep_good_copy();
            Ok::<_, services_config::ConfigError>(now)
        })
        .await
        .map_err(|e| format!("editing services.config failed: {e}"))?
        .map_err(|e| e.to_string())?;
        if let Some(slot) = self.0.get(name) {
            self.0
                .set_def(&slot, slot.def().with_config(written.get(name)))
                .await;
        }
        Ok(())
    }
}

impl Host for Daemon {
    fn units(&self) -> Vec<String> {
        self.0.all().iter().map(|s| s.name.clone()).collect()
    }

    fn tasks(&self) -> Vec<String> {
        let mut names = self
            .0
            .tasks()
            .names(&[])
            .map(|(n, _)| n)
            .unwrap_or_default();
        names.extend(self.0.boards().names());
        names
    }

    async fn status(&self, units: &[String], tasks: &[String], lines: usize) -> Vec<UnitStatus> {
        let host = self.0.journal().host();
        let mut out: Vec<UnitStatus> = Vec::with_capacity(units.len());
        for (i, slot) in units.iter().filter_map(|n| self.0.get(n)).enumerate() {
            // Each costs a few reads of /proc: a status of thousands lets others in between.
            if i > 0 && i % 16 == 0 {
                tokio::task::yield_now().await;
            }
            out.push(slot.status(host));
        }
        let (remote, local) = self.split(tasks);
        if !local.is_empty() {
            out.extend(self.0.tasks().status(&local, host));
        }
        out.extend(self.0.boards().status(&remote));
        self.0.attach_journal(&mut out, lines).await;
        out
    }

    fn list(&self, units: &[String], tasks: &[String]) -> Vec<UnitSummary> {
        let mut out: Vec<UnitSummary> = units
            .iter()
            .filter_map(|n| self.0.get(n))
            .map(|s| s.summary())
            .collect();
        let (remote, local) = self.split(tasks);
        if !local.is_empty() {
            out.extend(self.0.tasks().summaries(&local));
        }
        out.extend(self.0.boards().summaries(&remote));
        out
    }

    fn debug(&self) -> bool {
        self.0.debug()
    }

    fn set_debug(&self, on: bool) {
        self.0.set_debug(on);
    }

    fn is_active(&self, unit: &str) -> bool {
        self.0.get(unit).is_some_and(|s| s.state().is_active())
    }

    async fn start(&self, units: &[String]) -> Outcomes {
        for s in units.iter().filter_map(|n| self.0.get(n)) {
            self.0.reset_restarts(&s).await;
        }
        self.start_plan(units).await.into_iter().collect()
    }

    async fn stop(&self, units: &[String]) -> Outcomes {
        // Every stop is asked for before any answer is awaited: they go on together.
        let stops: Vec<_> = units
            .iter()
            .filter_map(|n| self.0.get(n))
            .map(|slot| (slot.name.clone(), self.0.stop(&slot)))
            .collect();
        let mut out = Outcomes::new();
        for (name, stop) in stops {
            out.insert(name, stop.await);
        }
        out
    }

    fn start_tasks(&self, tasks: &[String]) {
        let (remote, local) = self.split(tasks);
        // An empty list means every task to the registry: only names go to it.
        if !local.is_empty() {
            self.0.tasks().start(&local);
        }
        self.0.boards().command(&remote, Command::Start);
    }

    fn stop_tasks(&self, tasks: &[String]) {
        let (remote, local) = self.split(tasks);
        if !local.is_empty() {
            self.0.tasks().stop(&local);
        }
        self.0.boards().command(&remote, Command::Stop);
    }

    async fn restart_tasks(&self, tasks: &[String]) {
        let (remote, local) = self.split(tasks);
        self.0.boards().command(&remote, Command::Restart);
        if !local.is_empty() {
            self.0.tasks().restart(&local).await;
        }
    }

    async fn reset_failed(&self, unit: &str) -> bool {
        match self.0.get(unit) {
            Some(slot) => self.0.reset_failed(&slot).await,
            None => false,
        }
    }

    fn set_task_kwargs(&self, task: &str, kwargs: Map<String, Value>) -> bool {
        self.0.tasks().set_kwargs(task, kwargs)
    }

    fn check_kwargs(&self, kwargs: &Value) -> Result<(), String> {
        ServiceConfig::check_kwargs(kwargs)
    }

    async fn set_enabled(&self, units: &[String], enabled: bool) -> Outcomes {
        let _one_at_a_time = self.0.changes.lock().await;
        let mut out = Outcomes::new();
        for name in units {
            let masked = self.0.get(name).is_some_and(|s| s.def().config.masked);
            let r = if masked && enabled {
                let short = asyncmd_proto::unit::short_name(name);
                Err(format!("it is masked: asyncmctl unmask {short} first"))
            } else {
                let edit = vec![("enabled", Value::Bool(enabled))];
                self.edit_config(name, edit).await
            };
            out.insert(name.clone(), r);
        }
        out
    }

    async fn set_masked(&self, units: &[String], masked: bool) -> Outcomes {
        let _one_at_a_time = self.0.changes.lock().await;
        let mut out = Outcomes::new();
        for name in units {
            // Unmasked, the key goes: the entry reads as it did before.
            let value = if masked {
                Value::Bool(true)
            } else {
                Value::Null
            };
            out.insert(
                name.clone(),
                self.edit_config(name, vec![("masked", value)]).await,
            );
        }
        out
    }

    async fn kill(&self, units: &[String], signal: &str, whom: KillWhom) -> Outcomes {
        let Some(sig) = crate::unit_file::parse_signal(signal) else {
            let why = format!("'{signal}' is not a signal (write e.g. SIGTERM, TERM or 15)");
            return units
                .iter()
                .map(|u| (u.clone(), Err(why.clone())))
                .collect();
        };
        let mut out = Outcomes::new();
        for slot in units.iter().filter_map(|n| self.0.get(n)) {
            let r = self.0.kill(&slot, sig, whom == KillWhom::All).await;
            out.insert(slot.name.clone(), r);
        }
        out
    }

    async fn reload_units(&self, units: &[String]) -> Outcomes {
        let mut out = Outcomes::new();
        for slot in units.iter().filter_map(|n| self.0.get(n)) {
            out.insert(slot.name.clone(), self.0.reload_unit(&slot).await);
        }
        out
    }

    async fn cat(&self, units: &[String]) -> Result<Vec<UnitFile>, Unsupported> {
        let paths = self.0.paths()?;
        let written = services_config::written(&paths.config);
        Ok(units
            .iter()
            .filter_map(|n| self.0.get(n))
            .map(|slot| {
                let path = slot.def().source.clone();
                let (text, error) = match std::fs::read_to_string(&path) {
                    Ok(t) => (t, None),
                    Err(e) => (String::new(), Some(format!("cannot read {path}: {e}"))),
                };
                let config = match &written {
                    Ok(all) => services_config::entry_of(all, &slot.name).cloned(),
                    Err(_) => None,
                };
                UnitFile {
                    unit: slot.name.clone(),
                    path,
                    text,
                    error,
                    config,
                }
            })
            .collect())
    }

    async fn configure(&self, unit: &str, edit: Vec<(&'static str, Value)>) -> Result<(), String> {
        let _one_at_a_time = self.0.changes.lock().await;
        if self.0.get(unit).is_none() {
            return Err(format!("{unit} was unloaded meanwhile"));
        }
        self.edit_config(unit, edit).await
    }

    async fn reload(&self, dry_run: bool) -> Result<Reloaded, Refusal> {
        self.0.paths()?;
        let r = reload::reload(&self.0, dry_run)
            .await
            .map_err(Refusal::Failed)?;
        Ok(Reloaded {
            dry_run: r.dry_run,
            changes: r.changes,
            unchanged: r.unchanged,
        })
    }

    async fn load(&self, names: &[String]) -> Result<Vec<ActionResult>, Unsupported> {
        self.0.paths()?;
        Ok(reload::load(&self.0, names).await)
    }

    async fn unload(&self, patterns: &[String]) -> Result<Vec<ActionResult>, Refusal> {
        let mut results = reload::unload(&self.0, patterns)
            .await
            .map_err(Refusal::Failed)?;
        for r in &mut results {
            if r.outcome == asyncmd_proto::ActionOutcome::NoSuchUnit {
                r.message = control::missing_message(self, &r.unit);
            }
        }
        Ok(results)
    }

    fn dependents(&self, units: &[String]) -> Vec<(String, String)> {
        let all = self.0.all();
        let mut out: Vec<(String, String)> = Vec::new();
        let mut queue: Vec<String> = units.to_vec();
        while let Some(r) = queue.pop() {
            for s in &all {
                let requires = s
                    .def()
                    .unit
                    .as_ref()
                    .is_some_and(|u| u.requires.contains(&r));
                let runs = matches!(
                    s.state(),
                    asyncmd_proto::UnitState::Running | asyncmd_proto::UnitState::Starting
                );
                let seen = units.contains(&s.name) || out.iter().any(|(d, _)| d == &s.name);
                if requires && runs && !seen {
                    out.push((s.name.clone(), r.clone()));
                    queue.push(s.name.clone());
                }
            }
        }
        out
    }

    fn unloaded(&self) -> Vec<String> {
        let Ok(paths) = self.0.paths() else {
            return Vec::new();
        };
        let files = crate::unit_file::files_in(&paths.units).unwrap_or_default();
        files
            .iter()
            .filter_map(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
            .filter(|n| self.0.get(n).is_none())
            .collect()
    }
}
