//! The `mqtt` builtin against a real mosquitto: asyncmd's device protocol, remote control off
//! and on, the link across a broker restart, and the last will on a crash.

use asyncmd_e2e::mqtt::{Broker, Watch};
use asyncmd_e2e::{wait_for, Daemon, Setup};
use serde_json::{json, Value};

const DEVICE: &str = "dev1";

fn t(leaf: &str) -> String {
    format!("device/{DEVICE}/{leaf}")
}

/// A daemon with `hello` (a process that logs), a failing `bad` and the `mqtt` unit on
/// `broker`, its kwargs `extra` beside the broker's address and the device id.
fn device(broker: &Broker, extra: Value) -> Daemon {
    device_named(DEVICE, broker, extra)
}

/// [`device`] with the device id `id`.
fn device_named(id: &str, broker: &Broker, extra: Value) -> Daemon {
    let mut kwargs = json!({"server": "127.0.0.1", "port": broker.port, "hostname": id});
    kwargs
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let config = json!({
        "hello": {"enabled": true, "args": [2], "kwargs": {"sleep": 1}},
        "bad": {"enabled": true},
        "mqtt": {"enabled": true, "kwargs": kwargs},
    });
    Setup::new()
        .sh(
            "hello.service",
            "",
            "while true; do echo tick; sleep 0.2; done",
        )
        .sh("bad.service", "", "echo 'Traceback: it broke' >&2; exit 3")
        .unit(
            "mqtt.service",
            "[unit]\ndescription = \"MQTT\"\n[service]\nbuiltin = \"mqtt\"\n",
        )
        .config(&config.to_string())
        .boot()
}

fn connected(d: &Daemon) {
    wait_for("the mqtt unit to connect", || {
        let s = d.status("mqtt.service");
        let link = s["stats"]["link"].as_str().unwrap_or("").to_string();
        link.starts_with("connected to").then_some(())
    });
}

fn has(m: &asyncmd_e2e::mqtt::Message, key: &str) -> bool {
    m.json().get(key).is_some()
}

