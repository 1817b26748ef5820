//! Boot: the report, broken unit files, services.config (enabled, args, kwargs), shutdown.

use asyncmd_e2e::{stdout, wait_for, Setup, Signal};

const LOOP: &str = "while :; do echo tick; sleep 1; done";

#[test]
fn boot_report_names_each_unit_and_its_error() {
    let d = Setup::new()
        .sh("good.service", "", LOOP)
        .sh(
            "fails.service",
            "type = \"oneshot\"",
            "echo 'Boom: bad setup' >&2; exit 3",
        )
        .sh("job.service", "type = \"oneshot\"", "echo did it")
        .unit(
            "broken.service",
            "[unit]\ndescription = \"x\"\n\n[service]\nexce = [\"true\"]\n",
        )
        .unit(
            "nobin.service",
            "[service]\nexec = [\"/nonexistent/program\"]\n",
        )
        .boot();
    let r = d.report();
    assert!(
        r.contains("[ OK ] Service: good.service from units/good.service loaded"),
        "{r}"
    );
    assert!(
        r.contains("[ OK ] Service: job.service from units/job.service loaded"),
        "{r}"
    );
    assert!(
        r.contains("[ ERROR ] Service: fails.service from units/fails.service not loaded: Error: exit status 3: Boom: bad setup"),
        "{r}"
    );
    assert!(
        r.contains("[ ERROR ] Service: broken.service from units/broken.service not loaded: Error: units/broken.service:5:1: unknown field `exce`"),
        "{r}"
    );
    assert!(
        r.contains("[ ERROR ] Service: nobin.service from units/nobin.service not loaded: Error: cannot run /nonexistent/program"),
        "{r}"
    );
    assert_eq!(r.matches("[ ERROR ]").count(), 3, "{r}");
    // The broken file spoiled nothing else.
    assert_eq!(d.state("good.service"), "running");
    assert_eq!(d.state("job.service"), "done");
    let b = d.status("broken.service");
    assert!(b["load_error"].as_str().unwrap().contains("exce"));
    // The report is in the journal too, under the daemon's name.
    let j = stdout(&d.journal(&["-u", "asyncmdd", "-o", "cat"]));
    assert!(j.contains("[ OK ] Service: good.service"), "{j}");
}

