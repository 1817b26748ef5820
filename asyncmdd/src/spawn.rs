//! Starting a service's process the way `posix_spawn` does: `clone(CLONE_VM | CLONE_VFORK)`,
//! so the child borrows the daemon's memory until it execs instead of copying its page tables.
//!
//! A service is hardened between fork and exec (its cgroup, `PR_SET_PDEATHSIG`, the descriptor
//! limit it would have had elsewhere). A `pre_exec` hook for that makes std fork, which costs
//! three times what `clone3` costs in the daemon's address space (154 us against 51 us in a
//! boot of 500 services, by `strace -c`), and the launches of many services are mostly that.
//! So the child is started here, with everything it needs prepared in the parent: between
//! `clone` and `execve` it makes only system calls, allocates nothing and takes no lock, as in
//! glibc's own `posix_spawn`. Its end is awaited on a pidfd from `CLONE_PIDFD`.
//!
//! A kernel without pidfds (before 5.3) gets std's fork with the same steps in a `pre_exec`
//! hook ([`Launch::fork`]).

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use nix::errno::Errno;
use nix::libc::{self, c_int, c_void};
use tokio::io::unix::AsyncFd;

/// Everything a service's process is started with, prepared before the child exists.
pub struct Launch {
    /// The program as given (`argv[0]`): a path, or a name looked up in `PATH`.
    pub program: OsString,
    /// The whole argv, `argv[0]` included.
    pub argv: Vec<OsString>,
    /// The whole environment, in order (a later value of a name wins).
    pub env: Vec<(OsString, OsString)>,
    /// The directory it runs in, if not the daemon's.
    pub workdir: Option<std::path::PathBuf>,
    /// Hardening done in the child before exec.
    pub harden: Harden,
}

/// What the child does to itself before exec, in either way of starting it.
pub struct Harden {
    /// The `cgroup.procs` file of the unit's cgroup, to join first.
    pub cgroup: Option<CString>,
    /// The daemon's PID: a child whose parent is another already missed its death signal.
    pub daemon: i32,
    /// The descriptor limits (soft, hard) to restore, when the daemon raised its own.
    pub limits: Option<(u64, u64)>,
}

impl Harden {
    /// Joins the cgroup, asks for SIGTERM at the daemon's death and restores the descriptor
    /// limits; an errno, or 0. Only system calls: it runs in a child that shares the daemon's
    /// memory.
    fn apply(&self) -> c_int {
        self.try_apply().err().map_or(0, |e| e as c_int)
    }

    fn try_apply(&self) -> nix::Result<()> {
        // Into the unit's cgroup before anything runs, so every process it makes is found there.
        if let Some(procs) = &self.cgroup {
            crate::cgroup::join(procs)?;
        }
        // The service hears of the daemon's death (SIGTERM) rather than living on
        // unsupervised. The signal follows the thread that started it: the daemon's runtime is
        // its main thread, which lives as long as it does.
        nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)?;
        if nix::unistd::getppid().as_raw() != self.daemon {
            // The daemon died between the start and the prctl.
            return Err(Errno::ESRCH);
        }
        if let Some((soft, hard)) = self.limits {
            use nix::sys::resource::{setrlimit, Resource};
            setrlimit(Resource::RLIMIT_NOFILE, soft, hard)?;
        }
        Ok(())
    }
}

/// A started service process: its PID, its output pipes, and its end to await.
pub struct Child {
    pid: u32,
    /// The read end of its stdout.
    pub stdout: Option<OwnedFd>,
    /// The read end of its stderr.
    pub stderr: Option<OwnedFd>,
    end: End,
}

enum End {
    /// Readable once the process has ended; the PID stays ours until it is reaped.
    Pidfd(Option<AsyncFd<OwnedFd>>),
    /// Std's fork, where tokio reaps.
    Tokio(tokio::process::Child),
}

