//! Traceable tasks: the async_blink walkthrough, driven through asyncmctl and asyncmjournal
//! against the running example.

use std::process::{Command, Stdio};

use asyncmd_e2e::{bin, example, run_within, stderr, stdout, wait_for};
use serde_json::Value;

struct Blink {
    child: std::process::Child,
    socket: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Blink {
    fn start() -> Blink {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("blink.sock");
        let child = Command::new(example("async_blink"))
            .env("ASYNCMD_SOCKET", &socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the example runs");
        let b = Blink {
            child,
            socket,
            _dir: dir,
        };
        wait_for("the example's socket", || {
            b.ctl(&["list"]).status.success().then_some(())
        });
        b
    }

    fn ctl(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new(bin("asyncmctl"));
        c.env("ASYNCMD_SOCKET", &self.socket)
            .env("NO_COLOR", "1")
            .args(args);
        run_within(c, "asyncmctl", args)
    }

    fn journal(&self, args: &[&str]) -> std::process::Output {
        let mut c = Command::new(bin("asyncmjournal"));
        c.env("ASYNCMD_SOCKET", &self.socket).args(args);
        run_within(c, "asyncmjournal", args)
    }

    fn status(&self, name: &str) -> Value {
        let o = self.ctl(&["status", "--json", name]);
        let v: Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(&o)));
        v[0].clone()
    }
}

impl Drop for Blink {
    fn drop(&mut self) {
        // Ctrl-C, as a person stops it: the example then exits by itself (SIGKILL if not).
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let start = std::time::Instant::now();
        while let Ok(None) = self.child.try_wait() {
            if start.elapsed() > asyncmd_e2e::DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

#[test]
fn the_blink_walkthrough() {
    let b = Blink::start();
    let text = stdout(&b.ctl(&["status"]));
    assert!(text.contains("● blink: status: running since "), "{text}");
    assert!(text.contains("● blink@1: status: running since "), "{text}");

    assert_eq!(stdout(&b.ctl(&["debug", "on"])), "debug: on\n");
    let text = wait_for("a toggle counted", || {
        let t = stdout(&b.ctl(&["status"]));
        t.contains("Stats: toggles: ").then_some(t)
    });
    for line in [
        "Type: task",
        "┗━► args: [2]",
        "┗━► kwargs: {\"sleep\":5}",
        "┗━► args: [3]",
        "Loop info: exec time: ",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(b.ctl(&["debug", "off"]).status.success());

    let o = b.ctl(&["stop", "blink"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = wait_for("blink to stop", || {
        let s = b.status("blink");
        (s["state"] == "stopped").then_some(s)
    });
    assert_eq!(s["kwargs"]["sleep"], 5);
    assert_eq!(
        b.status("blink@1")["state"],
        "running",
        "only blink stopped"
    );

    let o = b.ctl(&["config", "blink", "--kwargs", r#"{"sleep": 3}"#]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(b.ctl(&["start", "blink"]).status.success());
    let s = b.status("blink");
    assert_eq!(
        (s["state"].as_str(), s["starts"].as_u64()),
        (Some("running"), Some(2))
    );
    assert_eq!(s["kwargs"]["sleep"], 3);

    let j = stdout(&b.journal(&["-u", "blink*", "-o", "cat"]));
    assert!(
        j.contains("LED 2 on") && j.contains("LED 3 on") && j.contains("Stopped"),
        "{j}"
    );
    // The task's own tracing::warn!, through the journal layer, under the task's name: one per
    // start. `start` returns once the task is spawned, so its second one may still be coming.
    let warnings = |unit: &str, pin: u32, starts: usize| {
        let line = format!("[WARNING] [{unit}] no board here: the LED is simulated pin={pin}\n");
        let j = wait_for(&format!("{starts} warning(s) of {unit}"), || {
            let j = stdout(&b.journal(&["-u", unit, "-p", "warning", "--no-color"]));
            (j.matches(&line).count() >= starts).then_some(j)
        });
        assert_eq!(
            j.matches(&line).count(),
            starts,
            "one per start of {unit}: {j}"
        );
        j
    };
    let j = warnings("blink", 2, 2);
    assert!(
        !j.contains("pin=3"),
        "none of blink@1's under blink's name: {j}"
    );
    // blink@1 (pin 3) has started once so far.
    let j = warnings("blink@1", 3, 1);
    assert!(
        !j.contains("pin=2"),
        "none of blink's under blink@1's name: {j}"
    );
    // Globs, and a name that matches nothing.
    assert!(b.ctl(&["restart", "blink*"]).status.success());
    assert_eq!(b.status("blink@1")["starts"], 2);
    assert_eq!(b.ctl(&["stop", "nope"]).status.code(), Some(4));
    // A runtime of tasks only has no unit files: reload and load are refused, saying why, and
    // the tasks go on.
    for args in [&["reload"][..], &["load", "hello"][..]] {
        let o = b.ctl(args);
        assert!(!o.status.success(), "{args:?}");
        let said = format!("{}{}", stdout(&o), stderr(&o));
        assert!(
            said.contains("unsupported: this runtime serves in-process tasks only"),
            "{args:?}: {said}"
        );
    }
    assert_eq!(b.status("blink")["state"], "running");
}
