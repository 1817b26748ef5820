//! The embedded agent end to end: the QEMU board's real firmware in QEMU (`agent/qemu.sh`),
//! driven through the real `asyncmctl --agent` and `asyncmjournal --agent` over its serial
//! line on a free loopback port. Needs qemu-system-arm and the thumbv7em target, which
//! `tests/run.sh` installs; without them this fails naming what to install.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use asyncmd_e2e::{bin, free_port, run_within, stderr, stdout, wait_for, Lines};
use asyncmd_proto::link::{self, Ask, Deframer, Reply};
use asyncmd_proto::ErrorCode;

/// QEMU's serial server takes one client at a time; the tests take turns with the board.
static ONE_BOARD: Mutex<()> = Mutex::new(());

/// Builds the firmware once (outside any deadline: a cold build takes minutes); its path.
fn firmware() -> String {
    static BUILT: OnceLock<String> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = Command::new("bash")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("agent/qemu.sh"))
                .arg("--build")
                .output()
                .expect("bash runs agent/qemu.sh");
            assert!(
                out.status.success(),
                "agent/qemu.sh --build failed (it needs the thumbv7em-none-eabihf target: rustup \
             target add thumbv7em-none-eabihf): {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .clone()
}

/// The QEMU board, running.
struct Board {
    qemu: Child,
    addr: String,
    monitor: u16,
}

impl Board {
    fn boot() -> Board {
        firmware();
        let (port, monitor) = (free_port(), free_port());
        let qemu = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("agent/qemu.sh"))
            .args([port.to_string(), monitor.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("bash runs agent/qemu.sh");
        let mut b = Board {
            qemu,
            addr: format!("tcp:127.0.0.1:{port}"),
            monitor,
        };
        wait_for("the board to answer status", || {
            if let Ok(Some(_)) = b.qemu.try_wait() {
                let mut err = String::new();
                let _ = b.qemu.stderr.take().map(|mut e| e.read_to_string(&mut err));
                panic!("QEMU exited (is qemu-system-arm installed? apt-get install -y --no-install-recommends qemu-system-arm): {err}");
            }
            b.ctl(&["status", "blink"]).status.success().then_some(())
        });
        b
    }

    fn ctl(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin("asyncmctl"));
        cmd.arg("--agent").arg(&self.addr).args(args);
        run_within(cmd, "asyncmctl", args)
    }

    fn journal(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(bin("asyncmjournal"));
        cmd.arg("--agent")
            .arg(&self.addr)
            .arg("--no-color")
            .args(args);
        run_within(cmd, "asyncmjournal", args)
    }

