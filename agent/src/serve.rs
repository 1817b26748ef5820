//! Serving the serial link: frames in, the core's answers out.
//!
//! Each frame carries a request id beside its message; the answer carries the same id. An
//! answer with id 0 is the board's own: its greeting at boot (so a host sees a reset) and the
//! error for a frame it could not read. Garbage and corrupt frames are answered with such an
//! error and logged; the link resynchronises at the next frame.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use asyncmd_core::clock::Clock;
use asyncmd_core::control::{self, Verb};
use asyncmd_core::journal::{records, Filter, Grep};
use asyncmd_proto::link::{self, Ask, Deframer, LinkError, Reply, MAX_LINK_FRAME};
use asyncmd_proto::{ErrorCode, JournalQuery, Level};
use embedded_io_async::{Read, Write};

use crate::{Agent, Board};

/// A board does not match messages by regular expression: the host does.
enum NoGrep {}

impl Grep for NoGrep {
    fn is_match(&self, _msg: &[u8]) -> bool {
        match *self {}
    }
}

/// Entry bytes per journal answer, so that it fits a frame with room to spare.
const ENTRY_BYTES: usize = MAX_LINK_FRAME / 2;

/// About what an entry takes in a frame.
fn entry_bytes(e: &asyncmd_proto::Entry) -> usize {
    e.msg.len() + e.unit.len() + 24
}

/// Cuts `msg` to at most `max` bytes, at a character boundary.
fn truncate(msg: &mut String, max: usize) {
    if msg.len() > max {
        let mut end = max;
        while !msg.is_char_boundary(end) {
            end -= 1;
        }
        msg.truncate(end);
    }
}

impl Agent {
    /// The board's greeting.
    fn hello(&self) -> Reply {
        Reply::Hello {
            board: self.board.into(),
            firmware: self.firmware.into(),
            uptime_us: self.clock().mono_us(),
        }
    }

    /// Answers one request: status, list, start, stop and restart by the core's handlers of
    /// them, as the daemon answers them.
    pub async fn answer(&'static self, ask: Ask) -> Reply {
        let board = Board(self);
        let resp = match ask {
            Ask::Hello { host_wall_us } => {
                let mono = self.clock().mono_us() as i64;
                self.with(|st| st.wall_offset_us = host_wall_us.saturating_sub(mono));
                return self.hello();
            }
            Ask::Journal {
                units,
                after_seq,
                lines,
                level,
            } => return self.entries(units, after_seq, lines, level, ENTRY_BYTES),
            Ask::Status { patterns, lines } => control::status(&board, &patterns, lines).await,
            Ask::List { patterns } => control::list(&board, &patterns).await,
            Ask::Start { units } => control::act(&board, Verb::Start, &units, false).await,
            Ask::Stop { units, dry_run } => control::act(&board, Verb::Stop, &units, dry_run).await,
            Ask::Restart { units, dry_run } => {
                control::act(&board, Verb::Restart, &units, dry_run).await
            }
        };
        let mut reply = Reply::from_response(resp);
        if let Reply::Status(tasks) = &mut reply {
            tasks.iter_mut().for_each(|t| self.add_values(t));
        }
        reply
    }

