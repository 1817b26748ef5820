//! Followers that must miss nothing (`asyncmjournal -F --lossless`). Output capture appends
//! only what fits in the ring without dropping an entry such a follower has yet to read, and
//! reads no more from services' pipes while one is more than half the ring behind: the
//! services wait on their writes, as they would for s6-log or svlogd. A follower that makes no
//! progress for [`STALL`] while it holds capture back holds nothing back until it reads again,
//! so a paused pager or a dead peer cannot freeze the services' output.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asyncmd_core::journal::ring::HEADER;
use tokio::sync::Notify;

use super::{Cursor, Ring};

/// How long a follower may make no progress while it holds capture back before it is taken
/// for stalled and holds back nothing more.
pub const STALL: Duration = Duration::from_millis(100);

/// Where one lossless follower has read to.
#[derive(Debug)]
pub(super) struct Mark {
    /// The entry it reads next.
    at: Mutex<Cursor>,
    /// It made no progress for [`STALL`] while holding capture back.
    stalled: AtomicBool,
}

impl Mark {
    /// The entry it reads next.
    pub(super) fn at(&self) -> Cursor {
        *self.at.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The lossless followers of a journal.
#[derive(Debug, Default)]
pub struct Pace {
    marks: Mutex<Vec<Arc<Mark>>>,
    /// How many marks there are: the fast path of capture reads only this.
    count: AtomicUsize,
    /// Wakes captures held back when a follower moves or leaves.
    moved: Notify,
    /// Taken by a capture from its look at the room left to its append, so that two captures
    /// do not both spend the same room.
    turn: tokio::sync::Mutex<()>,
}

impl Pace {
    /// Whether any lossless follower is registered.
    pub(super) fn active(&self) -> bool {
        self.count.load(Ordering::Relaxed) > 0
    }

    /// The reading (not stalled) follower furthest behind in `ring`, and the bytes between it
    /// and the newest entry.
    pub(super) fn laggard(&self, ring: &Ring) -> Option<(Arc<Mark>, usize)> {
        let marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        marks
            .iter()
            .filter(|m| !m.stalled.load(Ordering::Relaxed))
            .map(|m| (m.clone(), ring.behind(m.at())))
            .max_by_key(|(_, behind)| *behind)
    }

    /// The ring bytes that may be appended to `ring` now without a reading follower missing
    /// an entry, and the follower that sets it; `None` when no follower is reading.
    pub(super) fn budget(&self, ring: &Ring) -> Option<Budget> {
        let (_, behind) = self.laggard(ring)?;
        // A record that does not fit at the ring's end leaves that end unused: up to one
        // record of the largest size is kept aside for it.
        let slack = ring.cost(ring.max_message());
        Some(Budget {
            room: ring.capacity().saturating_sub(behind + slack),
            max: ring.max_message(),
        })
    }

    /// A wake-up for when a follower moves or leaves; take it before looking at the ring.
    pub(super) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.moved.notified()
    }

    /// Waits until `mark` (a follower too far behind, at `seq` when looked at) moves, or
    /// [`STALL`] passes; then it is stalled if it did not move.
    pub(super) async fn hold(
        &self,
        mark: &Mark,
        seq: u64,
        moved: tokio::sync::futures::Notified<'_>,
    ) {
        if tokio::time::timeout(STALL, moved).await.is_err() && mark.at().seq() == seq {
            mark.stalled.store(true, Ordering::Relaxed);
        }
    }

    /// Capture's turn to look at the room left and append.
    pub(super) async fn turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.turn.lock().await
    }

    /// Registers a lossless follower that reads from `at` on.
    pub(super) fn follower(self: &Arc<Self>, at: Cursor) -> Follower {
        let mark = Arc::new(Mark {
            at: Mutex::new(at),
            stalled: AtomicBool::new(false),
        });
        let mut marks = self.marks.lock().unwrap_or_else(|e| e.into_inner());
        marks.push(mark.clone());
        self.count.store(marks.len(), Ordering::Relaxed);
        Follower {
            pace: self.clone(),
            mark,
        }
    }
}

/// What capture may append now: ring bytes, spent line by line.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    room: usize,
    max: usize,
}

impl Budget {
    /// Spends what a line of `len` bytes costs, if there is room for it.
    pub fn take(&mut self, len: usize) -> bool {
        let cost = len.div_ceil(self.max).max(1) * HEADER + len;
        if cost > self.room {
            return false;
        }
        self.room -= cost;
        true
    }
}

/// A lossless follower's registration; dropping it lets capture go at its own pace again.
#[derive(Debug)]
pub struct Follower {
    pace: Arc<Pace>,
    mark: Arc<Mark>,
}

impl Follower {
    /// The follower has read everything before `at`.
    pub fn read_to(&self, at: Cursor) {
        let mut mine = self.mark.at.lock().unwrap_or_else(|e| e.into_inner());
        if *mine != at {
            *mine = at;
            drop(mine);
            self.mark.stalled.store(false, Ordering::Relaxed);
            self.pace.moved.notify_waiters();
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let mut marks = self.pace.marks.lock().unwrap_or_else(|e| e.into_inner());
        marks.retain(|m| !Arc::ptr_eq(m, &self.mark));
        self.pace.count.store(marks.len(), Ordering::Relaxed);
        drop(marks);
        self.pace.moved.notify_waiters();
    }
}
