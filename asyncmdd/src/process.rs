//! Service processes: how one is spawned (own process group, captured output, environment from
//! the unit and `services.config`), signalled, and measured from `/proc`.
//!
//! Every process of a run carries `ASYNCMD_INVOCATION` in its environment, inherited by all it
//! forks, so a service that double-forks out of its process group is still found and stopped
//! ([`invocation_pids`]). The daemon is a child subreaper: orphans of its services become its
//! children, and [`reap_orphans`] collects those that end, never a child tokio waits for
//! (those are registered at spawn, under the same lock the reaper takes).

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use asyncmd_proto::ExitResult;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use nix::sys::signal::{killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::services_config::ServiceConfig;
use crate::unit_file::UnitFile;

/// The full argv of a unit: its `exec` followed by `args` from `services.config`.
pub fn argv(exec: &[String], config: &ServiceConfig) -> Vec<String> {
    let mut argv = exec.to_vec();
    argv.extend(config.argv_tail());
    argv
}

/// Children spawned through [`spawn_registered`], which tokio reaps itself.
static OWN: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// The registry of children tokio or a pidfd waits for; held while one is started, so the
/// orphan reaper never takes a child before it is registered.
pub(crate) fn own() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    OWN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Spawns `cmd`, registering the child so [`reap_orphans`] leaves it to tokio.
pub fn spawn_registered(cmd: &mut Command) -> std::io::Result<Child> {
    let mut own = own();
    let child = cmd.spawn()?;
    if let Some(pid) = child.id() {
        own.insert(pid as i32);
    }
    Ok(child)
}

/// Unregisters a child of [`spawn_registered`] once tokio has reaped it: its PID may now be
/// another process's, which orphan reaping must not leave alone.
pub fn unregister(pid: u32) {
    own().remove(&(pid as i32));
}

/// Whether orphans of services come to this process (a subreaper, or PID 1).
static SUBREAPER: AtomicBool = AtomicBool::new(false);

/// Makes this process a child subreaper, so orphans of its services become its children
/// rather than init's. PID 1 is one already.
pub fn become_subreaper() -> nix::Result<()> {
    if std::process::id() != 1 {
        nix::sys::prctl::set_child_subreaper(true)?;
    }
    SUBREAPER.store(true, Ordering::SeqCst);
    Ok(())
}

/// The descriptor limits (soft, hard) this process started with, which services get back.
static FD_LIMITS: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();

/// Raises this process's soft limit of open descriptors to its hard limit (every service's
/// pipes are the daemon's descriptors: a thousand units need more than the usual 1024);
/// returns the limits it started with. Services are started with those limits, as they would
/// be under another manager.
pub fn raise_fd_limit() -> nix::Result<(u64, u64)> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    let _ = FD_LIMITS.set((soft, hard));
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok((soft, hard))
}

/// Reaps every ended child that tokio is not waiting for (orphans handed to the subreaper);
/// returns how many.
pub fn reap_orphans() -> usize {
    let own = own();
    let mut reaped = 0;
    for pid in children() {
        if own.contains(&pid) || proc_state(pid as u32) != Some('Z') {
            continue;
        }
        if let Ok(st) = waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
            if st != WaitStatus::StillAlive {
                reaped += 1;
            }
        }
    }
    reaped
}

/// This process's children that tokio does not wait for: orphans handed to the subreaper.
fn orphan_roots() -> Vec<u32> {
    let own = own();
    children()
        .into_iter()
        .filter(|p| !own.contains(p))
        .map(|p| p as u32)
        .collect()
}

/// `roots` and every process below them.
fn descendants(roots: Vec<u32>) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = roots;
    while let Some(p) = todo.pop() {
        out.push(p);
        todo.extend(children_in(&format!("/proc/{p}/task")));
    }
    out
}

/// This process's children.
fn children() -> Vec<i32> {
    children_in("/proc/self/task")
        .into_iter()
        .map(|p| p as i32)
        .collect()
}

/// The children of every thread under `tasks` (a `/proc/PID/task` directory).
fn children_in(tasks: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(tasks) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|c| c.parse::<u32>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The fields of a `/proc/PID/stat` line after the command name, from `state` on. The name
/// may itself hold spaces and parentheses, so it ends at the last `)`.
fn after_comm(stat: &str) -> Option<&str> {
    stat.get(stat.rfind(')')? + 1..).map(str::trim_start)
}

/// The parent of process `pid`, from `/proc/PID/stat`.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    after_comm(&stat)?.split_whitespace().nth(1)?.parse().ok()
}

/// The state letter of process `pid` (`R`, `S`, `Z`...).
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    after_comm(&stat)?.chars().next()
}

/// The processes, alive and not zombies, whose environment holds `ASYNCMD_INVOCATION=tag`
/// and whose parent is gone (orphans, and what they started). As a subreaper the daemon finds
/// them among its own children that tokio does not wait for, which is cheap, and usually none;
/// otherwise it reads every process's environment.
pub fn invocation_pids(tag: &str) -> Vec<u32> {
    let candidates: Vec<u32> = if SUBREAPER.load(Ordering::SeqCst) {
        descendants(orphan_roots())
    } else {
        std::fs::read_dir("/proc")
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let needle = format!("{INVOCATION}={tag}\0");
    let mut out = Vec::new();
    for pid in candidates {
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            if memchr::memmem::find(&env, needle.as_bytes()).is_some()
                && proc_state(pid) != Some('Z')
            {
                out.push(pid);
            }
        }
    }
    out
}

