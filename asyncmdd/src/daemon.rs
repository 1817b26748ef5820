//! The daemon: load units and `services.config`, bind the control socket, boot, serve, and stop
//! everything cleanly on SIGTERM or SIGINT.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use asyncmd_proto::Level;
use tokio::signal::unix::{signal, SignalKind};

use crate::boot;
use crate::cgroup::Cgroups;
use crate::control_socket::{self, Server};
use crate::driver::{self, Paths, Supervisor};
use crate::host::Daemon;
use crate::journal::Journal;
use crate::process;
use crate::reload;
use crate::sd_notify;
use crate::services_config::{self, ServicesConfig};
use asyncmd_core::plan;

pub use crate::journal::SELF_UNIT;

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
    /// How many units may be starting at once.
    pub spawn_limit: usize,
    /// Which cgroup units' processes go into.
    pub cgroup: crate::cgroup::Choice,
}

/// Prints the boot plan of `opts.units` (the order, then each unit that would not start and
/// why) without starting anything; returns whether every wanted unit would start.
pub fn print_plan(opts: &Options) -> anyhow::Result<bool> {
    let t0 = std::time::Instant::now();
    let config_path = opts
        .config
        .clone()
        .unwrap_or_else(|| opts.units.join("services.config"));
    let config = ServicesConfig::load(&config_path).unwrap_or_else(|e| {
        let (c, why) = ServicesConfig::fallback(&config_path, &e);
        println!("[ ERROR ] Config: {why}");
        c
    });
    let defs = driver::read_dir(&opts.units, &config)
        .with_context(|| format!("cannot read the units directory {}", opts.units.display()))?;
    let nodes: Vec<plan::Node> = defs.iter().map(|(n, d)| d.node(n, false)).collect();
    let wanted: Vec<String> = nodes
        .iter()
        .filter(|n| n.enabled)
        .map(|n| n.name.clone())
        .collect();
    let t1 = std::time::Instant::now();
    let plan = plan::plan(&nodes, &wanted, plan::Pull::Enabled);
    let t2 = std::time::Instant::now();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", boot::order_line(plan.order(), opts.color))?;
    let sources: std::collections::HashMap<&str, &str> = defs
        .iter()
        .map(|(n, d)| (n.as_str(), d.source.as_str()))
        .collect();
    for (name, problem) in &plan.problems {
        let source = sources.get(name.as_str()).copied().unwrap_or_default();
        let line = boot::report_line(name, source, Some(&problem.to_string()), opts.color);
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    eprintln!(
        "asyncmdd: {} units read in {:.1} ms; plan of {} to start computed in {:.2} ms",
        nodes.len(),
        (t1 - t0).as_secs_f64() * 1e3,
        plan.steps.len(),
        (t2 - t1).as_secs_f64() * 1e3
    );
    Ok(plan.problems.is_empty())
}

/// Runs the daemon until SIGTERM or SIGINT; returns once every unit is stopped.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let journal = Arc::new(Journal::new(opts.journal_size, opts.hostname.clone()));
    let me = journal.unit_id(SELF_UNIT);
    let config_path = opts
        .config
        .clone()
        .unwrap_or_else(|| opts.units.join("services.config"));
    let sup = Supervisor::new(
        journal.clone(),
        Paths {
            units: opts.units.clone(),
            config: config_path.clone(),
        },
        opts.spawn_limit,
    );
    let report = |level: Level, line: String, plain: String| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
        journal.log(me, level, &plain);
    };

    services_config::remove_stale_temporaries(&config_path);
    let config = match ServicesConfig::load(&config_path) {
        Ok(c) => {
            if let Err(e) = c.keep_good_copy() {
                let line = format!(
                    "[ WARNING ] Config: cannot keep a good copy of {} ({e}): a later broken \
                     file will hold every unit back",
                    config_path.display()
                );
                report(Level::Warning, line.clone(), line);
            }
            c
        }
        Err(e) => {
            // Never loosen what the file said: its last good copy, or nothing starts.
            let (c, why) = ServicesConfig::fallback(&config_path, &e);
            let line = format!("[ ERROR ] Config: {why}");
            report(Level::Error, line.clone(), line);
            c
        }
    };

    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;

    let listener = control_socket::bind(&opts.socket)
        .with_context(|| format!("cannot listen on {}", opts.socket.display()))?;
    let defs = driver::read_dir(&opts.units, &config)
        .with_context(|| format!("cannot read the units directory {}", opts.units.display()))?;
    let names: Vec<String> = defs.iter().map(|(n, _)| n.clone()).collect();
    for stray in config.unknown_entries(&names) {
        let line = format!(
            "[ WARNING ] Config: {} has an entry \"{stray}\" but there is no unit file {stray}.service",
            config.path.display()
        );
        report(Level::Warning, line.clone(), line);
    }
    let cgroups = Cgroups::open(&opts.cgroup).map_err(anyhow::Error::msg)?;
    if let Some(cg) = &cgroups {
        journal.log(
            me,
            Level::Info,
            &format!(
                "Each unit's processes go into a cgroup of its own under {}",
                cg.base().display()
            ),
        );
        // What an earlier daemon left in the units' cgroups goes first: found by its cgroup,
        // whatever it did to its process group and environment.
        let left = cg.populated();
        if !left.is_empty() {
            for (unit, _) in &left {
                cg.kill(unit);
            }
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while std::time::Instant::now() < deadline && !cg.populated().is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            let n: usize = left.iter().map(|(_, p)| p.len()).sum();
            let units: Vec<&str> = left.iter().map(|(u, _)| u.as_str()).collect();
            let line = format!(
                "[ WARNING ] Killed {n} process(es) an earlier asyncmdd left in the cgroups of: {}",
                units.join(", ")
            );
            report(Level::Warning, line.clone(), line);
        }
    }
    if let Some(cg) = cgroups {
        sup.set_cgroups(cg);
    }
    for (name, def) in defs {
        sup.add(name, def).await;
    }
    // What an earlier daemon on these units left running (it was killed, say) goes before
    // anything starts, so no service runs twice.
    process::set_owner(&opts.units);
    let left = process::left_by_earlier_daemon();
    if !left.is_empty() {
        let killed = process::stop_left(&left, std::time::Duration::from_secs(5)).await;
        let mut units: Vec<&str> = left
            .iter()
            .map(|(_, tag)| tag.split(':').next().unwrap_or(""))
            .collect();
        units.sort_unstable();
        units.dedup();
        let line =
            format!(
            "[ WARNING ] Stopped {} process(es) an earlier asyncmdd on these units left running \
             ({}{}): {}",
            left.len(),
            if killed > 0 { "SIGKILL for " } else { "all went on SIGTERM" },
            if killed > 0 { killed.to_string() } else { String::new() },
            units.join(", ")
        );
        report(Level::Warning, line.clone(), line);
    }
    sup.set_answer(Daemon::answer_for(&sup));
    let server = tokio::spawn(
        Server::new(Daemon(sup.clone()).answer(), sup.journal().clone()).serve(listener),
    );

    if let Err(e) = process::raise_fd_limit() {
        journal.log(
            me,
            Level::Warning,
            &format!("cannot raise the limit of open files: {e}"),
        );
    }
    // Orphans of services become ours (or are ours anyway, as PID 1): reap them.
    if let Err(e) = process::become_subreaper() {
        journal.log(
            me,
            Level::Warning,
            &format!("cannot become a child subreaper: {e}; orphans of services go to init"),
        );
    }
    let mut child_ended = signal(SignalKind::child()).context("cannot watch SIGCHLD")?;
    let sweeper = sup.clone();
    let reaper = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = child_ended.recv() => {}
                _ = tick.tick() => sweeper.sweep_strays(),
            }
            process::reap_orphans();
        }
    });

    let notify_path = opts.socket.with_extension("notify");
    let notify_socket = sd_notify::NotifySocket::bind(&notify_path)
        .with_context(|| format!("cannot bind the notify socket {}", notify_path.display()))?;
    sup.set_notify_socket(notify_path);
    let notify_sup = sup.clone();
    let notifications = tokio::spawn(async move {
        loop {
            match notify_socket.recv().await {
                Ok(m) => notify_sup.on_notify(m),
                // One bad datagram must not deafen the daemon to every later one.
                Err(e) => {
                    tracing::warn!("sd_notify socket: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    });

    let wanted: Vec<String> = sup
        .all()
        .iter()
        .filter(|s| s.def().config.enabled && !sup.scheduled(&s.name))
        .map(|s| s.name.clone())
        .collect();
    let plan = plan::plan(&sup.nodes(), &wanted, plan::Pull::Enabled);
    report(
        Level::Info,
        boot::order_line(plan.order(), opts.color),
        boot::order_line(plan.order(), false),
    );
    let boot = async {
        boot::execute(&sup, &plan, |name, outcome| {
            let source = sup
                .get(name)
                .map(|s| s.def().source.clone())
                .unwrap_or_default();
            let error = outcome.as_ref().err().map(String::as_str);
            let level = if error.is_some() {
                Level::Error
            } else {
                Level::Info
            };
            report(
                level,
                boot::report_line(name, &source, error, opts.color),
                boot::report_line(name, &source, error, false),
            );
        })
        .await;
        let running = sup.all().iter().filter(|s| s.state().is_active()).count();
        let line = format!(
            "asyncmdd: {} units loaded, {running} running; control socket {}",
            names.len(),
            opts.socket.display()
        );
        report(Level::Info, line.clone(), line);
        let summary = format!("{running} of {} units running", names.len());
        if let Err(e) = sd_notify::to_manager(&format!("READY=1\nSTATUS={summary}")) {
            journal.log(
                me,
                Level::Warning,
                &format!("cannot tell the service manager we are ready: {e}"),
            );
        }
        let mib = |b: u64| b as f64 / f64::from(1 << 20);
        match crate::trim::page_out_code() {
            Ok(t) => journal.log(
                me,
                Level::Info,
                &format!(
                    "Start-up code paged out: file-backed memory {:.1} MiB -> {:.1} MiB",
                    mib(t.before),
                    mib(t.after)
                ),
            ),
            Err(e) => journal.log(
                me,
                Level::Info,
                &format!("Start-up code left in memory: {e}"),
            ),
        }
    };
    // Under systemd with WatchdogSec=: ping at half the interval it asked for.
    let manager_watchdog = sd_notify::manager_watchdog().map(|every| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every / 2);
            loop {
                tick.tick().await;
                let _ = sd_notify::to_manager("WATCHDOG=1");
            }
        })
    });
    tokio::pin!(boot);
    let mut booted = false;
    loop {
        tokio::select! {
            _ = &mut boot, if !booted => booted = true,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => {
                journal.log(me, Level::Info, "SIGHUP: reloading unit files and services.config");
                // Its own task: a reload waits for a boot in progress, which this loop drives.
                let (sup, journal) = (sup.clone(), journal.clone());
                tokio::spawn(async move {
                    let (level, lines) = match reload::reload(&sup, false).await {
                        Ok(r) => (Level::Info, reload::describe(&r)),
                        Err(e) => (Level::Error, vec![format!("Reload failed: {e}")]),
                    };
                    for line in lines {
                        println!("[ Reload ] {line}");
                        journal.log(me, level, &line);
                    }
                });
            }
        }
    }
    journal.log(
        me,
        Level::Info,
        "Shutting down: stopping every unit, dependents first",
    );
    let _ = sd_notify::to_manager("STOPPING=1\nSTATUS=stopping every unit");
    // No request may start anything behind the shutdown's back.
    sup.shut_down();
    server.abort();
    let order = boot::stop_all(&sup).await;
    if !order.is_empty() {
        journal.log(
            me,
            Level::Info,
            &format!("Stopped, in order: {}", order.join(", ")),
        );
    }
    for task in [
        Some(server),
        Some(reaper),
        Some(notifications),
        manager_watchdog,
    ]
    .into_iter()
    .flatten()
    {
        task.abort();
        let _ = task.await;
    }
    process::reap_orphans();
    // A container whose core unit failed should say so with its exit status.
    let failed_core: Vec<String> = sup
        .all()
        .iter()
        .filter(|s| {
            let d = s.def();
            d.kind() == Some(asyncmd_proto::UnitType::Core)
                && d.config.enabled
                && s.state() == asyncmd_proto::UnitState::Failed
        })
        .map(|s| s.name.clone())
        .collect();
    if !failed_core.is_empty() {
        anyhow::bail!("core unit(s) failed: {}", failed_core.join(", "));
    }
    Ok(())
}
