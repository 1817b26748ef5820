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
    assert_eq!(d.state("a.service"), "running");

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
