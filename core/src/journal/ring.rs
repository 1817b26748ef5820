//! The ring: journal records in a fixed byte budget.
//!
//! [`Ring`] is plain data over one buffer, so memory never grows with what is logged: records (a
//! 32-byte header and the message) are written one after another, and when one does not fit the
//! oldest are dropped. Readers hold a [`Cursor`] (sequence number and offset), so following
//! resumes in O(1) and a reader that fell behind learns exactly how many it missed.

use alloc::borrow::Cow;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use asyncmd_proto::{Entry, Level};

/// Bytes of a record before its message.
pub const HEADER: usize = 32;
const WRAP: u32 = u32::MAX;
/// Longest message one entry holds; longer lines are split into several entries.
pub const MAX_MESSAGE: usize = 16 * 1024;
/// Smallest budget accepted, so that at least a few long entries fit.
pub const MIN_BUDGET: usize = 4 * 1024;

/// Index of a unit name in the journal's name table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnitId(pub u32);

impl UnitId {
    /// Position in the name table (ids are handed out from 0 upwards).
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// Where a reader is: the next sequence number it wants and the offset it should be at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    seq: u64,
    pos: usize,
}

impl Cursor {
    /// Sequence number of the next entry this cursor reads.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// One record as stored, borrowed from a ring or from a copy of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Sequence number.
    pub seq: u64,
    /// Wall-clock time, µs since the Unix epoch.
    pub wall_us: i64,
    /// Monotonic time, µs since the journal was made.
    pub mono_us: u64,
    /// Who logged it.
    pub unit: UnitId,
    /// Severity.
    pub level: Level,
    /// The message bytes (not necessarily UTF-8).
    pub msg: &'a [u8],
}

impl Record<'_> {
    fn stored_len(&self) -> usize {
        HEADER + self.msg.len()
    }

    fn write_to(&self, dst: &mut [u8]) {
        dst[0..8].copy_from_slice(&self.seq.to_le_bytes());
        dst[8..16].copy_from_slice(&self.wall_us.to_le_bytes());
        dst[16..24].copy_from_slice(&self.mono_us.to_le_bytes());
        let unit_level = (self.unit.0 << 8) | self.level.as_u8() as u32;
        dst[24..28].copy_from_slice(&unit_level.to_le_bytes());
        dst[28..32].copy_from_slice(&(self.msg.len() as u32).to_le_bytes());
        dst[HEADER..HEADER + self.msg.len()].copy_from_slice(self.msg);
    }
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Reads the record at `pos` of `buf`; `None` for a wrap marker.
fn record_at(buf: &[u8], pos: usize) -> Option<Record<'_>> {
    let len = u32_at(buf, pos + 28);
    if len == WRAP {
        return None;
    }
    let unit_level = u32_at(buf, pos + 24);
    Some(Record {
        seq: u64_at(buf, pos),
        wall_us: u64_at(buf, pos + 8) as i64,
        mono_us: u64_at(buf, pos + 16),
        unit: UnitId(unit_level >> 8),
        level: Level::from_u8(unit_level as u8).unwrap_or(Level::Info),
        msg: &buf[pos + HEADER..pos + HEADER + len as usize],
    })
}

/// Iterates over records copied out of a ring by [`Ring::read`], oldest first.
pub fn records(copied: &[u8]) -> impl Iterator<Item = Record<'_>> {
    let mut pos = 0;
    core::iter::from_fn(move || {
        if pos + HEADER > copied.len() {
            return None;
        }
        let r = record_at(copied, pos)?;
        pos += r.stored_len();
        Some(r)
    })
}

/// What a [`Ring::read`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReadOutcome {
    /// Records copied.
    pub copied: usize,
    /// Records the cursor wanted that were already overwritten.
    pub missed: u64,
}

/// A ring of journal records in a fixed number of bytes: a buffer the caller supplies (a
/// `Box<[u8]>` on the host, a `&'static mut [u8]` on a board).
pub struct Ring<B = Box<[u8]>> {
    buf: B,
    /// Offset of the oldest record.
    head: usize,
    /// Offset where the next record goes.
    tail: usize,
    count: usize,
    first_seq: u64,
    next_seq: u64,
}

impl Ring {
    /// A ring holding at most `budget` bytes of records (at least [`MIN_BUDGET`]), on the heap.
    pub fn new(budget: usize) -> Ring {
        Ring::over(vec![0; budget.max(MIN_BUDGET)].into_boxed_slice())
            .expect("the budget is at least MIN_BUDGET")
    }
}

