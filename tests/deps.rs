//! Dependencies at run time: stops, restarts and failures go along `requires` (a chain of
//! three, a diamond), `wants` pulls in without binding, a requirement that becomes ready lets
//! what it held back start, `on_failure` units hear of a failure, and the boot report says a
//! start that failed at once is one.

use asyncmd_e2e::{stderr, stdout, wait_for, Daemon, Setup};
use serde_json::Value;

const LOOP: &str = "while :; do sleep 0.1; done";

/// A process unit running [`LOOP`] that requires `requires`.
fn needing(requires: &[&str]) -> String {
    let list: Vec<String> = requires.iter().map(|r| format!("\"{r}\"")).collect();
    format!("requires = [{}]", list.join(", "))
}

/// The sequence number of the first journal entry of `unit` whose message starts with `msg`.
fn seq_of(d: &Daemon, unit: &str, msg: &str) -> u64 {
    wait_for(&format!("{unit} to log {msg:?}"), || {
        let e = d.entries(&["-u", unit]);
        e.iter()
            .filter(|e| e["msg"].as_str().is_some_and(|m| m.starts_with(msg)))
            .map(|e| e["seq"].as_u64().unwrap())
            .next_back()
    })
}

fn pid(d: &Daemon, unit: &str) -> u64 {
    d.wait_state(unit, "running")["pid"]
        .as_u64()
        .expect("a pid")
}

