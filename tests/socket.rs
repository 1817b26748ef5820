//! The control socket under bad input: garbage, oversized frames, wrong versions, idle clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use asyncmd_e2e::{stdout, Setup};
use serde_json::Value;

fn reply(stream: &mut UnixStream) -> Value {
    let mut line = String::new();
    BufReader::new(stream.try_clone().unwrap())
        .read_line(&mut line)
        .unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

fn daemon() -> asyncmd_e2e::Daemon {
    Setup::new()
        .sh("a.service", "", "while :; do echo tick; sleep 1; done")
        .boot()
}

fn connect(d: &asyncmd_e2e::Daemon) -> UnixStream {
    let s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s
}

#[test]
fn garbage_gets_an_error_and_the_connection_goes_on() {
    let d = daemon();
    let mut s = connect(&d);
    s.write_all(b"this is not json\n").unwrap();
    let r = reply(&mut s);
    assert_eq!(r["kind"], "error");
    assert_eq!(r["code"], "bad-request");
    assert!(r["message"].as_str().unwrap().contains("malformed request"));
    s.write_all(b"{\"v\":1,\"req\":{\"op\":\"explode\"}}\n")
        .unwrap();
    let r = reply(&mut s);
    assert!(r["message"].as_str().unwrap().contains("explode"), "{r}");
    s.write_all(b"{\"v\":99,\"req\":{\"op\":\"list\"}}\n")
        .unwrap();
    let r = reply(&mut s);
    assert_eq!(r["code"], "version");
    s.write_all(b"\x00\xff\xfe\n").unwrap();
    assert_eq!(reply(&mut s)["code"], "bad-request");
    // The same connection still answers a good request.
    s.write_all(b"{\"v\":1,\"req\":{\"op\":\"list\"}}\n")
        .unwrap();
    let r = reply(&mut s);
    assert_eq!(r["kind"], "list");
    assert_eq!(r["units"][0]["name"], "a.service");
}

#[test]
fn an_8_mib_frame_is_refused_and_others_are_served() {
    let d = daemon();
    let mut s = connect(&d);
    let writer = {
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let chunk = vec![b'x'; 64 * 1024];
            for _ in 0..128 {
                if w.write_all(&chunk).is_err() {
                    return;
                }
            }
            let _ = w.write_all(b"\n");
        })
    };
    let mut got = String::new();
    let _ = s.read_to_string(&mut got);
    let first = got.lines().next().unwrap_or("");
    let r: Value = serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {first:?}"));
    assert_eq!(r["code"], "too-large");
    assert!(r["message"].as_str().unwrap().contains("65536"), "{r}");
    writer.join().unwrap();
    // The daemon and its services carry on.
    let o = d.ctl(&["status", "a"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn silent_and_half_sent_clients_do_not_block_others() {
    let d = daemon();
    let mut idle = Vec::new();
    for _ in 0..10 {
        let mut s = connect(&d);
        s.write_all(b"{\"v\":1,\"req\":").unwrap();
        idle.push(s);
    }
    for _ in 0..5 {
        assert_eq!(d.ctl(&["status", "a"]).status.code(), Some(0));
    }
    drop(idle);
}

#[test]
fn changes_need_a_privileged_peer() {
    // Run a client as another user where we can (as root, with nobody); skip otherwise.
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: cannot switch user to test the permission check");
        return;
    }
    let d = daemon();
    // The socket is 0660: let the other user reach it for this test.
    std::fs::set_permissions(
        &d.socket,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    std::fs::set_permissions(
        d.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("a nobody user");
    let run = |args: &[&str]| {
        let mut c = std::process::Command::new(asyncmd_e2e::bin("asyncmctl"));
        c.arg("--socket").arg(&d.socket).args(args);
        std::os::unix::process::CommandExt::uid(&mut c, nobody.uid.as_raw());
        c.output().unwrap()
    };
    let o = run(&["status", "a"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "reads are allowed: {}",
        asyncmd_e2e::stderr(&o)
    );
    let o = run(&["stop", "a"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(asyncmd_e2e::stderr(&o).contains("permission denied"));
    assert_eq!(d.state("a.service"), "running");
}
