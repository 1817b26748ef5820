//! The builtin `watcher` service (asyncmd's watcher.service): it keeps per-unit error counts
//! and the names of the last units that failed, shown as its stats, and can feed a hardware
//! watchdog device so the whole box reboots if the daemon itself hangs.
//!
//! `services.config` kwargs: `interval` (seconds between looks at the units, default 1),
//! `watchdog_device` (e.g. `/dev/watchdog`) and `watchdog_interval` (seconds between pings,
//! default 1). On a clean stop it writes the magic close character `V`, so the driver disarms
//! instead of rebooting.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use asyncmd_proto::{Level, UnitState};
use serde_json::{json, Map, Value};

use super::kwargs::duration;
use super::Context;

/// Names of failed units remembered, newest last.
const LAST_ERRORS: usize = 5;

/// Runs the watcher until it is stopped.
pub async fn run(mut ctx: Context) -> Result<(), String> {
    let interval = duration(&ctx.kwargs, "interval", Duration::from_secs(1))?;
    let ping_every = duration(&ctx.kwargs, "watchdog_interval", Duration::from_secs(1))?;
    let mut device = match ctx.kwargs.get("watchdog_device") {
        None => None,
        Some(Value::String(path)) => {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| format!("cannot open watchdog device {path}: {e}"))?;
            ctx.log(
                Level::Info,
                &format!("Feeding watchdog device {path} every {ping_every:?}"),
            );
            Some((path.clone(), f))
        }
        Some(other) => {
            return Err(format!(
                "kwargs watchdog_device must be a path, not {other}"
            ))
        }
    };
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut last: Vec<String> = Vec::new();
    let mut seen: BTreeMap<String, i64> = BTreeMap::new();
    let mut look = tokio::time::interval(interval);
    let mut ping = tokio::time::interval(ping_every);
    loop {
        tokio::select! {
            _ = ctx.stopped() => break,
            _ = ping.tick(), if device.is_some() => {
                if let Some((path, f)) = device.as_mut() {
                    if let Err(e) = f.write_all(b".").and_then(|_| f.flush()) {
                        ctx.log(Level::Error, &format!("cannot feed watchdog device {path}: {e}"));
                    }
                }
            }
            _ = look.tick() => {
                for st in (ctx.units)().into_iter().filter(|s| s.name != ctx.name) {
                    let failed_at = match st.state {
                        UnitState::Failed | UnitState::Restarting if st.last_exit.is_some() || st.error.is_some() => st.done_us.or(st.since_us),
                        _ => None,
                    };
                    let Some(at) = failed_at else { continue };
                    if seen.get(&st.name) == Some(&at) {
                        continue;
                    }
                    seen.insert(st.name.clone(), at);
                    *errors.entry(st.name.clone()).or_default() += 1;
                    last.retain(|n| n != &st.name);
                    last.push(st.name.clone());
                    if last.len() > LAST_ERRORS {
                        last.remove(0);
                    }
                    let why = st.last_exit.or(st.error).unwrap_or_default();
                    ctx.log(Level::Warning, &format!("{} failed: {why}", st.name));
                }
                let mut stats = Map::new();
                stats.insert("errors".into(), json!(errors));
                stats.insert("last_errors".into(), json!(last));
                if let Some((path, _)) = &device {
                    stats.insert("watchdog_device".into(), json!(path));
                }
                ctx.set_stats(stats);
            }
        }
    }
    if let Some((path, mut f)) = device {
        // The magic close: the driver disarms rather than rebooting the box.
        f.write_all(b"V")
            .and_then(|_| f.flush())
            .map_err(|e| format!("cannot disarm watchdog device {path}: {e}"))?;
        ctx.log(
            Level::Info,
            &format!("Watchdog device {path} disarmed (magic close)"),
        );
    }
    Ok(())
}