impl Child {
    /// Its PID.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Waits for its end and reaps it.
    pub async fn wait(mut self) -> io::Result<ExitStatus> {
        match &mut self.end {
            End::Tokio(child) => child.wait().await,
            End::Pidfd(fd) => {
                let afd = fd.as_ref().expect("awaited once");
                loop {
                    let mut ready = afd.readable().await?;
                    if let Some(status) = reap(self.pid, libc::WNOHANG)? {
                        *fd = None;
                        return Ok(status);
                    }
                    ready.clear_ready();
                }
            }
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Not awaited to its end: hand it to the orphan reaper, which leaves registered
        // children alone.
        if let End::Pidfd(Some(_)) = self.end {
            if !matches!(reap(self.pid, libc::WNOHANG), Ok(Some(_))) {
                crate::process::unregister(self.pid);
            }
        }
    }
}

/// `waitpid(pid, flags)`: the status, or `None` while it runs (with `WNOHANG`).
fn reap(pid: u32, flags: c_int) -> io::Result<Option<ExitStatus>> {
    let mut status: c_int = 0;
    loop {
        // SAFETY: a plain system call into a local.
        let r = unsafe { libc::waitpid(pid as i32, &mut status, flags) };
        match r {
            0 => return Ok(None),
            r if r > 0 => return Ok(Some(ExitStatus::from_raw(status))),
            _ if Errno::last_raw() == libc::EINTR => continue,
            _ => return Err(io::Error::last_os_error()),
        }
    }
}

/// Whether this kernel gives pidfds (5.3 and later), so children can be cloned.
fn pidfds() -> bool {
    static PIDFDS: OnceLock<bool> = OnceLock::new();
    *PIDFDS.get_or_init(|| {
        // SAFETY: pidfd_open on our own PID; the descriptor is closed at once.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
        if fd >= 0 {
            // SAFETY: a descriptor just opened and owned by no one else.
            unsafe { libc::close(fd as c_int) };
        }
        fd >= 0
    })
}

impl Launch {
    /// Starts it: cloned where the kernel gives pidfds, else forked by std.
    pub fn spawn(self) -> io::Result<Child> {
        if pidfds() {
            self.clone_vfork()
        } else {
            self.fork()
        }
    }

    /// Starts it with std's `Command` (fork, then the hardening in a `pre_exec` hook).
    pub fn fork(self) -> io::Result<Child> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.argv[1..])
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        if let Some(dir) = &self.workdir {
            cmd.current_dir(dir);
        }
        let harden = self.harden;
        // SAFETY: between fork and exec only system calls run: nothing is allocated or locked.
        unsafe {
            cmd.pre_exec(move || match harden.apply() {
                0 => Ok(()),
                e => Err(io::Error::from_raw_os_error(e)),
            });
        }
        let mut child = crate::process::spawn_registered(&mut cmd)?;
        let pid = child.id().unwrap_or(0);
        let stdout = child.stdout.take().and_then(|o| o.into_owned_fd().ok());
        let stderr = child.stderr.take().and_then(|e| e.into_owned_fd().ok());
        Ok(Child {
            pid,
            stdout,
            stderr,
            end: End::Tokio(child),
        })
    }

    /// Starts it with `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)`.
    pub fn clone_vfork(self) -> io::Result<Child> {
        let cstr = |s: &[u8]| {
            CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte"))
        };
        let argv = self
            .argv
            .iter()
            .map(|a| cstr(a.as_bytes()))
            .collect::<io::Result<Vec<_>>>()?;
        let mut env = Vec::with_capacity(self.env.len());
        for (i, (k, v)) in self.env.iter().enumerate() {
            // A later value of the same name wins, as in std's `Command`.
            if self.env[i + 1..].iter().any(|(k2, _)| k2 == k) {
                continue;
            }
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            env.push(cstr(&kv)?);
        }
        let path = self
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_bytes());
        let candidates = candidates(self.program.as_bytes(), path)
            .iter()
            .map(|c| cstr(c))
            .collect::<io::Result<Vec<_>>>()?;
        let workdir = match &self.workdir {
            Some(d) => Some(cstr(d.as_os_str().as_bytes())?),
            None => None,
        };
        let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        argv_p.push(std::ptr::null());
        let mut env_p: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
        env_p.push(std::ptr::null());

        let null = at_least_3(
            nix::fcntl::open(
                "/dev/null",
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            // SAFETY: a descriptor just opened, owned by no one else.
            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })?,
        )?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;

        let shared = Shared {
            harden: &self.harden,
            candidates: &candidates,
            argv: argv_p.as_ptr(),
            env: env_p.as_ptr(),
            workdir: workdir.as_ref(),
            stdio: [null.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
            errno: AtomicI32::new(0),
        };
        // The child runs on this stack until it execs; the daemon's thread waits meanwhile.
        let mut stack = vec![0u8; CHILD_STACK];
        let top = (stack.as_mut_ptr() as usize + stack.len()) & !15;
        let mut pidfd: c_int = -1;
        let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD;

        let mut own = crate::process::own();
        // Every signal blocked across the clone: a handler of the daemon's must not run in
        // the child, on the daemon's memory. The child resets them before it unblocks.
        // SAFETY: sigset_t is plain data, filled by sigfillset before use.
        let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
        let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `shared`, `stack` and everything they point to live until the clone
        // returns, which (CLONE_VFORK) is after the child has exec'd or exited.
        let pid = unsafe {
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
            let pid = libc::clone(
                child,
                top as *mut c_void,
                flags,
                &shared as *const Shared as *mut c_void,
                &mut pidfd as *mut c_int,
            );
            let e = Errno::last_raw();
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
            if pid < 0 {
                return Err(io::Error::from_raw_os_error(e));
            }
            pid
        };
        drop(stack);
        // SAFETY: CLONE_PIDFD gave this process a new descriptor for the child.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
        let failed = shared.errno.load(Ordering::SeqCst);
        if failed != 0 {
            // It exited without exec: reap it here, not as an orphan.
            let _ = reap(pid as u32, 0);
            return Err(io::Error::from_raw_os_error(failed));
        }
        own.insert(pid);
        drop(own);
        drop((null, out_w, err_w));
        // SAFETY: the AsyncFd owns the descriptor, open until it is dropped.
        let end = unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) };
        let end = match end {
            Ok(end) => end,
            Err(e) => {
                // A process nothing could wait for is not left running.
                // SAFETY: the child is ours and not yet reaped, so its PID is still its own.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                let _ = reap(pid as u32, 0);
                crate::process::unregister(pid as u32);
                return Err(e.into());
            }
        };
        Ok(Child {
            pid: pid as u32,
            stdout: Some(out_r),
            stderr: Some(err_r),
            end: End::Pidfd(Some(end)),
        })
    }
}

