//! What a stop that waits says on a terminal: `Stopping hello.service: waiting for it to exit
//! (3 s of 5 s)`, kept up to date on one line of stderr until the answer comes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use asyncmd_proto::client::Client;
use asyncmd_proto::{Request, Response, UnitState, UnitStatus};

/// How long an action may take before anything is said, and how often the line is redrawn.
const QUIET_FOR: Duration = Duration::from_millis(700);
const EVERY: Duration = Duration::from_millis(500);

/// The line of a stop under way, watched on a connection of its own; ends when dropped.
pub struct Progress {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Watches `units` on the daemon at `path` (trusting `expect` as its user too).
    pub fn start(path: &Path, expect: Option<u32>, units: Vec<String>) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        let (flag, path): (_, PathBuf) = (done.clone(), path.to_path_buf());
        let thread = std::thread::spawn(move || watch(&path, expect, units, &flag));
        Progress {
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch(path: &Path, expect: Option<u32>, units: Vec<String>, done: &AtomicBool) {
    let began = Instant::now();
    let mut client = None;
    let mut shown = false;
    while !done.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        if began.elapsed() < QUIET_FOR {
            continue;
        }
        if client.is_none() {
            client = Client::connect_expecting(path, expect).ok();
        }
        let Some(c) = client.as_mut() else { break };
        let req = Request::Status {
            patterns: units.clone(),
            lines: 0,
        };
        let Ok(Response::Status { units: now, .. }) = c.call(req) else {
            break;
        };
        let text = line(&now, asyncmd_proto::text::now_us());
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{text}");
        let _ = err.flush();
        shown |= !text.is_empty();
        let until = Instant::now() + EVERY;
        while Instant::now() < until && !done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    if shown {
        let _ = write!(std::io::stderr(), "\r\x1b[K");
    }
}

/// What the stops under way among `units` are waiting for, at `now_us`.
pub fn line(units: &[UnitStatus], now_us: i64) -> String {
    let parts: Vec<String> = units
        .iter()
        .filter(|u| u.state == UnitState::Stopping)
        .map(|u| {
            let secs = |us: i64| us.max(0) / 1_000_000;
            let waited = secs(now_us - u.since_us.unwrap_or(now_us));
            match u.stop_timeout_us {
                Some(t) if waited <= secs(t as i64) => format!(
                    "Stopping {}: waiting for it to exit ({waited} s of {} s)",
                    u.name,
                    secs(t as i64)
                ),
                Some(t) => format!(
                    "Stopping {}: sent SIGKILL after {} s, waiting for it to go ({waited} s)",
                    u.name,
                    secs(t as i64)
                ),
                None => format!("Stopping {}: waiting for it to end ({waited} s)", u.name),
            }
        })
        .collect();
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_tells_the_wait_and_the_kill() {
        let mut u: UnitStatus = serde_json::from_value(serde_json::json!({
            "name": "a.service", "source": "a", "enabled": true, "state": "stopping",
            "since_us": 0, "stop_timeout_us": 5_000_000
        }))
        .unwrap();
        assert_eq!(
            line(std::slice::from_ref(&u), 3_200_000),
            "Stopping a.service: waiting for it to exit (3 s of 5 s)"
        );
        assert_eq!(
            line(std::slice::from_ref(&u), 7_000_000),
            "Stopping a.service: sent SIGKILL after 5 s, waiting for it to go (7 s)"
        );
        u.state = UnitState::Running;
        assert_eq!(line(&[u], 1), "");
    }
}
