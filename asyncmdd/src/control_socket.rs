//! The control server: answers `asyncmctl` and `asyncmjournal` on the local socket.
//!
//! Every bound is explicit: request frames ([`MAX_REQUEST_BYTES`]), clients at once
//! ([`MAX_CLIENTS`]), time to send a request ([`IDLE_TIMEOUT`]), and bytes per journal batch.
//! A malformed frame gets an error reply; an oversized one gets an error reply and the
//! connection closed. Changes are allowed only to root and the daemon's own user (SO_PEERCRED).

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use asyncmd_proto::frame::{self, FrameBuffer, FrameError};
use asyncmd_proto::text::EntryFormatter;
use asyncmd_proto::{
    ActionOutcome, ActionResult, Envelope, ErrorCode, JournalQuery, Request, Response, TextStyle,
    MAX_REQUEST_BYTES, VERSION,
};
use interprocess::local_socket::tokio::{prelude::*, Stream};
use interprocess::local_socket::traits::Stream as SyncStream;
use interprocess::local_socket::{GenericFilePath, ListenerOptions};
use interprocess::os::unix::local_socket::ListenerOptionsExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use crate::answer::Answer;
use crate::journal::{records, Journal, Record, MAX_MESSAGE, SCAN_SLICE};
use asyncmd_core::control::error;
use asyncmd_core::journal::{Filter, Grep};

pub use interprocess::local_socket::tokio::Listener;

/// Clients served at once; more are told the daemon is busy.
pub const MAX_CLIENTS: usize = 64;
/// Places beyond [`MAX_CLIENTS`] kept for root and the daemon's own user, so that however
/// many readers hold the others, a change still gets through.
pub const RESERVED: usize = 8;
/// Connections one other user may hold at once (followers included).
pub const MAX_PER_USER: usize = 16;
/// How long a connection may take to send a whole request.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Message bytes per journal batch frame.
const BATCH_BYTES: usize = 256 * 1024;
/// Most bytes read and dropped after an oversized frame, so the error reply is not lost to a
/// connection reset.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;

/// Makes sure the socket's directory `dir` is ours to listen in: created 0700 when missing;
/// refused when it is a symlink, is owned by another user than this one or root, or may be
/// written by others (without the sticky bit, which keeps them from replacing our socket).
/// Otherwise someone could put their own socket where clients look for ours.
fn socket_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let refuse = |why: String| {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("the socket directory {} {why}: refused", dir.display()),
        ))
    };
    let m = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(up) = dir.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(up)?;
            }
            std::fs::DirBuilder::new().mode(0o700).create(dir)?;
            // The umask may have taken bits we did not ask to lose; these we set exactly.
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let me = nix::unistd::geteuid().as_raw();
    if m.file_type().is_symlink() {
        return refuse("is a symlink".into());
    }
    if !m.is_dir() {
        return refuse("is not a directory".into());
    }
    if m.uid() != me && m.uid() != 0 {
        return refuse(format!(
            "is owned by uid {}, not by this daemon's user (uid {me}) or root",
            m.uid()
        ));
    }
    let sticky = m.mode() & 0o1000 != 0;
    if m.mode() & 0o022 != 0 && !sticky {
        return refuse(format!(
            "may be written by others (mode {:o})",
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Binds the control socket at `path` (mode 0660), creating its directory. A stale socket
/// file is replaced; a live one means another daemon runs, which is an error.
pub fn bind(path: &Path) -> io::Result<Listener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        socket_dir(dir)?;
    }
    if path.exists() {
        let name = path.to_fs_name::<GenericFilePath>()?;
        if <interprocess::local_socket::Stream as SyncStream>::connect(name).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "another asyncmdd is already listening on {}",
                    path.display()
                ),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let name = path.to_fs_name::<GenericFilePath>()?;
    let listener = ListenerOptions::new()
        .name(name)
        .mode(0o660)
        .reclaim_name(true)
        .create_tokio()?;
    // bind() masks the mode with the umask (0660 became 0640 under 022): set it as promised.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o660))?;
    Ok(listener)
}

/// Serves a runtime's requests, through its [`Answer`], and queries of its journal.
pub struct Server {
    answer: Answer,
    journal: Arc<Journal>,
    clients: Arc<Semaphore>,
    /// The places kept for root and the daemon's user.
    reserved: Arc<Semaphore>,
    /// Connections held per other user.
    per_user: Arc<std::sync::Mutex<std::collections::HashMap<u32, usize>>>,
    owner: u32,
}

/// A place taken by a connection; given back when it ends.
struct Place {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _user: Option<UserCount>,
}

/// One connection counted against its user; uncounted when dropped.
struct UserCount {
    uid: u32,
    counts: Arc<std::sync::Mutex<std::collections::HashMap<u32, usize>>>,
}

impl Drop for UserCount {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = c.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                c.remove(&self.uid);
            }
        }
    }
}

