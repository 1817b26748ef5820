//! Supervision: restarts with backoff and a start limit, process groups and orphans, the
//! sd_notify protocol (readiness, status, watchdog), health checks, shutdown order, the
//! daemon's own sd_notify, and PID 1.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use asyncmd_e2e::{
    output_within, run_within, stderr, stdout, wait_for, Daemon, Setup, Signal, DEADLINE,
};

const LOOP: &str = "while :; do sleep 1; done";

/// Journal entries of `unit` whose message starts with `prefix`, as (time µs, message).
fn logged(d: &Daemon, unit: &str, prefix: &str) -> Vec<(i64, String)> {
    d.entries(&["-u", unit])
        .iter()
        .filter_map(|e| {
            let msg = e["msg"].as_str()?;
            msg.starts_with(prefix)
                .then(|| (e["time_us"].as_i64().unwrap(), msg.to_string()))
        })
        .collect()
}

/// Processes whose command line is exactly `argv`.
fn pids_of(argv: &[&str]) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .ok()
                .as_deref()
                == Some(&want[..])
        })
        .collect()
}

/// Zombie children of `ppid`.
fn zombies_of(ppid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
                return false;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.first() == Some(&"Z") && f.get(1).and_then(|p| p.parse().ok()) == Some(ppid)
        })
        .collect()
}

fn gate() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    (dir, go)
}

#[test]
fn restart_delays_grow_cap_and_reset_after_a_long_run() {
    let counter = tempfile::tempdir().unwrap();
    let count = counter.path().join("n");
    // Runs 1-3 and 5-6 fail at once (well within restart_reset_after, even on a loaded
    // machine); run 4 lasts longer than restart_reset_after first.
    let script = format!(
        "n=$(($(cat {c} 2>/dev/null || echo 0) + 1)); echo $n > {c}; \
         if [ $n -eq 4 ]; then sleep 4; fi; if [ $n -ge 7 ]; then exec sleep 1000; fi; exit 1",
        c = count.display()
    );
    let d = Setup::new()
        .unit(
            "flap.service",
            &format!(
                "[service]\nexec = [\"sh\", \"-c\", '''{script}''']\nrestart = \"on-failure\"\n\
                 restart_delay = \"200ms\"\nrestart_max_delay = \"500ms\"\nrestart_reset_after = \"3s\"\n\
                 start_limit = 0\n"
            ),
        )
        .boot();
    wait_for("the 7th run", || {
        (logged(&d, "flap", "Started").len() >= 7).then_some(())
    });
    let fails = logged(&d, "flap", "Failed");
    let starts = logged(&d, "flap", "Started");
    // The gap from each failure to the next start is the delay it waited.
    let gaps: Vec<i64> = (0..6).map(|i| starts[i + 1].0 - fails[i].0).collect();
    let expected_ms = [200, 400, 500, 200, 400, 500];
    for (i, (&gap, &ms)) in gaps.iter().zip(&expected_ms).enumerate() {
        assert!(
            gap >= ms * 1000 && gap < ms * 1000 + 1_500_000,
            "delay {i}: {gap} µs, expected {ms} ms (gaps {gaps:?})"
        );
        assert!(
            fails[i].1.contains(&format!("restarting in {ms}ms")),
            "{}",
            fails[i].1
        );
    }
    let s = d.wait_state("flap.service", "running");
    assert_eq!(s["restarts"], 6);
    assert_eq!(s["last_exit"], "exit status 1");
}

#[test]
fn the_start_limit_gives_up_and_a_manual_start_always_works() {
    let d = Setup::new()
        .unit(
            "bad.service",
            "[service]\nexec = [\"sh\", \"-c\", \"echo broken >&2; exit 2\"]\nrestart = \"always\"\n\
             restart_delay = \"20ms\"\nstart_limit = 3\nstart_limit_interval = \"1m\"\n",
        )
        .unit(
            "slow.service",
            "[service]\nexec = [\"sh\", \"-c\", \"exit 1\"]\nrestart = \"on-failure\"\nrestart_delay = \"1h\"\n",
        )
        .boot();
    let s = wait_for("bad.service to give up", || {
        let s = d.status("bad.service");
        (s["state"] == "failed").then_some(s)
    });
    assert!(
        s["error"]
            .as_str()
            .unwrap()
            .contains("start limit hit: 3 failures within 1m"),
        "{s}"
    );
    assert_eq!(s["starts"], 3);
    // A manual start is not refused by the limit: it runs, and (this unit failing at once) says
    // how its run ended.
    let o = d.ctl(&["start", "bad"]);
    assert!(
        stderr(&o).contains("Failed on bad.service: exit status 2: broken"),
        "a manual start runs it: {}",
        stderr(&o)
    );
    let s = wait_for("the manual start to run and give up again", || {
        let s = d.status("bad.service");
        (s["state"] == "failed" && s["starts"] == 6).then_some(s)
    });
    assert_eq!(s["restarts"], 2);
    assert!(d.ctl(&["reset-failed", "bad"]).status.success());
    assert_eq!(d.state("bad.service"), "inactive");

    // While it waits for its restart, status says when; a stop cancels it.
    let s = d.wait_state("slow.service", "restarting");
    assert!(s["next_restart_us"].as_i64().unwrap() > s["since_us"].as_i64().unwrap());
    let text = stdout(&d.ctl(&["status", "slow*"]));
    assert!(
        text.contains("restarting (restart 1; last exit: exit status 1) --> next restart in 3599")
            || text.contains("--> next restart in 3600 s"),
        "{text}"
    );
    assert!(d.ctl(&["stop", "slow"]).status.success());
    assert_eq!(d.state("slow.service"), "stopped");
}

#[test]
fn a_double_forking_service_leaves_nothing_behind() {
    // Durations unique to this run (`sleep 7771.PID`...), so that what a failed earlier run
    // left behind is never taken for this run's processes.
    let secs: Vec<String> = (1..=4)
        .map(|i| format!("777{i}.{}", std::process::id()))
        .collect();
    let d = Setup::new()
        .sh(
            "forks.service",
            "",
            &format!(
                "setsid sh -c 'exec sleep {}' & (sleep {} &) ; exec sleep {}",
                secs[0], secs[1], secs[2]
            ),
        )
        .sh(
            "leaves.service",
            "type = \"oneshot\"",
            &format!("setsid sh -c 'exec sleep {}' & exit 0", secs[3]),
        )
        .boot();
    wait_for("the forked processes", || {
        (pids_of(&["sleep", &secs[0]]).len() == 1 && pids_of(&["sleep", &secs[1]]).len() == 1)
            .then_some(())
    });
    assert!(d.ctl(&["stop", "forks"]).status.success());
    // The oneshot ended at once; what it left behind was stopped with it.
    assert_eq!(d.state("leaves.service"), "done");
    wait_for("every process of both units to be gone", || {
        secs.iter()
            .all(|n| pids_of(&["sleep", n]).is_empty())
            .then_some(())
    });
    wait_for("no zombie under the daemon", || {
        zombies_of(d.pid()).is_empty().then_some(())
    });
    // Stopped by the run's clean-up, or (when it was caught mid-exec, its environment not
    // readable yet) by the sweep of stray orphans a second later.
    let j = stdout(&d.journal(&["-u", "leaves", "-o", "cat"]));
    assert!(
        j.contains("leftover process") || j.contains("Killing stray process"),
        "{j}"
    );
}