#[test]
fn config_enables_and_passes_args_and_kwargs() {
    let d = Setup::new()
        .sh("show.service", "type = \"oneshot\"", "echo \"args=$*\"; echo \"sleep=$SLEEP name=$NAME\"; echo \"all=$ASYNCMD_KWARGS unit=$ASYNCMD_UNIT\"")
        .sh("off.service", "", LOOP)
        .unit("env.service", "[unit]\ntype = \"oneshot\"\n[service]\nexec = [\"sh\", \"-c\", \"echo led=$LED\"]\nenv = { LED = \"7\" }\n")
        .config(r#"{"show": {"enabled": true, "args": [2, "two words", true], "kwargs": {"sleep": 3, "name": "led"}},
                    "off": {"enabled": false}, "other": {"keep": "me"}}"#)
        .boot();
    let out = stdout(&d.journal(&["-u", "show", "-o", "cat"]));
    // sh -c SCRIPT: the first appended arg becomes $0, the rest $1...
    assert!(out.contains("args=two words true"), "{out}");
    assert!(out.contains("sleep=3 name=led"), "{out}");
    assert!(
        out.contains(r#"all={"name":"led","sleep":3} unit=show.service"#),
        "{out}"
    );
    let s = d.status("show.service");
    assert_eq!(s["args"], serde_json::json!([2, "two words", true]));
    assert_eq!(s["kwargs"]["sleep"], 3);
    assert_eq!(d.state("off.service"), "inactive");
    assert_eq!(d.status("off.service")["enabled"], false);
    assert!(
        !d.report().contains("off.service"),
        "a disabled unit is not booted"
    );
    assert!(stdout(&d.journal(&["-u", "env", "-o", "cat"])).contains("led=7"));
    assert!(
        d.report()
            .contains("entry \"other\" but there is no unit file"),
        "{}",
        d.report()
    );
}

#[test]
fn broken_config_is_reported_and_units_still_boot() {
    // A file that cannot be parsed, with no good copy kept: every unit is held back, since
    // none of their entries can be known, and a reload once it is fixed starts them.
    let d = Setup::new()
        .sh("a.service", "", LOOP)
        .sh("b.service", "", LOOP)
        .config("{\"a\": {\"enabled\": \"yes\"},\n \"b\": {}")
        .boot();
    let r = d.report();
    assert!(
        r.contains("[ ERROR ] Config: units/services.config: EOF while parsing"),
        "{r}"
    );
    assert!(r.contains("line 2"), "{r}");
    assert!(r.contains("every unit is held back"), "{r}");
    let a = d.status("a.service");
    assert_ne!(a["state"], "running");
    assert!(
        a["load_error"].as_str().unwrap().contains("held back"),
        "{a}"
    );
    std::fs::write(d.units().join("services.config"), r#"{"a": {}, "b": {}}"#).unwrap();
    assert!(d.ctl(&["reload"]).status.success());
    d.wait_state("a.service", "running");
    d.wait_state("b.service", "running");

    // One bad entry spoils only its own unit.
    let d = Setup::new()
        .sh("a.service", "", LOOP)
        .sh("b.service", "", LOOP)
        .config(r#"{"a": {"enabled": "yes"}, "b": {}}"#)
        .boot();
    let r = d.report();
    assert!(r.contains("Service: a.service from units/a.service not loaded: Error: units/services.config: \"a\": \"enabled\" must be true or false"), "{r}");
    assert_eq!(d.state("b.service"), "running");
}

#[test]
fn a_broken_config_boots_by_its_last_good_copy_and_never_starts_what_was_disabled() {
    let setup = || {
        Setup::new()
            .sh("a.service", "", LOOP)
            .sh("danger.service", "", LOOP)
            .config(r#"{"danger": {"enabled": false}}"#)
    };
    // Each way a hand edit goes wrong: a trailing comma, a comment, a BOM, empty, truncated.
    for broken in [
        "{\"danger\": {\"enabled\": false},}",
        "// off\n{\"danger\": {\"enabled\": false}}",
        "\u{feff}{\"danger\": {\"enabled\": false}}",
        "",
        "{\"danger\": {\"enab",
    ] {
        let mut d = setup().boot();
        d.wait_state("a.service", "running");
        assert_ne!(d.state("danger.service"), "running");
        d.signal(Signal::SIGTERM);
        d.wait_exit();
        // The daemon kept a copy of the good file; now the file breaks.
        let good = d.units().join(".services.config.last-good");
        assert!(good.exists(), "a last good copy is kept");
        std::fs::write(d.units().join("services.config"), broken).unwrap();
        let again = d.restart();
        let r = again.report();
        assert!(
            r.contains("booting by its last good copy"),
            "{broken:?}: {r}"
        );
        again.wait_state("a.service", "running");
        assert_ne!(
            again.state("danger.service"),
            "running",
            "{broken:?}: a disabled unit stays stopped"
        );
    }

    // A key given twice is an error that names it and its lines; with no good copy, nothing
    // starts on the strength of it.
    let d = Setup::new()
        .sh("danger.service", "", LOOP)
        .config("{\"danger\": {\"enabled\": false},\n \"danger\": {\"enabled\": true}}")
        .boot();
    let r = d.report();
    assert!(
        r.contains("key \"danger\" appears twice (line 1 and line 2)"),
        "{r}"
    );
    assert_ne!(d.state("danger.service"), "running");
}

#[test]
fn sigterm_or_sigint_stops_every_unit_and_exits_zero() {
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let mut d = Setup::new()
            .sh("a.service", "", LOOP)
            .sh(
                "b.service",
                "",
                "trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; done",
            )
            .boot();
        let pids: Vec<i32> = ["a.service", "b.service"]
            .iter()
            .map(|u| d.status(u)["pid"].as_i64().unwrap() as i32)
            .collect();
        let socket = d.socket.clone();
        d.signal(sig);
        assert_eq!(d.wait_exit(), Some(0), "{sig}");
        for pid in pids {
            let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
            assert!(!alive, "{sig}: service process {pid} outlived the daemon");
        }
        wait_for("the socket file to go", || (!socket.exists()).then_some(()));
    }
}

#[test]
fn a_second_daemon_on_the_same_socket_is_refused() {
    let d = Setup::new().sh("a.service", "", LOOP).boot();
    let mut second = std::process::Command::new(asyncmd_e2e::bin("asyncmdd"));
    second
        .arg("--units")
        .arg(d.dir.path().join("units"))
        .arg("--socket")
        .arg(&d.socket);
    let out = asyncmd_e2e::run_within(second, "a second asyncmdd", &[]);
    assert!(!out.status.success());
    assert!(asyncmd_e2e::stderr(&out).contains("another asyncmdd is already listening"));
    assert_eq!(d.state("a.service"), "running");
}

#[test]
fn what_is_not_a_unit_file_a_missing_workdir_and_a_failed_run_are_said_as_they_are() {
    let d = Setup::new()
        .unit(
            "w.service",
            "[service]\nexec = [\"true\"]\nworkdir = \"/nonexistent-workdir\"\n",
        )
        .unit(
            "k.service",
            "[service]\nexec = [\"sh\", \"-c\", \"kill -9 $$\"]\nrestart = \"always\"\nrestart_delay = \"1h\"\n",
        )
        .prepare(|units| {
            std::fs::create_dir(units.join("d.service")).unwrap();
            nix::unistd::mkfifo(&units.join("f.service"), nix::sys::stat::Mode::S_IRWXU).unwrap();
            std::os::unix::fs::symlink("nowhere", units.join("l.service")).unwrap();
            std::os::unix::fs::symlink("loop.service", units.join("loop.service")).unwrap();
        })
        .boot();
    let r = d.report();
    for (unit, says) in [
        ("d.service", "not a unit file: it is a directory"),
        ("f.service", "not a unit file: it is a FIFO"),
        ("l.service", "a symlink to nothing usable"),
        ("loop.service", "a symlink to nothing usable"),
    ] {
        let line = r
            .lines()
            .find(|l| l.contains(&format!("Service: {unit} ")))
            .unwrap_or_else(|| panic!("a boot line for {unit}: {r}"));
        assert!(line.contains("[ ERROR ]") && line.contains(says), "{line}");
    }
    let w = d.wait_state("w.service", "failed");
    assert!(
        w["error"]
            .as_str()
            .unwrap()
            .contains("workdir /nonexistent-workdir: No such file or directory"),
        "{w}"
    );
    let failed = wait_for("k's failure in the journal", || {
        d.entries(&["-u", "k"]).into_iter().find(|e| {
            e["msg"]
                .as_str()
                .unwrap_or("")
                .starts_with("Failed: killed by SIGKILL")
        })
    });
    assert_eq!(failed["level"], "ERROR", "{failed}");
}
