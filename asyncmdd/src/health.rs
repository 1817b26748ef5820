//! Watching over a running unit: its sd_notify watchdog, and its `[health]` check.
//!
//! Both run beside a run and end with it. When one gives up on the run it returns the reason
//! (`watchdog timeout`, `health check failed: ...`) for the driver, which kills the run; the run
//! then ends as failed and the restart policy decides what comes next. Neither knows the
//! driver: they see the run only through the closures they are given.

use std::time::{Duration, Instant};

use asyncmd_proto::text::local_time;
use asyncmd_proto::text::now_us;
use nix::sys::signal::Signal;
use tokio::process::Command;

use crate::process;
use crate::unit_file::Health;

/// Waits until no `WATCHDOG=1` came within `every` of the last one (or of the start); returns
/// why the run is to be killed. `last_ping` tells the run's last ping, None once the run is
/// over (then this returns None).
pub async fn watchdog(last_ping: impl Fn() -> Option<Instant>, every: Duration) -> Option<String> {
    loop {
        let due = last_ping()? + every;
        if Instant::now() < due {
            tokio::time::sleep_until(due.into()).await;
            continue;
        }
        return Some(format!(
            "watchdog timeout (no WATCHDOG=1 within {})",
            humantime::format_duration(every)
        ));
    }
}

/// Runs `check` every `interval` while `alive()` holds, telling each result to `report`;
/// after `retries` failures in a row returns why the run is to be killed. None: the run ended
/// first.
pub async fn health(
    check: &Health,
    alive: impl Fn() -> bool,
    report: impl Fn(String),
) -> Option<String> {
    let mut failures = 0;
    loop {
        tokio::time::sleep(check.interval).await;
        if !alive() {
            return None;
        }
        let result = run_check(check).await;
        if !alive() {
            return None;
        }
        let at = local_time(now_us());
        match result {
            Ok(()) => {
                failures = 0;
                report(format!("ok @ {at}"));
            }
            Err(why) => {
                failures += 1;
                report(format!(
                    "failing @ {at}: {why} ({failures} of {} in a row)",
                    check.retries
                ));
                if failures >= check.retries {
                    return Some(format!(
                        "health check failed {failures} times in a row: {why}"
                    ));
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
        process::unregister(p);
    }
    result
}
