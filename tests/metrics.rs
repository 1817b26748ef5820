//! The `stats` builtin: the units over HTTP in asyncmd's JSON, and as Prometheus metrics that
//! a real Prometheus text parser (prometheus_client's) reads; its limits.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;

use asyncmd_e2e::{free_port, run_within, stdout, wait_for, Setup};
use serde_json::Value;

/// `curl` with `args` against the site on `port`: the status code, then the body.
fn curl(port: u16, path: &str, args: &[&str]) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "30"])
        .args(args)
        .arg(format!("http://127.0.0.1:{port}{path}"));
    let o = run_within(c, "curl", args);
    let out = stdout(&o);
    let (body, code) = out.rsplit_once('\n').expect("a status code");
    (code.parse().unwrap_or(0), body.to_string())
}

#[test]
fn status_json_and_prometheus_metrics_over_http_within_limits() {
    let port = free_port();
    let d = Setup::new()
        .unit("stats.service", "[service]\nbuiltin = \"stats\"\n")
        .sh(
            "hello.service",
            "",
            "while :; do echo 'LED toggled'; sleep 0.1; done",
        )
        .sh(
            "broken.service",
            "type = \"oneshot\"",
            "echo oops >&2; exit 3",
        )
        .config(&format!(
            "{{\"stats\": {{\"kwargs\": {{\"port\": {port}, \"connections\": 2}}}}}}"
        ))
        .boot();
    d.wait_state("stats.service", "running");
    d.wait_state("broken.service", "failed");
    wait_for("the site to answer", || {
        (curl(port, "/", &[]).0 == 200).then_some(())
    });

    // `/`: every unit in asyncmd's schema, and the host name.
    let (code, body) = curl(port, "/", &[]);
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["hostname"], "testhost");
    assert_eq!(v["hello.service"]["status"], "running", "{v}");
    assert_eq!(v["broken.service"]["status"], "error", "{v}");
    assert!(v["hello.service"].get("traceback").is_none());
    // `/debug`: the :/debug fields too.
    let (_, body) = curl(port, "/debug", &[]);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["broken.service"]["type"], "oneshot.service");
    assert!(
        v["broken.service"]["traceback"]
            .as_str()
            .unwrap()
            .contains("oops"),
        "{v}"
    );

    // `/metrics`, read by prometheus_client's parser: the samples as they should be.
    wait_for("hello to have logged", || {
        let (_, m) = curl(port, "/metrics", &[]);
        m.contains("asyncmd_unit_log_lines_total{unit=\"hello.service\"}")
            .then_some(())
    });
    let (code, text) = curl(port, "/metrics", &[]);
    assert_eq!(code, 200);
    let parse = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        key = s.name + "|" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        out[key] = [fam.type, s.value]
print(json.dumps(out))
"#;
    let mut py = Command::new("python3")
        .args(["-c", parse])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    py.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = py.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "prometheus_client could not parse it (tests/run.sh installs it with pip):\n{}\n{text}",
        String::from_utf8_lossy(&o.stderr)
    );
    let m: Value = serde_json::from_slice(&o.stdout).unwrap();
    let sample = |k: &str| m[k][1].as_f64().unwrap_or_else(|| panic!("no {k} in {m}"));
    assert_eq!(
        sample("asyncmd_unit_state|state=running,unit=hello.service"),
        1.0
    );
    assert_eq!(
        sample("asyncmd_unit_state|state=failed,unit=hello.service"),
        0.0
    );
    assert_eq!(
        sample("asyncmd_unit_state|state=failed,unit=broken.service"),
        1.0
    );
    assert_eq!(sample("asyncmd_unit_starts_total|unit=broken.service"), 1.0);
    assert_eq!(
        m["asyncmd_unit_starts_total|unit=broken.service"][0],
        "counter"
    );
    assert!(sample("asyncmd_unit_log_lines_total|unit=hello.service") >= 1.0);
    assert!(sample("asyncmd_unit_memory_bytes|unit=hello.service") > 0.0);
    assert!(sample("asyncmd_journal_bytes|") > 0.0);
    assert!(sample("asyncmd_up_seconds|") > 0.0);
    assert_eq!(
        sample("asyncmd_journal_capacity_bytes|"),
        (1 << 20) as f64,
        "the default journal"
    );

    // What is no GET of a page here gets its 4xx, and the site goes on.
    assert_eq!(curl(port, "/nope", &[]).0, 404);
    assert_eq!(curl(port, "/", &["-X", "POST"]).0, 405);
    assert_eq!(curl(port, "/", &["-X", "GET", "--data", "x"]).0, 413);
    let big = format!("X-Big: {}", "y".repeat(10_000));
    assert_eq!(curl(port, "/", &["-H", &big]).0, 431);
    assert_eq!(curl(port, "/", &["-I"]).0, 200);

    // Two connections held open take every place: a third is told the site is busy.
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    wait_for("the third connection to be refused as busy", || {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        let _ = s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n");
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        got.starts_with("HTTP/1.1 503").then_some(got)
    });
    drop(held);
    wait_for("a place again once they are gone", || {
        (curl(port, "/", &[]).0 == 200).then_some(())
    });
    let st = d.status("stats.service");
    assert!(st["stats"]["requests"].as_u64().unwrap() > 5, "{st}");
}
