//! Units: dependency and priority boot, status while waiting, services.config editing,
//! reload, load and unload.

use std::collections::{HashMap, HashSet};

use asyncmd_e2e::{stderr, stdout, wait_for, Setup, Signal};
use serde_json::Value;

const LOOP: &str = "while :; do sleep 1; done";

/// A small deterministic generator, so a failing graph can be rebuilt from its printed seed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

fn list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// A script that ends only once the returned file exists (the directory guard keeps it).
fn gate() -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    let script = format!("while [ ! -e {} ]; do sleep 0.05; done", go.display());
    (dir, go, script)
}

fn all_status(d: &asyncmd_e2e::Daemon) -> HashMap<String, Value> {
    let o = d.ctl(&["status", "--json"]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("status JSON");
    v.as_array()
        .unwrap()
        .iter()
        .map(|u| (u["name"].as_str().unwrap().to_string(), u.clone()))
        .collect()
}

#[test]
fn a_random_60_unit_graph_boots_in_dependency_order_and_in_parallel() {
    let seed = std::env::var("ASYNCMD_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("graph seed: {seed} (rerun with ASYNCMD_TEST_SEED={seed})");
    let mut rng = Lcg(seed);
    let n = 60;
    let name = |i: usize| format!("u{i:02}.service");
    // Edges only go to lower-numbered units, so the graph has no cycle; names are shuffled by
    // the generator's choice of priorities, so the order is not simply by number.
    let mut requires: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut after: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut oneshot = vec![false; n];
    let mut setup = Setup::new();
    for i in 0..n {
        for j in 0..i {
            if rng.chance(5) {
                requires[i].push(j);
            } else if rng.chance(4) {
                after[i].push(j);
            }
        }
        oneshot[i] = rng.chance(50);
        let names = |v: &[usize]| list(&v.iter().map(|&j| name(j)).collect::<Vec<_>>());
        let lines = format!(
            "type = \"{}\"\nrequires = {}\nafter = {}\npriority = {}",
            if oneshot[i] { "oneshot" } else { "runtime" },
            names(&requires[i]),
            names(&after[i]),
            rng.next() % 5
        );
        let script = if oneshot[i] { "sleep 0.3" } else { LOOP };
        setup = setup.sh(&name(i), &lines, script);
    }
    let d = setup.boot();
    let report = d.report();
    assert!(!report.contains("ERROR"), "{report}");

    // The printed plan is a topological order.
    let order_line = report
        .lines()
        .find(|l| l.starts_with("[ Booting ] Order: --> "))
        .unwrap_or_else(|| panic!("no plan line in {report}"));
    let order: Vec<&str> = order_line["[ Booting ] Order: --> ".len()..]
        .split(" --> ")
        .collect();
    assert_eq!(order.len(), n, "{order_line}");
    let pos: HashMap<&str, usize> = order.iter().enumerate().map(|(i, u)| (*u, i)).collect();

    let st = all_status(&d);
    let time = |u: &Value, key: &str| u[key].as_i64().unwrap_or_else(|| panic!("{key} of {u}"));
    let mut edges = 0;
    for i in 0..n {
        let me = &st[&name(i)];
        let expected = if oneshot[i] { "done" } else { "running" };
        assert_eq!(me["state"], expected, "{me}");
        for &j in requires[i].iter().chain(&after[i]) {
            edges += 1;
            assert!(
                pos[name(j).as_str()] < pos[name(i).as_str()],
                "{order_line}"
            );
            let dep = &st[&name(j)];
            let ready = if oneshot[j] {
                time(dep, "done_us")
            } else {
                time(dep, "started_us")
            };
            assert!(
                time(me, "started_us") >= ready,
                "{} started before {} was ready (seed {seed})",
                name(i),
                name(j)
            );
        }
    }
    assert!(edges > 20, "the graph has edges to check ({edges})");

    // Independent oneshots ran at the same time: a unit starts when what it needs is ready,
    // not in waves, and not one after another.
    let mut reach: Vec<HashSet<usize>> = vec![HashSet::new(); n];
    for i in 0..n {
        for &j in requires[i].iter().chain(&after[i]) {
            let below: Vec<usize> = reach[j].iter().copied().collect();
            reach[i].insert(j);
            reach[i].extend(below);
        }
    }
    let mut overlapping = 0;
    for a in (0..n).filter(|&a| oneshot[a]) {
        for b in (0..a).filter(|&b| oneshot[b] && !reach[a].contains(&b)) {
            let (ua, ub) = (&st[&name(a)], &st[&name(b)]);
            if time(ua, "started_us") < time(ub, "done_us")
                && time(ub, "started_us") < time(ua, "done_us")
            {
                overlapping += 1;
            }
        }
    }
    assert!(
        overlapping > 0,
        "no two independent oneshots overlapped (seed {seed})"
    );
}

#[test]
fn cycles_missing_and_failed_dependencies_are_named_and_spare_the_rest() {
    let d = Setup::new()
        .sh("a.service", "requires = [\"b.service\"]", LOOP)
        .sh("b.service", "after = [\"c.service\"]", LOOP)
        .sh("c.service", "requires = [\"a.service\"]", LOOP)
        .sh("d.service", "requires = [\"c.service\"]", LOOP)
        .sh("e.service", "requires = [\"nothing.service\"]", LOOP)
        .sh(
            "bad.service",
            "type = \"oneshot\"",
            "echo 'cannot mount' >&2; exit 2",
        )
        .sh("f.service", "requires = [\"bad.service\"]", LOOP)
        .unit("broken.service", "[service]\nexec = 5\n")
        .sh("g.service", "requires = [\"broken.service\"]", LOOP)
        .sh(
            "h.service",
            // after is ordering only: a unit that cannot start, failed, or does not exist at
            // all holds nothing back.
            "after = [\"c.service\", \"bad.service\", \"nothing.service\"]",
            LOOP,
        )
        .sh("off.service", "", LOOP)
        .sh("i.service", "requires = [\"off.service\"]", LOOP)
        .config(r#"{"off": {"enabled": false}}"#)
        .boot();
    let r = d.report();
    let line = |unit: &str| {
        r.lines()
            .find(|l| l.contains(&format!("Service: {unit} from")))
            .unwrap_or_else(|| panic!("no report line for {unit} in\n{r}"))
            .to_string()
    };
    let cycle = "Error: dependency cycle: a.service -> b.service -> c.service -> a.service";
    for u in ["a.service", "b.service", "c.service"] {
        assert!(
            line(u).starts_with("[ ERROR ]") && line(u).ends_with(cycle),
            "{r}"
        );
    }
    let causes = [
        ("d.service", "Error: dependency c.service cannot start"),
        (
            "e.service",
            "Error: requires nothing.service, which does not exist",
        ),
        (
            "f.service",
            "Error: dependency bad.service failed: exit status 2: cannot mount",
        ),
        ("g.service", "Error: dependency broken.service cannot start"),
        (
            "i.service",
            "Error: requires off.service, which is disabled in services.config and not running",
        ),
    ];
    for (unit, cause) in causes {
        assert!(line(unit).ends_with(cause), "{unit}: {r}");
    }
    assert!(
        line("broken.service").contains("units/broken.service:2:8:"),
        "{r}"
    );
    assert!(line("h.service").starts_with("[ OK ]"), "{r}");
    assert_eq!(d.state("h.service"), "running");
    let f = d.status("f.service");
    assert_eq!(f["state"], "failed");
    assert!(f["error"]
        .as_str()
        .unwrap()
        .contains("dependency bad.service failed"));
    // The plan line names only what will start.
    let plan = r.lines().find(|l| l.starts_with("[ Booting ]")).unwrap();
    assert!(
        plan.contains("h.service") && !plan.contains("a.service"),
        "{plan}"
    );
}

#[test]
fn status_names_the_dependency_a_unit_waits_for() {
    let (_gate, go, slow) = gate();
    let d = Setup::new()
        .sh("slow.service", "type = \"oneshot\"", &slow)
        .sh("app.service", "requires = [\"slow.service\"]", LOOP)
        .spawn();
    d.wait_listening();
    let s = wait_for("app.service to wait", || {
        let s = d.status("app.service");
        (s["state"] == "waiting").then_some(s)
    });
    assert_eq!(s["waiting_for"], serde_json::json!(["slow.service"]));
    let text = stdout(&d.ctl(&["status", "app*"]));
    assert!(
        text.contains("app.service: status: waiting for slow.service since"),
        "{text}"
    );
    let list = stdout(&d.ctl(&["list"]));
    assert!(list.contains("activating    waiting"), "{list}");
    std::fs::write(&go, "").unwrap();
    d.wait_state("app.service", "running");
    assert_eq!(d.state("slow.service"), "done");
}

#[test]
fn a_start_pulls_in_what_the_unit_requires() {
    let d = Setup::new()
        .sh("db.service", "", LOOP)
        .sh("app.service", "requires = [\"db.service\"]", LOOP)
        .config(r#"{"db": {"enabled": false}, "app": {"enabled": false}}"#)
        .boot();
    assert_eq!(d.state("db.service"), "inactive");
    let o = d.ctl(&["start", "app"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.state("app.service"), "running");
    assert_eq!(d.state("db.service"), "running", "started as a requirement");
}

const CONFIG: &str = r#"{
    "hello":   {"enabled": true, "args": [2], "kwargs": {"sleep": 1}, "owner": "ops"},

    "other": {"enabled": false,
              "note": "keep me"}
}
"#;

#[test]
fn enable_disable_and_config_edit_only_their_part_of_services_config() {
    let d = Setup::new()
        .sh(
            "hello.service",
            "",
            "echo \"start led=$0 sleep=$SLEEP who=$WHO\"; exec sleep 600",
        )
        .sh("other.service", "", LOOP)
        .config(CONFIG)
        .boot();
    let path = d.units().join("services.config");
    let read = || std::fs::read_to_string(&path).unwrap();
    let pid = d.status("hello.service")["pid"].clone();

    let o = d.ctl(&["disable", "hello"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "hello.service: disabled\n");
    let disabled = CONFIG.replacen(
        r#""enabled": true, "args""#,
        r#""enabled": false, "args""#,
        1,
    );
    assert_eq!(read(), disabled);
    let s = d.status("hello.service");
    assert_eq!(
        (s["enabled"].clone(), s["pid"].clone()),
        (Value::Bool(false), pid)
    );

    assert!(d.ctl(&["enable", "hello.service"]).status.success());
    assert_eq!(read(), CONFIG, "back to the very same bytes");

    let o = d.ctl(&["disable", "--now", "hello"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.state("hello.service"), "stopped");
    assert!(d.ctl(&["enable", "hello", "--now"]).status.success());
    assert_eq!(d.state("hello.service"), "running");
    assert_eq!(read(), CONFIG);

    let o = d.ctl(&[
        "config",
        "hello",
        "--kwargs",
        r#"{"sleep": 3, "who": "${WHO}"}"#,
    ]);
    assert!(!o.status.success(), "an undefined variable is refused");
    assert!(stderr(&o).contains("${WHO}"), "{}", stderr(&o));
    assert_eq!(read(), CONFIG, "a refused edit writes nothing");
    std::fs::write(d.units().join(".env"), "WHO=world\n").unwrap();
    let o = d.ctl(&[
        "config",
        "hello",
        "--kwargs",
        r#"{"sleep": 3, "who": "${WHO}"}"#,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("applies at the next start"),
        "{}",
        stdout(&o)
    );
    assert!(d
        .ctl(&["config", "hello", "--args", "[5]"])
        .status
        .success());
    let edited = CONFIG.replacen(
        r#""args": [2], "kwargs": {"sleep": 1}"#,
        r#""args": [5], "kwargs": {"sleep": 3, "who": "${WHO}"}"#,
        1,
    );
    assert_eq!(read(), edited);
    assert!(d.ctl(&["restart", "hello"]).status.success());
    wait_for("the restarted hello to log its new config", || {
        let j = stdout(&d.journal(&["-u", "hello", "-o", "cat"]));
        j.contains("start led=5 sleep=3 who=world").then_some(())
    });
    // The process has the value; status shows what the file says, so `.env` keeps its secret.
    let s = d.status("hello.service");
    assert_eq!(s["kwargs"]["who"], "${WHO}", "{s}");
    let text = stdout(&d.ctl(&["status", "hello"]));
    assert!(
        text.contains("${WHO}") && !text.contains("world\""),
        "{text}"
    );

    let o = d.ctl(&["config", "hello", "--args", "{}"]);
    assert!(!o.status.success() && stderr(&o).contains("JSON array"));
    let o = d.ctl(&["config", "nope", "--args", "[]"]);
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(read(), edited);
}

#[test]
fn a_daemon_killed_during_config_writes_leaves_a_whole_file() {
    // A big file makes each write long enough for kills to land inside some of them.
    let mut big = String::from("{\n    \"x\": {\"enabled\": true},\n");
    for i in 0..20_000 {
        big.push_str(&format!(
            "    \"pad{i}\": {{\"enabled\": false, \"args\": [{i}]}},\n"
        ));
    }
    big.push_str("    \"last\": {}\n}\n");
    let flipped = big.replacen(r#""enabled": true"#, r#""enabled": false"#, 1);
    // Rounds go on until several kills have landed inside a write: one that did leaves the
    // write's temporary file behind, which proves the kill fell between create and rename.
    let mut inside = 0;
    let mut rounds = 0;
    while inside < 3 || rounds < 12 {
        assert!(
            rounds < 60,
            "only {inside} of {rounds} kills landed inside a write: the test proves nothing"
        );
        let round = rounds;
        rounds += 1;
        let mut d = Setup::new()
            .sh("x.service", "type = \"oneshot\"", "true")
            .config(&big)
            .boot();
        let cmd = format!(
            "while :; do {0} disable x; {0} enable x; done",
            d.shell_cmd("asyncmctl", "")
        );
        let mut writer = std::process::Command::new("sh")
            .args(["-c", &cmd])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let path = d.units().join("services.config");
        let temporary = |units: &std::path::Path| {
            std::fs::read_dir(units).unwrap().flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".services.config.tmp-")
            })
        };
        // Let some writes complete, then kill the daemon: in even rounds at an arbitrary
        // moment, in odd ones the moment a write's temporary file appears.
        wait_for("a first write", || {
            (std::fs::read_to_string(&path).unwrap_or_default() == flipped).then_some(())
        });
        if round % 2 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(7 * (round % 12) as u64));
        } else {
            let units = d.units();
            let start = std::time::Instant::now();
            while !temporary(&units) {
                assert!(start.elapsed() < asyncmd_e2e::DEADLINE, "no write began");
            }
        }
        d.crash();
        let _ = writer.kill();
        let _ = writer.wait();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text == big || text == flipped,
            "round {round}: services.config is neither the old nor the new file ({} bytes)",
            text.len()
        );
        inside += usize::from(temporary(&d.units()));
    }
    eprintln!("{inside} of {rounds} kills landed inside a write");
}

#[test]
fn reload_applies_only_the_difference() {
    let mut d = Setup::new()
        .sh("same.service", "", LOOP)
        .sh("edited.service", "", LOOP)
        .sh("kw.service", "", LOOP)
        .sh("off.service", "", LOOP)
        .sh("gone.service", "", LOOP)
        .sh("keep.service", "", LOOP)
        .config(r#"{"kw": {"kwargs": {"a": 1}}}"#)
        .boot();
    let pid = |d: &asyncmd_e2e::Daemon, u: &str| d.status(u)["pid"].as_u64().unwrap();
    let before: HashMap<&str, u64> = ["same", "edited", "kw", "off", "gone", "keep"]
        .into_iter()
        .map(|u| (u, pid(&d, u)))
        .collect();
    let units = d.units();
    let append = |f: &str, text: &str| {
        let p = units.join(f);
        let t = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, t + text).unwrap();
    };
    append("edited.service", "env = { X = \"1\" }\n");
    append("keep.service", "bogus = 1\n");
    std::fs::remove_file(units.join("gone.service")).unwrap();
    std::fs::write(
        units.join("new.service"),
        "[service]\nexec = [\"sh\", \"-c\", \"while :; do sleep 1; done\"]\n",
    )
    .unwrap();
    std::fs::write(
        units.join("services.config"),
        r#"{"kw": {"kwargs": {"a": 2}}, "off": {"enabled": false}}"#,
    )
    .unwrap();

    let dry = d.ctl(&["reload", "--dry-run"]);
    let dry_text = stdout(&dry);
    let expected_dry = [
        "edited.service: would restart (unit file changed)",
        "gone.service: would remove (unit file removed)",
        "keep.service: would update (unit file or config entry broken; it keeps running as it was); error: units/keep.service:",
        "kw.service: would restart (services.config changed)",
        "new.service: would start (new unit)",
        "off.service: would stop (disabled in services.config)",
        "Reload (dry run): 6 changed, 1 unchanged",
    ];
    for e in expected_dry {
        assert!(dry_text.contains(e), "missing {e:?} in\n{dry_text}");
    }
    for (u, p) in &before {
        assert_eq!(pid(&d, u), *p, "a dry run touched {u}");
    }
    assert_eq!(d.ctl(&["status", "new"]).status.code(), Some(4));

    let o = d.ctl(&["reload"]);
    let text = stdout(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "keep.service's broken file fails the reload"
    );
    for e in [
        "edited.service: restarted (unit file changed)",
        "gone.service: removed (unit file removed)",
        "kw.service: restarted (services.config changed)",
        "new.service: started (new unit)",
        "off.service: stopped (disabled in services.config)",
        "Reload: 6 changed, 1 unchanged",
    ] {
        assert!(text.contains(e), "missing {e:?} in\n{text}");
    }
    assert_eq!(pid(&d, "same"), before["same"], "untouched");
    assert_eq!(
        pid(&d, "keep"),
        before["keep"],
        "a broken file keeps the old run"
    );
    assert_ne!(pid(&d, "edited"), before["edited"]);
    assert_ne!(pid(&d, "kw"), before["kw"]);
    assert_eq!(d.status("kw.service")["kwargs"]["a"], 2);
    assert_eq!(d.state("off.service"), "stopped");
    assert_eq!(d.state("new.service"), "running");
    assert_eq!(d.ctl(&["status", "gone"]).status.code(), Some(4));
    let gone = before["gone"] as i32;
    wait_for("gone.service's process to end", || {
        (!std::path::Path::new(&format!("/proc/{gone}")).exists()).then_some(())
    });

    // SIGHUP does the same.
    std::fs::write(
        units.join("hup.service"),
        "[service]\nexec = [\"sh\", \"-c\", \"while :; do sleep 1; done\"]\n",
    )
    .unwrap();
    d.signal(Signal::SIGHUP);
    wait_for("the SIGHUP report", || {
        d.report()
            .contains("[ Reload ] hup.service: started (new unit)")
            .then_some(())
    });
    assert_eq!(d.state("hup.service"), "running");
    assert_eq!(pid(&d, "same"), before["same"]);
    assert_eq!(d.stop(), Some(0));
}

#[test]
fn reload_with_a_broken_services_config_changes_nothing() {
    let d = Setup::new().sh("a.service", "", LOOP).boot();
    let pid = d.status("a.service")["pid"].clone();
    std::fs::write(d.units().join("services.config"), "{\"a\": ").unwrap();
    let o = d.ctl(&["reload"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("services.config") && stderr(&o).contains("nothing was changed"),
        "{}",
        stderr(&o)
    );
    assert_eq!(d.status("a.service")["pid"], pid);
}

#[test]
fn load_and_unload_at_runtime() {
    let d = Setup::new().sh("a.service", "", LOOP).boot();
    let pid_a = d.status("a.service")["pid"].clone();
    std::fs::write(
        d.units().join("late.service"),
        "[unit]\nrequires = [\"a.service\"]\n[service]\nexec = [\"sh\", \"-c\", \"while :; do sleep 1; done\"]\n",
    )
    .unwrap();
    let o = d.ctl(&["load", "late"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "late.service: loaded and started\n");
    let late = d.status("late.service");
    assert_eq!(late["state"], "running");
    assert_eq!(
        d.status("a.service")["pid"],
        pid_a,
        "the others are not reloaded"
    );

    let o = d.ctl(&["load", "late.service"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o)
            .contains("late.service is already loaded and running: refusing a second instance"),
        "{}",
        stderr(&o)
    );
    assert_eq!(d.status("late.service")["pid"], late["pid"]);
    assert_eq!(d.ctl(&["load", "nosuch"]).status.code(), Some(4));

    let o = d.ctl(&["unload", "late"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.ctl(&["status", "late"]).status.code(), Some(4));
    let pid = late["pid"].as_u64().unwrap();
    wait_for("late.service's process to end", || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    assert!(
        d.ctl(&["load", "late"]).status.success(),
        "it can be loaded again"
    );
    assert_eq!(d.state("late.service"), "running");
}

#[test]
fn a_stop_cancels_a_start_that_waits_and_a_second_start_does_not_double_it() {
    let (_gate, go, slow) = gate();
    let d = Setup::new()
        .sh("slow.service", "type = \"oneshot\"", &slow)
        .sh("app.service", "requires = [\"slow.service\"]", LOOP)
        .sh("web.service", "requires = [\"slow.service\"]", LOOP)
        .spawn();
    d.wait_listening();
    wait_for("app.service to wait", || {
        (d.state("app.service") == "waiting").then_some(())
    });
    // A unit waiting to start is not loaded a second time.
    let o = d.ctl(&["load", "app"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o)
            .contains("app.service is already loaded and waiting: refusing a second instance"),
        "{}",
        stderr(&o)
    );
    assert_eq!(d.state("app.service"), "waiting");
    assert!(d.ctl(&["stop", "app"]).status.success());
    assert_eq!(d.state("app.service"), "stopped");
    // A person's start of web while boot waits: both plans wait, web starts once.
    let second = std::process::Command::new("sh")
        .args(["-c", &d.shell_cmd("asyncmctl", "start web")])
        .spawn()
        .unwrap();
    std::fs::write(&go, "").unwrap();
    d.wait_booted();
    let out = asyncmd_e2e::output_within(second, "a second start while boot waits");
    assert!(out.status.success());
    let web = d.wait_state("web.service", "running");
    assert_eq!(web["starts"], 1, "{web}");
    assert_eq!(
        d.state("app.service"),
        "stopped",
        "the cancelled start stays cancelled"
    );
    let r = d.report();
    assert!(
        r.contains(
            "app.service from units/app.service not loaded: Error: start cancelled while it waited"
        ),
        "{r}"
    );
}

/// A unit that, if it ever ran, would leave `started-NAME` beside its unit file.
fn marking(name: &str, unit_lines: &str) -> String {
    format!(
        "[unit]\n{unit_lines}\n[service]\nexec = [\"sh\", \"-c\", \"touch started-{name}; exec sleep 600\"]\nworkdir = \".\"\n"
    )
}

/// Runs `asyncmdd --plan` on the units of `dir`.
fn plan(dir: &std::path::Path) -> std::process::Output {
    let child = std::process::Command::new(asyncmd_e2e::bin("asyncmdd"))
        .args(["--plan", "--no-color", "--units"])
        .arg(dir.join("units"))
        .arg("--socket")
        .arg(dir.join("plan.sock"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    asyncmd_e2e::output_within(child, "asyncmdd --plan")
}

#[test]
fn plan_prints_the_boot_plan_and_starts_nothing() {
    let files = Setup::new()
        .unit("a.service", &marking("a", "requires = [\"b.service\"]"))
        .unit("b.service", &marking("b", ""))
        .unit("c.service", &marking("c", "requires = [\"c.service\"]"))
        .files();
    let o = plan(files.path());
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "a unit would not start: {text}");
    assert!(
        text.starts_with("[ Booting ] Order: --> b.service --> a.service\n"),
        "{text}"
    );
    assert!(
        text.contains("c.service not loaded: Error: dependency cycle: c.service -> c.service"),
        "{text}"
    );
    assert!(stderr(&o).contains("3 units read"), "{}", stderr(&o));
    // Nothing started: no [ OK ] line, no socket, and no unit ran (each would leave its file).
    assert!(!text.contains("[ OK ]"), "{text}");
    assert!(!files.path().join("plan.sock").exists());
    let units = files.path().join("units");
    for u in ["a", "b", "c"] {
        assert!(!units.join(format!("started-{u}")).exists(), "{u} ran");
    }

    // Every enabled unit would start: exit 0. A disabled one is left out of the order.
    let good = Setup::new()
        .unit("a.service", &marking("a", "requires = [\"b.service\"]"))
        .unit("b.service", &marking("b", ""))
        .unit("off.service", &marking("off", ""))
        .config(r#"{"off": {"enabled": false}}"#)
        .files();
    let o = plan(good.path());
    let text = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{text}{}", stderr(&o));
    assert_eq!(text, "[ Booting ] Order: --> b.service --> a.service\n");
    assert!(!good.path().join("units/started-a").exists());
}
