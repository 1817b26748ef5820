//! A blocking client: connect, send requests, read response frames. No runtime, no threads, so
//! a client process starts and finishes in well under a millisecond.

use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use interprocess::local_socket::{prelude::*, GenericFilePath, Stream};

use crate::frame::{self, FrameBuffer, FrameError};
use crate::{Envelope, Request, Response, MAX_RESPONSE_BYTES, VERSION};

/// Why talking to the daemon failed.
#[derive(Debug)]
pub enum ClientError {
    /// The socket could not be reached.
    Connect {
        /// The socket path tried.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// Reading or writing the socket failed.
    Io(io::Error),
    /// The daemon sent something that is not a response frame.
    Frame(FrameError),
    /// The daemon closed the connection before answering.
    Closed,
    /// What listens on the socket runs as another user than root, this one or the expected
    /// one: it may be an impostor that put its socket where ours should be.
    Impostor {
        /// The socket path tried.
        path: PathBuf,
        /// The user it runs as.
        uid: u32,
    },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { path, source } => write!(
                f,
                "cannot connect to asyncmdd at {}: {source} (is the daemon running? \
                 set --socket or ASYNCMD_SOCKET to its socket)",
                path.display()
            ),
            ClientError::Io(e) => write!(f, "connection to asyncmdd failed: {e}"),
            ClientError::Frame(e) => write!(f, "bad answer from asyncmdd: {e}"),
            ClientError::Closed => f.write_str("asyncmdd closed the connection without answering"),
            ClientError::Impostor { path, uid } => write!(
                f,
                "what listens on {} runs as uid {uid}, neither root nor you: refused, as it may \
                 not be asyncmdd (if it is yours to trust, pass --expect-user {uid})",
                path.display()
            ),
        }
    }
}

impl std::error::Error for ClientError {}

/// A connection to the daemon.
pub struct Client {
    stream: Stream,
    frames: FrameBuffer,
    out: Vec<u8>,
}

impl Client {
    /// Connects to the socket at `path`, refusing a peer that runs as another user than root,
    /// this one or `expect` (a uid).
    pub fn connect_expecting(path: &Path, expect: Option<u32>) -> Result<Client, ClientError> {
        let c = Client::connect(path)?;
        let uid = match &c.stream {
            Stream::UdSocket(s) => {
                nix::sys::socket::getsockopt(s, nix::sys::socket::sockopt::PeerCredentials)
                    .map_err(|e| ClientError::Io(e.into()))?
                    .uid()
            }
        };
        let me = nix::unistd::geteuid().as_raw();
        if uid != 0 && uid != me && Some(uid) != expect {
            return Err(ClientError::Impostor {
                path: path.to_path_buf(),
                uid,
            });
        }
        Ok(c)
    }

    /// Connects to the socket at `path`, whoever listens there.
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let connect_err = |source| ClientError::Connect {
            path: path.to_path_buf(),
            source,
        };
        let name = path.to_fs_name::<GenericFilePath>().map_err(connect_err)?;
        let stream = Stream::connect(name).map_err(connect_err)?;
        Ok(Client {
            stream,
            frames: FrameBuffer::new(MAX_RESPONSE_BYTES),
            out: Vec::with_capacity(256),
        })
    }

    /// Sends one request.
    pub fn send(&mut self, req: Request) -> Result<(), ClientError> {
        self.out.clear();
        frame::encode(&Envelope { v: VERSION, req }, &mut self.out).map_err(ClientError::Frame)?;
        self.stream.write_all(&self.out).map_err(ClientError::Io)
    }

    /// Waits for the next response frame.
    pub fn recv(&mut self) -> Result<Response, ClientError> {
        loop {
            if let Some(r) = self.buffered()? {
                return Ok(r);
            }
            self.fill()?;
        }
    }

    /// The next response if a whole one has already arrived; never blocks.
    pub fn buffered(&mut self) -> Result<Option<Response>, ClientError> {
        match self.frames.next_frame().map_err(ClientError::Frame)? {
            Some(f) => frame::decode(f).map(Some).map_err(ClientError::Frame),
            None => Ok(None),
        }
    }

    /// The `n`-byte raw payload announced by a [`Response::Text`] just received.
    pub fn payload(&mut self, n: usize) -> Result<&[u8], ClientError> {
        while self.frames.pending() < n {
            self.fill()?;
        }
        let raw = self.frames.take_raw(n).map_err(ClientError::Frame)?;
        Ok(raw.unwrap_or_default())
    }

    /// Reads once from the socket, blocking until something arrives.
    pub fn fill(&mut self) -> Result<(), ClientError> {
        let n = self
            .stream
            .read(self.frames.spare())
            .map_err(ClientError::Io)?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        self.frames.filled(n);
        Ok(())
    }

    /// Sends `req` and waits for its (first) response.
    pub fn call(&mut self, req: Request) -> Result<Response, ClientError> {
        self.send(req)?;
        self.recv()
    }

    /// The socket's descriptor, to poll it beside others.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.stream {
            Stream::UdSocket(s) => s.as_fd(),
        }
    }
}

/// The uid of `user` (a name or a number), for `--expect-user`.
pub fn uid_of(user: &str) -> Result<u32, String> {
    if let Ok(n) = user.parse::<u32>() {
        return Ok(n);
    }
    match nix::unistd::User::from_name(user) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        Ok(None) => Err(format!("--expect-user {user}: no such user")),
        Err(e) => Err(format!("--expect-user {user}: {e}")),
    }
}
