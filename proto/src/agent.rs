//! The host's end of the serial link to a board's agent: `tcp:HOST:PORT` (QEMU's serial line,
//! a serial-to-TCP bridge) or a serial device (`/dev/ttyACM0`, optionally `@BAUD`).
//!
//! Blocking, like [`crate::client`]: every wait is bounded by a deadline, so a board that
//! stops answering is an error naming it, never a hang. Requests carry an id; answers of
//! other ids (a late one, the board's greeting after a reset, its error for line noise) are
//! told apart from the answer awaited.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::link::{self, Ask, Deframer, LinkError, Reply};
use crate::{Request, Response};

/// How long a board may take to answer one request.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long after a board's greeting (it reset) a request still awaits its answer before it
/// is sent again: a request that came after the boot is answered, and must not run twice.
const RESEND_AFTER_RESET: Duration = Duration::from_millis(500);

/// Why talking to a board failed.
#[derive(Debug)]
pub enum AgentError {
    /// The address is not `tcp:HOST:PORT` or a device path.
    Address(String),
    /// The line could not be opened.
    Connect {
        /// The address tried.
        addr: String,
        /// What the OS said.
        source: io::Error,
    },
    /// Reading or writing the line failed.
    Io(io::Error),
    /// The board did not answer in time.
    Timeout {
        /// How long it was given.
        waited: Duration,
    },
    /// The line closed.
    Closed,
    /// The board answered with something unreadable or of another link version.
    Link(LinkError),
    /// The request is not one a board serves.
    Unsupported(String),
}

impl fmt::Display for AgentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgentError::Address(a) => write!(
                f,
                "not an agent address: {a:?} (give tcp:HOST:PORT or a serial device such as \
                 /dev/ttyACM0 or /dev/ttyACM0@115200)"
            ),
            AgentError::Connect { addr, source } => {
                write!(f, "cannot open the line to the board at {addr}: {source}")
            }
            AgentError::Io(e) => write!(f, "the line to the board failed: {e}"),
            AgentError::Timeout { waited } => write!(
                f,
                "the board did not answer within {} s (is it running the asyncmd agent?)",
                waited.as_secs_f64()
            ),
            AgentError::Closed => f.write_str("the line to the board closed"),
            AgentError::Link(e) => write!(f, "bad answer from the board: {e}"),
            AgentError::Unsupported(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for AgentError {}

/// The line: a TCP stream or a serial device.
enum Line {
    Tcp(TcpStream),
    Serial(File),
}

impl Line {
    fn open(addr: &str) -> Result<Line, AgentError> {
        let connect = |source| AgentError::Connect {
            addr: addr.to_string(),
            source,
        };
        if let Some(hostport) = addr.strip_prefix("tcp:") {
            if !hostport.contains(':') {
                return Err(AgentError::Address(addr.into()));
            }
            let target = std::net::ToSocketAddrs::to_socket_addrs(hostport)
                .map_err(connect)?
                .next()
                .ok_or_else(|| AgentError::Address(addr.into()))?;
            let s = TcpStream::connect_timeout(&target, ANSWER_TIMEOUT).map_err(connect)?;
            s.set_nodelay(true).map_err(connect)?;
            s.set_write_timeout(Some(ANSWER_TIMEOUT)).map_err(connect)?;
            return Ok(Line::Tcp(s));
        }
        if !addr.starts_with('/') {
            return Err(AgentError::Address(addr.into()));
        }
        let (path, baud) = match addr.rsplit_once('@') {
            Some((p, b)) => (
                p,
                b.parse::<u32>()
                    .map_err(|_| AgentError::Address(addr.into()))?,
            ),
            None => (addr, 115_200),
        };
        // Opened without blocking (a tty can wait for carrier detect), then made blocking: every
        // read is bounded by poll below.
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
            .open(path)
            .map_err(connect)?;
        raw_tty(&f, baud).map_err(connect)?;
        let flags =
            nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::F_GETFL).map_err(|e| connect(e.into()))?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) - nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::F_SETFL(flags))
            .map_err(|e| connect(e.into()))?;
        Ok(Line::Serial(f))
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Line::Tcp(s) => s.write_all(bytes),
            Line::Serial(f) => f.write_all(bytes),
        }
    }

    /// Reads what has come, waiting at most until `deadline`; 0 bytes means the line closed.
    fn read_until(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, AgentError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let ready = {
            let fd = match &*self {
                Line::Tcp(s) => s.as_fd(),
                Line::Serial(f) => f.as_fd(),
            };
            let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
            poll(&mut fds, PollTimeout::from(ms)).map_err(|e| AgentError::Io(e.into()))?
        };
        if ready == 0 {
            return Err(AgentError::Timeout {
                waited: Duration::ZERO,
            });
        }
        let n = match self {
            Line::Tcp(s) => s.read(buf),
            Line::Serial(f) => f.read(buf),
        }
        .map_err(AgentError::Io)?;
        Ok(n)
    }
}