const NOTIFY: &str = "import os, socket, sys, time\n\
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
def send(m): s.sendto(m.encode(), os.environ['NOTIFY_SOCKET'])\n";

fn python_unit(lines: &str, code: &str) -> String {
    let code = format!("{NOTIFY}{code}");
    format!(
        "[unit]\n{lines}\n[service]\nexec = [\"python3\", \"-c\", '''{code}''']\nstop_timeout = \"2s\"\n"
    )
}

#[test]
fn a_notify_unit_is_ready_only_on_ready_and_reports_its_status() {
    let (_g, go) = gate();
    let code = format!(
        "send('STATUS=warming up')\nwhile not os.path.exists('{}'): time.sleep(0.05)\n\
         send('READY=1\\nSTATUS=serving 3 clients')\nwhile True: time.sleep(1)\n",
        go.display()
    );
    let d = Setup::new()
        .unit("svc.service", &python_unit("type = \"notify\"", &code))
        .sh("app.service", "requires = [\"svc.service\"]", LOOP)
        .spawn();
    d.wait_listening();
    let s = wait_for("svc.service to say it warms up", || {
        let s = d.status("svc.service");
        (s["status_text"] == "warming up").then_some(s)
    });
    assert_eq!(s["state"], "starting", "no READY=1 yet");
    assert_eq!(d.state("app.service"), "waiting");
    std::fs::write(&go, "").unwrap();
    d.wait_booted();
    let s = d.status("svc.service");
    assert_eq!(s["state"], "running");
    assert_eq!(s["status_text"], "serving 3 clients");
    assert_eq!(d.state("app.service"), "running");
    let text = stdout(&d.ctl(&["status", "svc.service"]));
    assert!(text.contains("Status: \"serving 3 clients\""), "{text}");
}

#[test]
fn a_silent_watchdog_unit_is_killed_and_restarted() {
    let code = "send('READY=1')\nfor i in range(3):\n    send('WATCHDOG=1')\n    time.sleep(0.1)\n\
                while True: time.sleep(1)\n";
    let d = Setup::new()
        .unit(
            "dog.service",
            &python_unit("type = \"notify\"", code).replace(
                "stop_timeout",
                "watchdog = \"600ms\"\nrestart = \"on-failure\"\nstop_timeout",
            ),
        )
        .boot();
    let s = wait_for("a restart after the watchdog timeout", || {
        let s = d.status("dog.service");
        (s["starts"].as_u64() >= Some(2)).then_some(s)
    });
    assert!(
        s["last_exit"]
            .as_str()
            .unwrap()
            .starts_with("watchdog timeout (no WATCHDOG=1 within 600ms)"),
        "{s}"
    );
    let j = stdout(&d.journal(&["-u", "dog", "-o", "cat"]));
    assert!(
        j.contains("watchdog timeout (no WATCHDOG=1 within 600ms): sending SIGABRT"),
        "{j}"
    );
}

#[test]
fn a_failing_health_check_restarts_the_unit() {
    let (_g, go) = gate();
    let d = Setup::new()
        .unit(
            "web.service",
            &format!(
                "[service]\nexec = [\"sleep\", \"1000\"]\nrestart = \"on-failure\"\nrestart_delay = \"50ms\"\n\
                 [health]\nexec = [\"test\", \"-e\", \"{}\"]\ninterval = \"100ms\"\ntimeout = \"5s\"\nretries = 2\n",
                go.display()
            ),
        )
        .boot();
    let s = wait_for("a restart after failed checks", || {
        let s = d.status("web.service");
        (s["starts"].as_u64() >= Some(2)).then_some(s)
    });
    assert!(
        s["last_exit"]
            .as_str()
            .unwrap()
            .starts_with("health check failed 2 times in a row: exit status 1"),
        "{s}"
    );
    std::fs::write(&go, "").unwrap();
    let s = wait_for("a healthy check", || {
        let s = d.status("web.service");
        s["health"]
            .as_str()
            .filter(|h| h.starts_with("ok @"))
            .map(|_| s.clone())
    });
    assert_eq!(s["state"], "running");
    let text = stdout(&d.ctl(&["status", "web.service"]));
    assert!(text.contains("Health: ok @ "), "{text}");
}

#[test]
fn shutdown_stops_units_in_reverse_dependency_order() {
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("order");
    let ready = out.path().join("ready");
    let unit = |name: &str, lines: &str| {
        // Ready once the trap is set: a SIGTERM before it would end the shell unrecorded.
        let script = format!(
            "trap 'echo {name} >> {}; exit 0' TERM; echo {name} >> {}; while :; do sleep 0.05; done",
            log.display(),
            ready.display()
        );
        format!("[unit]\n{lines}\n[service]\nexec = [\"sh\", \"-c\", \"{script}\"]\n")
    };
    let mut d = Setup::new()
        .unit("base.service", &unit("base", "type = \"core\""))
        .unit("db.service", &unit("db", "requires = [\"base.service\"]"))
        .unit("app.service", &unit("app", "requires = [\"db.service\"]"))
        .unit("ui.service", &unit("ui", "after = [\"app.service\"]"))
        .unit("free.service", &unit("free", ""))
        .boot();
    wait_for("every unit to have set its trap", || {
        let n = std::fs::read_to_string(&ready).ok()?.lines().count();
        (n == 5).then_some(())
    });
    assert_eq!(d.stop(), Some(0));
    let order = std::fs::read_to_string(&log).unwrap();
    let order: Vec<&str> = order.lines().collect();
    let at = |n: &str| {
        order
            .iter()
            .position(|x| *x == n)
            .unwrap_or_else(|| panic!("{n} in {order:?}"))
    };
    assert!(
        at("ui") < at("app") && at("app") < at("db") && at("db") < at("base"),
        "{order:?}"
    );
    assert!(at("free") < at("base"), "core units stop last: {order:?}");
}