    /// `system_reset` through QEMU's monitor: the board reboots, its line stays connected.
    fn reset(&self) {
        let mut m = TcpStream::connect(("127.0.0.1", self.monitor)).expect("QEMU's monitor");
        m.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut said = Vec::new();
        let mut buf = [0u8; 512];
        let mut read_until = |m: &mut TcpStream, said: &mut Vec<u8>, end: &[u8]| {
            while !said.windows(end.len()).any(|w| w == end) {
                let n = m.read(&mut buf).expect("QEMU's monitor answers");
                assert!(n > 0, "QEMU's monitor closed");
                said.extend_from_slice(&buf[..n]);
            }
        };
        read_until(&mut m, &mut said, b"(qemu) ");
        said.clear();
        m.write_all(b"system_reset\n")
            .expect("the monitor takes a command");
        // Its next prompt: the command has been carried out.
        read_until(&mut m, &mut said, b"\r\n(qemu) ");
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

#[test]
fn status_stop_start_and_the_journal_of_the_board_through_the_real_clients() {
    let _one = ONE_BOARD.lock().unwrap_or_else(|e| e.into_inner());
    let b = Board::boot();
    let o = b.ctl(&["status"]);
    let s = stdout(&o);
    // `report` waits for its schedule, inactive: that is as it is meant to be.
    assert_eq!(o.status.code(), Some(0), "{s}");
    for task in ["blink", "sensor", "report"] {
        assert!(
            s.contains(&format!("● {task}: status:")),
            "{task} listed: {s}"
        );
    }
    assert!(s.contains("blink: status: running"), "{s}");

    // Stop and start a task: its state, the exit codes systemctl users expect.
    assert!(b.ctl(&["stop", "blink"]).status.success());
    let o = b.ctl(&["status", "blink"]);
    assert_eq!(o.status.code(), Some(3), "a stopped task is not running");
    assert!(stdout(&o).contains("stopped"), "{}", stdout(&o));
    assert!(b.ctl(&["start", "b*"]).status.success());
    wait_for("blink to run again", || {
        let o = b.ctl(&["status", "--json", "blink"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
        (v[0]["state"] == "running" && v[0]["starts"] == 2).then_some(())
    });
    // A task's args, kwargs and stats, kept on the board in the link's form, read as JSON.
    wait_for("blink and sensor to show their stats", || {
        let o = b.ctl(&["status", "--json", "blink", "sensor"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).ok()?;
        let (blink, sensor) = (&v[0], &v[1]);
        assert_eq!(blink["args"], serde_json::json!([2]), "{blink}");
        assert_eq!(blink["kwargs"], serde_json::json!({"sleep": 1}), "{blink}");
        let toggles = blink["stats"]["toggles"].as_u64()?;
        let temp = sensor["stats"]["temp"].as_f64()?;
        // Sent in tenths (`Stat::Decimal`), it reads as the JSON `21.3` would.
        let tenths = (temp * 10.0).round();
        assert_eq!(temp, tenths / 10.0, "{sensor}");
        (toggles >= 1 && (150.0..300.0).contains(&tenths)).then_some(())
    });
    let o = b.ctl(&["stop", "nope"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    let o = b.ctl(&["reload"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("unsupported"), "{}", stderr(&o));

    // The journal: the newest N, by task, by grep.
    let o = b.journal(&["-n", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 3, "{}", stdout(&o));
    let o = b.journal(&["-u", "blink", "-g", "LED 2 o(n|ff)"]);
    let out = stdout(&o);
    assert!(out.lines().count() >= 2, "{out}");
    assert!(
        out.lines()
            .all(|l| l.contains("[qemu] [INFO] [blink] LED 2 o")),
        "{out}"
    );

    // The newest N that match: --grep is matched here, not on the board.
    wait_for("two LED-on lines", || {
        let out = stdout(&b.journal(&["-n", "2", "-g", "LED 2 on"]));
        let lines: Vec<&str> = out.lines().collect();
        (lines.len() == 2).then_some(()).map(|_| {
            assert!(lines.iter().all(|l| l.ends_with("LED 2 on")), "{out}");
        })
    });

    // The schedule fires: `report` runs every 10 s, first after 5 s. A board leaves the
    // result out of the journal line (no JSON serializer in its flash): its status has it.
    wait_for("the scheduled report to run", || {
        let out = stdout(&b.journal(&["-u", "report"]));
        (out.contains("Starting the run due at")
            && out.contains("Done (its result is in its status)"))
        .then_some(())
    });
    let out = stdout(&b.ctl(&["status", "report"]));
    assert!(out.contains("result: "), "{out}");
    // The board sends its schedule's parts; the host describes it as the daemon would.
    assert!(out.contains("(first in 5s, every 10s)"), "{out}");
}

#[test]
fn garbage_and_a_corrupt_frame_get_an_error_and_the_board_goes_on() {
    let _one = ONE_BOARD.lock().unwrap_or_else(|e| e.into_inner());
    let b = Board::boot();
    let port = b.addr.rsplit(':').next().unwrap();
    let mut line = TcpStream::connect(format!("127.0.0.1:{port}")).expect("the board's line");
    line.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut bytes = b"\x13\x37 line noise \xff\xfe\x00".to_vec();
    let mut corrupt = Vec::new();
    link::encode(&(5u16, Ask::List { patterns: vec![] }), &mut corrupt).unwrap();
    corrupt[3] ^= 0x20;
    bytes.extend(&corrupt);
    link::encode(&(6u16, Ask::List { patterns: vec![] }), &mut bytes).unwrap();
    line.write_all(&bytes).unwrap();
    let mut d = Deframer::new();
    let mut got: Vec<(u16, Reply)> = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.iter().any(|(id, _)| *id == 6) {
        let n = line.read(&mut buf).expect("the board answers within 5 s");
        assert!(n > 0, "the line closed");
        d.feed::<(u16, Reply)>(&buf[..n], |r| got.extend(r.ok()));
    }
    let errors: Vec<_> = got
        .iter()
        .filter_map(|(id, r)| match r {
            Reply::Error { code, message } if *id == 0 => Some((*code, message.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 2, "one error per bad frame: {got:?}");
    assert!(
        errors.iter().all(|(c, _)| *c == ErrorCode::BadRequest),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|(_, m)| m.contains("CRC") || m.contains("garbled")),
        "{errors:?}"
    );
    assert!(
        matches!(&got.last().unwrap().1, Reply::List(rows) if rows.len() == 3),
        "the good frame after them is answered: {got:?}"
    );
    // A client that dies mid-frame leaves half a frame in the board's buffer: the next
    // client's first frame is read on its own all the same.
    let mut half = Vec::new();
    link::encode(&(7u16, Ask::List { patterns: vec![] }), &mut half).unwrap();
    line.write_all(&half[..half.len() / 2]).unwrap();
    drop(line);
    let out = stdout(&b.ctl(&["list"]));
    assert!(out.contains("blink"), "{out}");
    // And the board logged what it dropped.
    let out = stdout(&b.journal(&["-u", "agent"]));
    assert!(out.contains("[WARNING] [agent] link: "), "{out}");
}

#[test]
fn a_follower_sees_the_board_reset_and_carries_on() {
    let _one = ONE_BOARD.lock().unwrap_or_else(|e| e.into_inner());
    let b = Board::boot();
    let mut follower = Command::new(bin("asyncmjournal"))
        .args(["--agent", &b.addr, "--no-color", "-F", "-u", "blink"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("asyncmjournal runs");
    let lines = Lines::new(follower.stdout.take().unwrap());
    let errs = Lines::new(follower.stderr.take().unwrap());
    let first = lines.next_line("a first blink line");
    assert!(first.contains("[blink]"), "{first}");
    b.reset();
    let said = errs.next_line("the follower to say the board reset");
    assert!(said.contains("the board reset"), "{said}");
    // The journal starts again: the new run's first lines come.
    let mut seen = Vec::new();
    loop {
        let l = lines.next_line("blink's start after the reset");
        if l.contains("[blink] Started") {
            // The follower told the rebooted board the time again.
            assert!(!l.starts_with("1970"), "{l}");
            break;
        }
        seen.push(l);
        assert!(seen.len() < 50, "no Started after the reset: {seen:?}");
    }
    let _ = follower.kill();
    let _ = follower.wait();
}

#[test]
fn a_serial_device_reaches_the_board_too() {
    let _one = ONE_BOARD.lock().unwrap_or_else(|e| e.into_inner());
    // QEMU's `-serial pty` makes the board's line a pseudo-terminal, as a USB serial is.
    let mut qemu = Command::new("qemu-system-arm")
        .args([
            "-machine",
            "netduinoplus2",
            "-display",
            "none",
            "-monitor",
            "none",
        ])
        .args(["-serial", "pty", "-kernel", &firmware()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(
            "qemu-system-arm runs (apt-get install -y --no-install-recommends qemu-system-arm)",
        );
    let _stderr = Lines::new(qemu.stderr.take().unwrap());
    let out = Lines::new(qemu.stdout.take().unwrap());
    let line = out.next_line("QEMU to name its pty");
    let pty = line
        .split_whitespace()
        .find(|w| w.starts_with("/dev/pts/"))
        .unwrap_or_else(|| panic!("a /dev/pts path in {line:?}"))
        .to_string();
    let addr = format!("{pty}@115200");
    let o = wait_for("the board to answer on its pty", || {
        let mut cmd = Command::new(bin("asyncmctl"));
        cmd.args(["--agent", &addr, "status", "blink"]);
        let o = run_within(cmd, "asyncmctl", &["status", "blink"]);
        o.status.success().then_some(o)
    });
    assert!(stdout(&o).contains("running"), "{}", stdout(&o));
    let mut cmd = Command::new(bin("asyncmctl"));
    cmd.args(["--agent", "/dev/ttyNOPE0", "status"]);
    let o = run_within(cmd, "asyncmctl", &["status"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot open the line to the board at /dev/ttyNOPE0"),
        "{}",
        stderr(&o)
    );
    let _ = qemu.kill();
    let _ = qemu.wait();
}

#[test]
fn an_agent_unit_shows_the_boards_tasks_in_the_daemon_and_survives_the_board_going() {
    let _one = ONE_BOARD.lock().unwrap_or_else(|e| e.into_inner());
    let mut b = Board::boot();
    let unit = format!(
        "[unit]\ndescription = \"the QEMU board\"\n\n[agent]\nport = \"{}\"\nboard = \"pyb\"\n",
        b.addr
    );
    let d = asyncmd_e2e::Setup::new()
        .unit("board.service", &unit)
        .boot();
    // Its tasks, named BOARD:TASK, beside the daemon's units.
    let blink = d.wait_state("pyb:blink", "running");
    assert_eq!(blink["type"], "task");
    let o = d.ctl(&["status", "pyb:*"]);
    for t in ["pyb:blink", "pyb:sensor", "pyb:report"] {
        assert!(
            stdout(&o).contains(&format!("● {t}: status:")),
            "{}",
            stdout(&o)
        );
    }
    // Controlled through the daemon: stop, start.
    assert!(d.ctl(&["stop", "pyb:blink"]).status.success());
    d.wait_state("pyb:blink", "stopped");
    assert!(d.ctl(&["start", "pyb:blink"]).status.success());
    wait_for("pyb:blink's second run", || {
        (d.status("pyb:blink")["starts"] == 2).then_some(())
    });
    // Its journal lines in the daemon's journal, under its names.
    wait_for("the board's lines in the daemon's journal", || {
        let out = stdout(&d.journal(&["-u", "pyb:blink", "-n", "20"]));
        out.contains("[pyb:blink] LED 2 on").then_some(())
    });
    // The board goes: its tasks fail saying so, and the daemon goes on.
    let _ = b.qemu.kill();
    let _ = b.qemu.wait();
    let gone = d.wait_state("pyb:blink", "failed");
    assert!(
        gone["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("board disconnected: "),
        "{gone}"
    );
    assert_eq!(d.state("board.service"), "running");
    let stats = &d.status("board.service")["stats"];
    assert_eq!(stats["connected"], false, "{stats}");
}