/// Orphans the daemon inherited as a subreaper (its children tokio does not wait for), and
/// everything below them, with the run tag each carries.
pub fn orphans() -> Vec<(u32, Option<String>)> {
    if !SUBREAPER.load(Ordering::SeqCst) {
        return Vec::new();
    }
    descendants(orphan_roots())
        .into_iter()
        .filter(|&p| proc_state(p).is_some_and(|s| s != 'Z'))
        .map(|p| (p, invocation_of(p)))
        .collect()
}

/// Environment variable that names the daemon a service belongs to: its units directory.
pub const OWNER: &str = "ASYNCMD_OWNER";
/// Environment variable with the PID of the daemon that started a service.
pub const DAEMON_PID: &str = "ASYNCMD_DAEMON_PID";

/// The units directory of this daemon, which every service it starts carries as [`OWNER`].
static OWNER_DIR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Marks every service started from now on as this daemon's, on `units` (canonical).
pub fn set_owner(units: &std::path::Path) {
    let dir = std::fs::canonicalize(units).unwrap_or_else(|_| units.to_path_buf());
    let _ = OWNER_DIR.set(dir.display().to_string());
}

/// Every live process an earlier daemon on these units left (its [`OWNER`] is ours, it
/// carries a run tag, and the daemon of its [`DAEMON_PID`] is gone), with that tag. Read from
/// every process's environment, once, at boot. A daemon on the same units that still runs
/// keeps its services.
pub fn left_by_earlier_daemon() -> Vec<(u32, String)> {
    let Some(owner) = OWNER_DIR.get() else {
        return Vec::new();
    };
    let needle = format!("{OWNER}={owner}\0");
    let me = std::process::id();
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.into_iter()
        .filter(|&p| p != me && proc_state(p).is_some_and(|s| s != 'Z'))
        .filter_map(|p| {
            let env = std::fs::read(format!("/proc/{p}/environ")).ok()?;
            memchr::memmem::find(&env, needle.as_bytes())?;
            let prefix = format!("{DAEMON_PID}=");
            let daemon = env
                .split(|&b| b == 0)
                .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))
                .and_then(|v| std::str::from_utf8(v).ok()?.parse::<u32>().ok());
            let alive_daemon = daemon.is_some_and(|d| {
                std::fs::read_to_string(format!("/proc/{d}/comm"))
                    .is_ok_and(|c| c.trim_end() == "asyncmdd")
                    && proc_state(d).is_some_and(|s| s != 'Z')
            });
            if alive_daemon {
                return None;
            }
            Some((p, invocation_of(p)?))
        })
        .collect()
}

/// Asks processes to stop with `first`, waits up to `grace` for them to go, then sends
/// SIGKILL; returns those still there at that moment (empty when all went in time). `signal`
/// sends to all of them and `left` lists who is still there: polled every 20 ms, since these
/// are not children of ours to wait for.
pub async fn stop_within(
    first: Signal,
    grace: std::time::Duration,
    signal: impl Fn(Signal),
    left: impl Fn() -> Vec<u32>,
) -> Vec<u32> {
    signal(first);
    let until = std::time::Instant::now() + grace;
    while std::time::Instant::now() < until {
        if left().is_empty() {
            return Vec::new();
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let stayed = left();
    if !stayed.is_empty() {
        signal(Signal::SIGKILL);
    }
    stayed
}

/// Stops the processes `left` (SIGTERM, then SIGKILL after `grace`) and waits until they are
/// gone; returns how many had to be killed.
pub async fn stop_left(left: &[(u32, String)], grace: std::time::Duration) -> usize {
    let alive = || -> Vec<u32> {
        left.iter()
            .map(|&(p, _)| p)
            .filter(|&p| proc_state(p).is_some_and(|s| s != 'Z'))
            .collect()
    };
    let signal = |sig| {
        for p in alive() {
            let _ = nix::sys::signal::kill(Pid::from_raw(p as i32), sig);
        }
    };
    let killed = stop_within(Signal::SIGTERM, grace, signal, alive)
        .await
        .len();
    while !alive().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    killed
}

/// A new run tag for run `run` of `unit`: its name and number for a person, then 128 random
/// bits, so that no other process can guess the tag of a run and speak for it.
pub fn new_tag(unit: &str, run: u32) -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        // No /dev/urandom (a bare chroot): std's hasher keys are random per process.
        use std::hash::{BuildHasher, Hasher};
        for (i, chunk) in bytes.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(i as u64);
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos(),
            );
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{unit}:{run}:{hex}")
}

/// The `ASYNCMD_INVOCATION` tag in the environment of process `pid`, if any.
pub fn invocation_of(pid: u32) -> Option<String> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let prefix = format!("{INVOCATION}=");
    let tag = env
        .split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(prefix.as_bytes()))?;
    String::from_utf8(tag.to_vec()).ok()
}