#[test]
fn the_daemon_speaks_sd_notify_to_its_own_manager() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("systemd.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut d = Setup::new()
        .sh("a.service", "", LOOP)
        .env("NOTIFY_SOCKET", path.to_str().unwrap())
        .env("WATCHDOG_USEC", "400000")
        .spawn();
    let mut buf = [0u8; 4096];
    let mut next = || {
        let n = sock.recv(&mut buf).expect("a datagram from asyncmdd");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    // The watchdog pinger may speak before the boot is done: READY is matched, not placed.
    // Pings come every 200 ms, so each read returns soon: the loops need deadlines of their own.
    let t0 = Instant::now();
    let ready = loop {
        assert!(t0.elapsed() < DEADLINE, "no READY=1 among the pings");
        let m = next();
        if m != "WATCHDOG=1" {
            break m;
        }
    };
    assert_eq!(ready, "READY=1\nSTATUS=1 of 1 units running");
    let mut pings = 0;
    while pings < 2 {
        let m = next();
        assert_eq!(m, "WATCHDOG=1");
        pings += 1;
    }
    d.signal(Signal::SIGTERM);
    let t0 = Instant::now();
    loop {
        assert!(t0.elapsed() < DEADLINE, "no STOPPING=1 among the pings");
        let m = next();
        if m.starts_with("STOPPING=1") {
            break;
        }
        assert_eq!(m, "WATCHDOG=1");
    }
    assert_eq!(d.wait_exit(), Some(0));
}

#[test]
fn as_pid_1_it_reaps_orphans_and_a_failed_core_unit_fails_the_container() {
    asyncmd_e2e::require_root("the PID 1 test (unshare -pf)");
    let args = ["-pf", "--kill-child", "--mount-proc", "true"];
    let mut check = Command::new("unshare");
    check.args(args);
    let check = run_within(check, "unshare", &args);
    assert!(
        check.status.success(),
        "unshare -pf --kill-child --mount-proc does not work here: {}",
        stderr(&check)
    );
    let out = tempfile::tempdir().unwrap();
    let made = out.path().join("made");
    // Each loop leaves an orphan that ends 10 ms later: PID 1 must reap every one.
    let script = format!(
        "i=0; while :; do (sleep 0.01 &); i=$((i+1)); echo $i > {}; sleep 0.02; done",
        made.display()
    );
    let mut d = Setup::new()
        .sh("orphans.service", "", &script)
        .unit(
            "core.service",
            "[unit]\ntype = \"core\"\n[service]\nexec = [\"sh\", \"-c\", \"exit 3\"]\n",
        )
        // --kill-child: if the test fails, the namespace (daemon, orphan loop) goes with the
        // wrapper when the harness stops it.
        .wrapped(&["unshare", "-pf", "--kill-child", "--mount-proc"])
        .boot();
    // The daemon is the wrapper's child, and PID 1 of its namespace.
    let daemon: u32 = wait_for("the daemon under unshare", || {
        let kids = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", d.pid())).ok()?;
        kids.split_whitespace().next()?.parse().ok()
    });
    let status = std::fs::read_to_string(format!("/proc/{daemon}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("NSpid:") && l.trim_end().ends_with("\t1")),
        "{status}"
    );
    wait_for("50 orphans made", || {
        let n: u32 = std::fs::read_to_string(&made).ok()?.trim().parse().ok()?;
        (n >= 50).then_some(())
    });
    // Unreaped, they would pile up as zombies under PID 1; reaped, at most a fresh one or two.
    wait_for("no pile of zombies under PID 1", || {
        (zombies_of(daemon).len() <= 2).then_some(())
    });
    assert_eq!(d.state("core.service"), "failed");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon as i32), Signal::SIGTERM).unwrap();
    assert_eq!(
        d.wait_exit(),
        Some(1),
        "a failed core unit makes the exit status non-zero"
    );
    let err = std::fs::read_to_string(d.dir.path().join("daemon.err")).unwrap();
    assert!(err.contains("core unit(s) failed: core.service"), "{err}");
}

#[test]
fn the_watcher_counts_errors_and_feeds_the_watchdog_device() {
    let dev = tempfile::tempdir().unwrap();
    let wd = dev.path().join("watchdog");
    std::fs::write(&wd, "").unwrap();
    let mut d = Setup::new()
        .unit("watcher.service", "[service]\nbuiltin = \"watcher\"\n")
        .sh("bad.service", "type = \"oneshot\"", "echo 'no disk' >&2; exit 1")
        .config(&format!(
            r#"{{"watcher": {{"kwargs": {{"interval": 0.1, "watchdog_device": "{}", "watchdog_interval": 0.05}}}}}}"#,
            wd.display()
        ))
        .boot();
    let s = wait_for("the watcher to count bad.service's failure", || {
        let s = d.status("watcher.service");
        (s["stats"]["errors"]["bad.service"] == 1).then_some(s)
    });
    assert_eq!(s["state"], "running");
    assert_eq!(
        s["stats"]["last_errors"],
        serde_json::json!(["bad.service"])
    );
    assert!(d.ctl(&["start", "bad"]).status.code() == Some(1));
    wait_for("a second failure counted", || {
        (d.status("watcher.service")["stats"]["errors"]["bad.service"] == 2).then_some(())
    });
    let text = stdout(&d.ctl(&["status", "watcher.service"]));
    assert!(
        text.contains("Stats: errors: {\"bad.service\":2}"),
        "{text}"
    );
    wait_for("a few pings of the device", || {
        (std::fs::read_to_string(&wd).unwrap().matches('.').count() >= 3).then_some(())
    });
    assert_eq!(d.stop(), Some(0));
    let written = std::fs::read_to_string(&wd).unwrap();
    assert!(
        written.ends_with('V'),
        "magic close on a clean stop: {written:?}"
    );
    assert!(
        written.trim_end_matches('V').chars().all(|c| c == '.'),
        "{written:?}"
    );
}

#[test]
fn an_unknown_builtin_is_an_error_that_names_the_ones_there_are() {
    let d = Setup::new()
        .unit("x.service", "[service]\nbuiltin = \"nope\"\n")
        .boot();
    assert!(
        d.report().contains(
            "builtin service 'nope' does not exist in this version of asyncmdd (there is: hello, mqtt, sensor, stats, watcher, world)"
        ),
        "{}",
        d.report()
    );
}

#[test]
fn a_datagram_with_descriptors_does_not_deafen_the_notify_socket() {
    let code = "import array\nfds = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', [0, 1, 2]))]\n\
                s.sendmsg([b'FDSTORE=1'], fds, 0, os.environ['NOTIFY_SOCKET'])\n\
                send('X' * 10000)\nsend('READY=1\\nSTATUS=still heard')\nwhile True: time.sleep(1)\n";
    let d = Setup::new()
        .unit("fds.service", &python_unit("type = \"notify\"", code))
        .boot();
    let s = d.status("fds.service");
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["status_text"], "still heard");
}

/// Writes a Python sd_notify client (`send(msg)` defined) to `dir/name`; returns its path.
fn py_script(dir: &Path, name: &str, code: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{NOTIFY}{code}")).unwrap();
    path
}

