//! asyncmctl: compact and detailed status, list, start/stop/restart, exit codes, JSON, globs.

use asyncmd_e2e::{stderr, stdout, wait_for, Setup};

const LOOP: &str = "i=0; while :; do i=$((i+1)); echo \"LED $i toggled!\"; sleep 0.2; done";

fn setup() -> asyncmd_e2e::Daemon {
    Setup::new()
        .sh(
            "hello.service",
            "version = \"1.0\"\ndocs = \"https://example.org/hello\"",
            LOOP,
        )
        .sh("world.service", "type = \"oneshot\"", "echo world done")
        .sh(
            "crash.service",
            "type = \"oneshot\"",
            "echo starting; echo 'Fatal: no sensor' >&2; exit 2",
        )
        .boot()
}

#[test]
fn compact_status_lines_and_exit_codes() {
    let d = setup();
    d.wait_state("crash.service", "failed");
    let o = d.ctl(&["status"]);
    let text = stdout(&o);
    let line = |u: &str| {
        text.lines()
            .find(|l| l.contains(u))
            .unwrap_or("")
            .to_string()
    };
    let re_time = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d; \d+ s ago";
    let check = |l: String, pat: String| {
        assert!(
            regex::Regex::new(&pat).unwrap().is_match(&l),
            "{l:?} !~ {pat}"
        );
    };
    check(
        line("hello.service"),
        format!("^● hello.service: status: running since {re_time}$"),
    );
    check(
        line("world.service"),
        format!("^● world.service: status: done @ {re_time} --> result: 0$"),
    );
    check(
        line("crash.service"),
        format!("^● crash.service: status: failed @ {re_time} --> result: exit status 2: Fatal: no sensor$"),
    );
    assert!(!text.contains('\x1b'), "no colour off a terminal");
    assert_eq!(o.status.code(), Some(3), "not every unit is running");
    assert_eq!(d.ctl(&["status", "hello*"]).status.code(), Some(0));
    assert_eq!(d.ctl(&["status", "world.service"]).status.code(), Some(3));
    let o = d.ctl(&["status", "nope.service"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("Unit nope.service could not be found."));
    // Globs, and bare names without the suffix.
    let o = d.ctl(&["status", "*.service"]);
    assert_eq!(stdout(&o).lines().count(), 3);
    let o = d.ctl(&["status", "h*", "w*"]);
    assert_eq!(stdout(&o).lines().count(), 2);
}

#[test]
fn detailed_status_shows_unit_facts_and_journal() {
    let d = setup();
    wait_for("three LED lines", || {
        (stdout(&d.journal(&["-u", "hello", "-g", "LED"]))
            .lines()
            .count()
            >= 3)
            .then_some(())
    });
    let o = d.ctl(&["status", "hello.service"]);
    assert_eq!(o.status.code(), Some(0));
    let t = stdout(&o);
    assert!(
        t.starts_with("● hello.service - hello.service test unit v1.0\n"),
        "{t}"
    );
    assert!(
        t.contains("    Loaded: Service: hello.service from units/hello.service (enabled)"),
        "{t}"
    );
    assert!(t.contains("    Active: (active) running since "), "{t}");
    assert!(t.contains("    Type: runtime.service"), "{t}");
    assert!(t.contains("    Docs: https://example.org/hello"), "{t}");
    assert!(t.contains("    Main PID: "), "{t}");
    assert!(t.contains("    Memory: "), "{t}");
    assert!(t.contains("[testhost] [INFO] [hello.service] LED "), "{t}");
    let journal_lines = t.lines().filter(|l| l.contains("[testhost]")).count();
    assert!((3..=10).contains(&journal_lines), "{t}");
    let o = d.ctl(&["status", "hello", "-n", "2"]);
    assert_eq!(
        stdout(&o)
            .lines()
            .filter(|l| l.contains("[testhost]"))
            .count(),
        2
    );

    let o = d.ctl(&["status", "crash.service"]);
    let t = stdout(&o);
    assert_eq!(o.status.code(), Some(3));
    assert!(t.contains("Active: (failed) failed @"), "{t}");
    assert!(t.contains("┗━► traceback: crash.service: Traceback"), "{t}");
    assert!(t.contains("              Fatal: no sensor"), "{t}");
}

#[test]
fn stop_start_restart_change_state_and_pid() {
    let d = setup();
    let pid1 = d.status("hello.service")["pid"].as_u64().unwrap();
    let o = d.ctl(&["stop", "hello"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = d.status("hello.service");
    assert_eq!(s["state"], "stopped");
    assert_eq!(s["result"]["name"], "SIGTERM");
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid1 as i32), None).is_err());
    let t = stdout(&d.ctl(&["status", "hello*"]));
    assert!(
        t.contains("status: stopped @ ") && t.contains("--> result: killed by SIGTERM"),
        "{t}"
    );
    assert_eq!(d.ctl(&["status", "hello.service"]).status.code(), Some(3));

    assert!(d.ctl(&["start", "hello.service"]).status.success());
    let pid2 = d.status("hello.service")["pid"].as_u64().unwrap();
    assert_ne!(pid1, pid2);
    assert!(d.ctl(&["restart", "hello.service"]).status.success());
    let s = d.status("hello.service");
    assert_eq!(s["state"], "running");
    assert_ne!(s["pid"].as_u64().unwrap(), pid2);
    assert_eq!(s["starts"], 3);

    // A oneshot start waits for its end; a failing one reports why.
    let o = d.ctl(&["start", "crash.service"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("exit status 2: Fatal: no sensor"),
        "{}",
        stderr(&o)
    );
    let o = d.ctl(&["stop", "nope.service"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("nope.service"));
}

#[test]
fn stop_escalates_to_sigkill_after_the_timeout() {
    let d = Setup::new()
        .unit(
            "stubborn.service",
            "[service]\nexec = [\"sh\", \"-c\", \"trap '' TERM; echo ready; while :; do sleep 0.1; done\"]\nstop_timeout = \"300ms\"\n",
        )
        .boot();
    wait_for("the trap to be set", || {
        stdout(&d.journal(&["-u", "stubborn", "-g", "ready"]))
            .contains("ready")
            .then_some(())
    });
    assert!(d.ctl(&["stop", "stubborn"]).status.success());
    assert_eq!(d.status("stubborn.service")["result"]["name"], "SIGKILL");
    let j = stdout(&d.journal(&["-u", "stubborn", "-p", "warning", "-o", "cat"]));
    assert!(j.contains("sending SIGKILL"), "{j}");
}

#[test]
fn list_and_json_and_global_options_anywhere() {
    let d = setup();
    d.wait_state("crash.service", "failed");
    let t = stdout(&d.ctl(&["list"]));
    let header = t.lines().next().unwrap();
    for col in ["UNIT", "ENABLED", "ACTIVE", "SUB", "DESCRIPTION"] {
        assert!(header.contains(col), "{t}");
    }
    let row = t.lines().find(|l| l.starts_with("hello.service")).unwrap();
    assert!(
        row.contains("enabled") && row.contains("active") && row.contains("running"),
        "{row}"
    );
    assert!(t.contains("3 units listed."));

    let v: serde_json::Value = serde_json::from_slice(&d.ctl(&["list", "--json"]).stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    // Global options before the subcommand work too.
    let o = std::process::Command::new(asyncmd_e2e::bin("asyncmctl"))
        .args(["--json", "--no-color", "--socket"])
        .arg(&d.socket)
        .args(["status", "world"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["name"], "world.service");
    assert_eq!(v[0]["result"]["code"], 0);
    // ASYNCMD_SOCKET is honoured.
    let o = std::process::Command::new(asyncmd_e2e::bin("asyncmctl"))
        .args(["status", "world"])
        .env("ASYNCMD_SOCKET", &d.socket)
        .output()
        .unwrap();
    assert!(
        stdout(&o).contains("Active: (inactive) done @"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn no_daemon_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(asyncmd_e2e::bin("asyncmctl"))
        .arg("--socket")
        .arg(dir.path().join("none.sock"))
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot connect to asyncmdd at"),
        "{}",
        stderr(&o)
    );
}
