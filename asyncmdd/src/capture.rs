//! Capture of a process's output into the journal: bytes become lines, lines become entries.
//!
//! Partial lines wait for their end (up to [`MAX_MESSAGE`] bytes, then they are cut), binary
//! output is stored as is and shown with replacement characters, and a syslog prefix such as
//! `<4>` sets the level. Reads go into one buffer per thread, so a flood costs no memory and a
//! quiet service none either.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use asyncmd_proto::Level;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::journal::{Journal, Line, UnitId, MAX_MESSAGE};

/// Bytes read from a pipe at once.
const READ_CHUNK: usize = 64 * 1024;

/// The level a line's `<N>` syslog prefix gives, and the line without it.
pub fn syslog_level(line: &[u8], default: Level) -> (Level, &[u8]) {
    match line {
        [b'<', d @ b'0'..=b'7', b'>', rest @ ..] => (Level::from_syslog(d - b'0'), rest),
        _ => (default, line),
    }
}

/// The complete lines of `data` (without `\n` or a trailing `\r`), lines longer than `max`
/// cut into pieces; at `eof` the unterminated rest is a line too. After the iteration,
/// [`Lines::consumed`] is how many bytes the lines took: the rest is an incomplete line to
/// keep for the next read.
pub fn lines(data: &[u8], max: usize, eof: bool) -> Lines<'_> {
    Lines {
        data,
        max,
        eof,
        pos: 0,
    }
}

/// Iterator returned by [`lines`].
#[derive(Clone)]
pub struct Lines<'a> {
    data: &'a [u8],
    max: usize,
    eof: bool,
    pos: usize,
}

impl Lines<'_> {
    /// Bytes taken by the lines returned so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = &self.data[self.pos..];
        if rest.is_empty() {
            return None;
        }
        let window = &rest[..rest.len().min(self.max + 1)];
        match memchr::memchr(b'\n', window) {
            Some(i) => {
                self.pos += i + 1;
                let line = &rest[..i];
                Some(line.strip_suffix(b"\r").unwrap_or(line))
            }
            None if rest.len() >= self.max => {
                self.pos += self.max;
                Some(&rest[..self.max])
            }
            None if self.eof => {
                self.pos = self.data.len();
                Some(rest)
            }
            None => None,
        }
    }
}

fn to_line(line: &[u8], default: Level) -> Line<'_> {
    let (level, msg) = syslog_level(line, default);
    Line { level, msg }
}