/// The messages `unit` logged, in order.
fn messages(d: &Daemon, unit: &str) -> Vec<String> {
    logged(d, unit, "").into_iter().map(|(_, m)| m).collect()
}

/// `asyncmctl status UNIT`, the detailed view, as text.
fn detailed(d: &Daemon, unit: &str) -> String {
    stdout(&d.ctl(&["status", unit]))
}

#[test]
fn stop_sends_the_units_stop_signal_first() {
    let out = tempfile::tempdir().unwrap();
    let got = out.path().join("got");
    let armed = out.path().join("armed");
    let script = format!(
        "trap 'echo INT >> {g}; exit 0' INT; trap 'echo TERM >> {g}; exit 0' TERM; \
         touch {a}; while :; do sleep 0.05; done",
        g = got.display(),
        a = armed.display()
    );
    let d = Setup::new()
        .unit(
            "int.service",
            &format!(
                "[service]\nexec = [\"sh\", \"-c\", '''{script}''']\nstop_signal = \"SIGINT\"\nstop_timeout = \"30s\"\n"
            ),
        )
        .boot();
    wait_for("the service's traps to be set", || {
        armed.exists().then_some(())
    });
    let o = d.ctl(&["stop", "int"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&got).unwrap(),
        "INT\n",
        "SIGINT came first, and the service ended on it"
    );
    let s = d.status("int.service");
    assert_eq!(s["state"], "stopped", "{s}");
    let j = messages(&d, "int");
    assert!(j.iter().any(|m| m == "Stopped (exit status 0)"), "{j:?}");
    assert!(!j.iter().any(|m| m.contains("SIGKILL")), "{j:?}");
}

