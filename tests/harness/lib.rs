//! Harness for the end-to-end tests: builds the real binaries once, runs a real `asyncmdd` on a
//! temporary units directory and socket, and runs the real clients against it. Every wait is on
//! a condition with a generous deadline, never a fixed sleep.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;

pub mod mqtt;

use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde_json::Value;

/// How long any awaited condition may take on a loaded machine.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// The directory the running test was built in (`target/debug`, or another target directory's
/// `debug`, as under cargo-llvm-cov): the binaries it drives are built and found there too.
fn profile_dir() -> PathBuf {
    // Tests run from <target>/debug/deps/<test>.
    let exe = std::env::current_exe().expect("test path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// Runs `cargo build ARGS` into the target directory of the running test.
fn cargo_build(args: &[&str]) {
    let dir = profile_dir();
    let target = dir.parent().expect("target dir");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--target-dir"])
        .arg(target)
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build {args:?} failed");
}

/// The path of a built binary of this workspace (`asyncmdd`, `asyncmctl`, `asyncmjournal`).
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        cargo_build(&["-p", "asyncmdd", "-p", "asyncmctl", "-p", "asyncmjournal"]);
        profile_dir()
    });
    dir.join(name)
}

/// The path of a built example of this repository (`async_blink`), built on first use.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| cargo_build(&["--examples"]));
    bin("examples").join(name)
}

/// Polls `cond` until it returns `Some`, panicking with `what` after [`DEADLINE`].
pub fn wait_for<T>(what: &str, mut cond: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(v) = cond() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Fails the test, naming what to do, unless it runs as root: a test that needs root never
/// passes silently without it.
pub fn require_root(what: &str) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "{what} needs root: run the suite as root (CI does), e.g. `sudo cargo test --workspace`"
    );
}

/// The lines of a child's output, each awaited with [`DEADLINE`], so that a missing line fails
/// the test instead of hanging it.
pub struct Lines {
    rx: mpsc::Receiver<std::io::Result<String>>,
}

impl Lines {
    /// Reads `reader` line by line on a thread of its own.
    pub fn new(reader: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(reader).lines() {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines { rx }
    }

    /// The next line, panicking with `what` if it does not come within [`DEADLINE`] or the
    /// output ends first.
    pub fn next_line(&self, what: &str) -> String {
        match self.rx.recv_timeout(DEADLINE) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => panic!("reading {what}: {e}"),
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("timed out waiting for {what}"),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the output ended before {what}"),
        }
    }
}

/// Waits for `child` to exit and collects its output, killing it and failing the test with
/// `what` after [`DEADLINE`].
pub fn output_within(child: Child, what: &str) -> Output {
    let pid = Pid::from_raw(child.id() as i32);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(out) => out.expect("the child's output"),
        Err(_) => {
            let _ = kill(pid, Signal::SIGKILL);
            panic!("timed out waiting for {what} to exit");
        }
    }
}

/// Runs `cmd` (the client `name` with `args`) with its output captured, failing the test if it
/// does not exit within [`DEADLINE`]: a daemon that stops answering fails the suite, never
/// hangs it.
pub fn run_within(mut cmd: Command, name: &str, args: &[&str]) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{name} runs: {e}"));
    output_within(child, &format!("{name} {}", args.join(" ")))
}

/// Text of an output's stdout.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Text of an output's stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A running daemon on its own temporary directory.
pub struct Daemon {
    /// The temporary directory: `units/`, the socket and the daemon's output live here.
    pub dir: tempfile::TempDir,
    /// The control socket.
    pub socket: PathBuf,
    child: Child,
    /// How it was started (its units aside), to start it again.
    launcher: Setup,
}

/// A set of unit files and a `services.config` to boot.
#[derive(Default, Clone)]
pub struct Setup {
    units: Vec<(String, String)>,
    config: Option<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    wrapper: Vec<String>,
    /// Run on the units directory once the files are written (odd entries: FIFOs, symlinks).
    prepare: Option<fn(&Path)>,
}

impl Setup {
    /// An empty set.
    pub fn new() -> Setup {
        Setup::default()
    }

    /// Adds unit file `name` with `text`.
    pub fn unit(mut self, name: &str, text: &str) -> Setup {
        self.units.push((name.into(), text.into()));
        self
    }

