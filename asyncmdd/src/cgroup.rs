//! cgroup v2, where one is delegated to the daemon: each unit's processes live in a cgroup of
//! their own under it (`BASE/hello.service`), so a stop, the status and the clean-up after a
//! crash find every process of a unit, also one that left its process group and dropped its
//! run tag (`setsid env -i ...`). Without a delegated cgroup, run tags and process groups do
//! that work, as before.
//!
//! Only membership is used (`cgroup.procs`, `cgroup.kill`, `cgroup.events`), which needs no
//! controller; `memory.current` and `cpu.stat` are read where the kernel gives them.

use std::ffi::{CStr, CString};
use std::io;
use std::path::{Path, PathBuf};

use nix::sys::signal::Signal;

/// The leaf the daemon moves itself into when it sits in the delegated cgroup: a cgroup with
/// processes of its own cannot give controllers to its children.
const DAEMON_LEAF: &str = "asyncmdd";

/// Which cgroup to use, as `asyncmdd --cgroup` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// The daemon's own cgroup, when it is cgroup v2 and delegated to it (systemd's
    /// `Delegate=yes`, or the daemon is PID 1 of a container).
    Auto,
    /// None: processes are tracked by run tags and process groups only.
    Off,
    /// This directory of a cgroup v2 hierarchy.
    Dir(PathBuf),
}

impl std::str::FromStr for Choice {
    type Err = String;

    fn from_str(s: &str) -> Result<Choice, String> {
        Ok(match s {
            "auto" => Choice::Auto,
            "off" => Choice::Off,
            "" => return Err("expected auto, off or a cgroup directory".into()),
            dir => Choice::Dir(PathBuf::from(dir)),
        })
    }
}

/// The delegated cgroup and the units' cgroups under it.
#[derive(Debug)]
pub struct Cgroups {
    base: PathBuf,
}

impl Cgroups {
    /// The cgroup `choice` names, checked; `None` when there is none to use. A directory that
    /// was named but cannot be used is an error saying why.
    pub fn open(choice: &Choice) -> Result<Option<Cgroups>, String> {
        let base = match choice {
            Choice::Off => return Ok(None),
            Choice::Dir(d) => {
                usable(d).map_err(|e| format!("--cgroup {}: {e}", d.display()))?;
                d.clone()
            }
            Choice::Auto => match delegated() {
                Some(d) => d,
                None => return Ok(None),
            },
        };
        let cg = Cgroups { base };
        cg.settle_daemon();
        Ok(Some(cg))
    }

    /// The delegated cgroup's directory.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// The cgroup directory of unit `unit`.
    pub fn dir(&self, unit: &str) -> PathBuf {
        self.base.join(unit)
    }

    /// Makes the cgroup of `unit` (if it is not there) and returns the path of its
    /// `cgroup.procs`, which a new process of the unit writes itself into ([`join`]).
    pub fn prepare(&self, unit: &str) -> io::Result<CString> {
        let dir = self.dir(unit);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        CString::new(
            dir.join("cgroup.procs")
                .into_os_string()
                .into_encoded_bytes(),
        )
        .map_err(io::Error::other)
    }

    /// The processes in the cgroup of `unit` and any cgroup below it.
    pub fn pids(&self, unit: &str) -> Vec<u32> {
        let mut pids = Vec::new();
        collect(&self.dir(unit), 0, &mut pids);
        pids
    }