/// Puts a serial device in raw mode at `baud`.
fn raw_tty(f: &File, baud: u32) -> io::Result<()> {
    use nix::libc;
    use nix::sys::termios::{self, SetArg, Termios};
    let speed = match baud {
        9600 => libc::B9600,
        19200 => libc::B19200,
        38400 => libc::B38400,
        57600 => libc::B57600,
        115_200 => libc::B115200,
        230_400 => libc::B230400,
        460_800 => libc::B460800,
        921_600 => libc::B921600,
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unsupported baud rate {other}"),
            ))
        }
    };
    let mut t = termios::tcgetattr(f).map_err(io::Error::from)?;
    termios::cfmakeraw(&mut t);
    // No modem control lines: a board's USB serial has none to wait for.
    t.control_flags |= termios::ControlFlags::CLOCAL;
    // The speed set in the struct itself, as cfsetspeed would: glibc's static library has no
    // cfset*speed the versioned symbols resolve to, and the clients are linked statically.
    let mut raw: libc::termios = t.into();
    raw.c_cflag = (raw.c_cflag & !libc::CBAUD) | speed;
    raw.c_ispeed = speed;
    raw.c_ospeed = speed;
    let t = Termios::from(raw);
    termios::tcsetattr(f, SetArg::TCSANOW, &t).map_err(io::Error::from)?;
    Ok(())
}

/// A connection to a board's agent.
pub struct AgentClient {
    line: Line,
    deframer: Deframer,
    next_id: u16,
    board: String,
    uptime_us: u64,
    /// The board greeted again, unasked: it reset since the last look.
    reset: bool,
    /// It reset and has not been told the wall clock since.
    regreet: bool,
    out: Vec<u8>,
}

impl AgentClient {
    /// Opens the line at `addr` and greets the board (telling it the wall clock).
    pub fn connect(addr: &str) -> Result<AgentClient, AgentError> {
        let mut c = AgentClient {
            line: Line::open(addr)?,
            deframer: Deframer::new(),
            next_id: 0,
            board: String::new(),
            uptime_us: 0,
            reset: false,
            regreet: false,
            out: Vec::new(),
        };
        c.hello()?;
        c.reset = false;
        Ok(c)
    }

    /// The board's name, as it said.
    pub fn board(&self) -> &str {
        &self.board
    }

    /// Whether the board has reset since the last call of this (and forgets it).
    pub fn take_reset(&mut self) -> bool {
        std::mem::take(&mut self.reset)
    }

    /// Greets the board: learns its name and uptime, tells it the wall clock.
    pub fn hello(&mut self) -> Result<(), AgentError> {
        let host_wall_us = crate::text::now_us();
        match self.ask(&Ask::Hello { host_wall_us })? {
            Reply::Hello {
                board, uptime_us, ..
            } => {
                self.note_hello(board, uptime_us);
                Ok(())
            }
            other => Err(AgentError::Link(LinkError::Malformed(format!(
                "a greeting was answered with {other:?}"
            )))),
        }
    }

    fn note_hello(&mut self, board: String, uptime_us: u64) {
        if uptime_us < self.uptime_us {
            self.reset = true;
        }
        self.board = board;
        self.uptime_us = uptime_us;
    }