#[test]
fn a_chain_of_three_goes_down_in_order_and_comes_back_with_its_base() {
    let d = Setup::new()
        .unit(
            "base.service",
            &format!(
                "[service]\nexec = [\"sh\", \"-c\", \"{LOOP}\"]\nrestart = \"on-failure\"\n\
                 restart_delay = \"1s\"\n"
            ),
        )
        .sh("mid.service", &needing(&["base.service"]), LOOP)
        .sh("top.service", &needing(&["mid.service"]), LOOP)
        .boot();
    for u in ["base.service", "mid.service", "top.service"] {
        d.wait_state(u, "running");
    }

    // A dry run says what a stop would take down, and touches nothing.
    let o = d.ctl(&["stop", "base", "--dry-run"]);
    let t = stdout(&o);
    assert!(t.contains("base.service: would stop"), "{t}");
    assert!(
        t.contains("mid.service: would be stopped too: it requires base.service")
            && t.contains("top.service: would be stopped too: it requires mid.service"),
        "{t}"
    );
    assert_eq!(d.state("top.service"), "running");

    // A stop takes down what requires it first, top before mid before base, and says so.
    let o = d.ctl(&["stop", "base"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("top.service: stopped too: it requires mid.service"),
        "{}",
        stdout(&o)
    );
    let top_down = seq_of(&d, "top.service", "Stopped");
    let mid_down = seq_of(&d, "mid.service", "Stopped");
    let base_down = seq_of(&d, "base.service", "Stopped");
    assert!(
        top_down < mid_down && mid_down < base_down,
        "{top_down} {mid_down} {base_down}"
    );
    seq_of(
        &d,
        "mid.service",
        "Stopping mid.service: its requirement base.service is stopping",
    );
    // They wait for it, as status shows.
    let mid = d.wait_state("mid.service", "waiting");
    assert_eq!(
        mid["waiting_for"],
        serde_json::json!(["base.service"]),
        "{mid}"
    );
    let top = d.wait_state("top.service", "waiting");
    assert_eq!(
        top["waiting_for"],
        serde_json::json!(["mid.service"]),
        "{top}"
    );

    // Its start brings them back, each once what it requires is ready.
    assert!(d.ctl(&["start", "base"]).status.success());
    d.wait_state("top.service", "running");
    let up = seq_of(
        &d,
        "top.service",
        "Starting top.service: its requirement mid.service is ready",
    );
    assert!(up > seq_of(&d, "mid.service", "Started"));

    // A restart: they go, and come back with new processes.
    let (mid_pid, top_pid) = (pid(&d, "mid.service"), pid(&d, "top.service"));
    let o = d.ctl(&["restart", "base"]);
    assert!(
        stdout(&o).contains("mid.service: stopped too: it requires base.service; it starts again"),
        "{}",
        stdout(&o)
    );
    wait_for("mid and top to run again, anew", || {
        let (m, t) = (d.status("mid.service"), d.status("top.service"));
        (m["state"] == "running"
            && t["state"] == "running"
            && m["pid"].as_u64() != Some(mid_pid)
            && t["pid"].as_u64() != Some(top_pid))
        .then_some(())
    });

    // A failure: base's restart policy goes first, they wait for it, then come back.
    let base_pid = pid(&d, "base.service");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(base_pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    seq_of(
        &d,
        "mid.service",
        "Stopping mid.service: its requirement base.service ended",
    );
    wait_for("all three to run again after base's restart", || {
        let all = ["base.service", "mid.service", "top.service"];
        all.iter().all(|u| d.state(u) == "running").then_some(())
    });
    assert_ne!(pid(&d, "base.service"), base_pid);

    // A person stopping a waiting dependent cancels its wait: it stays stopped.
    d.ctl(&["stop", "base"]);
    d.wait_state("top.service", "waiting");
    assert!(d.ctl(&["stop", "top"]).status.success());
    assert_eq!(d.state("top.service"), "stopped");
    assert!(d.ctl(&["start", "base"]).status.success());
    d.wait_state("mid.service", "running");
    assert_eq!(
        d.state("top.service"),
        "stopped",
        "it was stopped by a person"
    );
}

#[test]
fn a_diamond_stops_its_top_first_and_starts_it_once_both_sides_are_ready() {
    let d = Setup::new()
        .sh("base.service", "", LOOP)
        .sh("left.service", &needing(&["base.service"]), LOOP)
        .sh("right.service", &needing(&["base.service"]), LOOP)
        .sh(
            "top.service",
            &needing(&["left.service", "right.service"]),
            LOOP,
        )
        .boot();
    d.wait_state("top.service", "running");
    let o = d.ctl(&["stop", "base"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let top_down = seq_of(&d, "top.service", "Stopped");
    for side in ["left.service", "right.service"] {
        assert!(
            top_down < seq_of(&d, side, "Stopped"),
            "top goes before {side}"
        );
    }
    assert!(seq_of(&d, "left.service", "Stopped") < seq_of(&d, "base.service", "Stopped"));
    assert!(d.ctl(&["start", "base"]).status.success());
    d.wait_state("top.service", "running");
    let top_up = seq_of(&d, "top.service", "Started");
    for side in ["left.service", "right.service"] {
        assert!(
            seq_of(&d, side, "Started") < top_up,
            "{side} is ready before top starts"
        );
    }
}

#[test]
fn wants_pull_in_without_binding() {
    let d = Setup::new()
        .sh("app.service", "wants = [\"helper.service\"]", LOOP)
        .sh("helper.service", "", "echo 'no helper today' >&2; exit 1")
        .boot();
    let r = d.report();
    // The helper comes along with what wants it; its failure is its own.
    assert!(r.contains("[ OK ] Service: app.service"), "{r}");
    assert!(
        r.contains("[ ERROR ] Service: helper.service from units/helper.service not loaded: Error: exit status 1"),
        "{r}"
    );
    d.wait_state("app.service", "running");
    // A person's start of what wants it starts it too, and its stop is none of app's concern.
    d.ctl(&["stop", "app"]);
    d.ctl(&["start", "app"]);
    seq_of(&d, "helper.service", "Failed");
    assert_eq!(d.state("app.service"), "running");
}

#[test]
fn a_requirement_that_becomes_ready_lets_what_it_held_back_start() {
    let d = Setup::new()
        .sh("db.service", "", "exit 4")
        .sh("web.service", &needing(&["db.service"]), LOOP)
        .sh("off.service", "", LOOP)
        .sh("user.service", &needing(&["off.service"]), LOOP)
        .config("{\"off\": {\"enabled\": false}}")
        .boot();
    let r = d.report();
    assert!(r.contains("[ ERROR ] Service: web.service"), "{r}");
    assert!(r.contains("[ ERROR ] Service: user.service"), "{r}");
    // db is fixed and reloaded: web starts, and says why.
    std::fs::write(
        d.units().join("db.service"),
        format!("[service]\nexec = [\"sh\", \"-c\", \"{LOOP}\"]\n"),
    )
    .unwrap();
    let o = d.ctl(&["reload"]);
    assert!(o.status.success(), "{}", stderr(&o));
    d.wait_state("web.service", "running");
    seq_of(
        &d,
        "web.service",
        "Starting web.service: its requirement db.service is ready",
    );
    // A disabled requirement a person starts: what it held back starts too.
    assert!(d.ctl(&["start", "off"]).status.success());
    d.wait_state("user.service", "running");
}

#[test]
fn on_failure_units_hear_which_unit_failed_and_how() {
    let d = Setup::new()
        .sh(
            "worker.service",
            "on_failure = [\"alert.service\"]",
            "sleep 0.3; echo 'disk on fire' >&2; exit 3",
        )
        .sh(
            "alert.service",
            "type = \"oneshot\"",
            "echo \"ALERT $ASYNCMD_FAILED_UNIT: $ASYNCMD_FAILURE\"",
        )
        .config("{\"alert\": {\"enabled\": false}}")
        .boot();
    d.wait_state("worker.service", "failed");
    seq_of(
        &d,
        "worker.service",
        "Starting alert.service: on_failure of worker.service",
    );
    seq_of(
        &d,
        "alert.service",
        "ALERT worker.service: exit status 3: disk on fire",
    );
}

#[test]
fn the_boot_report_tells_a_start_that_failed_at_once_and_builtin_kwargs_take_durations() {
    let d = Setup::new()
        .sh("quick.service", "", "echo 'cannot bind' >&2; exit 1")
        .unit("bad.service", "[service]\nbuiltin = \"hello\"\n")
        .unit("good.service", "[service]\nbuiltin = \"hello\"\n")
        .config("{\"bad\": {\"kwargs\": {\"sleep\": \"soon\"}}, \"good\": {\"kwargs\": {\"sleep\": \"150ms\"}}}")
        .boot();
    let r = d.report();
    assert!(
        r.contains("[ ERROR ] Service: quick.service from units/quick.service not loaded: Error: exit status 1: cannot bind"),
        "{r}"
    );
    assert!(
        r.contains("[ ERROR ] Service: bad.service from units/bad.service not loaded: Error: kwargs sleep must be a number of seconds or a duration"),
        "{r}"
    );
    assert!(r.contains("[ OK ] Service: good.service"), "{r}");
    wait_for("good to toggle at its 150 ms", || {
        let n = d
            .entries(&["-u", "good"])
            .iter()
            .filter(|e| e["msg"].as_str().is_some_and(|m| m.contains("toggled")))
            .count();
        (n >= 3).then_some(())
    });
    let s: Value = d.status("good.service");
    assert_eq!(s["state"], "running");
}