#[test]
fn a_device_answers_asyncmds_topics_and_refuses_changes_without_control() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let mut w = Watch::new(broker.port, "device/#");
    let d = device(
        &broker,
        json!({"stats": true, "password": "s3cret", "username": "u"}),
    );
    connected(&d);

    // Presence is retained, so a late watcher sees it too.
    let late = {
        let mut late = Watch::new(broker.port, &t("presence"));
        late.next(&t("presence"), |m| m.text == "online")
    };
    assert!(late.retained, "presence is retained");

    // The periodic status: every *.service, in asyncmd's schema.
    let st = w
        .next(&t("status"), |m| {
            has(m, "hello.service") && has(m, "mqtt.service")
        })
        .json();
    assert_eq!(st["hostname"], DEVICE);
    assert_eq!(st["hello.service"]["status"], "running", "{st}");
    assert_eq!(st["hello.service"]["service"], true);
    assert!(st["hello.service"]["since"].as_f64().unwrap() > 1.7e9);
    // The link's stats are there; the password is nowhere.
    assert!(st["mqtt.service"]["stats"]["link"]
        .as_str()
        .unwrap()
        .starts_with("connected to 127.0.0.1:"));
    assert!(!st.to_string().contains("s3cret"));

    // A status request, a list of names, and `:/debug`.
    let one = w
        .ask(
            &t("service"),
            r#"{"status": "hello.service"}"#,
            &t("status"),
            |m| has(m, "hello.service") && !has(m, "mqtt.service"),
        )
        .json();
    assert_eq!(one["hello.service"]["status"], "running");
    let bad = wait_for("bad to fail", || {
        let s = d.status("bad.service");
        (s["state"] == "failed").then_some(s)
    });
    assert_eq!(bad["state"], "failed");
    let dbg = w
        .ask(
            &t("service"),
            r#"{"status": ["bad:/debug", "mqtt:/debug"]}"#,
            &t("status"),
            |m| has(m, "bad.service"),
        )
        .json();
    assert_eq!(dbg["bad.service"]["status"], "error");
    assert!(dbg["bad.service"]["traceback"]
        .as_str()
        .unwrap()
        .contains("Traceback: it broke"));
    assert_eq!(dbg["bad.service"]["type"], "runtime.service");
    assert!(dbg["bad.service"]["path"]
        .as_str()
        .unwrap()
        .ends_with("bad.service"));
    let m = w.next(&t("status"), |m| has(m, "mqtt.service")).json();
    assert_eq!(m["mqtt.service"]["kwargs"]["password"], "********", "{m}");
    assert!(!m.to_string().contains("s3cret"));
    let none = w
        .ask(
            &t("service"),
            r#"{"status": "nonexist.service"}"#,
            &t("status"),
            |m| has(m, "error"),
        )
        .json();
    assert_eq!(none["hostname"], DEVICE);
    assert!(
        none["error"].as_str().unwrap().contains("nonexist"),
        "{none}"
    );

    // traceback, on the device topic and on all.
    let tb = w
        .ask(
            "device/all/service",
            r#"{"traceback": "bad.service"}"#,
            &t("status"),
            |m| m.json()["bad.service"].get("traceback").is_some(),
        )
        .json();
    assert!(tb["bad.service"]["traceback"]
        .as_str()
        .unwrap()
        .starts_with("bad.service: Traceback\n"));

    // Changes are refused, and nothing changes.
    let r = w
        .ask(
            &t("service"),
            r#"{"stop": "hello.service"}"#,
            &t("status"),
            |m| has(m, "hello.service") && m.text.contains("refused"),
        )
        .json();
    assert!(r["hello.service"]["stop"]
        .as_str()
        .unwrap()
        .contains("remote control is off"));
    assert_eq!(d.state("hello.service"), "running");
    let before = std::fs::read_to_string(d.units().join("services.config")).unwrap();
    let r = w
        .ask(
            &t("service"),
            r#"{"config": {"disable": "hello"}}"#,
            &t("config"),
            |m| m.text.contains("refused"),
        )
        .json();
    assert!(r.to_string().contains("remote control is off"), "{r}");
    let after = std::fs::read_to_string(d.units().join("services.config")).unwrap();
    assert_eq!(before, after, "a refused change leaves the file alone");

    // Reads: config get of all, of one, of none.
    let all = w
        .ask(
            &t("service"),
            r#"{"config": {"get": "*"}}"#,
            &t("config"),
            |m| has(m, "hello"),
        )
        .json();
    assert_eq!(all["hello"]["args"], json!([2]));
    let one = w
        .ask(
            &t("service"),
            r#"{"config": {"get": "hello.service"}}"#,
            &t("config"),
            |m| has(m, "enabled"),
        )
        .json();
    assert_eq!(
        one,
        json!({"enabled": true, "args": [2], "kwargs": {"sleep": 1}})
    );
    let missing = w.ask(
        &t("service"),
        r#"{"config": {"get": "nonexist"}}"#,
        &t("config"),
        |_| true,
    );
    assert_eq!(missing.text, "false");

    // The log, on request: the ring the first time, then what came since.
    w.publish(&t("service"), r#"{"log": "x"}"#);
    let line = w.next(&t("log"), |m| m.text.contains("[hello.service] tick"));
    assert!(line.text.ends_with('\n'));
    assert!(
        line.text.contains("[testhost] [INFO] [hello.service] tick"),
        "{}",
        line.text
    );
    w.publish(&t("logger"), "log");
    w.next(&t("log"), |m| m.text.contains("tick"));

    // cmd help, one command's help, an unknown command.
    let help = w.ask(&t("cmd"), "help", &t("help"), |_| true).json();
    assert!(
        help.get("help").is_some() && help.get("reload").is_some(),
        "{help}"
    );
    let reload = w
        .ask("device/all/cmd", "reload?", &t("help"), |_| true)
        .json();
    assert!(reload["help"].as_str().unwrap().contains("needs control"));
    let resp = w.ask(&t("cmd"), "nonexistent", &t("resp"), |_| true).json();
    assert_eq!(resp["cmd"], "nonexistent");
    assert_eq!(resp["hostname"], DEVICE);
    assert!(resp["msg"].as_str().unwrap().contains("not found"));
    let resp = w.ask(&t("cmd"), "reload", &t("resp"), |_| true).json();
    assert!(resp["msg"].as_str().unwrap().contains("refused"), "{resp}");

    // Bad input gets an error, and the device goes on.
    let e = w
        .ask(&t("service"), "not json", &t("status"), |m| has(m, "error"))
        .json();
    assert!(
        e["error"].as_str().unwrap().contains("Receive callback"),
        "{e}"
    );
    let e = w
        .ask(
            &t("service"),
            r#"{"unknownaction": "hello.service"}"#,
            &t("status"),
            |m| has(m, "error"),
        )
        .json();
    assert!(e["error"]
        .as_str()
        .unwrap()
        .contains("unknown action 'unknownaction'"));
    w.ask(&t("service"), r#"{"status": "hello"}"#, &t("status"), |m| {
        has(m, "hello.service")
    });
    assert_eq!(d.state("mqtt.service"), "running");

    // The next periodic status comes on its own.
    w.next(&t("status"), |m| {
        has(m, "hello.service") && has(m, "mqtt.service")
    });
}