impl Server {
    /// A server of requests that `answer` answers, and of `journal`.
    pub fn new(answer: Answer, journal: Arc<Journal>) -> Arc<Server> {
        Arc::new(Server {
            journal,
            answer,
            clients: Arc::new(Semaphore::new(MAX_CLIENTS)),
            reserved: Arc::new(Semaphore::new(RESERVED)),
            per_user: Arc::default(),
            owner: nix::unistd::geteuid().as_raw(),
        })
    }

    /// Accepts connections on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: Listener) {
        loop {
            let conn = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let server = self.clone();
            tokio::spawn(async move {
                match server.place(&conn) {
                    Ok(_place) => server.connection(conn).await,
                    Err(msg) => {
                        let tx = &conn;
                        let _ = send(tx, &mut Vec::new(), &error(ErrorCode::Busy, msg)).await;
                        // Take in the request as after an oversized frame: closed on it unread,
                        // the client would see a broken pipe or a reset, not this answer.
                        let _ = (&mut { tx }).shutdown().await;
                        drain(&conn).await;
                    }
                }
            });
        }
    }

    /// A place for a connection from `conn`'s peer, or why there is none: root and the
    /// daemon's user may take the reserved places when the others are full; any other user
    /// holds at most [`MAX_PER_USER`].
    fn place(&self, conn: &Stream) -> Result<Place, String> {
        let uid = conn.peer_creds().ok().and_then(|c| c.euid());
        let privileged = uid.is_some_and(|u| u == 0 || u == self.owner);
        let busy = || format!("asyncmdd is serving its limit of {MAX_CLIENTS} clients");
        if privileged {
            let permit = self
                .clients
                .clone()
                .try_acquire_owned()
                .or_else(|_| self.reserved.clone().try_acquire_owned())
                .map_err(|_| {
                    format!(
                        "{} (and the {RESERVED} kept for root and its own user)",
                        busy()
                    )
                })?;
            return Ok(Place {
                _permit: permit,
                _user: None,
            });
        }
        let uid = uid.unwrap_or(u32::MAX);
        let counted = {
            let mut counts = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
            let n = counts.entry(uid).or_insert(0);
            if *n >= MAX_PER_USER {
                return Err(format!(
                    "asyncmdd is serving its limit of {MAX_PER_USER} clients of uid {uid}"
                ));
            }
            *n += 1;
            UserCount {
                uid,
                counts: self.per_user.clone(),
            }
        };
        // On failure `counted` is dropped, which gives the user's place back.
        let permit = self
            .clients
            .clone()
            .try_acquire_owned()
            .map_err(|_| busy())?;
        Ok(Place {
            _permit: permit,
            _user: Some(counted),
        })
    }

    async fn connection(self: Arc<Self>, conn: Stream) {
        let privileged = conn
            .peer_creds()
            .ok()
            .and_then(|c| c.euid())
            .is_some_and(|uid| uid == 0 || uid == self.owner);
        let (mut rx, tx) = (&conn, &conn);
        let mut frames = FrameBuffer::new(MAX_REQUEST_BYTES);
        let mut out = Vec::with_capacity(4096);
        // The whole request must come within IDLE_TIMEOUT, however it is split into reads.
        let mut deadline = tokio::time::Instant::now() + IDLE_TIMEOUT;
        loop {
            let parsed = match frames.next_frame() {
                Ok(Some(f)) => frame::decode::<Envelope>(f),
                Ok(None) => {
                    let read = tokio::time::timeout_at(deadline, rx.read(frames.spare())).await;
                    match read {
                        Ok(Ok(n)) if n > 0 => frames.filled(n),
                        _ => return,
                    }
                    continue;
                }
                Err(FrameError::TooLarge { limit }) => {
                    let msg = format!("request larger than the limit of {limit} bytes");
                    let _ = send(tx, &mut out, &error(ErrorCode::TooLarge, msg)).await;
                    let _ = (&mut { tx }).shutdown().await;
                    drain(rx).await;
                    return;
                }
                Err(e) => Err(e),
            };
            let result = match parsed {
                Err(e) => {
                    let msg = format!(
                        "malformed request: {}",
                        e.to_string().trim_start_matches("malformed frame: ")
                    );
                    send(tx, &mut out, &error(ErrorCode::BadRequest, msg)).await
                }
                Ok(env) if env.v != VERSION => {
                    let msg = format!(
                        "protocol version {} is not supported; this asyncmdd speaks {VERSION}",
                        env.v
                    );
                    send(tx, &mut out, &error(ErrorCode::Version, msg)).await
                }
                Ok(env) if env.req.privileged() && !privileged => {
                    let what = if env.req.mutates() {
                        "change units"
                    } else {
                        "read unit files"
                    };
                    let msg = format!(
                        "permission denied: only root and the daemon's own user may {what}"
                    );
                    send(tx, &mut out, &error(ErrorCode::PermissionDenied, msg)).await
                }
                Ok(Envelope {
                    req: Request::Journal(q),
                    ..
                }) if q.lossless && !privileged => {
                    let msg = "permission denied: only root and the daemon's own user may \
                               follow losslessly (it holds back the services' output)";
                    send(
                        tx,
                        &mut out,
                        &error(ErrorCode::PermissionDenied, msg.into()),
                    )
                    .await
                }
                Ok(Envelope {
                    req: Request::Journal(q),
                    ..
                }) => self.journal_query(q, rx, tx, &mut out).await,
                Ok(env) => {
                    let resp = (self.answer)(env.req).await;
                    send(tx, &mut out, &resp).await
                }
            };
            if result.is_err() {
                return;
            }
            deadline = tokio::time::Instant::now() + IDLE_TIMEOUT;
        }
    }

    async fn journal_query(
        &self,
        q: JournalQuery,
        mut rx: &Stream,
        tx: &Stream,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        let mut filter = match journal_filter(&q) {
            Ok(f) => f,
            Err(e) => return send(tx, out, &error(ErrorCode::BadRequest, e)).await,
        };
        // Names no entry could be under are said first: as an error when every one of them
        // is such, or else in a frame of their own before the entries.
        let missing = self.unknown_units(&q.units).await;
        if !missing.is_empty() {
            if missing.len() == q.units.len() {
                let msg: Vec<String> = missing.into_iter().map(|m| m.message).collect();
                return send(tx, out, &error(ErrorCode::NoSuchUnit, msg.join("\n"))).await;
            }
            let results = Response::Actions { results: missing };
            send(tx, out, &results).await?;
        }
        let mut sink = match q.text {
            Some(t) => Sink::Text {
                style: t.style,
                fmt: EntryFormatter::new(t.color).utc(t.utc),
                buf: String::with_capacity(BATCH_BYTES + MAX_MESSAGE + 256),
            },
            None => Sink::Entries,
        };
        let mut appended = self.journal.subscribe();
        appended.borrow_and_update();
        let mut copy = Vec::new();
        let start = |r: &crate::journal::Ring| match q.after_seq {
            Some(seq) => r.cursor_at(seq),
            None => r.oldest(),
        };
        let mut cursor = match q.lines {
            Some(n) => {
                // The newest n matches of what is held now: everything from the start is
                // looked at, in slices with a yield between, so other peers' requests go on.
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                let (mut c, end) = self.journal.with_ring(|r| (start(r), r.newest().seq()));
                let mut newest: VecDeque<Held> = VecDeque::new();
                while c.seq() < end {
                    copy.clear();
                    let got = self
                        .journal
                        .with_ring(|r| r.read_until(&mut c, &mut copy, SCAN_SLICE, end));
                    for r in records(&copy) {
                        if n > 0 && filter.matches(&*self.journal, &r) {
                            if newest.len() == n {
                                newest.pop_front();
                            }
                            newest.push_back(Held::of(&r));
                        }
                    }
                    if got.copied == 0 {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
                let recs = newest.iter().map(Held::record);
                self.send_records(&mut filter, &mut sink, recs, 0, tx, out)
                    .await?;
                c
            }
            None => {
                let mut c = self.journal.with_ring(start);
                self.pump(&mut c, &mut filter, &mut sink, &mut copy, tx, out, None)
                    .await?;
                c
            }
        };
        if !q.follow {
            return send(
                tx,
                out,
                &Response::End {
                    next_seq: cursor.seq(),
                },
            )
            .await;
        }
        let mut scratch = [0u8; 512];
        let lossless = q.lossless.then(|| self.journal.lossless_follower(cursor));
        loop {
            tokio::select! {
                changed = appended.changed() => if changed.is_err() { return Ok(()) },
                // The client never sends while following: any byte or EOF ends the follow.
                _ = rx.read(&mut scratch) => return Ok(()),
            }
            self.pump(
                &mut cursor,
                &mut filter,
                &mut sink,
                &mut copy,
                tx,
                out,
                lossless.as_ref(),
            )
            .await?;
        }
    }

    /// Sends every matching entry from `cursor` to the newest, in bounded batches, telling a
    /// lossless follower's registration how far it has read.
    #[allow(clippy::too_many_arguments)]
    async fn pump(
        &self,
        cursor: &mut crate::journal::Cursor,
        filter: &mut Filter<Regex>,
        sink: &mut Sink,
        copy: &mut Vec<u8>,
        tx: &Stream,
        out: &mut Vec<u8>,
        lossless: Option<&crate::journal::pace::Follower>,
    ) -> io::Result<()> {
        loop {
            copy.clear();
            let got = self
                .journal
                .with_ring(|r| r.read(cursor, copy, BATCH_BYTES));
            if got.copied == 0 && got.missed == 0 {
                return Ok(());
            }
            self.send_records(filter, sink, records(copy), got.missed, tx, out)
                .await?;
            if let Some(f) = lossless {
                f.read_to(*cursor);
            }
            // A long backlog is sent in turns with other peers' requests.
            tokio::task::yield_now().await;
        }
    }

    /// Sends the records of `recs` that match `filter` through `sink`, in bounded batches.
    async fn send_records<'a>(
        &self,
        filter: &mut Filter<Regex>,
        sink: &mut Sink,
        recs: impl Iterator<Item = Record<'a>>,
        mut missed: u64,
        tx: &Stream,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        if let Sink::Text { style, fmt, buf } = sink {
            let host = self.journal.host();
            buf.clear();
            for r in recs {
                if !filter.matches(&*self.journal, &r) {
                    continue;
                }
                let msg = crate::journal::text(r.msg);
                let unit = filter.name(&*self.journal, r.unit);
                fmt.line(buf, *style, host, r.wall_us, r.level, unit, &msg);
                if buf.len() >= BATCH_BYTES {
                    send_text(tx, out, buf, missed).await?;
                    missed = 0;
                    buf.clear();
                }
            }
            if !buf.is_empty() || missed > 0 {
                send_text(tx, out, buf, missed).await?;
            }
            return Ok(());
        }
        let mut entries = Vec::new();
        let mut bytes = 0;
        let host = self.journal.host().to_string();
        for r in recs {
            if !filter.matches(&*self.journal, &r) {
                continue;
            }
            bytes += r.msg.len() + 64;
            entries.push(r.to_entry(filter.name(&*self.journal, r.unit)));
            if bytes >= BATCH_BYTES {
                let batch = std::mem::take(&mut entries);
                let resp = Response::Entries {
                    host: host.clone(),
                    entries: batch,
                    missed,
                };
                send(tx, out, &resp).await?;
                missed = 0;
                bytes = 0;
            }
        }
        if !entries.is_empty() || missed > 0 {
            send(
                tx,
                out,
                &Response::Entries {
                    host,
                    entries,
                    missed,
                },
            )
            .await?;
        }
        Ok(())
    }
}