    /// Journal entries after `after_seq` (or the newest `lines`), at most `budget` bytes of
    /// them (see [`entry_bytes`]).
    pub(crate) fn entries(
        &self,
        units: Vec<String>,
        after_seq: Option<u64>,
        lines: Option<u32>,
        level: Option<Level>,
        budget: usize,
    ) -> Reply {
        let q = JournalQuery {
            units,
            level,
            ..JournalQuery::default()
        };
        let mut filter = match Filter::<NoGrep>::new(&q, None) {
            Ok(f) => f,
            Err(e) => {
                return Reply::Error {
                    code: ErrorCode::BadRequest,
                    message: e,
                }
            }
        };
        self.with(|st| {
            let mut cursor = match after_seq {
                Some(seq) => st.ring.cursor_at(seq),
                None => st.ring.oldest(),
            };
            let mut missed = match after_seq {
                Some(seq) if seq < st.ring.first_seq() => st.ring.first_seq() - seq,
                _ => 0,
            };
            let mut copy = Vec::new();
            // The entries picked are `picked[first..]`: the oldest go by moving `first` on,
            // and the vector is compacted now and then (a deque would cost a board its code).
            let mut picked = Vec::new();
            let mut first = 0;
            let mut bytes = 0;
            let newest = lines.map(|n| n as usize);
            // Paging: where the next page starts, when this one ends before the ring does.
            let mut stopped_at = None;
            'pages: loop {
                copy.clear();
                let got = st.ring.read(&mut cursor, &mut copy, 512);
                missed += got.missed;
                if got.copied == 0 {
                    break;
                }
                for r in records(&copy) {
                    if !filter.matches(&st.names, &r) {
                        continue;
                    }
                    let mut e = r.to_entry(filter.name(&st.names, r.unit));
                    truncate(&mut e.msg, budget / 2);
                    let size = entry_bytes(&e);
                    if newest.is_none() && picked.len() > first && bytes + size > budget {
                        // It goes first on the next page.
                        stopped_at = Some(r.seq);
                        break 'pages;
                    }
                    bytes += size;
                    picked.push(e);
                    // The newest `lines` (and no more than a frame holds): the oldest go.
                    while newest.is_some_and(|n| picked.len() - first > n) || bytes > budget {
                        bytes -= entry_bytes(&picked[first]);
                        first += 1;
                    }
                    if first > 32 && first * 2 > picked.len() {
                        picked.drain(..first);
                        first = 0;
                    }
                }
            }
            let next_seq = stopped_at.unwrap_or(cursor.seq());
            let clock = st.clock();
            picked.drain(..first);
            for e in picked.iter_mut() {
                e.time_us = clock.fix(e.time_us);
            }
            Reply::Entries {
                entries: picked,
                missed,
                next_seq,
            }
        })
    }

    /// Serves the link on `rx`/`tx` for ever: greets, then answers each frame that comes.
    pub async fn serve<R: Read, W: Write>(&'static self, mut rx: R, mut tx: W) -> ! {
        let mut out = Vec::new();
        let mut deframer = Deframer::new();
        let mut buf = [0u8; 64];
        // A delimiter first: half a reply cut off by a reset ends there, and the host reads
        // this greeting on its own (and so sees the reset).
        let _ = tx.write_all(&[0]).await;
        self.send(&mut tx, &mut out, 0, &self.hello()).await;
        loop {
            let n = match rx.read(&mut buf).await {
                Ok(n) => n,
                // A line error (a UART overrun, a USB reset): a breath, so that a line that
                // keeps failing does not starve the tasks, then read on.
                Err(_) => {
                    embassy_time::Timer::after_millis(10).await;
                    continue;
                }
            };
            let mut frames = Vec::new();
            deframer.feed::<(u16, Ask)>(&buf[..n], |r| frames.push(r));
            for frame in frames {
                let (id, reply) = match frame {
                    Ok((id, ask)) => (id, self.answer(ask).await),
                    Err(e) => {
                        self.log_agent(Level::Warning, &format!("link: {e}"));
                        let code = match e {
                            LinkError::Version { .. } => ErrorCode::Version,
                            LinkError::TooLarge => ErrorCode::TooLarge,
                            _ => ErrorCode::BadRequest,
                        };
                        let message = e.to_string();
                        (0, Reply::Error { code, message })
                    }
                };
                self.send(&mut tx, &mut out, id, &reply).await;
            }
        }
    }

    async fn send<W: Write>(&self, tx: &mut W, out: &mut Vec<u8>, id: u16, reply: &Reply) {
        out.clear();
        if let Err(e) = link::encode(&(id, reply), out) {
            out.clear();
            let reply = Reply::Error {
                code: ErrorCode::Internal,
                message: e.to_string(),
            };
            let _ = link::encode(&(id, &reply), out);
        }
        let _ = tx.write_all(out).await;
        let _ = tx.flush().await;
    }
}