#[test]
fn a_notify_unit_without_ready_is_killed_at_its_start_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("late.pid");
    // The unit's process notes its pid while it is still starting.
    let script = format!(
        "echo $$ > {p}.new; mv {p}.new {p}; while :; do sleep 0.05; done",
        p = pid_file.display()
    );
    let d = Setup::new()
        .unit(
            "late.service",
            &format!(
                "[unit]\ntype = \"notify\"\n[service]\nexec = [\"sh\", \"-c\", '''{script}''']\n\
                 start_timeout = \"1s\"\nstop_timeout = \"10s\"\n"
            ),
        )
        .boot();
    assert!(
        d.report().contains(
            "[ ERROR ] Service: late.service from units/late.service not loaded: Error: no READY=1 within 1s"
        ),
        "{}",
        d.report()
    );
    // Failed only once its process ended: it loops forever, so it was killed.
    let s = d.wait_state("late.service", "failed");
    assert_eq!(s["error"], "no READY=1 within 1s", "{s}");
    assert_eq!(s["last_exit"], "no READY=1 within 1s", "{s}");
    assert_eq!(s["pid"], serde_json::Value::Null, "{s}");
    assert_eq!(s["starts"], 1, "{s}");
    let ran = s["done_us"].as_i64().unwrap() - s["started_us"].as_i64().unwrap();
    assert!(ran >= 1_000_000, "killed after {ran} µs, before its 1s");
    let j = messages(&d, "late");
    assert!(
        j.iter()
            .any(|m| m == "no READY=1 within 1s: sending SIGTERM"),
        "{j:?}"
    );
    assert!(
        j.iter().any(|m| m == "Failed: no READY=1 within 1s"),
        "{j:?}"
    );
    let text = detailed(&d, "late.service");
    assert!(text.contains("Last exit: no READY=1 within 1s"), "{text}");
    // The process it started while starting is the one that was killed: it is gone.
    let pid = pid_in(&pid_file);
    assert!(
        j.iter().any(|m| *m == format!("Started (pid {pid})")),
        "{j:?}"
    );
    wait_for(&format!("process {pid} to be gone"), || {
        (!Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
}

#[test]
fn a_unit_with_a_watchdog_gets_watchdog_usec_in_microseconds_and_no_other_does() {
    let show = "echo \"usec=${WATCHDOG_USEC:-none} pid=${WATCHDOG_PID:-none}\"";
    let oneshot = |service: &str| {
        format!(
            "[unit]\ntype = \"oneshot\"\n[service]\nexec = [\"sh\", \"-c\", '''{show}''']\n{service}"
        )
    };
    // The daemon's own watchdog settings (as systemd gives them) are for it, not its services.
    let d = Setup::new()
        .unit("dog.service", &oneshot("watchdog = \"90s\"\n"))
        .unit("plain.service", &oneshot(""))
        .env("WATCHDOG_USEC", "400000")
        .env("WATCHDOG_PID", "1")
        .boot();
    assert_eq!(d.state("dog.service"), "done");
    assert_eq!(d.state("plain.service"), "done");
    let dog = messages(&d, "dog");
    assert!(dog.iter().any(|m| m == "usec=90000000 pid=none"), "{dog:?}");
    let plain = messages(&d, "plain");
    assert!(plain.iter().any(|m| m == "usec=none pid=none"), "{plain:?}");
}

/// Waits for the number process `path` holds (written by it, whole, with a rename).
fn pid_in(path: &Path) -> u32 {
    wait_for(&format!("a pid in {}", path.display()), || {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    })
}

/// Whether process `pid` carries a run tag in its environment.
fn tagged(pid: u32) -> bool {
    let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    String::from_utf8_lossy(&env).contains("ASYNCMD_INVOCATION=")
}

#[test]
fn mainpid_names_a_new_main_process_and_stopping_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let at = |name: &str| dir.path().join(name);
    let (main_pid, new_pid, stray_pid) = (at("main.pid"), at("new.pid"), at("stray.pid"));
    let (gate, stray_sent, gate2, gate3) = (at("gate"), at("stray_sent"), at("gate2"), at("gate3"));
    // Writes this process's pid to `path`, whole.
    let own_pid = |path: &Path| {
        format!(
            "open('{p}.new', 'w').write(str(os.getpid()))\nos.rename('{p}.new', '{p}')\n",
            p = path.display()
        )
    };
    let wait = |path: &Path| {
        format!(
            "while not os.path.exists('{}'): time.sleep(0.05)\n",
            path.display()
        )
    };
    // The new main process: started afresh with `env -i`, so it carries no run tag and has
    // never spoken before it is named. Only its MAINPID= says whose it is. It makes the unit
    // ready once the stray descendant below has spoken.
    let new_main = py_script(
        dir.path(),
        "new_main.py",
        &format!(
            "import signal\n{own}\
             def term(*_):\n    send('STOPPING=1\\nSTATUS=stopping')\n\
             \x20   while not os.path.exists('{g3}'): time.sleep(0.05)\n    sys.exit(0)\n\
             signal.signal(signal.SIGTERM, term)\n{wait_stray}send('READY=1')\n\
             {wait2}send('STATUS=the new main speaks')\nwhile True: time.sleep(1)\n",
            own = own_pid(&new_pid),
            g3 = gate3.display(),
            wait_stray = wait(&stray_sent),
            wait2 = wait(&gate2),
        ),
    );
    // A descendant of the run that sheds its tag too but is named by no MAINPID=: what it
    // says is nobody's. It stays alive, so the daemon can look at it.
    let stray = py_script(
        dir.path(),
        "stray.py",
        &format!(
            "{own}{wait_gate}send('STATUS=a stray descendant speaks')\n\
             open('{sent}', 'w').close()\nwhile True: time.sleep(1)\n",
            own = own_pid(&stray_pid),
            wait_gate = wait(&gate),
            sent = stray_sent.display(),
        ),
    );
    // The spawned process: starts both afresh, and names the new main once it runs untagged.
    let main = py_script(
        dir.path(),
        "main.py",
        &format!(
            "import signal, subprocess\n{own}\
             def fresh(script):\n\
             \x20   return subprocess.Popen(['env', '-i', 'NOTIFY_SOCKET=' + os.environ['NOTIFY_SOCKET'], sys.executable, script])\n\
             new = fresh('{new}')\nstray = fresh('{stray}')\n{wait_new}\
             send('MAINPID=%d\\nSTATUS=claimed' % new.pid)\n\
             def term(*_):\n    new.wait()\n    stray.wait()\n    sys.exit(0)\n\
             signal.signal(signal.SIGTERM, term)\nwhile True: time.sleep(1)\n",
            own = own_pid(&main_pid),
            new = new_main.display(),
            stray = stray.display(),
            wait_new = wait(&new_pid),
        ),
    );
    let d = Setup::new()
        .unit(
            "m.service",
            &format!(
                "[unit]\ntype = \"notify\"\n[service]\nexec = [\"python3\", \"{}\"]\n\
                 start_timeout = \"5m\"\nstop_timeout = \"30s\"\n",
                main.display()
            ),
        )
        .spawn();
    d.wait_listening();
    let s = wait_for("the MAINPID= of the spawned process", || {
        let s = d.status("m.service");
        (s["status_text"] == "claimed").then_some(s)
    });
    assert_eq!(s["state"], "starting", "{s}");
    let (main_pid, new_pid, stray_pid) = (pid_in(&main_pid), pid_in(&new_pid), pid_in(&stray_pid));
    assert_eq!(s["pid"], main_pid, "status shows the spawned process: {s}");
    assert_ne!(new_pid, main_pid);
    assert!(tagged(main_pid), "the spawned process carries the run tag");
    assert!(!tagged(new_pid), "the new main carries no run tag");
    assert!(
        !tagged(stray_pid),
        "the stray descendant carries no run tag"
    );

    // The stray speaks first, then the new main says READY=1: only the new main is heard.
    std::fs::write(&gate, "").unwrap();
    d.wait_booted();
    let s = d.wait_state("m.service", "running");
    assert_eq!(
        s["status_text"], "claimed",
        "the stray descendant was heard: {s}"
    );
    assert_eq!(s["pid"], main_pid, "{s}");
    assert!(
        messages(&d, "m").iter().any(|m| m == "Ready (READY=1)"),
        "{:?}",
        messages(&d, "m")
    );
    std::fs::write(&gate2, "").unwrap();
    let s = wait_for("the new main's STATUS=", || {
        let s = d.status("m.service");
        (s["status_text"] == "the new main speaks").then_some(s)
    });
    assert_eq!(s["pid"], main_pid, "{s}");

    // Its STOPPING=1 is heard while it stops.
    let stop = Command::new(asyncmd_e2e::bin("asyncmctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["stop", "m"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("Stopping (STOPPING=1) in the journal", || {
        messages(&d, "m")
            .iter()
            .any(|m| m == "Stopping (STOPPING=1)")
            .then_some(())
    });
    let s = d.status("m.service");
    assert_eq!(s["state"], "stopping", "{s}");
    assert_eq!(s["status_text"], "stopping", "{s}");
    std::fs::write(&gate3, "").unwrap();
    let o = output_within(stop, "asyncmctl stop");
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(d.state("m.service"), "stopped");
    let j = messages(&d, "m");
    let at = |p: &str| j.iter().position(|m| m.starts_with(p));
    assert!(
        at("Stopping (STOPPING=1)") < at("Stopped (") && at("Stopped (").is_some(),
        "{j:?}"
    );
}

#[test]
fn datagrams_from_other_processes_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let (gate, gate2) = (dir.path().join("gate"), dir.path().join("gate2"));
    let code = format!(
        "send('STATUS=waiting for the gate')\n\
         while not os.path.exists('{g}'): time.sleep(0.05)\nsend('STATUS=genuine')\n\
         while not os.path.exists('{g2}'): time.sleep(0.05)\nsend('READY=1')\n\
         while True: time.sleep(1)\n",
        g = gate.display(),
        g2 = gate2.display()
    );
    let d = Setup::new()
        .unit("svc.service", &python_unit("type = \"notify\"", &code))
        .spawn();
    d.wait_listening();
    wait_for("svc.service to wait for its gate", || {
        (d.status("svc.service")["status_text"] == "waiting for the gate").then_some(())
    });
    // This test process is no process of the unit's run.
    let forger = UnixDatagram::unbound().unwrap();
    let notify = d.socket.with_extension("notify");
    forger
        .send_to(b"READY=1\nSTATUS=forged", &notify)
        .expect("the notify socket takes a datagram");
    // The unit's own next datagram is read after the forged one.
    std::fs::write(&gate, "").unwrap();
    let s = wait_for("the unit's own STATUS=", || {
        let s = d.status("svc.service");
        (s["status_text"] == "genuine").then_some(s)
    });
    assert_eq!(
        s["state"], "starting",
        "a forged READY=1 made it ready: {s}"
    );
    forger.send_to(b"STATUS=forged again", &notify).unwrap();
    std::fs::write(&gate2, "").unwrap();
    d.wait_booted();
    let s = d.wait_state("svc.service", "running");
    assert_eq!(
        s["status_text"], "genuine",
        "a forged STATUS= was taken: {s}"
    );
    let j = messages(&d, "svc");
    assert_eq!(
        j.iter().filter(|m| *m == "Ready (READY=1)").count(),
        1,
        "{j:?}"
    );
}

