//! The journal the daemon and its library users log into: the core's ring
//! ([`asyncmd_core::journal`]) shared between writers (capture tasks, in-process tasks, the
//! daemon itself) and readers (the control socket), with a wake-up for followers.

pub mod pace;

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

pub use asyncmd_core::journal::{
    records, text, Cursor, Names, ReadOutcome, Record, Ring, UnitId, UnitNames, MAX_MESSAGE,
    MIN_BUDGET,
};
use asyncmd_proto::Level;
use tokio::sync::watch;

/// How many bytes of the ring a scan for one request (a status's lines, a journal query) takes
/// at a time before it lets other requests in: a fraction of a millisecond of work.
pub const SCAN_SLICE: usize = 64 * 1024;

/// Name the daemon logs its own entries under.
pub const SELF_UNIT: &str = "asyncmdd";

/// A line waiting to go into the journal, as produced by a capture.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// Severity.
    pub level: Level,
    /// The bytes, without the newline.
    pub msg: &'a [u8],
}

/// The journal the daemon and its library users log into: a [`Ring`] shared between writers
/// (capture tasks, in-process tasks, the daemon itself) and readers (the server).
pub struct Journal {
    ring: Mutex<Held>,
    names: RwLock<Names>,
    host: String,
    epoch: Instant,
    appended: watch::Sender<u64>,
    pace: Arc<pace::Pace>,
}

/// The ring and, per unit id, how many lines it logged and how many of them the ring dropped
/// since (to make room for newer ones).
struct Held {
    ring: Ring,
    tally: Vec<Tally>,
}

/// What one unit logged since the daemon started, and what of it is gone from the ring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Lines logged.
    pub logged: u64,
    /// Lines the ring dropped to make room for newer ones.
    pub dropped: u64,
}

impl Journal {
    /// A journal of `budget` bytes for entries logged on `host`.
    pub fn new(budget: usize, host: impl Into<String>) -> Journal {
        Journal {
            ring: Mutex::new(Held {
                ring: Ring::new(budget),
                tally: Vec::new(),
            }),
            names: RwLock::new(Names::default()),
            host: host.into(),
            epoch: Instant::now(),
            appended: watch::channel(0).0,
            pace: Arc::default(),
        }
    }

    /// The host name entries are logged on.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The byte budget of the ring.
    pub fn capacity(&self) -> usize {
        self.lock().ring.capacity()
    }

    /// How long ago the journal (the daemon) started.
    pub fn uptime(&self) -> std::time::Duration {
        self.epoch.elapsed()
    }

    /// Per unit name, what it logged and what of it the ring dropped since.
    pub fn tally(&self) -> Vec<(String, Tally)> {
        let tally = self.lock().tally.clone();
        let names = self.names();
        tally
            .into_iter()
            .enumerate()
            .filter_map(|(i, t)| Some((names.name(UnitId(i as u32))?.to_string(), t)))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // A writer that panicked mid-push leaves at worst one garbled record: keep serving.
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn names(&self) -> std::sync::RwLockReadGuard<'_, Names> {
        self.names.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Every name entries were or may be logged under: each unit and task loaded since boot.
    pub fn names_known(&self) -> Vec<String> {
        self.names().iter().map(String::from).collect()
    }

    /// The id of a unit name, registering it on first use.
    pub fn unit_id(&self, name: &str) -> UnitId {
        if let Some(id) = self.names().get(name) {
            return id;
        }
        self.names
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .id(name)
    }

    /// The unit name of an id.
    pub fn unit_name(&self, id: UnitId) -> String {
        self.names().name(id).unwrap_or_default().to_string()
    }

    fn now(&self) -> (i64, u64) {
        (
            asyncmd_proto::text::now_us(),
            self.epoch.elapsed().as_micros() as u64,
        )
    }

    /// Logs one message, splitting it into lines (and overlong lines into pieces).
    pub fn log(&self, unit: UnitId, level: Level, msg: &str) {
        self.append(
            unit,
            msg.split('\n').map(|l| Line {
                level,
                msg: l.as_bytes(),
            }),
        );
    }

    /// Appends a batch of lines under one lock and one timestamp, then wakes followers.
    pub fn append<'a>(&self, unit: UnitId, lines: impl IntoIterator<Item = Line<'a>>) {
        let (wall, mono) = self.now();
        let next = {
            let mut held = self.lock();
            let Held { ring, tally } = &mut *held;
            let max = ring.max_message();
            let at = |tally: &mut Vec<Tally>, id: UnitId| {
                if tally.len() <= id.index() {
                    tally.resize(id.index() + 1, Tally::default());
                }
                id.index()
            };
            let mut logged = 0;
            let mut dropped = |id: UnitId| {
                let i = at(tally, id);
                tally[i].dropped += 1;
            };
            for line in lines {
                if line.msg.is_empty() {
                    ring.push_telling(wall, mono, unit, line.level, b"", &mut dropped);
                    logged += 1;
                }
                for piece in line.msg.chunks(max) {
                    ring.push_telling(wall, mono, unit, line.level, piece, &mut dropped);
                    logged += 1;
                }
            }
            let i = at(tally, unit);
            tally[i].logged += logged;
            ring.next_seq()
        };
        self.appended.send_replace(next);
    }