/// Bytes of the stack the child runs on until it execs: it calls a few system calls.
const CHILD_STACK: usize = 32 * 1024;

/// What the child reads from the parent's memory, and where it leaves an errno.
struct Shared<'a> {
    harden: &'a Harden,
    candidates: &'a [CString],
    argv: *const *const libc::c_char,
    env: *const *const libc::c_char,
    workdir: Option<&'a CString>,
    stdio: [RawFd; 3],
    errno: AtomicI32,
}

/// The child, between clone and exec. It shares the daemon's memory and stack frames above
/// its own, so it only makes system calls; a failure leaves its errno for the parent.
extern "C" fn child(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the parent's `Shared`, alive until this child execs or exits.
    let s = unsafe { &*(arg as *const Shared) };
    let e = before_exec(s);
    s.errno
        .store(if e == 0 { libc::EIO } else { e }, Ordering::SeqCst);
    // SAFETY: _exit runs no destructors or atexit handlers of the shared process.
    unsafe { libc::_exit(127) }
}

/// The child's steps; returns only on failure, with its errno.
fn before_exec(s: &Shared) -> c_int {
    // SAFETY: system calls on values the parent keeps alive; see `child`.
    unsafe {
        // Every handler back to the default (the daemon's would run on its memory), and
        // SIGPIPE too, which Rust programs ignore; then nothing blocked, as std does.
        let mut dfl: libc::sigaction = std::mem::zeroed();
        dfl.sa_sigaction = libc::SIG_DFL;
        for sig in 1..libc::SIGRTMAX() + 1 {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            let handled = old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN;
            if handled || sig == libc::SIGPIPE {
                libc::sigaction(sig, &dfl, std::ptr::null_mut());
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());

        if libc::setpgid(0, 0) != 0 {
            return Errno::last_raw();
        }
        let e = s.harden.apply();
        if e != 0 {
            return e;
        }
        // The descriptors are all above 2 (`at_least_3`), so no dup2 overwrites another's
        // source; dup2 clears close-on-exec on the copy.
        for (to, &from) in s.stdio.iter().enumerate() {
            if libc::dup2(from, to as c_int) < 0 {
                return Errno::last_raw();
            }
        }
        if let Some(dir) = s.workdir {
            if libc::chdir(dir.as_ptr()) != 0 {
                return Errno::last_raw();
            }
        }
        // As execvp: the next candidate when this one is not there or not ours to run.
        let mut err = libc::ENOENT;
        let mut denied = false;
        for path in s.candidates {
            libc::execve(path.as_ptr(), s.argv, s.env);
            err = Errno::last_raw();
            match err {
                libc::EACCES => denied = true,
                libc::ENOENT | libc::ENOTDIR => {}
                _ => return err,
            }
        }
        if denied {
            libc::EACCES
        } else {
            err
        }
    }
}

/// The paths to try for `program`, as execvp would: itself when it has a slash, else each
/// directory of `path` (the default `/bin:/usr/bin` when unset; an empty entry is `.`).
fn candidates(program: &[u8], path: Option<&[u8]>) -> Vec<Vec<u8>> {
    if program.contains(&b'/') || program.is_empty() {
        return vec![program.to_vec()];
    }
    path.unwrap_or(b"/bin:/usr/bin")
        .split(|&b| b == b':')
        .map(|dir| {
            let dir = if dir.is_empty() { &b"."[..] } else { dir };
            let mut p = dir.to_vec();
            if !p.ends_with(b"/") {
                p.push(b'/');
            }
            p.extend_from_slice(program);
            p
        })
        .collect()
}

/// A close-on-exec pipe, (read, write), both above the standard descriptors.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((at_least_3(r)?, at_least_3(w)?))
}