#[test]
fn a_service_reads_dev_null_not_the_daemons_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("daemon-stdin");
    std::fs::write(&input, "for the daemon only\n").unwrap();
    let redirect = format!("exec \"$@\" < {}", input.display());
    let d = Setup::new()
        .sh(
            "reader.service",
            "type = \"oneshot\"",
            "readlink /proc/self/fd/0; n=$(cat | wc -c); echo \"read $n bytes\"",
        )
        .wrapped(&["sh", "-c", &redirect, "sh"])
        .boot();
    // The daemon itself has something to read: a service that inherited it would too.
    assert_eq!(
        std::fs::read_link(format!("/proc/{}/fd/0", d.pid())).unwrap(),
        input
    );
    assert_eq!(d.state("reader.service"), "done");
    let j = messages(&d, "reader");
    assert!(j.iter().any(|m| m == "/dev/null"), "{j:?}");
    assert!(j.iter().any(|m| m == "read 0 bytes"), "{j:?}");
}

#[test]
fn workdir_is_relative_to_the_unit_files_directory() {
    let unit = |dir: &str| {
        format!(
            "[service]\nexec = [\"sh\", \"-c\", \"pwd; exec sleep 1000\"]\nworkdir = \"{dir}\"\n"
        )
    };
    let d = Setup::new()
        .unit("here.service", &unit("."))
        .unit("sub.service", &unit("sub"))
        .config(r#"{"sub": {"enabled": false}}"#)
        .boot();
    std::fs::create_dir(d.units().join("sub")).unwrap();
    let o = d.ctl(&["start", "sub"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    // The daemon runs in the directory above units/: a workdir taken from there would differ.
    for (name, want) in [("here", d.units()), ("sub", d.units().join("sub"))] {
        let want = want.canonicalize().unwrap();
        let s = d.wait_state(&format!("{name}.service"), "running");
        let pid = s["pid"].as_u64().unwrap();
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
        assert_eq!(cwd, want, "{name}.service");
        let line = want.display().to_string();
        wait_for(&format!("{name}.service to print its directory"), || {
            messages(&d, name).contains(&line).then_some(())
        });
    }
}

#[test]
fn status_shows_failing_checks_in_a_row_and_an_ok_one() {
    let dir = tempfile::tempdir().unwrap();
    let gate = |name: &str| dir.path().join(name);
    let count = gate("checks");
    // Checks 1 and 2 fail; 3 waits for `pass`, then passes; 4 waits for `fail`, then fails;
    // the later ones wait for `end`, then pass. While a check waits, the status shows the
    // result of the one before it.
    let check = format!(
        "n=$(($(cat {c} 2>/dev/null || echo 0) + 1)); echo $n > {c}; \
         case $n in 1|2) exit 1;; 3) w={pass}; r=0;; 4) w={fail}; r=1;; *) w={end}; r=0;; esac; \
         while [ ! -e $w ]; do sleep 0.05; done; exit $r",
        c = count.display(),
        pass = gate("pass").display(),
        fail = gate("fail").display(),
        end = gate("end").display(),
    );
    let d = Setup::new()
        .unit(
            "web.service",
            &format!(
                "[service]\nexec = [\"sleep\", \"1000\"]\n\
                 [health]\nexec = [\"sh\", \"-c\", '''{check}''']\ninterval = \"100ms\"\ntimeout = \"5m\"\nretries = 3\n"
            ),
        )
        .boot();
    let check_running = |n: u32| {
        wait_for(&format!("health check {n} to run"), || {
            let got: u32 = std::fs::read_to_string(&count).ok()?.trim().parse().ok()?;
            (got == n).then_some(())
        })
    };
    let health = |re: &str| {
        let text = detailed(&d, "web.service");
        let re = regex::Regex::new(&format!(r"\n    Health: {re}\n")).unwrap();
        assert!(re.is_match(&text), "no Health: {re} in\n{text}");
        assert!(text.contains("Active: (active) running"), "{text}");
        assert_eq!(d.status("web.service")["starts"], 1, "{text}");
    };
    let at = r"@ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d";
    check_running(3);
    health(&format!(r"failing {at}: exit status 1 \(2 of 3 in a row\)"));
    std::fs::write(gate("pass"), "").unwrap();
    check_running(4);
    health(&format!("ok {at}"));
    std::fs::write(gate("fail"), "").unwrap();
    check_running(5);
    // The ok in between started the count again.
    health(&format!(r"failing {at}: exit status 1 \(1 of 3 in a row\)"));
    std::fs::write(gate("end"), "").unwrap();
}

#[test]
fn the_detailed_view_shows_restarts_and_the_last_exit() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let script = format!(
        "n=$(($(cat {r} 2>/dev/null || echo 0) + 1)); echo $n > {r}; \
         if [ $n -eq 1 ]; then echo 'first run fails' >&2; exit 3; fi; exec sleep 1000",
        r = runs.display()
    );
    let d = Setup::new()
        .unit(
            "flaky.service",
            &format!(
                "[service]\nexec = [\"sh\", \"-c\", '''{script}''']\nrestart = \"on-failure\"\nrestart_delay = \"100ms\"\n"
            ),
        )
        .boot();
    wait_for("the second run", || {
        let s = d.status("flaky.service");
        (s["state"] == "running" && s["starts"] == 2).then_some(())
    });
    let text = detailed(&d, "flaky.service");
    assert!(text.contains("\n    Starts: 2   Restarts: 1\n"), "{text}");
    assert!(
        text.contains("\n    Last exit: exit status 3: first run fails\n"),
        "{text}"
    );
}

#[test]
fn at_shutdown_each_unit_gets_its_own_stop_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (slow_pid, armed, record, marker) = (
        dir.path().join("slow.pid"),
        dir.path().join("armed"),
        dir.path().join("record"),
        dir.path().join("marker"),
    );
    // slow ignores SIGTERM: only its 1s stop timeout's SIGKILL ends it.
    let slow = format!(
        "trap '' TERM; echo $$ > {p}.new; mv {p}.new {p}; while :; do sleep 0.1; done",
        p = slow_pid.display()
    );
    // patient, on SIGTERM: waits for slow to be gone, notes how long that took, then takes
    // until 8 s after the SIGTERM to finish.
    let patient = py_script(
        dir.path(),
        "patient.py",
        &format!(
            "import signal\n\
             def alive(pid):\n    try:\n        return open('/proc/%d/stat' % pid).read().rsplit(')', 1)[1].split()[0] != 'Z'\n\
             \x20   except (OSError, IndexError):\n        return False\n\
             def term(*_):\n    t0 = time.monotonic()\n    slow = int(open('{p}').read())\n\
             \x20   while alive(slow): time.sleep(0.05)\n\
             \x20   open('{r}', 'w').write('%.3f' % (time.monotonic() - t0))\n\
             \x20   while time.monotonic() - t0 < 8: time.sleep(0.1)\n\
             \x20   open('{m}', 'w').write('done')\n    sys.exit(0)\n\
             signal.signal(signal.SIGTERM, term)\nopen('{a}', 'w').close()\nwhile True: time.sleep(1)\n",
            p = slow_pid.display(),
            r = record.display(),
            m = marker.display(),
            a = armed.display()
        ),
    );
    let mut d = Setup::new()
        .unit(
            "slow.service",
            &format!("[service]\nexec = [\"sh\", \"-c\", '''{slow}''']\nstop_timeout = \"1s\"\n"),
        )
        .unit(
            "patient.service",
            &format!(
                "[service]\nexec = [\"python3\", \"{}\"]\nstop_timeout = \"60s\"\n",
                patient.display()
            ),
        )
        .boot();
    wait_for("both services set up", || {
        (slow_pid.exists() && armed.exists()).then_some(())
    });
    assert_eq!(d.stop(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&marker).ok().as_deref(),
        Some("done"),
        "patient was killed before its 60s stop timeout"
    );
    let gone: f64 = std::fs::read_to_string(&record).unwrap().parse().unwrap();
    assert!(
        (0.25..6.0).contains(&gone),
        "slow was gone {gone} s after the SIGTERM: not at its own 1s stop timeout"
    );
}

#[test]
fn the_watcher_keeps_the_last_five_failed_units_and_counts_each() {
    let names = ["e1", "e2", "e3", "e4", "e5", "e6"];
    let mut setup = Setup::new().unit("watcher.service", "[service]\nbuiltin = \"watcher\"\n");
    let mut config = vec![r#""watcher": {"kwargs": {"interval": 0.05}}"#.to_string()];
    for n in names {
        setup = setup.sh(&format!("{n}.service"), "type = \"oneshot\"", "exit 1");
        config.push(format!(r#""{n}": {{"enabled": false}}"#));
    }
    let d = setup.config(&format!("{{{}}}", config.join(", "))).boot();
    let stats = || d.status("watcher.service")["stats"].clone();
    // One failure at a time, each seen by the watcher before the next.
    let fail = |n: &str| {
        let count = |s: &serde_json::Value| s["errors"][format!("{n}.service")].as_u64();
        let before = count(&stats()).unwrap_or(0);
        assert_eq!(d.ctl(&["start", n]).status.code(), Some(1), "{n} fails");
        wait_for(&format!("the watcher to count {n}'s failure"), || {
            let s = stats();
            (count(&s) == Some(before + 1)).then_some(s)
        })
    };
    let services =
        |ns: &[&str]| -> serde_json::Value { ns.iter().map(|n| format!("{n}.service")).collect() };
    for n in names {
        fail(n);
    }
    // Six failed: the first one is no longer among the last five.
    assert_eq!(
        stats()["last_errors"],
        services(&["e2", "e3", "e4", "e5", "e6"])
    );
    fail("e1");
    // A unit that fails again moves to the end, once.
    let s = fail("e6");
    assert_eq!(s["last_errors"], services(&["e3", "e4", "e5", "e1", "e6"]));
    assert_eq!(
        s["errors"],
        serde_json::json!({"e1.service": 2, "e2.service": 1, "e3.service": 1,
            "e4.service": 1, "e5.service": 1, "e6.service": 2})
    );
    let text = detailed(&d, "watcher.service");
    assert!(
        text.contains(
            r#"last_errors: ["e3.service","e4.service","e5.service","e1.service","e6.service"]"#
        ),
        "{text}"
    );
}

#[test]
fn the_daemon_raises_its_open_file_limit_and_services_get_the_one_it_was_given() {
    let d = Setup::new()
        .sh(
            "n.service",
            "",
            "echo \"nofile $(ulimit -Sn)\"; exec sleep 1000",
        )
        .wrapped(&["sh", "-c", "ulimit -Sn 1024 && exec \"$0\" \"$@\""])
        .boot();
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        nums[1] > 1024,
        "the test needs a hard limit above 1024: {line}"
    );
    assert_eq!(
        nums[0], nums[1],
        "the soft limit is raised to the hard one: {line}"
    );
    wait_for("the service to say its limit", || {
        let out = stdout(&d.journal(&["-u", "n", "-o", "cat"]));
        out.contains("nofile 1024").then_some(())
    });
}

#[test]
fn run_tags_are_unguessable_and_a_datagram_from_a_wrong_tag_is_ignored() {
    let code =
        "open(os.environ['TAG_FILE'] + '.tmp', 'w').write(os.environ['ASYNCMD_INVOCATION'])\n\
                os.rename(os.environ['TAG_FILE'] + '.tmp', os.environ['TAG_FILE'])\n\
                while True: time.sleep(1)\n";
    let dir = tempfile::tempdir().unwrap();
    let tag_file = dir.path().join("tag");
    let d = Setup::new()
        .unit(
            "svc.service",
            &python_unit("type = \"notify\"", code).replace(
                "stop_timeout",
                &format!(
                    "start_timeout = \"10min\"\nenv = {{ TAG_FILE = \"{}\" }}\nstop_timeout",
                    tag_file.display()
                ),
            ),
        )
        .spawn();
    d.wait_listening();
    let tag = wait_for("the run's tag", || std::fs::read_to_string(&tag_file).ok());
    let parts: Vec<&str> = tag.split(':').collect();
    assert_eq!(parts[..2], ["svc.service", "1"], "{tag}");
    assert!(
        parts[2].len() == 32 && parts[2].chars().all(|c| c.is_ascii_hexdigit()),
        "128 random bits: {tag}"
    );
    // A process that guesses a tag (the old, predictable form, or a random one) and says
    // READY=1 for the unit is not heard.
    let notify = d.socket.with_extension("notify");
    for guess in [
        format!("{}:svc.service:1", d.pid()),
        format!("svc.service:1:{}", "0".repeat(32)),
    ] {
        let st = Command::new("python3")
            .args([
                "-c",
                "import os, socket; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\
                 .sendto(b'READY=1', os.environ['NOTIFY_SOCKET'])",
            ])
            .env("NOTIFY_SOCKET", &notify)
            .env("ASYNCMD_INVOCATION", &guess)
            .status()
            .unwrap();
        assert!(st.success());
    }
    wait_for("the forgery to be logged", || {
        messages(&d, "asyncmdd")
            .into_iter()
            .find(|m| m.contains("whose run tag is no current run's: ignored (1 so far)"))
    });
    // The second is counted, not logged; the unit still waits for its own READY=1.
    assert_eq!(d.state("svc.service"), "starting");
}

#[test]
fn after_a_kill_9_of_the_daemon_nothing_it_started_runs_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (main_pid, grand_pid) = (dir.path().join("main.pid"), dir.path().join("grand.pid"));
    // The service's main process, and a process it put in the background that outlives it.
    let script = format!(
        "sleep 1000 & echo $! > {g}.tmp && mv {g}.tmp {g}; echo $$ > {m}.tmp && mv {m}.tmp {m}; exec sleep 1000",
        g = grand_pid.display(),
        m = main_pid.display()
    );
    let mut d = Setup::new().sh("a.service", "", &script).boot();
    let (main1, grand1) = (pid_in(&main_pid), pid_in(&grand_pid));
    std::fs::remove_file(&main_pid).unwrap();
    std::fs::remove_file(&grand_pid).unwrap();
    d.crash();
    // The main process hears of the daemon's death (PR_SET_PDEATHSIG) and goes.
    wait_for("the main process to go with the daemon", || {
        (!alive(main1)).then_some(())
    });
    assert!(
        alive(grand1),
        "the background process outlived it, as such do"
    );
    // The next daemon on the same units stops what the last one left before it starts a
    // thing, and says so.
    d.restart();
    let r = d.report();
    assert!(
        r.contains(
            "[ WARNING ] Stopped 1 process(es) an earlier asyncmdd on these units left running"
        ) && r.contains(": a.service"),
        "{r}"
    );
    assert!(!alive(grand1), "the leftover is gone");
    let (main2, _) = (pid_in(&main_pid), pid_in(&grand_pid));
    assert_ne!(main1, main2);
    assert_eq!(d.state("a.service"), "running");
}

/// Whether process `pid` runs (and is not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next())
            != Some("Z")
    })
}