    /// A receiver that changes whenever entries are appended (its value: the next sequence).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Returns once no lossless follower (see [`pace`]) that is reading is more than half the
    /// ring behind.
    pub async fn keep_pace(&self) {
        while self.pace.active() {
            let moved = self.pace.notified();
            let lag = {
                let held = self.lock();
                self.pace
                    .laggard(&held.ring)
                    .filter(|(_, behind)| behind * 2 > held.ring.capacity())
            };
            let Some((mark, _)) = lag else {
                return;
            };
            let seq = mark.at().seq();
            self.pace.hold(&mark, seq, moved).await;
        }
    }

    /// Capture's turn to look at the room left for it and append, while lossless followers
    /// read: `None` (and no turn needed) when none does.
    pub async fn paced_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if !self.pace.active() {
            return None;
        }
        Some(self.pace.turn().await)
    }

    /// What may be appended now without a reading lossless follower missing an entry; `None`
    /// when no follower is reading losslessly.
    pub fn budget(&self) -> Option<pace::Budget> {
        if !self.pace.active() {
            return None;
        }
        self.pace.budget(&self.lock().ring)
    }

    /// Registers a follower that reads from `at` on and must miss nothing: output capture
    /// keeps its pace while it reads, until the registration is dropped.
    pub fn lossless_follower(&self, at: Cursor) -> pace::Follower {
        self.pace.follower(at)
    }

    /// Runs `f` with the ring locked; keep it short, writers wait meanwhile.
    pub fn with_ring<T>(&self, f: impl FnOnce(&Ring) -> T) -> T {
        f(&self.lock().ring)
    }
}

impl UnitNames for Journal {
    fn for_each_name(&self, f: &mut dyn FnMut(UnitId, &str)) {
        self.names().for_each_name(f)
    }
}

/// Parses a byte size such as `1048576`, `64K`, `1M`, `1MiB` or `2G`.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().map_err(|_| {
        format!("invalid size '{s}': expected a number with an optional K, M or G suffix")
    })?;
    let mult = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1024,
        "M" | "MB" | "MIB" => 1024 * 1024,
        "G" | "GB" | "GIB" => 1024 * 1024 * 1024,
        _ => {
            return Err(format!(
                "invalid size '{s}': unknown unit '{unit}' (use K, M or G)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("invalid size '{s}': too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_splits_long_lines_and_registers_names() {
        let j = Journal::new(1 << 20, "box");
        let a = j.unit_id("a.service");
        assert_eq!(j.unit_id("a.service"), a);
        assert_eq!(j.unit_name(a), "a.service");
        let long = "y".repeat(MAX_MESSAGE * 2 + 5);
        j.log(a, Level::Info, &format!("one\n{long}"));
        let n = j.with_ring(|r| r.len());
        assert_eq!(n, 4);
    }

    #[test]
    fn the_tally_counts_what_each_unit_logged_and_lost() {
        let j = Journal::new(MIN_BUDGET, "box");
        let (a, b) = (j.unit_id("a.service"), j.unit_id("b.service"));
        for i in 0..300 {
            j.log(if i < 100 { a } else { b }, Level::Info, &"z".repeat(60));
        }
        let t: std::collections::BTreeMap<String, Tally> = j.tally().into_iter().collect();
        assert_eq!((t["a.service"].logged, t["b.service"].logged), (100, 200));
        let held = j.with_ring(|r| r.len()) as u64;
        assert_eq!(
            t["a.service"].dropped, 100,
            "the oldest, all of a's, went first"
        );
        assert_eq!(t["b.service"].dropped + held, 200);
    }

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3T").is_err());
    }
}