/// Sends `signal` to the process group `pgid` and to every process of invocation `tag`.
pub fn signal_invocation(pgid: Option<u32>, tag: &str, signal: Signal) {
    if let Some(p) = pgid {
        let _ = signal_group(p, signal);
    }
    if tag.is_empty() {
        return;
    }
    for pid in invocation_pids(tag) {
        if pid > 1 && pid != std::process::id() {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid as i32), signal);
        }
    }
}

/// The variable that tags every process of one run of a unit.
pub const INVOCATION: &str = "ASYNCMD_INVOCATION";

/// Spawns `argv` for `unit` in a process group of its own, stdin from /dev/null, stdout and
/// stderr piped. The environment is the daemon's, plus the unit's `env`, plus the config's
/// `kwargs`, plus `ASYNCMD_UNIT`, `ASYNCMD_INVOCATION=tag` and `extra`. The watchdog settings
/// the daemon's own manager gave it (`WATCHDOG_USEC`, `WATCHDOG_PID`) are its own, not the
/// service's: a service has `WATCHDOG_USEC` only from its unit's `watchdog` (in `extra`).
pub fn spawn(
    unit: &UnitFile,
    argv: &[String],
    config: &ServiceConfig,
    tag: &str,
    extra: &[(String, String)],
    cgroup: Option<std::ffi::CString>,
) -> std::io::Result<crate::spawn::Child> {
    let os = |(k, v): (&str, &str)| (OsString::from(k), OsString::from(v));
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| k != "WATCHDOG_USEC" && k != "WATCHDOG_PID")
        .collect();
    env.extend(unit.env.iter().map(|(k, v)| os((k, v))));
    env.extend(config.env().iter().map(|(k, v)| os((k, v))));
    env.push(os(("ASYNCMD_UNIT", &unit.name)));
    env.push(os((INVOCATION, tag)));
    env.extend(OWNER_DIR.get().map(|o| os((OWNER, o))));
    env.push(os((DAEMON_PID, &std::process::id().to_string())));
    env.extend(extra.iter().map(|(k, v)| os((k, v))));
    crate::spawn::Launch {
        program: argv[0].clone().into(),
        argv: argv.iter().map(OsString::from).collect(),
        env,
        workdir: unit.workdir.clone(),
        harden: crate::spawn::Harden {
            cgroup,
            daemon: nix::unistd::getpid().as_raw(),
            limits: FD_LIMITS.get().copied().filter(|(s, h)| s < h),
        },
    }
    .spawn()
}

/// The wire form of how a process ended.
pub fn exit_result(status: ExitStatus) -> ExitResult {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitResult::Exited { code },
        (None, Some(sig)) => ExitResult::Killed {
            signal: sig,
            name: Signal::try_from(sig)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| format!("SIG{sig}")),
            core_dumped: status.core_dumped(),
        },
        (None, None) => ExitResult::Exited { code: -1 },
    }
}

/// Sends `signal` to the process group led by `pid`; a group already gone is not an error.
pub fn signal_group(pid: u32, signal: Signal) -> nix::Result<()> {
    // 0 would be our own group, 1 init's: never a service's.
    if pid <= 1 {
        return Err(nix::errno::Errno::EINVAL);
    }
    match killpg(Pid::from_raw(pid as i32), signal) {
        Err(nix::errno::Errno::ESRCH) => Ok(()),
        other => other,
    }
}

/// Resident memory (bytes) and CPU time (µs) of process `pid`, from `/proc/PID/stat` alone
/// (one read: status answers faster than with `statm` as well).
pub fn stats(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Counted from `state`, utime and stime are the 12th and 13th, rss (in pages) the 22nd.
    let rest = after_comm(&stat)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| fields.get(i)?.parse::<u64>().ok();
    let (utime, stime, resident) = (num(11)?, num(12)?, num(21)?);
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    Some((resident * page, (utime + stime) * 1_000_000 / tick))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_hostile_command_name() {
        assert_eq!(after_comm("42 (a) b) S 1 42"), Some("S 1 42"));
        assert_eq!(after_comm("42 (sh)"), Some(""));
        assert_eq!(after_comm("42 (x"), None);
        assert_eq!(after_comm(""), None);
    }

    #[test]
    fn reads_own_stats() {
        let (rss, _cpu) = stats(std::process::id()).unwrap();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let kb: u64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap();
        // Same figure as the kernel's VmRSS, give or take what moved between the two reads.
        assert!(
            rss.abs_diff(kb * 1024) < 4 << 20,
            "stat {rss} vs status {kb} kB"
        );
    }

    #[test]
    fn exit_results() {
        assert_eq!(
            exit_result(ExitStatus::from_raw(3 << 8)),
            ExitResult::Exited { code: 3 }
        );
        match exit_result(ExitStatus::from_raw(9)) {
            ExitResult::Killed { signal, name, .. } => {
                assert_eq!((signal, name.as_str()), (9, "SIGKILL"))
            }
            other => panic!("{other:?}"),
        }
    }
}