#[test]
fn with_control_a_device_starts_stops_and_edits_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let mut w = Watch::new(broker.port, "device/#");
    let d = device(&broker, json!({"control": true}));
    connected(&d);

    let r = w
        .ask(
            &t("service"),
            r#"{"stop": "hello.service"}"#,
            &t("status"),
            |m| m.json()["hello.service"].get("stop").is_some(),
        )
        .json();
    assert_eq!(r["hello.service"]["stop"], "stopped", "{r}");
    assert_eq!(d.state("hello.service"), "stopped");
    let r = w
        .ask(&t("service"), r#"{"start": "hello"}"#, &t("status"), |m| {
            m.json()["hello.service"].get("start").is_some()
        })
        .json();
    assert_eq!(r["hello.service"]["start"], "running", "{r}");
    let r = w
        .ask(
            &t("service"),
            r#"{"start": "nonexist"}"#,
            &t("status"),
            |m| m.text.contains("nonexist"),
        )
        .json();
    assert!(r.to_string().contains("not found"), "{r}");

    let file = || -> Value {
        serde_json::from_str(&std::fs::read_to_string(d.units().join("services.config")).unwrap())
            .unwrap()
    };
    let r = w
        .ask(
            &t("service"),
            r#"{"config": {"disable": ["hello", "bad"]}}"#,
            &t("config"),
            |m| has(m, "hello.service"),
        )
        .json();
    assert_eq!(r["hello.service"]["disable"], "ok", "{r}");
    assert_eq!(file()["hello"]["enabled"], false);
    assert_eq!(file()["bad"]["enabled"], false);
    w.ask(
        &t("service"),
        r#"{"config": {"enable": "hello"}}"#,
        &t("config"),
        |m| has(m, "hello.service"),
    );
    assert_eq!(file()["hello"]["enabled"], true);
    let r = w
        .ask(
            &t("service"),
            r#"{"config": {"set": {"hello": {"args": [3, 4], "kwargs": {"loglevel": "INFO"}}}}}"#,
            &t("config"),
            |m| has(m, "set"),
        )
        .json();
    assert_eq!(r["set"]["hello"], "ok", "{r}");
    let f = file();
    assert_eq!(f["hello"]["args"], json!([3, 4]));
    assert_eq!(
        f["hello"]["kwargs"],
        json!({"sleep": 1, "loglevel": "INFO"}),
        "kwargs are merged"
    );
    assert_eq!(f["mqtt"]["kwargs"]["hostname"], DEVICE, "the rest is kept");
    let r = w
        .ask(
            &t("service"),
            r#"{"config": {"set": {"hello": {"args": [1]}}}}"#,
            &t("config"),
            |m| has(m, "set"),
        )
        .json();
    assert!(
        r["set"]["hello"].as_str().unwrap().starts_with("error"),
        "{r}"
    );

    let resp = w
        .ask(&t("cmd"), r#"{"cmd": "reload"}"#, &t("resp"), |_| true)
        .json();
    assert_eq!(resp["msg"], "RELOADED", "{resp}");
}