    /// Adds a process unit running `script` with `sh -c`, plus extra `[unit]` lines.
    pub fn sh(self, name: &str, unit_lines: &str, script: &str) -> Setup {
        let text = format!(
            "[unit]\ndescription = \"{name} test unit\"\n{unit_lines}\n[service]\nexec = [\"sh\", \"-c\", '''{script}''']\nstop_timeout = \"10s\"\n"
        );
        self.unit(name, &text)
    }

    /// Sets `services.config`.
    pub fn config(mut self, json: &str) -> Setup {
        self.config = Some(json.into());
        self
    }

    /// Adds daemon arguments.
    pub fn arg(mut self, a: &str) -> Setup {
        self.args.push(a.into());
        self
    }

    /// Sets an environment variable of the daemon.
    pub fn env(mut self, key: &str, value: &str) -> Setup {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs the daemon under `wrapper` (a command and its arguments, such as `unshare -pf`).
    pub fn wrapped(mut self, wrapper: &[&str]) -> Setup {
        self.wrapper = wrapper.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Runs `f` on the units directory after the files are written, before the daemon starts.
    pub fn prepare(mut self, f: fn(&Path)) -> Setup {
        self.prepare = Some(f);
        self
    }

    /// Writes the files and starts the daemon; returns once its boot report is complete.
    pub fn boot(self) -> Daemon {
        let d = self.spawn();
        d.wait_booted();
        d
    }

    /// Writes the unit files and `services.config` into `units/` of a new temporary directory,
    /// starting nothing.
    pub fn files(&self) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let units = dir.path().join("units");
        std::fs::create_dir(&units).unwrap();
        for (name, text) in &self.units {
            std::fs::write(units.join(name), text).unwrap();
        }
        if let Some(c) = &self.config {
            std::fs::write(units.join("services.config"), c).unwrap();
        }
        if let Some(f) = self.prepare {
            f(&units);
        }
        dir
    }

    /// Writes the files and starts the daemon without waiting.
    pub fn spawn(self) -> Daemon {
        let dir = self.files();
        let socket = dir.path().join("asyncmdd.sock");
        let launcher = Setup {
            units: Vec::new(),
            config: None,
            prepare: None,
            ..self
        };
        let child = launcher.launch(dir.path(), &socket);
        Daemon {
            dir,
            socket,
            child,
            launcher,
        }
    }

    /// Starts the daemon on the files in `dir`, answering on `socket`.
    fn launch(&self, dir: &Path, socket: &Path) -> Child {
        let out = std::fs::File::create(dir.join("daemon.out")).unwrap();
        let err = std::fs::File::create(dir.join("daemon.err")).unwrap();
        let mut cmd = match self.wrapper.split_first() {
            Some((w, rest)) => {
                let mut c = Command::new(w);
                c.args(rest).arg(bin("asyncmdd"));
                c
            }
            None => Command::new(bin("asyncmdd")),
        };
        cmd.arg("--units")
            .arg("units")
            .arg("--socket")
            .arg(socket)
            .arg("--hostname")
            .arg("testhost")
            .args(&self.args)
            .current_dir(dir)
            .env_remove("ASYNCMD_SOCKET")
            // What the runner's own manager set (a suite run under systemd) is not the test's.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("ASYNCMD_LOG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("asyncmdd starts")
    }
}

impl Daemon {
    /// The daemon's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the daemon printed on stdout so far (the boot report).
    pub fn report(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.out")).unwrap_or_default()
    }

    /// Waits for the last line of the boot report.
    pub fn wait_booted(&self) {
        wait_for("the boot report to finish", || {
            self.report().contains("asyncmdd: ").then_some(())
        });
    }

    fn client(&self, name: &str, args: &[&str]) -> Command {
        let mut c = Command::new(bin(name));
        c.arg("--socket")
            .arg(&self.socket)
            .args(args)
            .env_remove("NO_COLOR");
        c
    }

    /// Runs `asyncmctl ARGS` to completion, within [`DEADLINE`].
    pub fn ctl(&self, args: &[&str]) -> Output {
        run_within(self.client("asyncmctl", args), "asyncmctl", args)
    }

    /// Runs `asyncmjournal ARGS` to completion, within [`DEADLINE`].
    pub fn journal(&self, args: &[&str]) -> Output {
        run_within(self.client("asyncmjournal", args), "asyncmjournal", args)
    }