/// `fd`, moved above 2 if it is one of the standard descriptors (a daemon started with them
/// closed gets its first descriptors there), so the child's dup2 onto 0 to 2 cannot clobber it.
fn at_least_3(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    let moved = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?;
    // SAFETY: a descriptor just made, owned by no one else.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn launch(argv: &[&str], env: &[(&str, &str)], workdir: Option<&std::path::Path>) -> Launch {
        let mut all: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        all.extend(env.iter().map(|(k, v)| (k.into(), v.into())));
        Launch {
            program: argv[0].into(),
            argv: argv.iter().map(OsString::from).collect(),
            env: all,
            workdir: workdir.map(|d| d.to_path_buf()),
            harden: Harden {
                cgroup: None,
                daemon: std::process::id() as i32,
                limits: None,
            },
        }
    }

    /// What a child started by `how` reports of itself, and how it ended.
    fn observe(how: fn(Launch) -> io::Result<Child>, l: Launch) -> (String, String, i32) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut child = how(l).unwrap();
            let read = |fd: Option<OwnedFd>| {
                let mut s = String::new();
                std::fs::File::from(fd.unwrap())
                    .read_to_string(&mut s)
                    .unwrap();
                s
            };
            let (out, err) = (read(child.stdout.take()), read(child.stderr.take()));
            let status = child.wait().await.unwrap();
            (out, err, status.code().unwrap_or(-1))
        })
    }

    /// The shell reads its own /proc files with builtins before it starts any child: dash
    /// blocks every signal while it waits for one, and a reader then would see that mask.
    const SELF_REPORT: &str = "read -r st < /proc/$$/stat; set -- $st; \
        echo \"pid=$$ pgid=$5\"; \
        while read -r l; do case $l in SigBlk:*|SigIgn:*|SigCgt:*) echo \"$l\";; esac; \
        done < /proc/$$/status; \
        echo \"cwd=$(pwd) x=$X\"; readlink /proc/$$/fd/0; ls /proc/$$/fd; \
        echo to-stderr >&2; exit 3";

    #[test]
    fn a_cloned_child_starts_as_a_forked_one_does() {
        let dir = std::env::temp_dir();
        let l = || {
            launch(
                &["sh", "-c", SELF_REPORT],
                &[("X", "one"), ("X", "two")],
                Some(&dir),
            )
        };
        let (out, err, code) = observe(Launch::clone_vfork, l());
        let (fork_out, fork_err, fork_code) = observe(Launch::fork, l());
        let strip_pids = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
        assert_eq!(strip_pids(&out), strip_pids(&fork_out));
        assert_eq!((&err, code), (&fork_err, fork_code));
        // Its own process group, nothing blocked, the later X, /dev/null in.
        let first = out.lines().next().unwrap();
        let pid = &first["pid=".len()..first.find(' ').unwrap()];
        assert_eq!(first, format!("pid={pid} pgid={pid}"));
        let cwd = std::fs::canonicalize(&dir).unwrap();
        for line in [
            "SigBlk:\t0000000000000000".to_string(),
            format!("cwd={} x=two", cwd.display()),
            "/dev/null".to_string(),
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in {out}");
        }
        assert_eq!((err.as_str(), code), ("to-stderr\n", 3));
    }

    #[test]
    fn a_child_that_cannot_start_says_why_as_a_forked_one_does() {
        let dir = tempfile_dir();
        let script = dir.join("not-executable");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let missing = dir.join("missing");
        let script = script.to_str().unwrap();
        let cases: [(&dyn Fn() -> Launch, i32); 3] = [
            (
                &|| launch(&["no-such-program-here"], &[], None),
                libc::ENOENT,
            ),
            (&|| launch(&[script], &[], None), libc::EACCES),
            (&|| launch(&["true"], &[], Some(&missing)), libc::ENOENT),
        ];
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        for (l, errno) in cases {
            let e = l().clone_vfork().err().expect("not started");
            assert_eq!(e.raw_os_error(), Some(errno), "{e}");
            let e = l().fork().err().expect("not started");
            assert_eq!(e.raw_os_error(), Some(errno), "{e}");
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("asyncmd-spawn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn candidates_as_execvp_tries_them() {
        let c = |p: &str, path: Option<&str>| -> Vec<String> {
            candidates(p.as_bytes(), path.map(str::as_bytes))
                .into_iter()
                .map(|v| String::from_utf8(v).unwrap())
                .collect()
        };
        assert_eq!(c("./run", Some("/bin")), ["./run"]);
        assert_eq!(c("/bin/sh", None), ["/bin/sh"]);
        assert_eq!(c("sh", None), ["/bin/sh", "/usr/bin/sh"]);
        assert_eq!(c("sh", Some("/a/::/b/")), ["/a/sh", "./sh", "/b/sh"]);
    }
}
