//! The control socket under bad input: garbage, oversized frames, wrong versions, idle clients;
//! its limits (64 clients, 30 s to send a request), its mode and who may change what.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use asyncmd_e2e::{require_root, stderr, stdout, wait_for, Daemon, Setup, DEADLINE};
use serde_json::Value;

/// The next reply line; each read waits at most the stream's read timeout, and a reply that
/// never ends its line stops at 1 MiB.
fn reply(stream: &mut UnixStream) -> Value {
    let mut line = String::new();
    BufReader::new(stream.try_clone().unwrap().take(1 << 20))
        .read_line(&mut line)
        .unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

fn daemon() -> Daemon {
    Setup::new()
        .sh("a.service", "", "while :; do echo tick; sleep 1; done")
        .boot()
}

fn connect(d: &Daemon) -> UnixStream {
    let s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

/// The `nobody` user, to run clients as a peer that is neither root nor the daemon's user.
fn nobody() -> nix::unistd::User {
    nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("a nobody user")
}

/// `asyncmctl --socket SOCKET ARGS` run as `uid`:`gid` (with no supplementary groups).
fn ctl_as(d: &Daemon, uid: u32, gid: u32, args: &[&str]) -> Output {
    let mut c = Command::new(asyncmd_e2e::bin("asyncmctl"));
    c.arg("--socket")
        .arg(&d.socket)
        .args(args)
        .uid(uid)
        .gid(gid);
    asyncmd_e2e::run_within(c, "asyncmctl as another user", args)
}

/// Everything a connection receives until the daemon closes it, and how long after `since`
/// that was; fails if it is still open after 90 s.
fn until_closed(mut s: UnixStream, since: Instant) -> (Duration, Vec<u8>) {
    s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            since.elapsed() < Duration::from_secs(90),
            "the connection was still open {:?} after it was made, and talking",
            since.elapsed()
        );
        match s.read(&mut buf) {
            Ok(0) => return (since.elapsed(), got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (since.elapsed(), got),
            Err(e) => panic!(
                "the connection was still open {:?} after it was made: {e}",
                since.elapsed()
            ),
        }
    }
}

/// What a connection closed for taking too long may have been told first: nothing, or an
/// error frame.
fn assert_nothing_or_an_error(got: &[u8], what: &str) {
    let text = String::from_utf8_lossy(got);
    for line in text.lines() {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: {e}: {line:?}"));
        assert_eq!(v["kind"], "error", "{what}: {v}");
    }
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
    let s = connect(&d);
    let (tx, written) = mpsc::channel();
    {
        let mut w = s.try_clone().unwrap();
        // A daemon that stopped reading without closing would block a write for ever.
        w.set_write_timeout(Some(DEADLINE)).unwrap();
        std::thread::spawn(move || {
            let chunk = vec![b'x'; 64 * 1024];
            let r = (0..128)
                .try_for_each(|_| w.write_all(&chunk))
                .and_then(|_| w.write_all(b"\n"));
            let _ = tx.send(r);
        });
    }
    let mut got = String::new();
    let read = (&s).take(1 << 20).read_to_string(&mut got);
    let first = got.lines().next().unwrap_or("");
    let r: Value = serde_json::from_str(first).unwrap_or_else(|e| panic!("{e}: {first:?}"));
    assert_eq!(r["code"], "too-large");
    assert!(r["message"].as_str().unwrap().contains("65536"), "{r}");
    // Then the connection is closed: the reply ends (or, if the daemon closed on bytes it had
    // not read yet, is reset), rather than the read timing out.
    assert!(
        match &read {
            Ok(_) => true,
            Err(e) => e.kind() == ErrorKind::ConnectionReset,
        },
        "the connection was not closed after the error: {read:?}"
    );
    // The writer ends: the daemon took the frame in or closed on it, never left it blocked.
    let written = written
        .recv_timeout(DEADLINE * 2)
        .expect("the writer of the 8 MiB frame to end");
    if let Err(e) = written {
        assert!(
            !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
            "the daemon stopped reading the frame without closing: {e}"
        );
    }
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
fn the_73rd_client_of_root_is_told_the_daemon_is_busy_until_others_leave() {
    let d = daemon();
    // 64 clients held open and the 8 places kept for root, half of them silent, half in the
    // middle of a request.
    let mut held = Vec::new();
    for i in 0..72 {
        let mut s = connect(&d);
        if i % 2 == 1 {
            s.write_all(b"{\"v\":1,\"req\":{\"op\":\"st").unwrap();
        }
        held.push(s);
    }
    let o = d.ctl(&["status", "a"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        stderr(&o),
        "asyncmctl: asyncmdd is serving its limit of 64 clients (and the 8 kept for root and its own user)\n"
    );
    assert_eq!(stdout(&o), "");
    let o = d.journal(&[]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains("asyncmdd is serving its limit of 64 clients"),
        "{}",
        stderr(&o)
    );
    // On the wire: a `busy` error, then the connection is closed.
    let mut extra = connect(&d);
    extra
        .write_all(b"{\"v\":1,\"req\":{\"op\":\"list\"}}\n")
        .unwrap();
    let r = reply(&mut extra);
    assert_eq!(r["kind"], "error", "{r}");
    assert_eq!(r["code"], "busy", "{r}");
    let (_, rest) = until_closed(extra, Instant::now());
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    // The 72 were taken in, not turned away: none of them was told anything.
    for s in &held {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 64];
        match (&*s).read(&mut b) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            other => panic!(
                "a held client was answered: {other:?} {:?}",
                String::from_utf8_lossy(&b)
            ),
        }
    }
    // Once they leave, clients are served again; all 72 places come back.
    drop(held);
    wait_for("a client to be served after the 72 left", || {
        d.ctl(&["status", "a"]).status.success().then_some(())
    });
    wait_for("72 places to be free again", || {
        let again: Vec<UnixStream> = (0..71).map(|_| connect(&d)).collect();
        let served = d.ctl(&["status", "a"]).status.success();
        drop(again);
        served.then_some(())
    });
}

#[test]
fn a_client_has_30_s_to_send_its_request_and_others_are_served_meanwhile() {
    let d = daemon();
    let (tx, rx) = mpsc::channel();
    let silent = connect(&d);
    let mut half = connect(&d);
    let t0 = Instant::now();
    half.write_all(b"{\"v\":1,\"req\":{\"op\":\"sta").unwrap();
    for (what, s) in [("silent", silent), ("half-sent", half)] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let _ = tx.send((what, until_closed(s, t0)));
        });
    }
    drop(tx);
    // While the two wait, other clients are served, including one that sends in two parts.
    let mut closed = Vec::new();
    let mut served = 0;
    while closed.len() < 2 {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(c) => closed.push(c),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let o = d.ctl(&["status", "a"]);
                assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
                served += 1;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("a reader thread failed"),
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "still waiting");
    }
    assert!(served >= 5, "only {served} clients served in the meantime");
    for (what, (after, got)) in closed {
        assert!(
            after >= Duration::from_secs(25),
            "the {what} connection was closed after only {after:?}"
        );
        // 30 s, with room for a loaded machine; a limit of a minute would not pass.
        assert!(
            after < Duration::from_secs(45),
            "the {what} connection was closed only after {after:?}"
        );
        assert_nothing_or_an_error(&got, what);
    }
    let mut s = connect(&d);
    s.write_all(b"{\"v\":1,\"req\":{\"op\":").unwrap();
    s.write_all(b"\"list\"}}\n").unwrap();
    assert_eq!(reply(&mut s)["kind"], "list");
}