/// How a journal answer leaves: as entry frames, or as text rendered here.
enum Sink {
    Entries,
    Text {
        style: TextStyle,
        fmt: EntryFormatter,
        buf: String,
    },
}

/// Matching units, matching task names, and the patterns that matched neither.
async fn send(mut tx: &Stream, out: &mut Vec<u8>, resp: &Response) -> io::Result<()> {
    out.clear();
    frame::encode(resp, out)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    tx.write_all(out).await
}

impl Server {
    /// Those of `patterns` that match no name entries were ever logged under (no unit or
    /// task loaded since boot), each with what the runtime says of it (a did-you-mean).
    async fn unknown_units(&self, patterns: &[String]) -> Vec<ActionResult> {
        if patterns.is_empty() {
            return Vec::new();
        }
        let known = self.journal.names_known();
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        let mut missing = Vec::new();
        for p in patterns {
            let Ok(compiled) = asyncmd_core::pattern::Patterns::new(std::slice::from_ref(p)) else {
                continue;
            };
            if !compiled.split(&known).0.is_empty() {
                continue;
            }
            let resp = (self.answer)(Request::List {
                patterns: vec![p.clone()],
            })
            .await;
            if let Response::Error {
                code: ErrorCode::NoSuchUnit,
                message,
            } = resp
            {
                missing.push(ActionResult {
                    unit: p.clone(),
                    outcome: ActionOutcome::NoSuchUnit,
                    message,
                });
            }
        }
        missing
    }
}