#[test]
fn a_spawn_short_of_descriptors_waits_for_them_instead_of_failing() {
    // 60 units that each run a moment, under a limit of 64 open files: together their pipes
    // need about twice that, so some spawns find none free until others end.
    let mut s = Setup::new().wrapped(&["sh", "-c", "ulimit -n 64 && exec \"$0\" \"$@\""]);
    for i in 0..60 {
        s = s.sh(&format!("u{i:02}.service"), "", "sleep 0.3");
    }
    let d = s.boot();
    wait_for("every unit to have run and finished", || {
        let o = d.ctl(&["--json", "list"]);
        let rows: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
        let rows = rows.as_array()?;
        (rows.len() == 60 && rows.iter().all(|r| r["state"] == "done")).then_some(())
    });
    let failed = stdout(&d.journal(&["-g", "Too many open files"]));
    assert_eq!(failed, "-- No entries --\n");
}

#[test]
fn no_more_units_are_starting_at_once_than_the_spawn_limit() {
    // 12 oneshots that each take a moment, at most 3 starting at once: each writes when it
    // begins and ends into one file, whose lines then never show a fourth begun before one of
    // three ended.
    let log = tempfile::NamedTempFile::new().expect("a log file");
    let path = log.path().display().to_string();
    let mut s = Setup::new().arg("--spawn-limit").arg("3");
    for i in 0..12 {
        let script = format!("echo + >> {path}; sleep 1; echo - >> {path}");
        s = s.sh(&format!("o{i:02}.service"), "type = \"oneshot\"", &script);
    }
    let d = s.boot();
    wait_for("every oneshot to have finished", || {
        let o = d.ctl(&["--json", "list"]);
        let rows: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
        let rows = rows.as_array()?;
        (rows.len() == 12 && rows.iter().all(|r| r["state"] == "done")).then_some(())
    });
    let lines = std::fs::read_to_string(log.path()).expect("the log reads");
    let (mut now, mut most) = (0i32, 0);
    for l in lines.lines() {
        now += if l == "+" { 1 } else { -1 };
        most = most.max(now);
    }
    assert_eq!(lines.lines().count(), 24, "{lines}");
    assert_eq!(most, 3, "at most 3 at once, and 3 at some point:\n{lines}");
}