    /// Sends `ask` and waits for its answer.
    pub fn ask(&mut self, ask: &Ask) -> Result<Reply, AgentError> {
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let id = self.next_id;
        // A delimiter first: what line noise or a client that died mid-frame left in the
        // board's buffer ends there and is dropped alone, instead of spoiling this frame. The
        // board skips a lone delimiter.
        self.out.clear();
        self.out.push(0);
        link::encode(&(id, ask), &mut self.out).map_err(AgentError::Link)?;
        self.line.write_all(&self.out).map_err(AgentError::Io)?;
        let deadline = Instant::now() + ANSWER_TIMEOUT;
        let mut buf = [0u8; 4096];
        // After a greeting the board may still answer the request (it came after the boot):
        // it is sent again only if no answer comes by then.
        let mut resend_at: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(AgentError::Timeout {
                    waited: ANSWER_TIMEOUT,
                });
            }
            if resend_at.is_some_and(|t| now >= t) {
                resend_at = None;
                self.line.write_all(&self.out).map_err(AgentError::Io)?;
            }
            let until = resend_at.map_or(deadline, |t| t.min(deadline));
            let n = match self.line.read_until(&mut buf, until) {
                Ok(0) => return Err(AgentError::Closed),
                Ok(n) => n,
                // Resend time, or the deadline: both are looked at above.
                Err(AgentError::Timeout { .. }) => continue,
                Err(e) => return Err(e),
            };
            let mut frames = Vec::new();
            self.deframer
                .feed::<(u16, Reply)>(&buf[..n], |r| frames.push(r));
            let mut answer = None;
            for f in frames {
                match f {
                    Ok((got, reply)) if got == id => answer = Some(reply),
                    Ok((
                        0,
                        Reply::Hello {
                            board, uptime_us, ..
                        },
                    )) => {
                        // It booted (again) meanwhile: it did not get this request, and it
                        // lost the wall clock.
                        self.note_hello(board, uptime_us);
                        self.reset = true;
                        self.regreet = true;
                        resend_at = Some(Instant::now() + RESEND_AFTER_RESET);
                    }
                    // Whole and intact (its CRC holds), yet not readable here: the board's
                    // answer, which this host cannot take. Said now, not waited out.
                    Err(e @ (LinkError::Version { .. } | LinkError::Malformed(_))) => {
                        return Err(AgentError::Link(e))
                    }
                    // An answer to an earlier request, the board's word on line noise, or a
                    // frame spoilt on the way (the board will not answer it twice).
                    _ => {}
                }
            }
            if let Some(reply) = answer {
                if let Reply::Hello {
                    board, uptime_us, ..
                } = &reply
                {
                    self.note_hello(board.clone(), *uptime_us);
                    self.regreet = false;
                } else if std::mem::take(&mut self.regreet) {
                    self.hello()?;
                }
                return Ok(reply);
            }
        }
    }

    /// Asks the board what `req` asks of the daemon, and answers as the daemon would.
    pub fn call(&mut self, req: Request) -> Result<Response, AgentError> {
        let ask = Ask::from_request(&req).map_err(AgentError::Unsupported)?;
        let board = self.board.clone();
        self.ask(&ask)?.into_response(&board).ok_or_else(|| {
            AgentError::Link(LinkError::Malformed("an answer of another kind".into()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{nested_reply, Ask, Stat};
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn a_reply_too_deep_to_read_fails_the_request_and_says_why() {
        // A hostile board: it greets as it should, then answers with a value a thousand
        // levels deep.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let board = std::thread::spawn(move || {
            let (mut line, _) = listener.accept().unwrap();
            let mut deframer = Deframer::new();
            let mut buf = [0u8; 256];
            loop {
                let n = line.read(&mut buf).unwrap();
                if n == 0 {
                    return;
                }
                let mut asks = Vec::new();
                deframer.feed::<(u16, Ask)>(&buf[..n], |r| asks.push(r.unwrap()));
                for (id, ask) in asks {
                    let mut out = Vec::new();
                    if let Ask::Hello { .. } = ask {
                        let hello = Reply::Hello {
                            board: "hostile".into(),
                            firmware: "0".into(),
                            uptime_us: 1,
                        };
                        link::encode(&(id, hello), &mut out).unwrap();
                    } else {
                        out = nested_reply(Some(id), 1000, Stat::Int(7));
                    }
                    line.write_all(&out).unwrap();
                }
            }
        });
        let mut c = AgentClient::connect(&format!("tcp:127.0.0.1:{port}")).unwrap();
        assert_eq!(c.board(), "hostile");
        let e = c
            .call(Request::Status {
                patterns: Vec::new(),
                lines: 0,
            })
            .unwrap_err();
        assert!(matches!(e, AgentError::Link(_)), "not waited out: {e:?}");
        assert_eq!(
            e.to_string(),
            "bad answer from the board: malformed link message: a value nested deeper than 32 \
             lists or objects"
        );
        drop(c);
        board.join().unwrap();
    }
}
