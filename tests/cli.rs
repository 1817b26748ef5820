//! The daemon's command line and environment, as the README's Set-up and Command reference
//! state them: the default socket paths (root, a user with and without `XDG_RUNTIME_DIR`),
//! `ASYNCMD_SOCKET`, `--config FILE` and `ASYNCMD_LOG`.

use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use asyncmd_e2e::{bin, require_root, stderr, stdout, wait_for, Setup, DEADLINE};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const TICK: &str = "[unit]\ndescription = \"ticks\"\n[service]\nexec = [\"sh\", \"-c\", \"while :; do echo tick; sleep 1; done\"]\nstop_timeout = \"10s\"\n";

/// A PATH for processes started with a cleared environment.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn nobody() -> nix::unistd::User {
    nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("a nobody user")
}

/// A temporary directory with `units/u.service`, the whole tree owned by `owner` (if given).
fn units_dir(owner: Option<&nix::unistd::User>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("units")).unwrap();
    std::fs::write(dir.path().join("units/u.service"), TICK).unwrap();
    if let Some(u) = owner {
        for p in [
            dir.path().to_path_buf(),
            dir.path().join("units"),
            dir.path().join("units/u.service"),
        ] {
            nix::unistd::chown(&p, Some(u.uid), Some(u.gid)).unwrap();
        }
    }
    dir
}