#[test]
fn the_link_outlives_the_broker_counts_what_it_dropped_and_a_crash_leaves_the_last_will() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path());
    let port = broker.port;
    // A quiet device: its only other unit logs 3000 numbered lines when started, then ends.
    let config = json!({
        "flood": {"enabled": false},
        "mqtt": {"enabled": true, "kwargs": {"server": "127.0.0.1", "port": port,
                 "hostname": DEVICE, "stats": true, "logs": true}},
    });
    let mut d = Setup::new()
        .sh(
            "flood.service",
            "",
            "i=0; while [ $i -lt 3000 ]; do i=$((i+1)); echo n=$i; done",
        )
        .unit(
            "mqtt.service",
            "[unit]\ndescription = \"MQTT\"\n[service]\nbuiltin = \"mqtt\"\n",
        )
        .config(&config.to_string())
        .boot();
    connected(&d);
    let rss = d.mem_kb("VmRSS");
    {
        let mut w = Watch::new(port, &t("log"));
        // The stream is live (and then idle: nothing else logs).
        d.ctl(&["status", "mqtt"]);
        w.publish(&t("service"), r#"{"status": "mqtt"}"#);
        w.next(&t("log"), |m| m.text.contains("@ [device/dev1/service]"));
    }

    broker.kill();
    wait_for("the link to say it is down", || {
        let s = d.status("mqtt.service");
        let link = s["stats"]["link"].as_str().unwrap_or("").to_string();
        link.contains("next attempt").then_some(())
    });
    // The daemon and its units go on without the broker.
    let o = d.ctl(&["start", "flood"]);
    assert!(o.status.success(), "{}", asyncmd_e2e::stderr(&o));
    wait_for("the flood to end", || {
        (d.status("flood.service")["state"] == "done").then_some(())
    });

    broker.restart();
    let mut w = Watch::new(port, "device/#");
    connected(&d);
    w.next(&t("presence"), |m| m.text == "online");
    // Lines logged while the link was down: the newest 1000 come, and a line before them says
    // how many older ones were dropped.
    let note = w.next(&t("log"), |m| m.text.contains("log lines were dropped"));
    let dropped: u64 = note
        .text
        .split("] ")
        .last()
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count in {}", note.text));
    let mut numbers = Vec::new();
    while numbers.last() != Some(&3000) {
        let m = w.next(&t("log"), |m| m.text.contains("] n="));
        let n: u64 = m
            .text
            .trim_end()
            .rsplit("n=")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        numbers.push(n);
    }
    let first = numbers[0];
    assert_eq!(
        numbers,
        (first..=3000).collect::<Vec<_>>(),
        "the lines after the note come in order, none missing"
    );
    // Between the last line sent before the outage and the first after it, only the flood's
    // lines before `first` and the daemon's few own lines (the link's warning, the flood's
    // start) were logged: they are the ones counted.
    assert!(
        dropped >= first - 1 && dropped <= first - 1 + 4,
        "{dropped} dropped, the first line after them is n={first}"
    );
    w.next(&t("status"), |m| has(m, "mqtt.service"));
    assert!(
        d.mem_kb("VmRSS") < rss + 20_000,
        "the daemon's memory stays flat across the outage"
    );

    d.crash();
    w.next(&t("presence"), |m| m.text == "offline");
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (apt-get install -y openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate and key it signed for `name` (with `san`), in `dir`.
fn certificates(dir: &std::path::Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec![
        "req",
        "-x509",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ];
    ca.extend(ec);
    openssl(dir, &ca);
    for (name, san) in [
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "subjectAltName=DNS:dev1"),
    ] {
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        let mut req = vec!["req", "-subj", "/CN=test", "-keyout", &key, "-out", &csr];
        req.extend(ec);
        openssl(dir, &req);
        std::fs::write(dir.join(&ext), san).unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &ext,
                "-out",
                &pem,
            ],
        );
    }
}

