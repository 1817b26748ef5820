//! asyncmctl: compact and detailed status, list, start/stop/restart, exit codes, JSON, globs.

use std::process::Command;

use asyncmd_e2e::{on_a_terminal, run_within, stderr, stdout, wait_for, Setup};

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
    assert!(stderr(&o).contains("Unit nope.service not found."));
    // Globs, and bare names without the suffix.
    let o = d.ctl(&["status", "*.service"]);
    assert_eq!(stdout(&o).lines().count(), 3);
    let o = d.ctl(&["status", "h*", "w*"]);
    assert_eq!(stdout(&o).lines().count(), 2);
    // Alternatives and classes, in the compact view (a glob, not a single name).
    let o = d.ctl(&["status", "{hello,crash}.service"]);
    let t = stdout(&o);
    assert_eq!(t.lines().count(), 2, "{t}");
    assert!(
        t.contains("hello.service") && t.contains("crash.service"),
        "{t}"
    );
    let o = d.ctl(&["status", "[!h]*"]);
    assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));
    // A bad pattern is refused, naming it; the daemon goes on.
    for bad in ["a[", "{hello"] {
        let o = d.ctl(&["status", bad]);
        assert_ne!(o.status.code(), Some(0));
        assert!(
            stderr(&o).contains(&format!("invalid pattern '{bad}'")),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(d.ctl(&["status", "hello"]).status.code(), Some(0));
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
    let socket = d.socket.to_str().unwrap();
    let args = [
        "--json",
        "--no-color",
        "--socket",
        socket,
        "status",
        "world",
    ];
    let mut c = Command::new(asyncmd_e2e::bin("asyncmctl"));
    c.args(args);
    let o = run_within(c, "asyncmctl", &args);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["name"], "world.service");
    assert_eq!(v[0]["result"]["code"], 0);
    // ASYNCMD_SOCKET is honoured.
    let mut c = Command::new(asyncmd_e2e::bin("asyncmctl"));
    c.args(["status", "world"]).env("ASYNCMD_SOCKET", &d.socket);
    let o = run_within(c, "asyncmctl", &["status", "world"]);
    assert!(
        stdout(&o).contains("Active: (inactive) done @"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn no_daemon_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Command::new(asyncmd_e2e::bin("asyncmctl"));
    c.arg("--socket")
        .arg(dir.path().join("none.sock"))
        .arg("status");
    let o = run_within(c, "asyncmctl", &["status"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot connect to asyncmdd at"),
        "{}",
        stderr(&o)
    );
}

/// The lines of `o`'s stdout that open a detailed view (`    Loaded: `).
fn detailed_views(o: &std::process::Output) -> usize {
    stdout(o)
        .lines()
        .filter(|l| l.starts_with("    Loaded: "))
        .count()
}

#[test]
fn status_v_shows_the_detailed_view_for_several_units() {
    let d = setup();
    d.wait_state("crash.service", "failed");
    // Without -v: the detailed view for one name only.
    let o = d.ctl(&["status"]);
    assert_eq!(detailed_views(&o), 0, "{}", stdout(&o));
    assert_eq!(stdout(&o).lines().count(), 3, "{}", stdout(&o));
    let o = d.ctl(&["status", "hello", "world"]);
    assert_eq!(detailed_views(&o), 0, "{}", stdout(&o));
    assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));
    assert_eq!(detailed_views(&d.ctl(&["status", "h*"])), 0);
    assert_eq!(detailed_views(&d.ctl(&["status", "hello"])), 1);

    // With -v: every unit shown in full, each with its journal lines.
    let o = d.ctl(&["status", "-v"]);
    let t = stdout(&o);
    assert_eq!(detailed_views(&o), 3, "{t}");
    assert_eq!(o.status.code(), Some(3), "not every unit is running");
    for (head, active) in [
        (
            "● crash.service - crash.service test unit",
            "    Active: (failed) failed @",
        ),
        (
            "● hello.service - hello.service test unit v1.0",
            "    Active: (active) running since ",
        ),
        (
            "● world.service - world.service test unit",
            "    Active: (inactive) done @",
        ),
    ] {
        assert!(t.lines().any(|l| l == head), "{head}: {t}");
        assert!(t.contains(active), "{active}: {t}");
    }
    assert!(t.contains("┗━► traceback: crash.service: Traceback"), "{t}");
    assert!(
        t.contains("[testhost] [INFO] [world.service] world done"),
        "{t}"
    );
    assert!(t.contains("[testhost] [INFO] [hello.service] LED "), "{t}");
    let o = d.ctl(&["status", "hello", "world", "-v", "-n", "1"]);
    let t = stdout(&o);
    assert_eq!(detailed_views(&o), 2, "{t}");
    assert_eq!(
        t.lines().filter(|l| l.contains("[testhost]")).count(),
        2,
        "one journal line each: {t}"
    );
    assert_eq!(detailed_views(&d.ctl(&["status", "-v", "*.service"])), 3);
}

#[test]
fn debug_on_shows_every_status_in_full_until_debug_off() {
    let d = setup();
    d.wait_state("crash.service", "failed");
    let arrows = |o: &std::process::Output| {
        stdout(o)
            .lines()
            .filter(|l| l.starts_with("    ┗━► args: "))
            .count()
    };
    let o = d.ctl(&["debug"]);
    assert_eq!(stdout(&o), "debug: off\n");
    assert_eq!(arrows(&d.ctl(&["status"])), 0);

    let o = d.ctl(&["debug", "on"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "debug: on\n");
    assert_eq!(stdout(&d.ctl(&["debug"])), "debug: on\n");
    // Even the compact forms now show every unit in full.
    let o = d.ctl(&["status"]);
    let t = stdout(&o);
    assert_eq!(arrows(&o), 3, "{t}");
    assert_eq!(detailed_views(&o), 3, "{t}");
    assert!(t.contains("    ┗━► kwargs: {}"), "{t}");
    assert!(t.contains("    ┗━► exec: sh -c "), "{t}");
    assert!(t.contains("    ┗━► runtime: "), "{t}");
    assert!(t.contains("    Main PID: "), "{t}");
    assert!(t.contains("┗━► traceback: crash.service: Traceback"), "{t}");
    assert_eq!(arrows(&d.ctl(&["status", "h*", "w*"])), 2);
    assert_eq!(o.status.code(), Some(3), "exit codes stay the same");

    let o = d.ctl(&["debug", "off"]);
    assert_eq!(stdout(&o), "debug: off\n");
    let o = d.ctl(&["status"]);
    let t = stdout(&o);
    assert_eq!(arrows(&o), 0, "{t}");
    assert_eq!(detailed_views(&o), 0, "{t}");
    assert_eq!(t.lines().count(), 3, "{t}");
    assert!(!t.contains("┗━►"), "{t}");
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let d = setup();
    d.wait_state("crash.service", "failed");
    let client = |name: &str, args: &[&str], no_color: Option<&str>| {
        let mut c = Command::new(asyncmd_e2e::bin(name));
        c.arg("--socket").arg(&d.socket).args(args);
        match no_color {
            Some(v) => c.env("NO_COLOR", v),
            None => c.env_remove("NO_COLOR"),
        };
        // A terminal that shows colour, whatever the runner's own environment says; no pager.
        c.env("TERM", "xterm-256color")
            .env("PAGER", "cat")
            .env_remove("CLICOLOR")
            .env_remove("CLICOLOR_FORCE")
            .env_remove("CI");
        c
    };
    let journal_args = ["-u", "crash"];

    // On a terminal: colour (the green dot of a running unit, the red ERROR of a stderr line).
    let (t, code) = on_a_terminal(client("asyncmctl", &["status"], None));
    assert_eq!(code, Some(3), "{t:?}");
    assert!(t.contains("\x1b[92m●\x1b[0m hello.service"), "{t:?}");
    assert!(t.contains("\x1b[31;1mfailed\x1b[0m"), "{t:?}");
    let (t, code) = on_a_terminal(client("asyncmctl", &["status", "crash"], None));
    assert_eq!(code, Some(3), "{t:?}");
    assert!(t.contains('\x1b'), "{t:?}");
    let (t, code) = on_a_terminal(client("asyncmjournal", &journal_args, None));
    assert_eq!(code, Some(0), "{t:?}");
    assert!(
        t.contains("[\x1b[31;1mERROR\x1b[0m] [crash.service] Fatal: no sensor"),
        "{t:?}"
    );

    // On a terminal with NO_COLOR set, or --no-color: none.
    for (args, no_color) in [
        (&["status"][..], Some("1")),
        (&["status", "--no-color"], None),
    ] {
        let (t, _) = on_a_terminal(client("asyncmctl", args, no_color));
        assert!(t.contains("● hello.service: status: running"), "{t:?}");
        assert!(!t.contains('\x1b'), "{args:?} {no_color:?}: {t:?}");
    }
    let (t, _) = on_a_terminal(client("asyncmctl", &["status", "crash"], Some("1")));
    assert!(t.contains("Active: (failed) failed"), "{t:?}");
    assert!(!t.contains('\x1b'), "{t:?}");
    let mut no_flag = journal_args.to_vec();
    no_flag.push("--no-color");
    for (args, no_color) in [(&journal_args[..], Some("1")), (&no_flag[..], None)] {
        let (t, code) = on_a_terminal(client("asyncmjournal", args, no_color));
        assert_eq!(code, Some(0), "{t:?}");
        assert!(
            t.contains("[ERROR] [crash.service] Fatal: no sensor"),
            "{t:?}"
        );
        assert!(!t.contains('\x1b'), "{args:?} {no_color:?}: {t:?}");
    }

    // Through a pipe: none, with NO_COLOR unset.
    let piped = |name: &str, args: &[&str]| run_within(client(name, args, None), name, args);
    let o = piped("asyncmctl", &["status"]);
    assert!(stdout(&o).contains("● hello.service: status: running"));
    assert!(!stdout(&o).contains('\x1b'), "{}", stdout(&o));
    let o = piped("asyncmctl", &["status", "crash"]);
    assert!(!stdout(&o).contains('\x1b'), "{}", stdout(&o));
    let o = piped("asyncmjournal", &journal_args);
    assert!(stdout(&o).contains("[ERROR] [crash.service] Fatal: no sensor"));
    assert!(!stdout(&o).contains('\x1b'), "{}", stdout(&o));

    // The conventions as everyone reads them: an empty NO_COLOR is no NO_COLOR; TERM=dumb
    // has none; CLICOLOR_FORCE colours a pipe, and so does --color always; --color never
    // keeps a terminal plain.
    let (t, _) = on_a_terminal(client("asyncmctl", &["status"], Some("")));
    assert!(t.contains("\x1b[92m●\x1b[0m hello.service"), "{t:?}");
    let mut dumb = client("asyncmctl", &["status"], None);
    dumb.env("TERM", "dumb");
    let (t, _) = on_a_terminal(dumb);
    assert!(!t.contains('\x1b'), "{t:?}");
    let mut forced = client("asyncmjournal", &journal_args, None);
    forced.env("CLICOLOR_FORCE", "1");
    let o = run_within(forced, "asyncmjournal", &journal_args);
    assert!(
        stdout(&o).contains("[\x1b[31;1mERROR\x1b[0m]"),
        "{}",
        stdout(&o)
    );
    for name in ["asyncmctl", "asyncmjournal"] {
        let args: &[&str] = if name == "asyncmctl" {
            &["status", "--color", "always"]
        } else {
            &["-u", "crash", "--color", "always"]
        };
        assert!(stdout(&piped(name, args)).contains('\x1b'), "{name}");
    }
    let (t, _) = on_a_terminal(client("asyncmctl", &["status", "--color", "never"], None));
    assert!(!t.contains('\x1b'), "{t:?}");
}

#[test]
fn a_name_that_matches_nothing_is_said_with_what_was_meant_and_exit_4() {
    let d = Setup::new()
        .sh("hello.service", "", LOOP)
        .sh("world.service", "type = \"oneshot\"", "echo world done")
        .sh(
            "tick.service",
            "[schedule]\nstart_in = \"1h\"\nevery = \"1h\"",
            "echo tick",
        )
        .sh("off.service", "", LOOP)
        .config(r#"{"off": {"enabled": false}}"#)
        .boot();
    d.wait_state("world.service", "done");
    // A bare status of a healthy system: the finished oneshot, the scheduled unit between its
    // runs and the disabled unit are all as they are meant to be.
    let o = d.ctl(&["status"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    // Named, a unit that does not run is still "not running", as systemctl says.
    assert_eq!(d.ctl(&["status", "world"]).status.code(), Some(3));

    // A typo gets the likely name, whether alone or beside names that matched.
    let o = d.ctl(&["status", "helo"]);
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(
        stderr(&o).trim(),
        "Unit helo not found. Did you mean hello.service?"
    );
    let o = d.ctl(&["status", "hello", "helo", "-n", "0"]);
    assert_eq!(o.status.code(), Some(4), "one name matched nothing");
    assert!(stdout(&o).contains("hello.service"), "{}", stdout(&o));
    assert!(stderr(&o).contains("Unit helo not found. Did you mean hello.service?"));
    let o = d.ctl(&["list", "hello", "wrld"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(stdout(&o).contains("hello.service"));
    assert!(stderr(&o).contains("Unit wrld not found. Did you mean world.service?"));
    // Actions say it the same way, and act on the rest.
    let o = d.ctl(&["restart", "hello", "wrld"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(stderr(&o).contains("Unit wrld not found. Did you mean world.service?"));
    let o = d.ctl(&["status", "x*"]);
    assert_eq!(
        (o.status.code(), stderr(&o).trim()),
        (Some(4), "No unit matches x*.")
    );

    // A file on disk that was never loaded: the hint is to load it.
    std::fs::write(
        d.units().join("later.service"),
        "[service]\nexec = [\"sleep\", \"60\"]\n",
    )
    .unwrap();
    let o = d.ctl(&["start", "later"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(
        stderr(&o).contains(
            "Unit later not found. Its unit file is there but not loaded: asyncmctl load later"
        ),
        "{}",
        stderr(&o)
    );

    // With --json the error is JSON on stdout too.
    let o = d.ctl(&["--json", "status", "nope"]);
    assert_eq!(o.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON on stdout");
    assert_eq!(v["error"]["code"], "no-such-unit", "{v}");
    assert_eq!(v["error"]["message"], "Unit nope not found.");

    // The journal client says it the same way: alone an error, beside others a warning.
    let o = d.journal(&["-u", "helo"]);
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(
        stderr(&o).trim(),
        "Unit helo not found. Did you mean hello.service?"
    );
    let o = d.journal(&["-u", "hello", "-u", "helo", "-n", "1"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(stdout(&o).contains("[hello.service]"), "{}", stdout(&o));
    assert!(stderr(&o).contains("Unit helo not found."));
    // A unit that is loaded but never logged is no miss: it just has no entries.
    assert_eq!(d.journal(&["-u", "off"]).status.code(), Some(0));
}

#[test]
fn scripting_verbs_as_systemctl_users_know_them() {
    let d = Setup::new()
        .sh(
            "base.service",
            "",
            "trap 'echo got USR1' USR1; trap 'echo reloaded' HUP; \
             while :; do sleep 0.1; done",
        )
        .sh(
            "mid.service",
            "requires = [\"base.service\"]",
            "trap 'echo got USR2' USR2; while :; do sleep 0.1; done",
        )
        .sh(
            "top.service",
            "requires = [\"mid.service\"]\nafter = [\"base.service\"]",
            "while :; do sleep 0.1; done",
        )
        .sh("once.service", "type = \"oneshot\"", "exit 1")
        .sh("off.service", "", "sleep 60")
        .config("{\"off\": {\"enabled\": false, \"note\": \"mine\"}}")
        .boot();
    d.wait_state("once.service", "failed");
    let code = |args: &[&str]| d.ctl(args).status.code();

    // is-active, is-failed, is-enabled: one word per unit; -q says it by the exit code only.
    let o = d.ctl(&["is-active", "base", "once", "off"]);
    assert_eq!(stdout(&o), "active\nfailed\ninactive\n");
    assert_eq!(o.status.code(), Some(0), "one of them is active");
    assert_eq!(code(&["is-active", "off"]), Some(3));
    let o = d.ctl(&["is-active", "-q", "off"]);
    assert_eq!((o.status.code(), stdout(&o)), (Some(3), String::new()));
    assert_eq!(code(&["is-active", "-q", "nope"]), Some(4));
    assert_eq!(code(&["is-failed", "-q", "once"]), Some(0));
    assert_eq!(code(&["is-failed", "-q", "base"]), Some(1));
    let o = d.ctl(&["is-enabled", "base", "off"]);
    assert_eq!(stdout(&o), "enabled\ndisabled\n");
    assert_eq!(code(&["is-enabled", "-q", "off"]), Some(1));

    // show: systemd's property names, one line each, filtered by -p, bare with --value.
    let o = d.ctl(&[
        "show",
        "mid",
        "-p",
        "ActiveState,SubState,Requires",
        "-p",
        "Id",
    ]);
    assert_eq!(
        stdout(&o),
        "Id=mid.service\nActiveState=active\nSubState=running\nRequires=base.service\n"
    );
    let o = d.ctl(&["show", "base", "-p", "MainPID", "--value"]);
    let pid: u32 = stdout(&o).trim().parse().expect("a pid");
    assert_eq!(d.status("base.service")["pid"], pid);
    let all = stdout(&d.ctl(&["show", "base"]));
    for key in [
        "Description=base.service test unit",
        "UnitFileState=enabled",
        "Result=success",
    ] {
        assert!(all.lines().any(|l| l == key), "{key} in:\n{all}");
    }
    let exec = all.lines().find(|l| l.starts_with("ExecStart=")).unwrap();
    assert!(
        exec.starts_with("ExecStart=sh -c \"trap"),
        "one line: {exec}"
    );
    let o = d.ctl(&["show", "base", "-p", "Bogus"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no property Bogus"), "{}", stderr(&o));

    // cat: the file as it is on disk, and its services.config entry as written.
    let o = d.ctl(&["cat", "off"]);
    let t = stdout(&o);
    assert!(t.starts_with("# units/off.service\n[unit]\n"), "{t}");
    assert!(
        t.contains("# services.config: \"off\"\n{\n  \"enabled\": false,"),
        "{t}"
    );
    assert!(t.contains("\"note\": \"mine\""), "{t}");

    // list-dependencies: requires as a tree, --reverse, and --after.
    let o = d.ctl(&["list-dependencies", "top"]);
    assert_eq!(
        stdout(&o),
        "top.service\n● └─mid.service\n●   └─base.service\n"
    );
    let o = d.ctl(&["list-dependencies", "base", "--reverse"]);
    assert_eq!(
        stdout(&o),
        "base.service\n● └─mid.service\n●   └─top.service\n"
    );
    let o = d.ctl(&["list-dependencies", "top", "--after"]);
    assert_eq!(stdout(&o), "top.service\n● └─base.service\n");

    // kill: a signal to the main process, or to every process of the run.
    assert_eq!(
        code(&["kill", "base", "-s", "USR1", "--kill-whom", "main"]),
        Some(0)
    );
    wait_for("base's trap to see USR1", || {
        let e = d.entries(&["-u", "base"]);
        e.iter().any(|e| e["msg"] == "got USR1").then_some(())
    });
    assert_eq!(code(&["kill", "mid", "-s", "SIGUSR2"]), Some(0));
    wait_for("mid's trap to see USR2", || {
        let e = d.entries(&["-u", "mid"]);
        e.iter().any(|e| e["msg"] == "got USR2").then_some(())
    });
    let o = d.ctl(&["kill", "off", "-s", "TERM"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("it is not running"), "{}", stderr(&o));
    let o = d.ctl(&["kill", "base", "-s", "SIGNOPE"]);
    assert!(
        stderr(&o).contains("'SIGNOPE' is not a signal"),
        "{}",
        stderr(&o)
    );

    // reload UNIT: its reload_signal (SIGHUP) to the main process; with no unit, a
    // daemon-reload, as before.
    assert_eq!(code(&["reload", "base"]), Some(0));
    wait_for("base's trap to see HUP", || {
        let e = d.entries(&["-u", "base"]);
        e.iter().any(|e| e["msg"] == "reloaded").then_some(())
    });
    assert!(stdout(&d.ctl(&["reload"])).contains("Reload: 0 changed"));
    assert!(stdout(&d.ctl(&["daemon-reload", "--dry-run"])).contains("Reload (dry run)"));
    assert_eq!(d.state("base.service"), "running", "a reload is no restart");

    // mask: nothing starts it until it is unmasked; the entry reads as before afterwards.
    let config = d.units().join("services.config");
    let before = std::fs::read_to_string(&config).unwrap();
    assert_eq!(code(&["mask", "off"]), Some(0));
    assert_eq!(stdout(&d.ctl(&["is-enabled", "off"])), "masked\n");
    let o = d.ctl(&["start", "off"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("it is masked: asyncmctl unmask off first"),
        "{}",
        stderr(&o)
    );
    let o = d.ctl(&["enable", "off", "--now"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(d.state("off.service"), "inactive");
    assert_eq!(code(&["unmask", "off"]), Some(0));
    assert_eq!(std::fs::read_to_string(&config).unwrap(), before);
    assert_eq!(code(&["start", "off"]), Some(0));
    assert_eq!(d.state("off.service"), "running");
}

#[test]
fn a_stop_that_waits_says_so_on_a_terminal_and_no_block_does_not_wait() {
    let stubborn = |timeout: &str| {
        format!(
            "[service]\nexec = [\"sh\", \"-c\", \"trap '' TERM; while :; do sleep 0.1; done\"]\n\
             stop_timeout = \"{timeout}\"\n"
        )
    };
    let d = Setup::new()
        .unit("slow.service", &stubborn("3s"))
        .unit("slower.service", &stubborn("60s"))
        .boot();
    d.wait_state("slow.service", "running");
    let mut c = Command::new(asyncmd_e2e::bin("asyncmctl"));
    c.arg("--socket").arg(&d.socket).args(["stop", "slow"]);
    let (t, code) = on_a_terminal(c);
    assert_eq!(code, Some(0), "{t:?}");
    assert!(
        t.contains("Stopping slow.service: waiting for it to exit (") && t.contains(" of 3 s)"),
        "{t:?}"
    );
    assert_eq!(d.state("slow.service"), "stopped");
    // Without a terminal, nothing is said on the way.
    d.ctl(&["start", "slow"]);
    let o = d.ctl(&["stop", "slow"]);
    assert_eq!((o.status.code(), stderr(&o)), (Some(0), String::new()));

    // --no-block: asked, and back at once, long before the unit's 60 s are up.
    d.wait_state("slower.service", "running");
    let o = d.ctl(&["stop", "slower", "--no-block"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_ne!(d.state("slower.service"), "stopped");
    d.wait_state("slower.service", "stopping");
    // Not 60 s more for the daemon's own shutdown.
    assert_eq!(
        d.ctl(&["kill", "slower", "-s", "KILL"]).status.code(),
        Some(0)
    );
    d.wait_state("slower.service", "stopped");
}