/// A journal record copied out of the ring, kept while a scan goes on.
struct Held {
    seq: u64,
    wall_us: i64,
    mono_us: u64,
    unit: crate::journal::UnitId,
    level: asyncmd_proto::Level,
    msg: Vec<u8>,
}

impl Held {
    fn of(r: &Record<'_>) -> Held {
        Held {
            seq: r.seq,
            wall_us: r.wall_us,
            mono_us: r.mono_us,
            unit: r.unit,
            level: r.level,
            msg: r.msg.to_vec(),
        }
    }

    fn record(&self) -> Record<'_> {
        Record {
            seq: self.seq,
            wall_us: self.wall_us,
            mono_us: self.mono_us,
            unit: self.unit,
            level: self.level,
            msg: &self.msg,
        }
    }
}

/// Sends `text` as a [`Response::Text`] header and its raw payload.
async fn send_text(mut tx: &Stream, out: &mut Vec<u8>, text: &str, missed: u64) -> io::Result<()> {
    let header = Response::Text {
        bytes: text.len() as u64,
        missed,
    };
    send(tx, out, &header).await?;
    tx.write_all(text.as_bytes()).await
}

async fn drain(mut rx: &Stream) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while total < DRAIN_LIMIT {
            match rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
}

/// A query's `grep`, compiled: a regular expression, with a size limit so a hostile one cannot
/// take the daemon's memory.
pub struct Regex(regex::bytes::Regex);

impl Grep for Regex {
    fn is_match(&self, msg: &[u8]) -> bool {
        self.0.is_match(msg)
    }
}

/// The core's journal filter, with the query's `grep` compiled here.
pub fn journal_filter(q: &JournalQuery) -> Result<Filter<Regex>, String> {
    let grep = match &q.grep {
        Some(g) if g.len() > asyncmd_proto::MAX_GREP_BYTES => {
            return Err(format!(
                "a grep pattern of {} bytes is longer than the limit of {} bytes",
                g.len(),
                asyncmd_proto::MAX_GREP_BYTES
            ))
        }
        Some(g) => Some(Regex(
            regex::bytes::RegexBuilder::new(g)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("invalid regular expression '{g}': {e}"))?,
        )),
        None => None,
    };
    Filter::new(q, grep)
}