#[test]
fn a_request_trickled_in_byte_by_byte_still_has_only_30_s() {
    let d = daemon();
    let mut s = connect(&d);
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let t0 = Instant::now();
    s.write_all(b"{\"v\":1,\"req\":").unwrap();
    // One more byte of (valid JSON) whitespace every second: each read gets something, but
    // the request is never complete.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let after = loop {
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "a request trickled in a byte a second still held its connection after 90 s"
        );
        match s.read(&mut buf) {
            Ok(0) => break t0.elapsed(),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if s.write_all(b" ").is_err() {
                    break t0.elapsed();
                }
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break t0.elapsed(),
            Err(e) => panic!("reading: {e}"),
        }
    };
    assert!(
        after >= Duration::from_secs(25),
        "closed after only {after:?}"
    );
    assert!(
        after < Duration::from_secs(45),
        "closed only after {after:?}"
    );
    assert_nothing_or_an_error(&got, "the trickling connection");
    assert_eq!(d.ctl(&["status", "a"]).status.code(), Some(0));
}

#[test]
fn the_socket_is_mode_0660() {
    let d = daemon();
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(
        meta.permissions().mode() & 0o777,
        0o660,
        "mode {:o}",
        meta.permissions().mode()
    );
    // What the mode means: the daemon's group may connect, anyone else may not.
    require_root("connecting as another user");
    std::fs::set_permissions(d.dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let n = nobody();
    let o = ctl_as(&d, n.uid.as_raw(), n.gid.as_raw(), &["status", "a"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("cannot connect to asyncmdd")
            && stderr(&o).contains("ermission denied"),
        "{}",
        stderr(&o)
    );
    let group = meta_gid(&d);
    let o = ctl_as(&d, n.uid.as_raw(), group, &["status", "a"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

fn meta_gid(d: &Daemon) -> u32 {
    std::os::unix::fs::MetadataExt::gid(&std::fs::metadata(&d.socket).unwrap())
}

#[test]
fn changes_need_a_privileged_peer() {
    require_root("running a client as user nobody to test the permission check");
    let d = daemon();
    // The socket is 0660: let the other user reach it for this test.
    std::fs::set_permissions(&d.socket, PermissionsExt::from_mode(0o666)).unwrap();
    std::fs::set_permissions(d.dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let n = nobody();
    let run = |args: &[&str]| ctl_as(&d, n.uid.as_raw(), n.gid.as_raw(), args);
    let refused = |args: &[&str]| {
        let o = run(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stdout(&o));
        assert!(
            stderr(&o).contains("permission denied"),
            "{args:?}: {}",
            stderr(&o)
        );
    };
    let pid = d.status("a.service")["pid"].as_u64().unwrap();
    let o = run(&["status", "a"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "reads are allowed: {}",
        stderr(&o)
    );
    assert_eq!(run(&["list"]).status.code(), Some(0));
    assert_eq!(run(&["debug"]).status.code(), Some(0));
    // The unit's first tick may not be in the journal yet.
    wait_for("asyncmjournal as nobody to show a tick", || {
        let mut c = Command::new(asyncmd_e2e::bin("asyncmjournal"));
        c.arg("--socket")
            .arg(&d.socket)
            .args(["-u", "a"])
            .uid(n.uid.as_raw())
            .gid(n.gid.as_raw());
        let o = asyncmd_e2e::run_within(c, "asyncmjournal as nobody", &["-u", "a"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stdout(&o).contains("tick").then_some(())
    });

    // A lossless follower holds back the services' output: not for just anyone.
    let mut c = Command::new(asyncmd_e2e::bin("asyncmjournal"));
    c.arg("--socket")
        .arg(&d.socket)
        .args(["-F", "--lossless"])
        .uid(n.uid.as_raw())
        .gid(n.gid.as_raw());
    let o = asyncmd_e2e::run_within(c, "asyncmjournal as nobody", &["-F", "--lossless"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("only root and the daemon's own user may follow losslessly"),
        "{}",
        stderr(&o)
    );

    refused(&["stop", "a"]);
    assert_eq!(d.state("a.service"), "running");

    // A change a reload would apply: a dry run is a read, the reload itself a change.
    let config = d.units().join("services.config");
    std::fs::write(&config, "{\"a\": {\"kwargs\": {\"sleep\": 2}}}\n").unwrap();
    let o = run(&["reload", "--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("a.service: would restart (services.config changed)"),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("Reload (dry run): 1 changed"),
        "{}",
        stdout(&o)
    );
    refused(&["reload"]);
    refused(&["enable", "a"]);
    refused(&["disable", "a"]);
    refused(&["config", "a", "--kwargs", "{\"sleep\": 3}"]);
    refused(&["restart", "a"]);
    refused(&["debug", "on"]);
    refused(&["kill", "a"]);
    refused(&["mask", "a"]);
    refused(&["reload", "a"]);
    // Unit files may hold what their directory keeps from other users.
    refused(&["cat", "a"]);
    assert_eq!(run(&["is-active", "a"]).status.code(), Some(0));
    assert_eq!(
        run(&["show", "a", "-p", "SubState", "--value"])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        "{\"a\": {\"kwargs\": {\"sleep\": 2}}}\n",
        "services.config untouched"
    );
    let s = d.status("a.service");
    assert_eq!(s["state"], "running");
    assert_eq!(s["pid"].as_u64(), Some(pid), "nothing was restarted");
    // The same reload from root does restart it: the refusals above were what kept it.
    let o = d.ctl(&["reload"]);
    assert!(
        stdout(&o).contains("a.service: restarted"),
        "{}",
        stdout(&o)
    );
    let s = d.status("a.service");
    assert_eq!(s["state"], "running", "{s}");
    let new = s["pid"].as_u64().unwrap_or_else(|| panic!("no pid: {s}"));
    assert_ne!(new, pid, "a new process: {s}");
}

#[test]
fn a_socket_directory_someone_else_could_take_over_is_refused() {
    require_root("making a directory owned by another user");
    let tmp = tempfile::tempdir().unwrap();
    let units = tmp.path().join("units");
    std::fs::create_dir(&units).unwrap();
    let daemon = |dir: &std::path::Path| {
        let mut c = Command::new(asyncmd_e2e::bin("asyncmdd"));
        c.arg("--units")
            .arg(&units)
            .arg("--socket")
            .arg(dir.join("asyncmdd.sock"))
            .env_remove("NOTIFY_SOCKET");
        c
    };
    let refused = |dir: &std::path::Path, why: &str| {
        let o = asyncmd_e2e::run_within(daemon(dir), "asyncmdd", &[]);
        assert!(!o.status.success(), "{}", dir.display());
        assert!(
            stderr(&o).contains(why) && stderr(&o).contains("refused"),
            "{}: {}",
            dir.display(),
            stderr(&o)
        );
        assert!(!dir.join("asyncmdd.sock").exists());
    };
    // Another user's directory, as a /tmp/asyncmd-UID made beforehand would be.
    let theirs = tmp.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    let n = nobody();
    nix::unistd::chown(&theirs, Some(n.uid), Some(n.gid)).unwrap();
    refused(&theirs, &format!("is owned by uid {}", n.uid));
    // One that anybody may write to.
    let open = tmp.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, PermissionsExt::from_mode(0o777)).unwrap();
    refused(&open, "may be written by others (mode 777)");
    // A symlink, to anywhere.
    let link = tmp.path().join("link");
    std::os::unix::fs::symlink(&theirs, &link).unwrap();
    refused(&link, "is a symlink");
    // A directory that is not there is made, 0700.
    let fresh = tmp.path().join("fresh/asyncmd");
    let mut child = daemon(&fresh).spawn().unwrap();
    wait_for("the socket in the new directory", || {
        fresh.join("asyncmdd.sock").exists().then_some(())
    });
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o7777;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(mode, 0o700);
}

#[test]
fn a_client_refuses_a_daemon_of_another_user_unless_told_to_expect_it() {
    require_root("running a daemon as nobody");
    let n = nobody();
    let tmp = tempfile::tempdir().unwrap();
    nix::unistd::chown(tmp.path(), Some(n.uid), Some(n.gid)).unwrap();
    let units = tmp.path().join("units");
    std::fs::create_dir(&units).unwrap();
    std::fs::write(
        units.join("a.service"),
        "[service]\nexec = [\"sleep\", \"1000\"]\n",
    )
    .unwrap();
    nix::unistd::chown(&units, Some(n.uid), Some(n.gid)).unwrap();
    let sock = tmp.path().join("run/asyncmdd.sock");
    let mut impostor = Command::new(asyncmd_e2e::bin("asyncmdd"))
        .arg("--units")
        .arg(&units)
        .arg("--socket")
        .arg(&sock)
        .env_remove("NOTIFY_SOCKET")
        .uid(n.uid.as_raw())
        .gid(n.gid.as_raw())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the daemon of nobody to listen", || {
        sock.exists().then_some(())
    });
    let ctl = |extra: &[&str]| {
        let mut c = Command::new(asyncmd_e2e::bin("asyncmctl"));
        c.arg("--socket").arg(&sock).args(extra).arg("list");
        asyncmd_e2e::run_within(c, "asyncmctl", extra)
    };
    let o = ctl(&[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!(
            "runs as uid {}, neither root nor you: refused",
            n.uid
        )),
        "{}",
        stderr(&o)
    );
    let o = ctl(&["--expect-user", "nobody"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("a.service"));
    let mut j = Command::new(asyncmd_e2e::bin("asyncmjournal"));
    j.arg("--socket").arg(&sock);
    let o = asyncmd_e2e::run_within(j, "asyncmjournal", &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("refused"), "{}", stderr(&o));
    let _ = impostor.kill();
    let _ = impostor.wait();
}

#[test]
fn readers_of_another_user_cannot_lock_root_out() {
    require_root("running readers as nobody");
    let d = daemon();
    std::fs::set_permissions(&d.socket, PermissionsExt::from_mode(0o666)).unwrap();
    std::fs::set_permissions(d.dir.path(), PermissionsExt::from_mode(0o755)).unwrap();
    let n = nobody();
    let journal_as_nobody = |follow: bool| {
        let mut c = Command::new(asyncmd_e2e::bin("asyncmjournal"));
        c.arg("--socket")
            .arg(&d.socket)
            .args(if follow { &["-F"][..] } else { &[][..] })
            .uid(n.uid.as_raw())
            .gid(n.gid.as_raw())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        c
    };
    // Sixteen followers of one user are served; a seventeenth reader is told why it is not.
    let mut held: Vec<_> = (0..16)
        .map(|_| journal_as_nobody(true).spawn().unwrap())
        .collect();
    let why = format!(
        "asyncmdd is serving its limit of 16 clients of uid {}",
        n.uid
    );
    wait_for("a reader beyond the 16 to be refused, saying why", || {
        // A follower that came while a probe held a place was refused: start it again, so
        // that 16 are held.
        for f in held.iter_mut() {
            if f.try_wait().ok().flatten().is_some() {
                *f = journal_as_nobody(true).spawn().unwrap();
            }
        }
        let o = journal_as_nobody(false).output().unwrap();
        (!o.status.success() && String::from_utf8_lossy(&o.stderr).contains(&why)).then_some(())
    });
    // Root still gets through, and changes things.
    let o = d.ctl(&["stop", "a"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.state("a.service"), "stopped");
    for mut f in held {
        let _ = f.kill();
        let _ = f.wait();
    }
}

#[test]
fn heavy_requests_of_other_peers_cannot_hold_up_a_status() {
    // A full 32 MiB journal: scanning all of it for a match that is not there is the heaviest
    // read a peer can ask for, and four peers ask for it at once.
    let d = Setup::new()
        .arg("--journal-size")
        .arg("32M")
        .sh(
            "flood.service",
            "type = \"oneshot\"",
            "yes 'a line to fill the journal with, of about eighty bytes, again and again' | head -n 600000",
        )
        .sh("a.service", "", "while :; do echo tick; sleep 1; done")
        .boot();
    // Its output is all in the journal once it is done: the pipes drain before it ends.
    d.wait_state("flood.service", "done");
    let heavy: Vec<UnixStream> = (0..4)
        .map(|_| {
            let mut s = connect(&d);
            s.write_all(
                b"{\"v\":1,\"req\":{\"op\":\"journal\",\"lines\":1,\"grep\":\"^never there$\"}}\n",
            )
            .unwrap();
            s
        })
        .collect();
    // Asked after them, a status (without journal lines, which would be a scan of its own) is
    // answered while they are still scanning: the scans go in slices with other peers'
    // requests between them.
    let o = d.ctl(&["status", "-n", "0", "a.service"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pending = heavy
        .iter()
        .filter(|s| {
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 1];
            matches!((&**s).read(&mut b), Err(e) if e.kind() == ErrorKind::WouldBlock)
        })
        .count();
    assert!(
        pending > 0,
        "all four full scans were answered before a status asked after them"
    );
    // And each is answered in full in the end, with nothing found.
    for mut s in heavy {
        s.set_nonblocking(false).unwrap();
        let r = reply(&mut s);
        assert_ne!(r["kind"], "error", "{r}");
    }
}