/// A cgroup v2 directory of its own, under a mount of the hierarchy made for the test; what is
/// left in it is killed and it is removed, with the mount, when the test ends.
struct TestCgroup {
    mount: tempfile::TempDir,
    base: PathBuf,
}

impl TestCgroup {
    fn new() -> TestCgroup {
        asyncmd_e2e::require_root("mounting cgroup2");
        let mount = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "cgroup2", "none"])
            .arg(mount.path())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "cannot mount cgroup2 on {}: this test needs root and a kernel with cgroup v2",
            mount.path().display()
        );
        let base = mount
            .path()
            .join(format!("asyncmd-test-{}", std::process::id()));
        std::fs::create_dir(&base).unwrap();
        TestCgroup { mount, base }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let dirs: Vec<PathBuf> = std::fs::read_dir(&self.base)
            .map(|r| {
                r.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        for d in dirs.iter().chain([&self.base]) {
            let _ = std::fs::write(d.join("cgroup.kill"), "1");
        }
        for d in dirs.iter().chain([&self.base]) {
            for _ in 0..500 {
                if std::fs::remove_dir(d).is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        let _ = Command::new("umount").arg(self.mount.path()).status();
    }
}

#[test]
fn in_a_delegated_cgroup_a_process_that_escaped_its_group_and_tag_is_still_stopped() {
    let cg = TestCgroup::new();
    let dir = tempfile::tempdir().unwrap();
    let escaped = dir.path().join("escaped.pid");
    // A process that leaves the unit's process group (setsid) and its environment (env -i):
    // neither a signal to the group nor the run tag finds it; its cgroup does.
    let script = format!(
        "setsid env -i sleep 1000 & echo $! > {e}.tmp && mv {e}.tmp {e}; exec sleep 1000",
        e = escaped.display()
    );
    let mut d = Setup::new()
        .arg("--cgroup")
        .arg(&cg.base.display().to_string())
        .sh("e.service", "", &script)
        .boot();
    let first = pid_in(&escaped);
    // Its pid is written before it is through `setsid` and `env -i`.
    wait_for("the escaped process to have dropped its run tag", || {
        (alive(first) && !tagged(first)).then_some(())
    });
    let st = d.status("e.service");
    let want = cg.base.join("e.service").display().to_string();
    assert_eq!(st["cgroup"], want.as_str(), "{st}");
    assert_eq!(st["tasks"], 2, "{st}");
    let text = stdout(&d.ctl(&["status", "e.service"]));
    assert!(
        text.contains(&format!("CGroup: {want}")) && text.contains("Tasks: 2"),
        "{text}"
    );

    d.ctl(&["stop", "e.service"]);
    wait_for("the escaped process to be stopped with its unit", || {
        (!alive(first)).then_some(())
    });

    // After a kill -9 of the daemon, the next one finds what was left by its cgroup.
    std::fs::remove_file(&escaped).unwrap();
    d.ctl(&["start", "e.service"]);
    let second = pid_in(&escaped);
    std::fs::remove_file(&escaped).unwrap();
    d.crash();
    assert!(
        alive(second),
        "the escaped process outlived the daemon, as such do"
    );
    d.restart();
    let r = d.report();
    assert!(
        r.contains("[ WARNING ] Killed ")
            && r.contains("process(es) an earlier asyncmdd left in the cgroups of: e.service"),
        "{r}"
    );
    assert!(!alive(second), "the leftover is gone");
    d.wait_state("e.service", "running");
}
