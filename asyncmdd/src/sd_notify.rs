//! The sd_notify protocol, both ways: the socket services send `READY=1`, `STATUS=...`,
//! `WATCHDOG=1`, `MAINPID=` and `STOPPING=1` to (each datagram carries the sender's
//! credentials, which say which service sent it), and the daemon's own messages to systemd when
//! it runs under it.

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixDatagram as StdDatagram;
use std::path::{Path, PathBuf};

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use tokio::io::Interest;
use tokio::net::UnixDatagram;

/// Largest datagram read; sd_notify messages are a few lines.
const MAX_DATAGRAM: usize = 4096;

/// One datagram: who sent it and its `KEY=VALUE` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The sender's PID, from its credentials.
    pub pid: Option<u32>,
    /// The assignments, in order.
    pub fields: Vec<(String, String)>,
}

/// The `KEY=VALUE` lines of a datagram; lines without `=` are ignored.
pub fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .collect()
}

/// The socket services are given as `NOTIFY_SOCKET`.
pub struct NotifySocket {
    sock: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    /// Binds `path` (replacing a stale file), asking the kernel for sender credentials.
    pub fn bind(path: &Path) -> io::Result<NotifySocket> {
        let _ = std::fs::remove_file(path);
        let sock = StdDatagram::bind(path)?;
        setsockopt(&sock, sockopt::PassCred, &true)?;
        sock.set_nonblocking(true)?;
        Ok(NotifySocket {
            sock: UnixDatagram::from_std(sock)?,
            path: path.to_path_buf(),
        })
    }

    /// Where it is bound.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next datagram.
    pub async fn recv(&self) -> io::Result<Message> {
        loop {
            self.sock.readable().await?;
            let got = self.sock.try_io(Interest::READABLE, || {
                let mut buf = [0u8; MAX_DATAGRAM];
                // Room for credentials and for descriptors someone may send (FDSTORE=1), which
                // are closed: this daemon keeps no file descriptor store.
                let mut cmsg = nix::cmsg_space!(nix::sys::socket::UnixCredentials, [RawFd; 32]);
                let mut iov = [IoSliceMut::new(&mut buf)];
                let msg = recvmsg::<()>(
                    self.sock.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_DONTWAIT,
                )
                .map_err(io::Error::from)?;
                let mut pid = None;
                // A truncated control part still leaves the datagram itself readable.
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        match c {
                            ControlMessageOwned::ScmCredentials(cred) => {
                                pid = u32::try_from(cred.pid()).ok();
                            }
                            ControlMessageOwned::ScmRights(fds) => {
                                for fd in fds {
                                    let _ = nix::unistd::close(fd);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                let n = msg.bytes;
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                Ok(Message {
                    pid,
                    fields: parse(&text),
                })
            });
            match got {
                Ok(m) => return Ok(m),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sends `msg` to the systemd (or other manager) that started this daemon, if one did: the
/// `NOTIFY_SOCKET` path, or an abstract name when it starts with `@`.
pub fn to_manager(msg: &str) -> io::Result<bool> {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let sock = StdDatagram::unbound()?;
    let bytes = target.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(msg.as_bytes(), &addr)?;
    } else {
        sock.send_to(msg.as_bytes(), Path::new(&target))?;
    }
    Ok(true)
}

/// The watchdog interval the manager asked for (`WATCHDOG_USEC`, for this PID if
/// `WATCHDOG_PID` is set).
pub fn manager_watchdog() -> Option<std::time::Duration> {
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| std::time::Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_assignments() {
        assert_eq!(
            parse("READY=1\nSTATUS=Serving 3 clients\nbogus\nMAINPID=42\n"),
            vec![
                ("READY".into(), "1".into()),
                ("STATUS".into(), "Serving 3 clients".into()),
                ("MAINPID".into(), "42".into()),
            ]
        );
    }

    #[tokio::test]
    async fn receives_with_the_senders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let s = NotifySocket::bind(&path).unwrap();
        let c = StdDatagram::unbound().unwrap();
        c.send_to(b"READY=1\nSTATUS=up", &path).unwrap();
        let m = s.recv().await.unwrap();
        assert_eq!(m.pid, Some(std::process::id()));
        assert_eq!(m.fields[1], ("STATUS".into(), "up".into()));
    }
}
