//! Service processes: how one is spawned (own process group, captured output, environment from
//! the unit and `services.config`), signalled, and measured from `/proc`.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};

use asyncmd_proto::ExitResult;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::config::ServiceConfig;
use crate::unit::Unit;

/// The full argv of a unit: its `exec` followed by `args` from `services.config`.
pub fn argv(exec: &[String], config: &ServiceConfig) -> Vec<String> {
    let mut argv = exec.to_vec();
    argv.extend(config.argv_tail());
    argv
}

/// Spawns `argv` for `unit` in a process group of its own, stdin from /dev/null, stdout and
/// stderr piped. The environment is the daemon's, plus the unit's `env`, plus the config's
/// `kwargs`, plus `ASYNCMD_UNIT`.
pub fn spawn(unit: &Unit, argv: &[String], config: &ServiceConfig) -> std::io::Result<Child> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .envs(&unit.env)
        .envs(config.env())
        .env("ASYNCMD_UNIT", &unit.name)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    if let Some(dir) = &unit.workdir {
        cmd.current_dir(dir);
    }
    cmd.spawn()
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
    match killpg(Pid::from_raw(pid as i32), signal) {
        Err(nix::errno::Errno::ESRCH) => Ok(()),
        other => other,
    }
}

/// Resident memory (bytes) and CPU time (µs) of process `pid`, from `/proc/PID/stat` alone
/// (one read: status answers faster than with `statm` as well).
pub fn stats(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may itself hold spaces and parentheses; counted
    // from `state`, utime and stime are the 12th and 13th, rss (in pages) the 22nd.
    let rest = &stat[stat.rfind(')')? + 2..];
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