#[test]
fn tls_with_certificates_and_a_password_and_a_wrong_password_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    certificates(p);
    let pw = p.join("passwd");
    std::fs::write(&pw, "").unwrap();
    let st = std::process::Command::new("mosquitto_passwd")
        .args(["-b"])
        .arg(&pw)
        .args(["fleet", "s3cret-pw"])
        .status()
        .expect("mosquitto_passwd runs (it comes with mosquitto)");
    assert!(st.success());
    let path = |f: &str| p.join(f).display().to_string();
    let broker = Broker::with(
        p,
        &format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n\
             allow_anonymous false\npassword_file {}\n",
            path("ca.pem"),
            path("server.pem"),
            path("server.key"),
            pw.display()
        ),
    );
    let secret_file = p.join("mqtt.secret");
    std::fs::write(&secret_file, "s3cret-pw\n").unwrap();
    let tls = json!({
        "ssl": true,
        "ssl_params": {"ca": path("ca.pem"), "cert": path("client.pem"), "key": path("client.key")},
        "username": "fleet",
    });
    let mut good = tls.clone();
    good["password_file"] = json!(secret_file.display().to_string());
    let d = device(&broker, good);
    connected(&d);
    assert_eq!(d.state("hello.service"), "running");

    let mut bad = tls.clone();
    bad["password"] = json!("wrong-pw");
    let wrong = device(&broker, bad);
    let link = wait_for("the wrong password to be refused", || {
        let s = wrong.status("mqtt.service");
        let link = s["stats"]["link"].as_str().unwrap_or("").to_string();
        link.contains("refused").then_some(link)
    });
    assert!(link.contains("next attempt"), "{link}");
    assert_eq!(
        wrong.status("mqtt.service")["kwargs"]["password"],
        "********"
    );

    // Our clients over mqtts://, with the CA and the password (a broker that asks no client
    // certificate, beside the one that does).
    let dir2 = tempfile::tempdir().unwrap();
    let open = Broker::with(
        dir2.path(),
        &format!(
            "cafile {}\ncertfile {}\nkeyfile {}\nallow_anonymous false\npassword_file {}\n",
            path("ca.pem"),
            path("server.pem"),
            path("server.key"),
            pw.display()
        ),
    );
    let mut ca_only = tls.clone();
    ca_only["ssl_params"] = json!({"ca": path("ca.pem")});
    ca_only["password_file"] = json!(secret_file.display().to_string());
    let d3 = device_named("dev3", &open, ca_only);
    connected(&d3);
    let url = format!("mqtts://127.0.0.1:{}", open.port);
    let ca = path("ca.pem");
    let pwf = secret_file.display().to_string();
    let run = |extra: &[&str]| {
        let mut c = std::process::Command::new(asyncmd_e2e::bin("asyncmctl"));
        c.args(["--mqtt", &url, "--mqtt-ca", &ca, "--device", "dev3"])
            .args(extra)
            .args(["status", "hello"]);
        asyncmd_e2e::run_within(c, "asyncmctl", extra)
    };
    let o = run(&["--mqtt-user", "fleet", "--mqtt-password-file", &pwf]);
    assert_eq!(o.status.code(), Some(0), "{}", asyncmd_e2e::stderr(&o));
    assert!(asyncmd_e2e::stdout(&o).contains("● hello.service"));
    let o = run(&["--mqtt-user", "fleet"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        asyncmd_e2e::stderr(&o).contains("refused"),
        "{}",
        asyncmd_e2e::stderr(&o)
    );

    // Neither password is in a status or a journal line.
    for dm in [&d, &wrong] {
        let o = dm.ctl(&["status", "--json"]);
        let j = dm.journal(&["-n", "1000"]);
        for text in [asyncmd_e2e::stdout(&o), asyncmd_e2e::stdout(&j)] {
            assert!(
                !text.contains("s3cret-pw") && !text.contains("wrong-pw"),
                "{text}"
            );
        }
    }
}

/// Runs a client with `args` against the broker on `port`.
fn client(name: &str, port: u16, args: &[&str]) -> std::process::Output {
    let url = format!("mqtt://127.0.0.1:{port}");
    let mut all = vec!["--mqtt", &url];
    all.extend(args);
    let mut c = std::process::Command::new(asyncmd_e2e::bin(name));
    c.args(&all).env("NO_COLOR", "1");
    asyncmd_e2e::run_within(c, name, &all)
}