/// `asyncmdd --units units --hostname testhost` in `dir`, with none of the test's socket
/// settings, its output into `dir/daemon.out` and `dir/daemon.err`.
fn daemon_cmd(program: &Path, dir: &Path) -> Command {
    let mut c = Command::new(program);
    c.current_dir(dir)
        .env_remove("ASYNCMD_SOCKET")
        .env_remove("ASYNCMD_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("daemon.out")).unwrap())
        .stderr(std::fs::File::create(dir.join("daemon.err")).unwrap());
    c
}

/// A daemon started by a test itself (not through the harness, which always says `--socket`);
/// stopped with SIGTERM when dropped.
struct Own {
    child: Child,
    dir: PathBuf,
}

impl Own {
    fn spawn(mut cmd: Command, dir: &Path) -> Own {
        let child = cmd.spawn().expect("asyncmdd starts");
        Own {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.err")).unwrap_or_default()
    }

    /// Waits for the boot report's last line; returns it.
    fn wait_booted(&mut self) -> String {
        wait_for("the boot report to finish", || {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("the daemon exited ({st}): {}", self.stderr());
            }
            let out = std::fs::read_to_string(self.dir.join("daemon.out")).unwrap_or_default();
            out.lines()
                .find(|l| l.starts_with("asyncmdd: "))
                .map(str::to_string)
        })
    }
}

impl Drop for Own {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let start = Instant::now();
            while start.elapsed() < DEADLINE {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `cmd` to completion within the deadline, capturing its output.
fn run(cmd: Command, what: &str) -> Output {
    asyncmd_e2e::run_within(cmd, what, &[])
}

/// Who a test of a user's daemon runs it (and its clients) as: `nobody` when the suite runs as
/// root, else (`None`) the user running the suite, who is no root either.
fn a_user() -> Option<nix::unistd::User> {
    nix::unistd::geteuid().is_root().then(nobody)
}

/// The uid a daemon run as `user` (see [`a_user`]) has.
fn uid_of(user: Option<&nix::unistd::User>) -> u32 {
    user.map_or(nix::unistd::geteuid().as_raw(), |u| u.uid.as_raw())
}

/// Makes `cmd` run as `user` (with no supplementary groups), if one is given.
fn run_as(cmd: &mut Command, user: Option<&nix::unistd::User>) {
    if let Some(u) = user {
        cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
    }
}

/// A client run as `user` (see [`a_user`]) with only PATH and `xdg` (as XDG_RUNTIME_DIR) in
/// its environment.
fn client_as(
    user: Option<&nix::unistd::User>,
    name: &str,
    args: &[&str],
    xdg: Option<&Path>,
) -> Output {
    let mut c = Command::new(bin(name));
    c.args(args).env_clear().env("PATH", PATH).current_dir("/");
    run_as(&mut c, user);
    if let Some(x) = xdg {
        c.env("XDG_RUNTIME_DIR", x);
    }
    run(c, name)
}

/// Both clients find the daemon (and its unit `u.service`) with what `client` gives them.
fn both_clients_find_it(client: impl Fn(&str, &[&str]) -> Output) {
    let o = client("asyncmctl", &["status", "u"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).starts_with("● u.service - ticks\n"),
        "{}",
        stdout(&o)
    );
    wait_for("asyncmjournal to show a tick", || {
        let o = client("asyncmjournal", &["-u", "u", "-o", "cat"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        stdout(&o).lines().any(|l| l == "tick").then_some(())
    });
}

fn assert_socket(path: &Path, owner: u32) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(meta.file_type().is_socket(), "{}", path.display());
    assert_eq!(meta.uid(), owner, "{} is not the daemon's", path.display());
}

#[test]
fn a_users_default_socket_is_under_xdg_runtime_dir() {
    // As root, the daemon and its clients run as nobody; otherwise as the user running this.
    let user = a_user();
    let user = user.as_ref();
    let dir = units_dir(user);
    let xdg = dir.path().join("xdg");
    std::fs::create_dir(&xdg).unwrap();
    if let Some(u) = user {
        nix::unistd::chown(&xdg, Some(u.uid), Some(u.gid)).unwrap();
    }
    let mut cmd = daemon_cmd(&bin("asyncmdd"), dir.path());
    cmd.args(["--units", "units", "--hostname", "testhost"])
        .env_clear()
        .env("PATH", PATH)
        .env("XDG_RUNTIME_DIR", &xdg);
    run_as(&mut cmd, user);
    let mut d = Own::spawn(cmd, dir.path());
    let sock = xdg.join("asyncmd/asyncmdd.sock");
    let last = d.wait_booted();
    assert!(
        last.ends_with(&format!("; control socket {}", sock.display())),
        "{last}"
    );
    assert_socket(&sock, uid_of(user));
    both_clients_find_it(|name, args| client_as(user, name, args, Some(&xdg)));
    // The clients look where XDG_RUNTIME_DIR says: elsewhere, nothing is found.
    let other = dir.path().join("other");
    let o = client_as(user, "asyncmctl", &["status"], Some(&other));
    assert_eq!(o.status.code(), Some(1));
    let tried = format!(
        "cannot connect to asyncmdd at {}",
        other.join("asyncmd/asyncmdd.sock").display()
    );
    assert!(stderr(&o).contains(&tried), "{}", stderr(&o));
}

/// Removes what a test made under /tmp, also when it fails.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An exclusive lock, held until dropped, on a lock file in /tmp: the default socket directory
/// under /tmp is machine-wide, so two runs of the suite at once take turns with it.
fn tmp_lock() -> nix::fcntl::Flock<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = "/tmp/asyncmd-e2e-tmp-socket.lock";
    wait_for("the lock on the socket directory under /tmp", || {
        let f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).ok()
    })
}

#[test]
fn a_users_default_socket_without_xdg_runtime_dir_is_in_tmp() {
    require_root("running the daemon and the clients as user nobody");
    let _lock = tmp_lock();
    let n = nobody();
    let dir = units_dir(Some(&n));
    let home = PathBuf::from(format!("/tmp/asyncmd-{}", n.uid));
    let sock = home.join("asyncmdd.sock");
    // Clean up only what this test creates: the directory if it is new, else the socket files.
    let _cleanup = (!home.exists()).then(|| RemoveOnDrop(home.clone()));
    let mut cmd = daemon_cmd(&bin("asyncmdd"), dir.path());
    cmd.args(["--units", "units", "--hostname", "testhost"])
        .env_clear()
        .env("PATH", PATH)
        .uid(n.uid.as_raw())
        .gid(n.gid.as_raw());
    let mut d = Own::spawn(cmd, dir.path());
    let last = d.wait_booted();
    assert!(
        last.ends_with(&format!("; control socket {}", sock.display())),
        "{last}"
    );
    assert_socket(&sock, n.uid.as_raw());
    both_clients_find_it(|name, args| client_as(Some(&n), name, args, None));
    drop(d);
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(home.join("asyncmdd.notify"));
}

#[test]
fn roots_default_socket_is_under_run() {
    require_root("running the daemon as root in a private mount namespace");
    let dir = units_dir(None);
    // The namespace gets a /run of its own, so a real daemon on this machine is not disturbed;
    // XDG_RUNTIME_DIR is set to show that root does not use it.
    let xdg = dir.path().join("xdg");
    let host_before = Path::new("/run/asyncmd").exists();
    let script = format!(
        "mount -t tmpfs tmpfs /run && exec {} --units units --hostname testhost",
        bin("asyncmdd").display()
    );
    let mut cmd = daemon_cmd(Path::new("unshare"), dir.path());
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("XDG_RUNTIME_DIR", &xdg);
    let mut d = Own::spawn(cmd, dir.path());
    let last = d.wait_booted();
    assert!(
        last.ends_with("; control socket /run/asyncmd/asyncmdd.sock"),
        "{last}"
    );
    let pid = d.pid().to_string();
    // Seen from inside its namespace.
    assert_socket(
        &PathBuf::from(format!("/proc/{pid}/root/run/asyncmd/asyncmdd.sock")),
        0,
    );
    both_clients_find_it(|name, args| {
        let mut c = Command::new("nsenter");
        c.args(["-t", &pid, "--mount", "--"])
            .arg(bin(name))
            .args(args)
            .env_remove("ASYNCMD_SOCKET")
            .env("XDG_RUNTIME_DIR", &xdg);
        run(c, name)
    });
    drop(d);
    assert_eq!(
        Path::new("/run/asyncmd").exists(),
        host_before,
        "the machine's /run was touched"
    );
}

#[test]
fn asyncmd_socket_moves_the_socket_for_the_daemon_and_both_clients() {
    let dir = units_dir(None);
    let sock = dir.path().join("elsewhere/env.sock");
    let mut cmd = daemon_cmd(&bin("asyncmdd"), dir.path());
    cmd.args(["--units", "units", "--hostname", "testhost"])
        .env("ASYNCMD_SOCKET", &sock);
    let mut d = Own::spawn(cmd, dir.path());
    let last = d.wait_booted();
    assert!(
        last.ends_with(&format!("; control socket {}", sock.display())),
        "{last}"
    );
    assert_socket(&sock, nix::unistd::geteuid().as_raw());
    both_clients_find_it(|name, args| {
        let mut c = Command::new(bin(name));
        c.args(args).env("ASYNCMD_SOCKET", &sock);
        run(c, name)
    });
    // An explicit --socket wins over the variable.
    let mut c = Command::new(bin("asyncmctl"));
    c.arg("--socket")
        .arg(&sock)
        .args(["status", "u"])
        .env("ASYNCMD_SOCKET", dir.path().join("nothing.sock"));
    let o = run(c, "asyncmctl");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn config_flag_uses_a_services_config_outside_the_units_directory() {
    let etc = tempfile::tempdir().unwrap();
    let cfg = etc.path().join("device.config");
    std::fs::write(
        &cfg,
        "{\n    \"off\": {\"enabled\": false},\n    \"kw\": {\"kwargs\": {\"greeting\": \"from-etc\"}}\n}\n",
    )
    .unwrap();
    // The units directory has a services.config of its own, which must be ignored.
    let in_units =
        "{\"off\": {\"enabled\": true}, \"kw\": {\"kwargs\": {\"greeting\": \"from-units\"}}}\n";
    let d = Setup::new()
        .sh(
            "kw.service",
            "",
            "echo \"greeting=$GREETING\"; while :; do sleep 1; done",
        )
        .sh("off.service", "", "while :; do sleep 1; done")
        .config(in_units)
        .arg("--config")
        .arg(cfg.to_str().unwrap())
        .boot();
    let off = d.status("off.service");
    assert_eq!(off["state"], "inactive", "{off}");
    assert_eq!(off["enabled"], false, "{off}");
    d.wait_state("kw.service", "running");
    wait_for("kw's greeting", || {
        let j = stdout(&d.journal(&["-u", "kw", "-o", "cat"]));
        j.lines().any(|l| l.starts_with("greeting=")).then_some(j)
    });
    let j = stdout(&d.journal(&["-u", "kw", "-o", "cat"]));
    assert!(j.lines().any(|l| l == "greeting=from-etc"), "{j}");

    // enable, disable and config edit that file, and leave the one in units/ alone.
    let read = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap()
    };
    let o = d.ctl(&["enable", "off", "--now"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(read()["off"]["enabled"], true);
    assert_eq!(d.state("off.service"), "running");
    let o = d.ctl(&["disable", "kw"]);
    assert_eq!(stdout(&o), "kw.service: disabled\n", "{}", stderr(&o));
    assert_eq!(read()["kw"]["enabled"], false);
    let o = d.ctl(&["config", "kw", "--kwargs", "{\"greeting\": \"again\"}"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(read()["kw"]["kwargs"]["greeting"], "again");
    assert_eq!(
        std::fs::read_to_string(d.units().join("services.config")).unwrap(),
        in_units
    );
    assert!(d.ctl(&["restart", "kw"]).status.success());
    wait_for("the new greeting", || {
        stdout(&d.journal(&["-u", "kw", "-o", "cat"]))
            .lines()
            .any(|l| l == "greeting=again")
            .then_some(())
    });
}

/// Sends `msg` to the sd_notify socket at `path`, as from `pid` (root may name any process in
/// its credentials) or, with `None`, from this test process, which belongs to no unit.
fn notify(path: &Path, msg: &str, pid: Option<u32>) {
    use nix::sys::socket::{
        sendmsg, socket, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType, UnixAddr,
        UnixCredentials,
    };
    let fd = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    let addr = UnixAddr::new(path).unwrap();
    let iov = [std::io::IoSlice::new(msg.as_bytes())];
    let cred = pid.map(|pid| {
        UnixCredentials::from(nix::libc::ucred {
            pid: pid as i32,
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
        })
    });
    let cmsgs: Vec<ControlMessage> = cred.iter().map(ControlMessage::ScmCredentials).collect();
    sendmsg(fd.as_raw_fd(), &iov, &cmsgs, MsgFlags::empty(), Some(&addr))
        .unwrap_or_else(|e| panic!("sending {msg:?} to {}: {e}", path.display()));
}

#[test]
fn asyncmd_log_sets_the_daemons_diagnostics_filter() {
    require_root("sending sd_notify datagrams in a unit's name");
    let ignored = "which belongs to no unit: ignored";
    // The daemon logs a stray sd_notify datagram at debug: hidden by default (`info`), shown
    // on stderr with ASYNCMD_LOG=debug.
    for log in [None, Some("debug")] {
        let dir = units_dir(None);
        let sock = dir.path().join("asyncmdd.sock");
        let mut cmd = daemon_cmd(&bin("asyncmdd"), dir.path());
        cmd.args(["--units", "units", "--hostname", "testhost", "--socket"])
            .arg(&sock);
        if let Some(l) = log {
            cmd.env("ASYNCMD_LOG", l);
        }
        let mut d = Own::spawn(cmd, dir.path());
        d.wait_booted();
        let status = || -> serde_json::Value {
            let mut c = Command::new(bin("asyncmctl"));
            c.arg("--socket").arg(&sock).args(["status", "--json", "u"]);
            serde_json::from_slice(&run(c, "asyncmctl").stdout).unwrap()
        };
        let pid = wait_for("u's pid", || status()[0]["pid"].as_u64()) as u32;
        let notify_sock = sock.with_extension("notify");
        notify(&notify_sock, "STATUS=stray", None);
        // Datagrams are handled in order: once u shows the next one, the stray one was seen.
        notify(&notify_sock, "STATUS=barrier", Some(pid));
        wait_for("u's status text", || {
            (status()[0]["status_text"] == "barrier").then_some(())
        });
        let err = d.stderr();
        let line = format!("sd_notify from pid {}, {ignored}", std::process::id());
        match log {
            None => assert!(!err.contains(ignored), "{log:?}: {err}"),
            Some(_) => assert!(err.contains(&line), "{log:?}: {err}"),
        }
        // Not a terminal: plain text, for a log file or the journal.
        assert!(!err.contains('\x1b'), "{log:?}: {err:?}");
    }
}

#[test]
fn completions_know_the_running_units_and_man_pages_are_written() {
    let d = Setup::new()
        .unit("hello.service", TICK)
        .unit("world.service", TICK)
        .boot();
    let script = stdout(&d.ctl(&["completions", "bash"]));
    assert!(script.contains("complete -o nospace"), "{script}");
    // bash itself, as it would complete `asyncmctl status hel<TAB>` and `asyncmctl is-<TAB>`.
    let complete = |words: &str, cword: usize| {
        let probe = format!(
            "source /dev/stdin; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_TYPE=9; \
             _clap_complete_asyncmctl asyncmctl \"${{COMP_WORDS[$COMP_CWORD]}}\"; \
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let mut c = Command::new("bash");
        c.args(["--norc", "-c", &probe])
            .env("ASYNCMD_SOCKET", &d.socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("bash runs");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let got = complete("asyncmctl status hel", 2);
    assert_eq!(
        got.split_whitespace().collect::<Vec<_>>(),
        ["hello.service"],
        "{got}"
    );
    let got = complete("asyncmctl is-", 1);
    assert_eq!(
        got.split_whitespace().collect::<Vec<_>>(),
        ["is-active", "is-enabled", "is-failed"]
    );
    for shell in ["zsh", "fish"] {
        let s = stdout(&d.ctl(&["completions", shell]));
        assert!(
            s.contains(&format!("COMPLETE=\"{shell}\""))
                || s.contains(&format!("COMPLETE={shell}")),
            "{shell}: {s}"
        );
    }

    // Man pages of the three, from their own command lines.
    let man = tempfile::tempdir().unwrap();
    let dir = man.path().to_str().unwrap();
    assert!(d.ctl(&["man", dir]).status.success());
    for (prog, args) in [
        ("asyncmjournal", ["--man", dir]),
        ("asyncmdd", ["--man", dir]),
    ] {
        let mut c = Command::new(bin(prog));
        c.args(args);
        assert!(run(c, prog).status.success(), "{prog}");
    }
    let page = |name: &str| std::fs::read_to_string(man.path().join(name)).unwrap();
    assert!(page("asyncmctl.1").contains(".TH asyncmctl 1"));
    assert!(
        page("asyncmctl-kill.1").contains("kill\\-whom"),
        "{}",
        page("asyncmctl-kill.1")
    );
    assert!(page("asyncmjournal.1").contains("\\-\\-until"));
    assert!(page("asyncmdd.8").contains(".TH asyncmdd 8"));
}