    /// A command line that runs a client against this daemon, for shell pipelines.
    pub fn shell_cmd(&self, client: &str, args: &str) -> String {
        format!(
            "{} --socket {} {args}",
            bin(client).display(),
            self.socket.display()
        )
    }

    /// `asyncmctl status --json UNIT` as JSON (the first unit).
    pub fn status(&self, unit: &str) -> Value {
        let o = self.ctl(&["status", "--json", unit]);
        let v: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("status JSON: {e}: {}{}", stdout(&o), stderr(&o)));
        v[0].clone()
    }

    /// Waits until the daemon answers on its socket (after [`Setup::spawn`]).
    pub fn wait_listening(&self) {
        wait_for("the daemon to answer on its socket", || {
            self.ctl(&["list"]).status.success().then_some(())
        });
    }

    /// The state word of `unit`.
    pub fn state(&self, unit: &str) -> String {
        self.status(unit)["state"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Waits until `unit` is in `state`.
    pub fn wait_state(&self, unit: &str, state: &str) -> Value {
        wait_for(&format!("{unit} to be {state}"), || {
            // A unit may not be there yet (a board's task, before its bridge connects).
            let o = self.ctl(&["status", "--json", unit]);
            let s: Value = serde_json::from_slice(&o.stdout).ok()?;
            let s = s[0].clone();
            (s["state"] == state).then_some(s)
        })
    }

    /// Every journal entry as JSON objects (`asyncmjournal -o json ARGS`).
    pub fn entries(&self, args: &[&str]) -> Vec<Value> {
        let mut a = vec!["-o", "json"];
        a.extend_from_slice(args);
        let o = self.journal(&a);
        assert!(o.status.success(), "asyncmjournal failed: {}", stderr(&o));
        stdout(&o)
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    /// A line of `/proc/PID/status` of the daemon, in kB (`VmRSS`, `VmHWM`).
    pub fn mem_kb(&self, key: &str) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in /proc status"))
    }

    /// The units directory.
    pub fn units(&self) -> PathBuf {
        self.dir.path().join("units")
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), sig).expect("the daemon can be signalled");
    }

    /// Starts the daemon again on the same directory, once the last one has exited; returns
    /// once its boot report is complete.
    pub fn restart(&mut self) -> &Daemon {
        self.wait_exit();
        self.child = self.launcher.launch(self.dir.path(), &self.socket);
        self.wait_booted();
        self
    }

    /// Kills the daemon with SIGKILL and reaps it (its services are left behind).
    pub fn crash(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the daemon process to exit by itself; returns its exit status code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        wait_for("the daemon to exit", || {
            self.child.try_wait().ok().flatten()
        })
        .code()
    }

    /// Sends SIGTERM and waits for the daemon to exit; returns its exit status code.
    pub fn stop(&mut self) -> Option<i32> {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let start = Instant::now();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// Runs `cmd` with its stdout and stderr on a new pseudo-terminal; what it printed there
/// (until it exited and closed the terminal), and its exit code.
pub fn on_a_terminal(mut cmd: Command) -> (String, Option<i32>) {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let pty = nix::pty::openpty(None, None).expect("a pseudo-terminal");
    // Close-on-exec, both sides: a process a parallel test spawns meanwhile must not inherit
    // the slave and hold the terminal open. The client gets it as its stdout and stderr all
    // the same (dup2 clears the flag on the copies).
    for fd in [pty.master.as_raw_fd(), pty.slave.as_raw_fd()] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).expect("FD_CLOEXEC");
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(pty.slave.try_clone().unwrap())
        .stderr(pty.slave);
    let child = cmd.spawn().expect("the client starts");
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    // The Command holds our copies of the terminal's slave side: close them, so that the
    // master reads EIO once the child has gone.
    drop(cmd);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut master = std::fs::File::from(pty.master);
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match master.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // EIO: the slave side is closed, the normal end.
                Err(_) => break,
            }
        }
        let _ = tx.send(got);
    });
    let got = match rx.recv_timeout(DEADLINE) {
        Ok(g) => g,
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("timed out reading the terminal");
        }
    };
    let code = output_within(child, "the client on a terminal")
        .status
        .code();
    (String::from_utf8_lossy(&got).into_owned(), code)
}

/// A port on 127.0.0.1 that nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