    /// Sends `sig` to every process in the cgroup of `unit`.
    pub fn signal(&self, unit: &str, sig: Signal) {
        for pid in self.pids(unit) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
        }
    }

    /// Kills every process in the cgroup of `unit`: `cgroup.kill` where the kernel has it
    /// (5.14 and later), which no fork can outrun; SIGKILL to each process otherwise.
    pub fn kill(&self, unit: &str) {
        if std::fs::write(self.dir(unit).join("cgroup.kill"), "1").is_err() {
            self.signal(unit, Signal::SIGKILL);
        }
    }

    /// The memory (bytes) and CPU time (µs) of the cgroup of `unit`, where the kernel keeps
    /// them: memory only with the memory controller enabled for it.
    pub fn stats(&self, unit: &str) -> (Option<u64>, Option<u64>) {
        let dir = self.dir(unit);
        let memory = std::fs::read_to_string(dir.join("memory.current"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let cpu = std::fs::read_to_string(dir.join("cpu.stat"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse().ok())
            });
        (memory, cpu)
    }

    /// The units' cgroups that hold processes, with them: at boot, what an earlier daemon
    /// left.
    pub fn populated(&self) -> Vec<(String, Vec<u32>)> {
        let Ok(entries) = std::fs::read_dir(&self.base) else {
            return Vec::new();
        };
        let mut out: Vec<(String, Vec<u32>)> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name != DAEMON_LEAF)
            .map(|name| {
                let pids = self.pids(&name);
                (name, pids)
            })
            .filter(|(_, pids)| !pids.is_empty())
            .collect();
        out.sort();
        out
    }

    /// Removes the cgroup of `unit` once it is empty (an unloaded unit's).
    pub fn remove(&self, unit: &str) {
        let _ = std::fs::remove_dir(self.dir(unit));
    }

    /// Moves the daemon out of the delegated cgroup into a leaf of its own, and gives the
    /// units' cgroups what controllers it can (memory, pids, cpu) so their use is counted.
    /// Both are best efforts: membership alone needs neither.
    fn settle_daemon(&self) {
        let me = std::process::id();
        let procs = std::fs::read_to_string(self.base.join("cgroup.procs")).unwrap_or_default();
        if procs.lines().any(|l| l.trim().parse() == Ok(me)) {
            let leaf = self.base.join(DAEMON_LEAF);
            let _ = std::fs::create_dir(&leaf);
            if let Err(e) = std::fs::write(leaf.join("cgroup.procs"), me.to_string()) {
                tracing::warn!("cannot move asyncmdd into {}: {e}", leaf.display());
                return;
            }
        }
        let available =
            std::fs::read_to_string(self.base.join("cgroup.controllers")).unwrap_or_default();
        for c in ["memory", "pids", "cpu"] {
            if available.split_whitespace().any(|a| a == c) {
                let _ = std::fs::write(self.base.join("cgroup.subtree_control"), format!("+{c}"));
            }
        }
    }
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is `procs`. Called between
/// fork and exec: only system calls, nothing allocated.
pub fn join(procs: &CStr) -> nix::Result<()> {
    use nix::fcntl::{open, OFlag};
    let fd = open(
        procs,
        OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let written = nix::unistd::write(unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }, b"0");
    let _ = nix::unistd::close(fd);
    written.map(|_| ())
}

/// Whether `dir` is a cgroup v2 directory this process may create cgroups in and move
/// processes into; why not, otherwise.
fn usable(dir: &Path) -> Result<(), String> {
    if !dir.join("cgroup.controllers").is_file() {
        return Err(
            "not a directory of a cgroup v2 hierarchy (it has no cgroup.controllers)".into(),
        );
    }
    for p in [dir.to_path_buf(), dir.join("cgroup.procs")] {
        nix::unistd::access(&p, nix::unistd::AccessFlags::W_OK)
            .map_err(|e| format!("{} is not writable: {e}", p.display()))?;
    }
    Ok(())
}

/// The daemon's own cgroup, if it is cgroup v2 and delegated to it: marked so by systemd
/// (`trusted.delegate` or `user.delegate`, for `Delegate=yes`), or the daemon is PID 1 (a
/// container's init, whose cgroup is its own). Writable alone is not enough: root may write
/// to a cgroup that another manager keeps.
fn delegated() -> Option<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let root = mounts.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2").then_some(left.split(' ').nth(4)?)
    })?;
    let dir = Path::new(root).join(path.trim_start_matches('/'));
    usable(&dir).ok()?;
    let marked = ["trusted.delegate", "user.delegate"]
        .iter()
        .any(|name| xattr(&dir, name).as_deref() == Some(b"1".as_slice()));
    (marked || std::process::id() == 1).then_some(dir)
}

/// The value of extended attribute `name` of `path`, if it has one (of at most 16 bytes).
fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let n = CString::new(name).ok()?;
    let mut buf = [0u8; 16];
    // SAFETY: both strings are NUL-terminated and the buffer's length is passed with it.
    let len =
        unsafe { nix::libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| buf[..len as usize].to_vec())
}

fn collect(dir: &Path, depth: usize, pids: &mut Vec<u32>) {
    if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
    }
    // A unit's processes cannot make cgroups of their own unless given the right; a bounded
    // walk covers one that was.
    if depth < 8 {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    collect(&e.path(), depth + 1, pids);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse() {
        assert_eq!("auto".parse(), Ok(Choice::Auto));
        assert_eq!("off".parse(), Ok(Choice::Off));
        assert_eq!("/x/y".parse(), Ok(Choice::Dir("/x/y".into())));
        assert!("".parse::<Choice>().is_err());
    }

    #[test]
    fn a_directory_that_is_no_cgroup_is_refused_with_why() {
        let d = tempfile::tempdir().unwrap();
        let e = Cgroups::open(&Choice::Dir(d.path().into())).unwrap_err();
        assert!(
            e.contains("not a directory of a cgroup v2 hierarchy"),
            "{e}"
        );
    }
}
