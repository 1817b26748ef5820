//! Watching over a running unit: its sd_notify watchdog, and its `[health]` check.
//!
//! Both run as tasks beside a run and end with it. When one gives up on the run it kills the
//! process group with a reason (`watchdog timeout`, `health check failed: ...`); the run then
//! ends as failed and the restart policy decides what comes next.

use std::sync::Arc;
use std::time::{Duration, Instant};

use asyncmd_proto::text::local_time;
use asyncmd_proto::text::now_us;
use nix::sys::signal::Signal;
use tokio::process::Command;

use crate::process;
use crate::supervisor::{Slot, Supervisor};
use crate::unit_file::Health;

/// Kills run `run` of `slot` if no `WATCHDOG=1` arrives within `every` of the last one (or of
/// the start).
pub async fn watchdog(sup: Arc<Supervisor>, slot: Arc<Slot>, run: u32, every: Duration) {
    loop {
        let Some(last) = slot.last_ping(run) else {
            return;
        };
        let due = last + every;
        if Instant::now() < due {
            tokio::time::sleep_until(due.into()).await;
            continue;
        }
        let why = format!(
            "watchdog timeout (no WATCHDOG=1 within {})",
            humantime::format_duration(every)
        );
        sup.kill_run(&slot, run, &why, Signal::SIGABRT).await;
        return;
    }
}

/// Runs `check` every `interval` during run `run` of `slot`; after `retries` failures in a
/// row, kills the run.
pub async fn health(sup: Arc<Supervisor>, slot: Arc<Slot>, run: u32, check: Health) {
    let mut failures = 0;
    loop {
        tokio::time::sleep(check.interval).await;
        if !slot.is_run(run) {
            return;
        }
        let result = run_check(&check).await;
        if !slot.is_run(run) {
            return;
        }
        let at = local_time(now_us());
        match result {
            Ok(()) => {
                failures = 0;
                slot.set_health(format!("ok @ {at}"));
            }
            Err(why) => {
                failures += 1;
                slot.set_health(format!(
                    "failing @ {at}: {why} ({failures} of {} in a row)",
                    check.retries
                ));
                if failures >= check.retries {
                    let why = format!("health check failed {failures} times in a row: {why}");
                    let sig = slot.stop_settings().0;
                    sup.kill_run(&slot, run, &why, sig).await;
                    return;
                }
            }
        }
    }
}

/// Runs the check once: `Ok` on exit status 0 within its timeout.
async fn run_check(check: &Health) -> Result<(), String> {
    let mut cmd = Command::new(&check.exec[0]);
    cmd.args(&check.exec[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = process::spawn_registered(&mut cmd)
        .map_err(|e| format!("cannot run {}: {e}", check.exec[0]))?;
    let pid = child.id();
    let outcome = tokio::time::timeout(check.timeout, child.wait()).await;
    let result = match outcome {
        Ok(Ok(st)) if st.success() => Ok(()),
        Ok(Ok(st)) => Err(process::exit_result(st).to_string()),
        Ok(Err(e)) => Err(format!("lost track of the check: {e}")),
        Err(_) => {
            if let Some(p) = pid {
                let _ = process::signal_group(p, Signal::SIGKILL);
            }
            let _ = child.wait().await;
            Err(format!(
                "no answer within {}",
                humantime::format_duration(check.timeout)
            ))
        }
    };
    if let Some(p) = pid {
        process::forget(p);
    }
    result
}
