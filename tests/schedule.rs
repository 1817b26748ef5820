//! Scheduled units: `[schedule]` in a unit file starts it by the clock, not at boot.

use asyncmd_e2e::{stdout, wait_for, Daemon, Setup};
use chrono::{Local, NaiveDateTime, TimeZone};

/// Each scheduled run of `unit`: the due time the scheduler logged (µs, to the millisecond) and
/// the time of the "Started" entry that followed it.
fn runs(d: &Daemon, unit: &str) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut due = None;
    for e in d.entries(&["-u", unit]) {
        let msg = e["msg"].as_str().unwrap();
        if let Some(at) = msg.strip_prefix("Starting the run due at ") {
            let local = NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M:%S%.3f")
                .unwrap_or_else(|e| panic!("{e}: {msg}"));
            let at = Local.from_local_datetime(&local).earliest().unwrap();
            due = Some(at.timestamp_micros());
        } else if msg.starts_with("Started") {
            let due = due
                .take()
                .unwrap_or_else(|| panic!("a start without a due time: {msg}"));
            out.push((due, e["time_us"].as_i64().unwrap()));
        }
    }
    out
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
    let r = wait_for("12 scheduled runs", || {
        let r = runs(&d, "tick");
        (r.len() >= 12).then_some(r)
    });
    // The first run waits for start_in (the scheduler starts a moment before the boot line).
    let (due0, start0) = r[0];
    assert!(
        start0 - boot_line >= 250_000,
        "first run {} µs after boot",
        start0 - boot_line
    );
    // Deadlines are absolute: every due time is a whole number of periods after the first
    // (a run only ever skips whole periods), so lateness never piles up...
    // ...and the period is the schedule's: most gaps are exactly one period, and a loaded
    // machine skips a few at most.
    let mut gaps: Vec<i64> = r.windows(2).map(|w| w[1].0 - w[0].0).collect();
    gaps.sort_unstable();
    let median = gaps[gaps.len() / 2];
    assert!(
        (249_000..=251_000).contains(&median),
        "median gap between due times {median} µs: {r:?}"
    );
    let skipped: i64 = gaps.iter().map(|g| (g + 1_000) / 250_000 - 1).sum();
    assert!(skipped <= 4, "{skipped} periods skipped: {r:?}");
    let mut last = due0;
    for (k, &(due, start)) in r.iter().enumerate() {
        let off = (due - due0).rem_euclid(250_000);
        assert!(
            off <= 1_000 || off >= 249_000,
            "run {k} due {} µs after run 0: not a multiple of 250 ms ({r:?})",
            due - due0
        );
        assert!(k == 0 || due > last, "due times move forward: {r:?}");
        last = due;
        // ...and each run starts when it is due: never early, and late only by what a loaded
        // machine takes to spawn a process.
        assert!(
            start >= due - 5_000 && start < due + 2_000_000,
            "run {k} started {} µs after it was due",
            start - due
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
