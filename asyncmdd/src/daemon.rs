//! The daemon: load units and `services.config`, bind the control socket, boot, serve, and stop
//! everything cleanly on SIGTERM or SIGINT.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use asyncmd_proto::Level;
use tokio::signal::unix::{signal, SignalKind};

use crate::boot::{self, PlanItem};
use crate::config::ServicesConfig;
use crate::journal::Journal;
use crate::server::{self, Server};
use crate::supervisor::Supervisor;

/// Name the daemon logs its own entries under.
pub const SELF_UNIT: &str = "asyncmdd";

/// What the daemon is told on its command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// Directory of unit files.
    pub units: PathBuf,
    /// `services.config` (default: in the units directory).
    pub config: Option<PathBuf>,
    /// Control socket path.
    pub socket: PathBuf,
    /// Journal byte budget.
    pub journal_size: usize,
    /// Host name in journal entries.
    pub hostname: String,
    /// Colour in the boot report.
    pub color: bool,
}

/// Runs the daemon until SIGTERM or SIGINT; returns once every unit is stopped.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let journal = Arc::new(Journal::new(opts.journal_size, opts.hostname.clone()));
    let me = journal.unit_id(SELF_UNIT);
    let sup = Supervisor::new(journal.clone());
    let report = |level: Level, line: String, plain: String| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        journal.log(me, level, &plain);
    };

    let config_path = opts
        .config
        .clone()
        .unwrap_or_else(|| opts.units.join("services.config"));
    let config = match ServicesConfig::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            let line = format!("[ ERROR ] Config: {e}; booting every unit with its defaults");
            report(Level::Error, line.clone(), line);
            ServicesConfig::default()
        }
    };

    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;

    let listener = server::bind(&opts.socket)
        .with_context(|| format!("cannot listen on {}", opts.socket.display()))?;
    let loaded = sup
        .load_dir(&opts.units, &config)
        .with_context(|| format!("cannot read the units directory {}", opts.units.display()))?;
    let names: Vec<String> = loaded.iter().map(|l| l.name.clone()).collect();
    for stray in config.unknown_entries(&names) {
        let line = format!(
            "[ WARNING ] Config: {} has an entry \"{stray}\" but there is no unit file {stray}.service",
            config.path.display()
        );
        report(Level::Warning, line.clone(), line);
    }
    let server = tokio::spawn(Server::new(sup.clone()).serve(listener));

    let items = sup
        .all()
        .iter()
        .map(|s| PlanItem {
            name: s.name.clone(),
            kind: s.unit.as_ref().map(|u| u.kind),
            priority: s.unit.as_ref().map_or(0, |u| u.priority),
        })
        .collect();
    let boot = async {
        for name in boot::plan(items) {
            let Some(slot) = sup.get(&name) else { continue };
            let error = if let Some(e) = &slot.load_error {
                Some(e.clone())
            } else if !slot.config.enabled {
                continue;
            } else {
                sup.start(&slot).await.err()
            };
            let level = if error.is_some() {
                Level::Error
            } else {
                Level::Info
            };
            report(
                level,
                boot::report_line(&name, &slot.source, error.as_deref(), opts.color),
                boot::report_line(&name, &slot.source, error.as_deref(), false),
            );
        }
        let running = sup.all().iter().filter(|s| s.state().is_active()).count();
        let line = format!(
            "asyncmdd: {} units loaded, {running} running; control socket {}",
            loaded.len(),
            opts.socket.display()
        );
        report(Level::Info, line.clone(), line);
    };
    tokio::pin!(boot);
    let mut booted = false;
    loop {
        tokio::select! {
            _ = &mut boot, if !booted => booted = true,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => {
                journal.log(me, Level::Warning, "SIGHUP: reloading is not supported yet; nothing changed");
            }
        }
    }
    journal.log(me, Level::Info, "Shutting down: stopping every unit");
    sup.stop_all().await;
    server.abort();
    let _ = server.await;
    Ok(())
}