#[test]
fn our_clients_drive_one_device_or_all_of_them_through_the_broker() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let d1 = device_named("dev1", &broker, json!({"control": true}));
    let d2 = device_named("dev2", &broker, json!({}));
    connected(&d1);
    connected(&d2);
    let p = broker.port;
    use asyncmd_e2e::{stderr, stdout};

    // The same views and exit codes as over the socket.
    let o = client("asyncmctl", p, &["--device", "dev1", "status", "hello"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let local = d1.ctl(&["status", "hello", "-n", "0"]);
    let first = |o: &std::process::Output| stdout(o).lines().next().unwrap_or("").to_string();
    assert_eq!(first(&o), first(&local));
    assert!(
        stdout(&o).contains("Active: (active) running"),
        "{}",
        stdout(&o)
    );
    let o = client("asyncmctl", p, &["--device", "dev1", "status", "bad"]);
    assert_eq!(o.status.code(), Some(3), "a failed unit: exit 3");
    let o = client("asyncmctl", p, &["--device", "dev1", "status", "nonexist"]);
    assert_eq!(o.status.code(), Some(4), "no such unit: exit 4");
    let o = client("asyncmctl", p, &["--device", "dev1", "--json", "list"]);
    let rows: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 3, "{rows}");

    // Every device, each under its name.
    let o = client("asyncmctl", p, &["--device", "all", "status", "hello"]);
    let text = stdout(&o);
    let (i1, i2) = (text.find("== dev1").unwrap(), text.find("== dev2").unwrap());
    assert!(i1 < i2, "{text}");
    assert_eq!(text.matches("● hello.service").count(), 2, "{text}");

    // Changes where control is on; refused where it is off.
    let o = client("asyncmctl", p, &["--device", "dev1", "stop", "hello"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(d1.state("hello.service"), "stopped");
    let o = client("asyncmctl", p, &["--device", "dev1", "start", "hello"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = client("asyncmctl", p, &["--device", "dev2", "stop", "hello"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("remote control is off"),
        "{}",
        stderr(&o)
    );
    assert_eq!(d2.state("hello.service"), "running");
    let o = client(
        "asyncmctl",
        p,
        &[
            "--device",
            "dev1",
            "config",
            "hello",
            "--kwargs",
            r#"{"sleep": 2}"#,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let f: Value =
        serde_json::from_str(&std::fs::read_to_string(d1.units().join("services.config")).unwrap())
            .unwrap();
    assert_eq!(f["hello"]["kwargs"], json!({"sleep": 2}));

    // A device that is not there, and a broker that is not there.
    let o = client("asyncmctl", p, &["--device", "nodev", "status"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("did not answer"), "{}", stderr(&o));
    let mut c = std::process::Command::new(asyncmd_e2e::bin("asyncmctl"));
    c.args(["--mqtt", "mqtt://127.0.0.1:1", "--device", "dev1", "status"]);
    let o = asyncmd_e2e::run_within(c, "asyncmctl", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot reach the broker"),
        "{}",
        stderr(&o)
    );

    // The journal: the newest N of a unit, a grep, and a follower that sees new lines.
    let o = client(
        "asyncmjournal",
        p,
        &["--device", "dev2", "-u", "hello", "-n", "3"],
    );
    let lines: Vec<String> = stdout(&o).lines().map(String::from).collect();
    assert_eq!(lines.len(), 3, "{lines:?} {}", stderr(&o));
    assert!(lines
        .iter()
        .all(|l| l.contains("[testhost] [INFO] [hello.service] tick")));
    let o = client(
        "asyncmjournal",
        p,
        &["--device", "dev2", "-g", "^Started", "-o", "json"],
    );
    let started: Vec<Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(started.len() >= 3, "{started:?}");
    assert!(started
        .iter()
        .all(|e| e["msg"].as_str().unwrap().starts_with("Started")));
    let url = format!("mqtt://127.0.0.1:{p}");
    let mut follower = std::process::Command::new(asyncmd_e2e::bin("asyncmjournal"))
        .args([
            "--mqtt", &url, "--device", "dev2", "-F", "-u", "hello", "-n", "0",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = asyncmd_e2e::Lines::new(follower.stdout.take().unwrap());
    let a = lines.next_line("a followed line");
    let b = lines.next_line("another");
    assert!(a.contains("tick") && b.contains("tick"), "{a} {b}");
    let _ = follower.kill();
    let _ = follower.wait();
}