/// A buffer given for a ring is smaller than [`MIN_BUDGET`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooSmall(pub usize);

impl fmt::Display for TooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a journal ring needs at least {MIN_BUDGET} bytes, not {}",
            self.0
        )
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> Ring<B> {
    /// A ring over `buf`, all of which it uses; its contents are overwritten.
    pub fn over(buf: B) -> Result<Ring<B>, TooSmall> {
        let len = buf.as_ref().len();
        if len < MIN_BUDGET {
            return Err(TooSmall(len));
        }
        Ok(Ring {
            buf,
            head: 0,
            tail: 0,
            count: 0,
            first_seq: 0,
            next_seq: 0,
        })
    }

    /// Bytes the ring occupies, fixed at creation.
    pub fn capacity(&self) -> usize {
        self.buf.as_ref().len()
    }

    /// Bytes of the ring in use: the records held, and the few bytes left unused at its end
    /// where a record did not fit and went to the start instead.
    pub fn used(&self) -> usize {
        match (self.count, self.head < self.tail) {
            (0, _) => 0,
            (_, true) => self.tail - self.head,
            (_, false) => self.capacity() - self.head + self.tail,
        }
    }

    /// Entries held now.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Sequence number of the oldest entry held (or of the next one, when empty).
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// Sequence number the next entry will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Longest message one record can hold in this ring.
    pub fn max_message(&self) -> usize {
        MAX_MESSAGE.min(self.buf.as_ref().len() / 2 - HEADER)
    }

    /// Ring bytes one line of `len` bytes takes once appended (split into pieces of
    /// [`Ring::max_message`] when longer), not counting a wrap's unused end.
    pub fn cost(&self, len: usize) -> usize {
        let pieces = len.div_ceil(self.max_message()).max(1);
        pieces * HEADER + len
    }

    /// Bytes held from the entry `c` reads next to the newest: what a reader at `c` has yet
    /// to read, and what appends may not drop without it missing entries. The whole capacity
    /// for a cursor already overtaken.
    pub fn behind(&self, c: Cursor) -> usize {
        if c.seq >= self.next_seq {
            return 0;
        }
        if c.seq < self.first_seq {
            return self.capacity();
        }
        let pos = self.position(c);
        if pos < self.tail {
            self.tail - pos
        } else {
            self.capacity() - pos + self.tail
        }
    }

    /// Where the held record `c` wants is. It is at the cursor's offset unless it wrapped to
    /// offset 0; then the wrap marker at the offset may be gone already (once every older record
    /// is dropped, new ones are written over it), so offset 0 is asked first. The record at 0 is
    /// always a real record, and one holding `c.seq` there is the one: a second write at 0
    /// would have dropped it.
    fn position(&self, c: Cursor) -> usize {
        if u64_at(self.buf.as_ref(), 0) == c.seq {
            0
        } else {
            self.normalize(c.pos)
        }
    }

    /// `pos` itself, or 0 where the record at `pos` would not fit or a wrap marker stands.
    fn normalize(&self, pos: usize) -> usize {
        if pos + HEADER > self.buf.as_ref().len() || u32_at(self.buf.as_ref(), pos + 28) == WRAP {
            0
        } else {
            pos
        }
    }

    fn evict_oldest(&mut self, dropped: &mut impl FnMut(UnitId)) {
        let head = self.normalize(self.head);
        let gone = record_at(self.buf.as_ref(), head);
        if let Some(r) = &gone {
            dropped(r.unit);
        }
        let len = gone.map_or(0, |r| r.stored_len());
        self.head = head + len;
        self.count -= 1;
        self.first_seq += 1;
        if self.count == 0 {
            self.head = 0;
            self.tail = 0;
        } else {
            self.head = self.normalize(self.head);
        }
    }

    /// Makes room for `n` contiguous bytes, dropping the oldest records; returns the offset.
    fn reserve(&mut self, n: usize, dropped: &mut impl FnMut(UnitId)) -> usize {
        loop {
            if self.count == 0 {
                self.head = 0;
                self.tail = 0;
                return 0;
            }
            if self.head < self.tail {
                // Live data is [head, tail): free space is after tail, then before head.
                if self.tail + n <= self.buf.as_ref().len() {
                    return self.tail;
                }
                if self.tail + HEADER <= self.buf.as_ref().len() {
                    self.buf.as_mut()[self.tail + 28..self.tail + 32]
                        .copy_from_slice(&WRAP.to_le_bytes());
                }
                self.tail = 0;
            } else {
                // Wrapped: live data is [head, end) and [0, tail); free space is [tail, head).
                if self.tail + n <= self.head {
                    return self.tail;
                }
                self.evict_oldest(dropped);
            }
        }
    }

    /// Appends one entry, truncating its message to [`Ring::max_message`]; returns its sequence.
    pub fn push(
        &mut self,
        wall_us: i64,
        mono_us: u64,
        unit: UnitId,
        level: Level,
        msg: &[u8],
    ) -> u64 {
        self.push_telling(wall_us, mono_us, unit, level, msg, &mut |_| {})
    }

    /// As [`Ring::push`], telling `dropped` the unit of each older entry it drops for room.
    pub fn push_telling(
        &mut self,
        wall_us: i64,
        mono_us: u64,
        unit: UnitId,
        level: Level,
        msg: &[u8],
        dropped: &mut impl FnMut(UnitId),
    ) -> u64 {
        let msg = &msg[..msg.len().min(self.max_message())];
        let rec = Record {
            seq: self.next_seq,
            wall_us,
            mono_us,
            unit,
            level,
            msg,
        };
        let n = rec.stored_len();
        let pos = self.reserve(n, dropped);
        rec.write_to(&mut self.buf.as_mut()[pos..pos + n]);
        self.tail = pos + n;
        self.count += 1;
        self.next_seq += 1;
        if self.count == 1 {
            self.head = pos;
            self.first_seq = rec.seq;
        }
        rec.seq
    }

    /// A cursor at the oldest entry held.
    pub fn oldest(&self) -> Cursor {
        Cursor {
            seq: self.first_seq,
            pos: self.head,
        }
    }

    /// A cursor after the newest entry: it reads only what is logged from now on.
    pub fn newest(&self) -> Cursor {
        Cursor {
            seq: self.next_seq,
            pos: self.tail,
        }
    }

    /// A cursor at sequence `seq` (clamped to what is held), found by a scan from the oldest.
    pub fn cursor_at(&self, seq: u64) -> Cursor {
        if seq <= self.first_seq {
            return self.oldest();
        }
        if seq >= self.next_seq {
            return self.newest();
        }
        let mut c = self.oldest();
        while c.seq < seq {
            let pos = self.position(c);
            let r = record_at(self.buf.as_ref(), pos).expect("a live record");
            c = Cursor {
                seq: c.seq + 1,
                pos: pos + r.stored_len(),
            };
        }
        c
    }

    /// Copies records from `cursor` on into `out`, at most about `max_bytes`, and advances it.
    ///
    /// A cursor whose entries were overwritten resumes at the oldest held and counts the loss.
    pub fn read(&self, cursor: &mut Cursor, out: &mut Vec<u8>, max_bytes: usize) -> ReadOutcome {
        self.read_until(cursor, out, max_bytes, u64::MAX)
    }

    /// As [`Ring::read`], but never past sequence `until` (exclusive): a scan of what was held
    /// when it began, taken in slices while writers go on.
    pub fn read_until(
        &self,
        cursor: &mut Cursor,
        out: &mut Vec<u8>,
        max_bytes: usize,
        until: u64,
    ) -> ReadOutcome {
        let mut outcome = ReadOutcome::default();
        if cursor.seq < self.first_seq {
            outcome.missed = self.first_seq - cursor.seq;
            *cursor = self.oldest();
        } else if cursor.seq > self.next_seq {
            *cursor = self.newest();
        }
        let start = out.len();
        let end = self.next_seq.min(until);
        while cursor.seq < end && out.len() - start < max_bytes {
            let pos = self.position(*cursor);
            let r = record_at(self.buf.as_ref(), pos).expect("a live record");
            debug_assert_eq!(r.seq, cursor.seq);
            let n = r.stored_len();
            out.extend_from_slice(&self.buf.as_ref()[pos..pos + n]);
            *cursor = Cursor {
                seq: cursor.seq + 1,
                pos: pos + n,
            };
            outcome.copied += 1;
        }
        outcome
    }
}

