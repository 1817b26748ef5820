//! Scheduled units: `[schedule]` in a unit file starts it by the clock, not at boot.

use asyncmd_e2e::{stdout, wait_for, Daemon, Setup};

/// Times (µs) of the journal's "Started" entries of `unit`.
fn starts(d: &Daemon, unit: &str) -> Vec<i64> {
    d.entries(&["-u", unit])
        .iter()
        .filter(|e| e["msg"].as_str().is_some_and(|m| m.starts_with("Started")))
        .map(|e| e["time_us"].as_i64().unwrap())
        .collect()
}

#[test]
fn every_runs_on_absolute_deadlines_and_start_in_waits() {
    let d = Setup::new()
        .unit(
            "tick.service",
            "[unit]\ntype = \"schedule\"\n[service]\nexec = [\"echo\", \"tick\"]\n\
             [schedule]\nstart_in = \"300ms\"\nevery = \"250ms\"\n",
        )
        .unit(
            "later.service",
            "[unit]\ntype = \"schedule\"\n[service]\nexec = [\"echo\", \"later\"]\n[schedule]\nstart_in = \"1h\"\n",
        )
        .boot();
    let boot_line = d
        .entries(&["-u", "asyncmdd"])
        .iter()
        .find(|e| {
            e["msg"]
                .as_str()
                .is_some_and(|m| m.starts_with("[ Booting ]"))
        })
        .map(|e| e["time_us"].as_i64().unwrap())
        .unwrap();
    let t = wait_for("12 scheduled runs", || {
        let t = starts(&d, "tick");
        (t.len() >= 12).then_some(t)
    });
    // The first run comes start_in after boot, each next one every 250 ms after the first:
    // deadlines are absolute, so lateness does not pile up run after run.
    assert!(
        t[0] - boot_line >= 300_000,
        "first run {} µs after boot",
        t[0] - boot_line
    );
    for (k, &at) in t.iter().enumerate().take(12) {
        let due = t[0] + k as i64 * 250_000;
        assert!(
            at >= due - 5_000 && at < due + 200_000,
            "run {k} at +{} µs, due +{} µs",
            at - t[0],
            due - t[0]
        );
    }
    let s = d.status("later.service");
    assert_eq!(s["state"], "inactive", "not started at boot");
    let text = stdout(&d.ctl(&["status", "later*", "tick*"]));
    assert!(text.contains("┗━► schedule: starts in 35"), "{text}");
    assert!(text.contains("(first in 1h)"), "{text}");
    assert!(text.contains("┗━► schedule: last @ "), "{text}");
    assert!(text.contains("(first in 300ms, every 250ms)"), "{text}");
}

#[test]
fn a_run_still_going_when_the_next_is_due_is_not_started_twice() {
    let d = Setup::new()
        .unit(
            "slow.service",
            "[unit]\ntype = \"schedule\"\n[service]\nexec = [\"sleep\", \"0.5\"]\n[schedule]\nevery = \"200ms\"\n",
        )
        .boot();
    let j = wait_for("a skipped run", || {
        let j = stdout(&d.journal(&["-u", "slow", "-o", "cat"]));
        j.contains("Skipped the run due at").then_some(j)
    });
    assert!(j.contains("the previous run is still going"), "{j}");
    // Never two at once: every start follows the previous run's end.
    let entries = d.entries(&["-u", "slow"]);
    let mut running = false;
    for e in &entries {
        let m = e["msg"].as_str().unwrap();
        if m.starts_with("Started") {
            assert!(!running, "a run started while another ran: {entries:?}");
            running = true;
        } else if m.starts_with("Finished") || m.starts_with("Failed") {
            running = false;
        }
    }
}

#[test]
fn the_example_builtins_hello_world_and_sensor() {
    let d = Setup::new()
        .unit("hello.service", "[service]\nbuiltin = \"hello\"\n")
        .unit(
            "world.service",
            "[unit]\ntype = \"oneshot\"\n[service]\nbuiltin = \"world\"\n[schedule]\nevery = \"300ms\"\n",
        )
        .unit("sensor.service", "[service]\nbuiltin = \"sensor\"\n")
        .config(
            r#"{"hello": {"args": [3], "kwargs": {"sleep": 0.1}},
                "world": {"kwargs": {"sleep": 0.05}},
                "sensor": {"kwargs": {"interval": 0.1}}}"#,
        )
        .boot();
    wait_for("hello to toggle LEDs 3, 4, 1", || {
        let j = stdout(&d.journal(&["-u", "hello", "-o", "cat"]));
        j.contains("LED 3 toggled!\nLED 4 toggled!\nLED 1 toggled!")
            .then_some(())
    });
    let hello = d.status("hello.service");
    let temp = hello["stats"]["temp"].clone();
    assert!(temp.as_str().is_some_and(|t| t.ends_with(" C")), "{temp}");
    // Builtins are traced as tasks are: asyncmd's "Loop info" line.
    assert!(hello["loop_info"]["polls"].as_u64() > Some(2), "{hello}");
    let text = stdout(&d.ctl(&["status", "hello.service"]));
    assert!(text.contains("Loop info: exec time: "), "{text}");
    wait_for("world to run twice on its schedule", || {
        let j = stdout(&d.journal(&["-u", "world", "-o", "cat"]));
        (j.matches("world: done").count() >= 2).then_some(())
    });
    let s = wait_for("a sensor reading", || {
        let s = d.status("sensor.service");
        s["stats"]["temperature"].as_f64().map(|_| s)
    });
    let stat = |k: &str| s["stats"][k].as_f64().unwrap();
    assert!((19.0..=25.0).contains(&stat("temperature")), "{s}");
    assert!((35.0..=55.0).contains(&stat("humidity")), "{s}");
    assert!((1007.0..=1020.0).contains(&stat("pressure")), "{s}");
    let j = stdout(&d.journal(&["-u", "sensor", "-o", "cat"]));
    assert!(j.contains("BME280: "), "{j}");
}