thread_local! {
    // The buffer every capture of a thread reads into, allocated on the first read: a service
    // that writes nothing costs no buffer, and a thousand that write cost one.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads `pipe` to its end, logging each line to `journal` as `unit` at `default` level (or the
/// line's syslog level). `tap` sees each batch of lines too (for a traceback of stderr). It
/// waits for the pipe to be readable holding no buffer; what it reads goes through the
/// thread's one buffer, and only an unfinished line (at most [`MAX_MESSAGE`] bytes) is kept
/// between reads.
pub async fn capture(
    pipe: OwnedFd,
    journal: Arc<Journal>,
    unit: UnitId,
    default: Level,
    mut tap: impl FnMut(&mut dyn Iterator<Item = Line<'_>>),
) {
    // Readiness needs a pipe that does not block; tokio's already is one.
    let raw = pipe.as_raw_fd();
    let flags = fcntl(raw, FcntlArg::F_GETFL).unwrap_or(0);
    let _ = fcntl(
        raw,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    );
    // SAFETY: an OwnedFd is a valid, open descriptor, and the AsyncFd owns it (its
    // `as_raw_fd` never changes) until both are dropped together.
    let Ok(fd) = (unsafe { AsyncFd::register_with_interest(pipe, Interest::READABLE) }) else {
        return;
    };
    let mut carry: Vec<u8> = Vec::new();
    // Whole lines kept in `carry` that a lossless follower's pace held back, and whether the
    // pipe has ended behind them.
    let (mut backlog, mut ended) = (false, false);
    loop {
        // A lossless follower that has fallen behind holds capture back: the service waits
        // on its pipe rather than the follower missing lines.
        journal.keep_pace().await;
        let mut ready = None;
        if !backlog {
            match fd.readable().await {
                Ok(r) => ready = Some(r),
                Err(_) => return,
            }
        }
        let turn = journal.paced_turn().await;
        let done = SCRATCH.with(|cell| {
            let mut buf = cell.borrow_mut();
            if buf.is_empty() {
                buf.resize(READ_CHUNK + MAX_MESSAGE, 0);
            }
            let start = carry.len();
            buf[..start].copy_from_slice(&carry);
            let n = match ready.as_mut() {
                None => 0,
                Some(ready) => {
                    let read = ready.try_io(|inner| {
                        nix::unistd::read(inner.get_ref().as_raw_fd(), &mut buf[start..])
                            .map_err(std::io::Error::from)
                    });
                    match read {
                        // Not readable after all: wait again.
                        Err(_would_block) => return false,
                        Ok(Ok(n)) => n,
                        Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => return false,
                        Ok(Err(_)) => 0,
                    }
                }
            };
            ended |= ready.is_some() && n == 0;
            let filled = start + n;
            let mut split = lines(&buf[..filled], MAX_MESSAGE, ended);
            // The lines that fit before a lossless follower would miss one (at least one, so
            // capture always moves on; everything when no such follower reads).
            let take = match journal.budget() {
                None => usize::MAX,
                Some(mut budget) => split
                    .clone()
                    .take_while(|l| budget.take(l.len()))
                    .count()
                    .max(1),
            };
            journal.append(unit, split.by_ref().take(take).map(|l| to_line(l, default)));
            let used = split.consumed();
            backlog = split.next().is_some();
            if used > 0 {
                // The consumed bytes are whole lines: splitting them again gives the same lines.
                tap(&mut lines(&buf[..used], MAX_MESSAGE, true).map(|l| to_line(l, default)));
            }
            carry.clear();
            carry.extend_from_slice(&buf[used..filled]);
            ended && !backlog
        });
        drop(turn);
        if done {
            return;
        }
        // A long line kept a while leaves no big allocation behind once it is done.
        if carry.is_empty() && carry.capacity() > 4096 {
            carry = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(data: &[u8], max: usize, eof: bool) -> (Vec<Vec<u8>>, usize) {
        let mut it = lines(data, max, eof);
        let out = it.by_ref().map(<[u8]>::to_vec).collect();
        (out, it.consumed())
    }

    #[test]
    fn splits_and_keeps_the_partial_rest() {
        let (l, used) = split(b"a\nbb\r\ncc", 100, false);
        assert_eq!(l, vec![b"a".to_vec(), b"bb".to_vec()]);
        assert_eq!(used, 6);
        let (l, used) = split(b"cc", 100, true);
        assert_eq!(l, vec![b"cc".to_vec()]);
        assert_eq!(used, 2);
        let (l, _) = split(b"\n\n", 100, false);
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn cuts_overlong_lines() {
        let (l, used) = split(b"0123456789abc", 5, false);
        assert_eq!(l, vec![b"01234".to_vec(), b"56789".to_vec()]);
        assert_eq!(used, 10);
        let (l, _) = split(b"01234\n", 5, false);
        assert_eq!(l, vec![b"01234".to_vec()]);
    }

    #[test]
    fn syslog_prefix_sets_level() {
        assert_eq!(
            syslog_level(b"<4>careful", Level::Info),
            (Level::Warning, &b"careful"[..])
        );
        assert_eq!(
            syslog_level(b"<3>bad", Level::Info),
            (Level::Error, &b"bad"[..])
        );
        assert_eq!(
            syslog_level(b"<7>dbg", Level::Error),
            (Level::Debug, &b"dbg"[..])
        );
        assert_eq!(
            syslog_level(b"<9>x", Level::Info),
            (Level::Info, &b"<9>x"[..])
        );
        assert_eq!(
            syslog_level(b"plain", Level::Error),
            (Level::Error, &b"plain"[..])
        );
    }

    #[tokio::test]
    async fn captures_binary_and_partial_output() {
        let journal = Arc::new(Journal::new(1 << 16, "h"));
        let id = journal.unit_id("t.service");
        let data: &[u8] = b"one\n\xff\xfebin\n<4>warn\nno newline";
        let (read, write) = nix::unistd::pipe().unwrap();
        // Written whole and closed before the capture reads: the pipe holds it all.
        nix::unistd::write(&write, data).unwrap();
        drop(write);
        let mut tapped = 0;
        capture(read, journal.clone(), id, Level::Info, |l| {
            tapped += l.count()
        })
        .await;
        assert_eq!(tapped, 4);
        let mut out = Vec::new();
        journal.with_ring(|r| r.read(&mut r.oldest(), &mut out, usize::MAX));
        let recs: Vec<_> = crate::journal::records(&out).collect();
        assert_eq!(recs.len(), 4);
        assert_eq!(recs[1].msg, b"\xff\xfebin");
        assert_eq!(recs[2].level, Level::Warning);
        assert_eq!(recs[3].msg, b"no newline");
    }
}