/// Stored message bytes as text: borrowed when they are valid UTF-8 (the common case, checked
/// quickly), else with replacement characters.
pub fn text(msg: &[u8]) -> Cow<'_, str> {
    match core::str::from_utf8(msg) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(msg),
    }
}

impl Record<'_> {
    /// The wire form of this record, logged by `unit`.
    pub fn to_entry(&self, unit: &str) -> Entry {
        Entry {
            seq: self.seq,
            time_us: self.wall_us,
            mono_us: self.mono_us,
            level: self.level,
            unit: unit.into(),
            msg: text(self.msg).into_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;
    use alloc::string::{String, ToString};
    use alloc::vec;

    fn msgs(ring: &Ring) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let mut c = ring.oldest();
        ring.read(&mut c, &mut out, usize::MAX);
        records(&out)
            .map(|r| (r.seq, String::from_utf8(r.msg.to_vec()).unwrap()))
            .collect()
    }

    #[test]
    fn a_writer_that_keeps_behind_within_capacity_never_overtakes_a_reader() {
        let mut ring = Ring::new(MIN_BUDGET);
        let mut reader = ring.newest();
        let mut out = Vec::new();
        let (mut next, mut read) = (0u64, 0u64);
        for i in 0..20_000usize {
            let len = (i * 7919) % 300;
            // The pace a lossless follower sets: append only while what the reader has yet to
            // read, the line and a wrap's unused end all fit.
            if ring.behind(reader) + 2 * ring.cost(len) > ring.capacity() {
                out.clear();
                let got = ring.read(&mut reader, &mut out, 2048);
                assert_eq!(got.missed, 0, "overtaken at line {i}");
                for r in records(&out) {
                    assert_eq!(r.seq, read);
                    read += 1;
                }
            }
            if ring.behind(reader) + 2 * ring.cost(len) <= ring.capacity() {
                ring.push(0, 0, UnitId(0), Level::Info, &vec![b'x'; len]);
                next += 1;
            }
        }
        out.clear();
        assert_eq!(ring.read(&mut reader, &mut out, usize::MAX).missed, 0);
        assert_eq!(read + records(&out).count() as u64, next);
        assert_eq!(ring.behind(reader), 0);
        assert_eq!(ring.cost(0), HEADER);
        assert_eq!(
            ring.cost(ring.max_message() + 1),
            2 * HEADER + ring.max_message() + 1
        );
    }

    #[test]
    fn keeps_everything_until_full() {
        let mut ring = Ring::new(MIN_BUDGET);
        for i in 0..10 {
            ring.push(i, 0, UnitId(1), Level::Info, format!("line {i}").as_bytes());
        }
        let m = msgs(&ring);
        assert_eq!(m.len(), 10);
        assert_eq!(m[3], (3, "line 3".into()));
    }

    #[test]
    fn never_grows_and_keeps_the_newest_in_order() {
        let mut ring = Ring::new(MIN_BUDGET);
        for i in 0..100_000u64 {
            let msg = "x".repeat((i % 97) as usize) + &i.to_string();
            ring.push(0, 0, UnitId(0), Level::Info, msg.as_bytes());
            assert_eq!(ring.capacity(), MIN_BUDGET);
        }
        let m = msgs(&ring);
        assert_eq!(m.len(), ring.len());
        assert_eq!(m.last().unwrap().0, 99_999);
        assert!(m.last().unwrap().1.ends_with("99999"));
        for w in m.windows(2) {
            assert_eq!(w[0].0 + 1, w[1].0, "sequence numbers are contiguous");
        }
        let bytes: usize = m.iter().map(|(_, s)| s.len() + HEADER).sum();
        assert!(bytes <= MIN_BUDGET);
        // Nearly full: at most one record's worth plus the tail gap is unused.
        assert!(bytes > MIN_BUDGET - 2 * (HEADER + 200), "used {bytes}");
    }

    #[test]
    fn cursors_resume_and_count_what_they_missed() {
        let mut ring = Ring::new(MIN_BUDGET);
        let mut cur = ring.newest();
        for i in 0..5 {
            ring.push(0, 0, UnitId(0), Level::Info, format!("a{i}").as_bytes());
        }
        let mut out = Vec::new();
        let got = ring.read(&mut cur, &mut out, usize::MAX);
        assert_eq!(
            got,
            ReadOutcome {
                copied: 5,
                missed: 0
            }
        );
        assert_eq!(cur.seq(), 5);
        for i in 0..10_000 {
            ring.push(0, 0, UnitId(0), Level::Info, format!("b{i:040}").as_bytes());
        }
        out.clear();
        let got = ring.read(&mut cur, &mut out, usize::MAX);
        assert_eq!(got.missed, ring.first_seq() - 5);
        assert_eq!(got.copied, ring.len());
        assert_eq!(cur.seq(), ring.next_seq());
    }

    #[test]
    fn cursor_at_finds_any_held_sequence() {
        let mut ring = Ring::new(MIN_BUDGET);
        for i in 0..1_000 {
            ring.push(0, 0, UnitId(0), Level::Info, format!("m{i}").as_bytes());
        }
        let seq = ring.first_seq() + 7;
        let mut c = ring.cursor_at(seq);
        let mut out = Vec::new();
        ring.read(&mut c, &mut out, 1);
        let r = records(&out).next().unwrap();
        assert_eq!(r.seq, seq);
        assert_eq!(r.msg, format!("m{seq}").as_bytes());
    }

    #[test]
    fn a_cursor_at_the_end_survives_a_wrap() {
        // 40 bytes left at the end take a wrap marker; 16 are too few even for a header.
        for record in [1352usize, 1360] {
            let mut ring = Ring::new(MIN_BUDGET);
            let big = vec![b'z'; record - HEADER];
            for _ in 0..3 {
                ring.push(0, 0, UnitId(0), Level::Info, &big);
            }
            assert_eq!(ring.tail, 3 * record);
            let mut cur = ring.newest();
            ring.push(0, 0, UnitId(0), Level::Warning, b"after the wrap");
            assert_eq!(ring.tail, HEADER + 14, "the record went to offset 0");
            let mut out = Vec::new();
            ring.read(&mut cur, &mut out, usize::MAX);
            let r: Vec<_> = records(&out).collect();
            assert_eq!(r.len(), 1);
            assert_eq!(r[0].msg, b"after the wrap");
            assert_eq!(r[0].level, Level::Warning);
            assert_eq!(ring.len(), 3, "the first record made room");
        }
    }

    #[test]
    fn a_cursor_whose_record_wrapped_finds_it_after_the_marker_is_overwritten() {
        // The reader waits at the end of the ring; its record goes to offset 0; the older
        // records are dropped and new ones are written over the wrap marker at its offset.
        let mut ring = Ring::new(MIN_BUDGET);
        let rec = |n: usize| vec![b'o'; n - HEADER];
        ring.push(0, 0, UnitId(0), Level::Info, &rec(1000));
        ring.push(0, 0, UnitId(0), Level::Info, &rec(2000));
        let mut reader = ring.newest();
        assert_eq!(reader.pos, 3000);
        // 1200 bytes do not fit in the 1096 left: a marker at 3000, and the record goes to 0
        // once both older records are dropped to make room.
        let wrapped = vec![b'w'; 1200 - HEADER];
        let s = ring.push(0, 0, UnitId(0), Level::Info, &wrapped);
        assert_eq!((s, ring.tail, ring.first_seq()), (2, 1200, 2));
        // The next record runs from 1200 to 3100, over the marker.
        ring.push(0, 0, UnitId(0), Level::Info, &rec(1900));
        assert_eq!(ring.tail, 3100);
        let mut out = Vec::new();
        let got = ring.read(&mut reader, &mut out, usize::MAX);
        let r: Vec<_> = records(&out).collect();
        assert_eq!((got.missed, got.copied), (0, 2));
        assert_eq!(r[0].msg, &wrapped[..]);
        assert_eq!(r[0].seq, 2);
        assert_eq!(reader.seq(), ring.next_seq());
        assert_eq!(ring.cursor_at(3).seq(), 3);
    }

    #[test]
    fn overlong_messages_are_truncated_to_fit() {
        let mut ring = Ring::new(MIN_BUDGET);
        let huge = vec![b'h'; 1 << 20];
        ring.push(0, 0, UnitId(0), Level::Info, &huge);
        let m = msgs(&ring);
        assert_eq!(m[0].1.len(), ring.max_message());
    }

    #[test]
    fn what_a_push_drops_is_told_by_unit_and_used_bytes_stay_in_the_budget() {
        let mut r = Ring::new(MIN_BUDGET);
        let mut dropped = [0u64; 2];
        for i in 0..500u64 {
            let unit = UnitId((i % 2) as u32);
            let msg = [b'x'; 40];
            r.push_telling(0, 0, unit, Level::Info, &msg, &mut |u| {
                dropped[u.index()] += 1
            });
            assert!(r.used() <= r.capacity());
            let records = r.len() * (HEADER + 40);
            assert!(
                records <= r.used() && r.used() < records + HEADER + 40,
                "{}",
                r.used()
            );
        }
        assert_eq!(
            dropped[0] + dropped[1],
            r.first_seq(),
            "every drop told, once"
        );
        assert_eq!(
            dropped[0],
            r.first_seq().div_ceil(2),
            "oldest first, alternating"
        );
    }
}
