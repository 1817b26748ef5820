//! The serial link to a board's agent: the requests and responses of the local socket carried
//! compactly over a byte stream (a UART, USB CDC-ACM, a TCP port in front of QEMU).
//!
//! A frame is a message in postcard, then its CRC-32 (iSCSI, little-endian), COBS-encoded and
//! ended by a zero byte. A zero never occurs inside a frame, so a reader that meets garbage or
//! a corrupt frame drops what it has and starts again at the next zero: the link resynchronises
//! by itself. Every frame begins with [`LINK_VERSION`], read before anything else, so an old
//! board and a new host say which versions they speak instead of misreading each other.
//!
//! Postcard is not self-describing, so it cannot carry the socket's internally tagged enums or
//! `serde_json::Value`; [`Ask`] and [`Reply`] are the link's compact mirror of the subset of
//! [`Request`] and [`Response`] a board serves, with exact conversions both ways.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveTime, Timelike};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::journal::{Entry, Level};
use crate::request::{ActionResult, ErrorCode, Request, Response};
use crate::schedule::{describe, At, Spec};
use crate::unit::{LoopInfo, ScheduleStatus, UnitState, UnitStatus, UnitSummary, UnitType};

mod stat;

use stat::{map_of, stats_of};
pub use stat::{Stat, CUT, MAX_NESTING};

/// The link protocol's version; both ends refuse a frame of another.
pub const LINK_VERSION: u16 = 4;

/// The most bytes a frame may take, decoded (message and CRC): a board's buffers are this big.
pub const MAX_LINK_FRAME: usize = 2048;

/// Why a frame could not be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// More than [`MAX_LINK_FRAME`] bytes came before a frame's end; they were dropped.
    TooLarge,
    /// The bytes are not COBS: line noise, or a frame cut short.
    Garbled,
    /// The CRC does not match: the frame was damaged on the way.
    Crc,
    /// The frame speaks another version of the link.
    Version {
        /// The version it speaks.
        theirs: u16,
    },
    /// The frame is whole and its CRC right, but it is not a message of this version.
    Malformed(String),
    /// The message does not fit a frame.
    Encode(String),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::TooLarge => write!(
                f,
                "link frame larger than the limit of {MAX_LINK_FRAME} bytes: dropped"
            ),
            LinkError::Garbled => f.write_str("garbled link frame (not COBS): dropped"),
            LinkError::Crc => f.write_str("corrupt link frame (CRC mismatch): dropped"),
            LinkError::Version { theirs } => write!(
                f,
                "the other end speaks link version {}; this one speaks {}",
                // As u32: a board then formats no u16, whose code is its own.
                u32::from(*theirs),
                u32::from(LINK_VERSION)
            ),
            LinkError::Malformed(e) => write!(f, "malformed link message: {e}"),
            LinkError::Encode(e) => write!(f, "cannot encode link message: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for LinkError {}

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// Appends `msg` as one frame to `out`.
pub fn encode<T: Serialize>(msg: &T, out: &mut Vec<u8>) -> Result<(), LinkError> {
    let mut raw =
        postcard::to_allocvec(&LINK_VERSION).map_err(|e| LinkError::Encode(e.to_string()))?;
    raw.extend(postcard::to_allocvec(msg).map_err(|e| LinkError::Encode(e.to_string()))?);
    raw.extend_from_slice(&CRC.checksum(&raw).to_le_bytes());
    if raw.len() > MAX_LINK_FRAME {
        return Err(LinkError::Encode(alloc::format!(
            "{} bytes, more than the limit of {MAX_LINK_FRAME}",
            raw.len()
        )));
    }
    let start = out.len();
    out.resize(start + cobs::max_encoding_length(raw.len()), 0);
    let n = cobs::encode(&raw, &mut out[start..]);
    out.truncate(start + n);
    out.push(0);
    Ok(())
}

/// The frame of `raw` (a version and a message, made by hand): its CRC, COBS, the zero, as
/// [`encode`] adds them. (Not shared with `encode`: a board's firmware grew by 112 B when it
/// was.)
#[cfg(test)]
fn seal(mut raw: Vec<u8>) -> Vec<u8> {
    raw.extend_from_slice(&CRC.checksum(&raw).to_le_bytes());
    let mut f = alloc::vec![0; cobs::max_encoding_length(raw.len())];
    let n = cobs::encode(&raw, &mut f);
    f.truncate(n);
    f.push(0);
    f
}

/// Takes one frame's message out of `frame` (its bytes before the zero, still COBS-encoded).
pub fn decode<T: DeserializeOwned>(frame: &mut [u8]) -> Result<T, LinkError> {
    let n = cobs::decode_in_place(frame).map_err(|_| LinkError::Garbled)?;
    let raw = &frame[..n];
    if raw.len() < 4 + 1 {
        return Err(LinkError::Garbled);
    }
    let (body, crc) = raw.split_at(raw.len() - 4);
    if CRC.checksum(body).to_le_bytes() != crc {
        return Err(LinkError::Crc);
    }
    let (version, rest) =
        postcard::take_from_bytes::<u16>(body).map_err(|e| LinkError::Malformed(e.to_string()))?;
    if version != LINK_VERSION {
        return Err(LinkError::Version { theirs: version });
    }
    stat::clear_too_deep();
    let (msg, left) = postcard::take_from_bytes::<T>(rest).map_err(|e| {
        LinkError::Malformed(stat::took_too_deep().unwrap_or_else(|| e.to_string()))
    })?;
    if !left.is_empty() {
        return Err(LinkError::Malformed(alloc::format!(
            "{} bytes after the message",
            left.len()
        )));
    }
    Ok(msg)
}

/// Gathers the bytes of a stream into frames, never holding more than [`MAX_LINK_FRAME`]
/// (encoded) bytes: sans-I/O, so a board's UART task and the host's socket both feed it.
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
    /// The current frame overflowed: drop up to its end.
    dropping: bool,
}

impl Deframer {
    /// An empty deframer.
    pub fn new() -> Deframer {
        Deframer::default()
    }

    /// Feeds `bytes`; calls `each` with every frame they end, or with why one was dropped.
    pub fn feed<T: DeserializeOwned>(
        &mut self,
        bytes: &[u8],
        mut each: impl FnMut(Result<T, LinkError>),
    ) {
        let limit = cobs::max_encoding_length(MAX_LINK_FRAME);
        for &b in bytes {
            if b != 0 {
                if self.dropping {
                    continue;
                }
                if self.buf.len() == limit {
                    self.buf.clear();
                    self.dropping = true;
                    each(Err(LinkError::TooLarge));
                    continue;
                }
                self.buf.push(b);
                continue;
            }
            if self.dropping {
                self.dropping = false;
                continue;
            }
            if self.buf.is_empty() {
                // A lone delimiter: a sender flushing the line, or the tail of noise.
                continue;
            }
            each(decode(&mut self.buf));
            self.buf.clear();
        }
    }
}

/// A board's schedule on the link: its keys as numbers, so that the host describes it (the
/// description would cost a board 1.1 KiB of flash).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkSpec {
    /// `start_in`.
    pub start_in: Option<Duration>,
    /// `every`.
    pub every: Option<Duration>,
    /// `at`.
    pub at: Option<LinkAt>,
}

/// The `at` of a schedule on the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkAt {
    /// Every day at this time of day.
    Daily {
        /// Seconds after midnight.
        secs: u32,
        /// And nanoseconds.
        nanos: u32,
    },
    /// Once, at this instant.
    Once {
        /// µs since the Unix epoch.
        us: i64,
        /// Its UTC offset as written, in seconds.
        offset_s: i32,
    },
}

impl From<&Spec> for LinkSpec {
    fn from(spec: &Spec) -> LinkSpec {
        LinkSpec {
            start_in: spec.start_in,
            every: spec.every,
            at: spec.at.map(|at| match at {
                At::Daily(t) => LinkAt::Daily {
                    secs: t.num_seconds_from_midnight(),
                    nanos: t.nanosecond(),
                },
                At::Once(i) => LinkAt::Once {
                    us: i.timestamp_micros(),
                    offset_s: i.offset().local_minus_utc(),
                },
            }),
        }
    }
}

impl LinkSpec {
    /// The schedule it is; None when a part is out of range (a time of day past midnight).
    pub fn to_spec(&self) -> Option<Spec> {
        let at = match self.at {
            None => None,
            Some(LinkAt::Daily { secs, nanos }) => Some(At::Daily(
                NaiveTime::from_num_seconds_from_midnight_opt(secs, nanos)?,
            )),
            Some(LinkAt::Once { us, offset_s }) => Some(At::Once(
                DateTime::from_timestamp_micros(us)?
                    .with_timezone(&FixedOffset::east_opt(offset_s)?),
            )),
        };
        Some(Spec {
            start_in: self.start_in,
            every: self.every,
            at,
        })
    }

    /// How it reads to a person: as the daemon writes a schedule (`first in 5s, every 10s`).
    pub fn describe(&self) -> String {
        match self.to_spec() {
            Some(spec) => describe(&spec),
            None => String::from("(a schedule out of range)"),
        }
    }
}

/// A task's status on the link: the fields of [`UnitStatus`] a board has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// Task name.
    pub name: String,
    /// Always a task on a board, but said.
    pub kind: UnitType,
    /// Current state.
    pub state: UnitState,
    /// When it entered it.
    pub since_us: Option<i64>,
    /// When the current or last run started.
    pub started_us: Option<i64>,
    /// When the last run ended.
    pub done_us: Option<i64>,
    /// Why it failed.
    pub error: Option<String>,
    /// The chain of causes.
    pub traceback: Vec<String>,
    /// Runs so far.
    pub starts: u32,
    /// Why the last failed run failed.
    pub last_exit: Option<String>,
    /// Its schedule, and when its last run was due and its next one is.
    pub schedule: Option<(LinkSpec, Option<i64>, Option<i64>)>,
    /// Stats it set.
    pub stats: Vec<(String, Stat)>,
    /// Its arguments.
    pub args: Vec<Stat>,
    /// Its keyword arguments.
    pub kwargs: Vec<(String, Stat)>,
    /// Its last result.
    pub result: Option<Stat>,
    /// Its polls and their time.
    pub loop_info: Option<LoopInfo>,
    /// Its newest journal entries, when asked for.
    pub journal: Vec<Entry>,
}

/// Its schedule is left out (a status has it as text only): a board puts in the parts it has.
impl From<UnitStatus> for TaskStatus {
    fn from(s: UnitStatus) -> TaskStatus {
        TaskStatus {
            name: s.name,
            kind: s.kind,
            state: s.state,
            since_us: s.since_us,
            started_us: s.started_us,
            done_us: s.done_us,
            error: s.error,
            traceback: s.traceback,
            starts: s.starts,
            last_exit: s.last_exit,
            // A status has its schedule as text; a board puts in the parts it has.
            schedule: None,
            stats: stats_of(&s.stats),
            args: s.args.iter().map(Stat::from).collect(),
            kwargs: stats_of(&s.kwargs),
            result: s.task_result.as_ref().map(Stat::from),
            loop_info: s.loop_info,
            journal: s.journal,
        }
    }
}

impl TaskStatus {
    /// The status as the socket shows it, for a board named `board`.
    pub fn into_status(self, board: &str) -> UnitStatus {
        UnitStatus {
            name: self.name,
            source: String::from("agent"),
            description: String::new(),
            version: String::new(),
            docs: String::new(),
            kind: self.kind,
            enabled: true,
            masked: false,
            requires: Vec::new(),
            after: Vec::new(),
            load_error: None,
            state: self.state,
            waiting_for: Vec::new(),
            since_us: self.since_us,
            started_us: self.started_us,
            done_us: self.done_us,
            pid: None,
            result: None,
            error: self.error,
            traceback: self.traceback,
            memory_bytes: None,
            cpu_us: None,
            cgroup: None,
            tasks: None,
            starts: self.starts,
            restarts: 0,
            last_exit: self.last_exit,
            next_restart_us: None,
            stop_timeout_us: None,
            status_text: None,
            health: None,
            schedule: self
                .schedule
                .map(|(spec, last_us, next_us)| ScheduleStatus {
                    spec: spec.describe(),
                    last_us,
                    next_us,
                }),
            stats: map_of(self.stats),
            argv: Vec::new(),
            args: self.args.into_iter().map(Value::from).collect(),
            kwargs: map_of(self.kwargs),
            journal: self.journal,
            host: board.to_string(),
            task_result: self.result.map(Value::from),
            loop_info: self.loop_info,
        }
    }
}

/// What the host asks a board: the requests a board serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Ask {
    /// Who are you? The answer is [`Reply::Hello`]. The host tells its wall clock, which a
    /// board without a real-time clock takes for its journal's timestamps.
    Hello {
        /// The host's wall clock, µs since the Unix epoch.
        host_wall_us: i64,
    },
    /// [`Request::Status`].
    Status {
        /// Task names or globs (all when empty).
        patterns: Vec<String>,
        /// Journal lines to attach to each.
        lines: u32,
    },
    /// [`Request::List`].
    List {
        /// Task names or globs.
        patterns: Vec<String>,
    },
    /// [`Request::Start`].
    Start {
        /// Task names or globs.
        units: Vec<String>,
    },
    /// [`Request::Stop`].
    Stop {
        /// Task names or globs.
        units: Vec<String>,
        /// Say what it would do, and do nothing.
        dry_run: bool,
    },
    /// [`Request::Restart`].
    Restart {
        /// Task names or globs.
        units: Vec<String>,
        /// Say what it would do, and do nothing.
        dry_run: bool,
    },
    /// Journal entries after `after_seq` (from the oldest when None), of `units` (all when
    /// empty), at `level` or more severe, at most the newest `lines` of them when given. A
    /// follower asks again with the `next_seq` it was told.
    Journal {
        /// Task names or globs.
        units: Vec<String>,
        /// Entries after this sequence number.
        after_seq: Option<u64>,
        /// The newest this many only.
        lines: Option<u32>,
        /// This level and more severe only.
        level: Option<Level>,
    },
}

impl Ask {
    /// The link form of `req`; an error says a board does not serve it.
    pub fn from_request(req: &Request) -> Result<Ask, String> {
        Ok(match req {
            Request::Status { patterns, lines } => Ask::Status {
                patterns: patterns.clone(),
                lines: *lines,
            },
            Request::List { patterns } => Ask::List {
                patterns: patterns.clone(),
            },
            Request::Start { units } => Ask::Start {
                units: units.clone(),
            },
            Request::Stop { units, dry_run } => Ask::Stop {
                units: units.clone(),
                dry_run: *dry_run,
            },
            Request::Restart { units, dry_run } => Ask::Restart {
                units: units.clone(),
                dry_run: *dry_run,
            },
            other => {
                return Err(alloc::format!(
                    "unsupported: a board's agent serves status, list, start, stop, restart and \
                     the journal, not {}",
                    request_name(other)
                ))
            }
        })
    }
}

fn request_name(r: &Request) -> &'static str {
    match r {
        Request::Status { .. } => "status",
        Request::List { .. } => "list",
        Request::Start { .. } => "start",
        Request::Stop { .. } => "stop",
        Request::Restart { .. } => "restart",
        Request::Journal(_) => "journal",
        Request::Enable { .. } => "enable",
        Request::Disable { .. } => "disable",
        Request::Config { .. } => "config",
        Request::Reload { .. } => "reload",
        Request::Load { .. } => "load",
        Request::ResetFailed { .. } => "reset-failed",
        Request::Unload { .. } => "unload",
        Request::Debug { .. } => "debug",
        Request::Kill { .. } => "kill",
        Request::Mask { .. } => "mask",
        Request::Unmask { .. } => "unmask",
        Request::ReloadUnits { .. } => "reload of units",
        Request::Cat { .. } => "cat",
    }
}

/// What a board answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Reply {
    /// The board: its name, its firmware's version, and how long it has been up.
    Hello {
        /// Board name (`pyboard`).
        board: String,
        /// Its firmware's version.
        firmware: String,
        /// Monotonic µs since it booted: less than before means it reset.
        uptime_us: u64,
    },
    /// [`Response::Status`].
    Status(Vec<TaskStatus>),
    /// [`Response::List`].
    List(Vec<UnitSummary>),
    /// [`Response::Actions`].
    Actions(Vec<ActionResult>),
    /// Journal entries, oldest first.
    Entries {
        /// The entries.
        entries: Vec<Entry>,
        /// Entries that matched yet were lost, written over in the ring before they were read.
        missed: u64,
        /// Ask from here next.
        next_seq: u64,
    },
    /// [`Response::Error`].
    Error {
        /// Its class.
        code: ErrorCode,
        /// For a person.
        message: String,
    },
}

impl Reply {
    /// The link form of a board's `resp` to a socket request.
    pub fn from_response(resp: Response) -> Reply {
        match resp {
            Response::Status { units, .. } => {
                Reply::Status(units.into_iter().map(TaskStatus::from).collect())
            }
            Response::List { units, .. } => Reply::List(units),
            Response::Actions { results } => Reply::Actions(results),
            Response::Error { code, message } => Reply::Error { code, message },
            _ => Reply::Error {
                code: ErrorCode::Internal,
                message: "the board has no link form for this answer".into(),
            },
        }
    }

    /// The socket response this is, for a board named `board` (entries come apart: None).
    pub fn into_response(self, board: &str) -> Option<Response> {
        Some(match self {
            Reply::Status(units) => Response::Status {
                units: units.into_iter().map(|u| u.into_status(board)).collect(),
                debug: false,
                missing: Vec::new(),
            },
            Reply::List(units) => Response::List {
                units,
                missing: Vec::new(),
            },
            Reply::Actions(results) => Response::Actions { results },
            Reply::Error { code, message } => Response::Error { code, message },
            Reply::Hello { .. } | Reply::Entries { .. } => return None,
        })
    }
}

/// A board's reply (to request `id`, if given) whose result is `depth` lists, each inside the
/// last, with `leaf` in the deepest; built byte by byte, as a hostile board would send it, and
/// framed.
#[cfg(test)]
pub(crate) fn nested_reply(id: Option<u16>, depth: usize, leaf: Stat) -> Vec<u8> {
    use alloc::vec;
    let task = TaskStatus {
        name: "deep".into(),
        kind: UnitType::Task,
        state: UnitState::Inactive,
        since_us: None,
        started_us: None,
        done_us: None,
        error: None,
        traceback: vec![],
        starts: 0,
        last_exit: None,
        schedule: None,
        stats: vec![],
        args: vec![],
        kwargs: vec![],
        result: Some(Stat::Null),
        loop_info: None,
        journal: vec![],
    };
    let mut body = postcard::to_allocvec(&LINK_VERSION).unwrap();
    if let Some(id) = id {
        body.extend(postcard::to_allocvec(&id).unwrap());
    }
    body.extend(postcard::to_allocvec(&Reply::Status(vec![task])).unwrap());
    // The status ends: result Some(Null), loop_info None, no journal.
    assert_eq!(body.split_off(body.len() - 4), [1, 0, 0, 0]);
    body.push(1);
    for _ in 0..depth {
        body.extend([5, 1]); // Stat::List of one
    }
    body.extend(postcard::to_allocvec(&leaf).unwrap());
    body.extend([0, 0]);
    seal(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use serde_json::Map;

    fn frame<T: Serialize>(msg: &T) -> Vec<u8> {
        let mut out = Vec::new();
        encode(msg, &mut out).unwrap();
        out
    }

    fn take(bytes: &[u8]) -> Vec<Result<Ask, LinkError>> {
        let mut d = Deframer::new();
        let mut got = Vec::new();
        d.feed(bytes, |r| got.push(r));
        got
    }

    #[test]
    fn a_frame_round_trips_and_has_no_zero_inside() {
        let ask = Ask::Status {
            patterns: vec!["blink*".into()],
            lines: 3,
        };
        let f = frame(&ask);
        assert_eq!(f.iter().filter(|&&b| b == 0).count(), 1);
        assert_eq!(*f.last().unwrap(), 0);
        assert_eq!(take(&f), vec![Ok(ask)]);
    }

    #[test]
    fn garbage_and_a_corrupt_frame_are_dropped_and_the_next_frame_is_read() {
        let good = frame(&Ask::Hello { host_wall_us: 1 });
        let mut bad = frame(&Ask::List {
            patterns: vec!["x".into()],
        });
        bad[2] ^= 0x40;
        let mut line = b"\xff\x13garbage\x00".to_vec();
        line.extend(&bad);
        line.extend(&good);
        let got = take(&line);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].is_err());
        assert!(matches!(
            got[1],
            Err(LinkError::Crc) | Err(LinkError::Garbled)
        ));
        assert_eq!(got[2], Ok(Ask::Hello { host_wall_us: 1 }));
    }

    #[test]
    fn an_endless_frame_is_dropped_up_to_its_end() {
        let mut line = vec![7u8; MAX_LINK_FRAME * 3];
        line.push(0);
        line.extend(frame(&Ask::Hello { host_wall_us: 1 }));
        let got = take(&line);
        assert_eq!(
            got,
            vec![Err(LinkError::TooLarge), Ok(Ask::Hello { host_wall_us: 1 })]
        );
    }

    #[test]
    fn another_version_is_named_not_misread() {
        let mut raw = postcard::to_allocvec(&(LINK_VERSION + 1)).unwrap();
        raw.extend(postcard::to_allocvec(&Ask::Hello { host_wall_us: 1 }).unwrap());
        let got = take(&seal(raw));
        assert_eq!(
            got,
            vec![Err(LinkError::Version {
                theirs: LINK_VERSION + 1
            })]
        );
        assert!(got[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains(&format!("version {}", LINK_VERSION + 1)));
    }

    #[test]
    fn a_status_crosses_the_link_as_it_was() {
        let daily = Spec::new(
            Some(Duration::from_secs(2)),
            Some(Duration::from_secs(3600)),
            Some("07:30"),
        )
        .unwrap();
        let mut stats = Map::new();
        stats.insert("temp".into(), Value::from(21.5));
        stats.insert("toggles".into(), Value::from(3));
        stats.insert("pins".into(), serde_json::json!([2, 3]));
        stats.insert(
            "led".into(),
            serde_json::json!({"on": true, "at": [1.5, null, "x"]}),
        );
        let s = UnitStatus {
            stats,
            task_result: Some(Value::from("ok")),
            ..TaskStatus {
                name: "blink".into(),
                kind: UnitType::Task,
                state: UnitState::Running,
                since_us: Some(5),
                started_us: Some(5),
                done_us: None,
                error: None,
                traceback: vec![],
                starts: 2,
                last_exit: None,
                schedule: Some((LinkSpec::from(&daily), None, Some(9))),
                stats: vec![],
                args: vec![Stat::Int(2)],
                kwargs: vec![("sleep".into(), Stat::Float(0.5))],
                result: None,
                loop_info: Some(LoopInfo {
                    polls: 4,
                    busy_us: 10,
                }),
                journal: vec![],
            }
            .into_status("pyboard")
        };
        assert_eq!(
            s.schedule.as_ref().map(|sc| sc.spec.as_str()),
            Some("first in 2s, at 07:30:00 daily, every 1h")
        );
        // A board puts in its schedule's parts; the rest comes from its status.
        let wire = TaskStatus {
            schedule: Some((LinkSpec::from(&daily), None, Some(9))),
            ..TaskStatus::from(s.clone())
        };
        let mut f = frame(&Reply::Status(vec![wire]));
        let end = f.len() - 1;
        let back: Reply = decode(&mut f[..end]).unwrap();
        let Some(Response::Status { units, .. }) = back.into_response("pyboard") else {
            panic!("not a status");
        };
        assert_eq!(units, vec![s]);
    }

    #[test]
    fn a_value_nested_past_the_limit_is_refused_not_followed_down() {
        // On a thread with a small stack: decoding, converting or dropping 1,000 levels
        // would overflow it.
        let run = |depth: usize| {
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    let mut f = nested_reply(None, depth, Stat::Int(7));
                    assert!(f.len() < MAX_LINK_FRAME, "{} bytes", f.len());
                    let end = f.len() - 1;
                    decode::<Reply>(&mut f[..end]).map(|r| r.into_response("pyboard"))
                })
                .unwrap()
                .join()
                // (An overflow would abort the whole test binary, not end up here.)
                .expect("the decoding thread ends")
        };
        let Ok(Some(Response::Status { units, .. })) = run(MAX_NESTING) else {
            panic!("the deepest value allowed was refused");
        };
        let mut v = units[0].task_result.as_ref().unwrap();
        for _ in 0..MAX_NESTING {
            v = &v[0];
        }
        assert_eq!(v, &Value::from(7));
        for depth in [MAX_NESTING + 1, 1000] {
            let e = run(depth).expect_err("too deep");
            assert!(
                e.to_string()
                    .contains(&format!("nested deeper than {MAX_NESTING}")),
                "{e}"
            );
        }
    }

    #[test]
    fn a_schedule_crosses_the_link_as_its_parts() {
        for at in [None, Some("07:30:15"), Some("2026-12-24T18:00:00.25+01:00")] {
            let spec = Spec::new(Some(Duration::from_millis(1500)), None, at).unwrap();
            let link = LinkSpec::from(&spec);
            let mut f = frame(&link);
            let end = f.len() - 1;
            let back: LinkSpec = decode(&mut f[..end]).unwrap();
            assert_eq!(back.to_spec(), Some(spec));
            assert_eq!(back.describe(), describe(&spec));
        }
        // A board's nonsense is said to be so, not trusted.
        let hostile = LinkSpec {
            start_in: None,
            every: None,
            at: Some(LinkAt::Daily {
                secs: 86_400 * 3,
                nanos: 0,
            }),
        };
        assert_eq!(hostile.to_spec(), None);
        assert_eq!(hostile.describe(), "(a schedule out of range)");
    }

    #[test]
    fn what_a_board_does_not_serve_is_refused_naming_it() {
        let e = Ask::from_request(&Request::Reload { dry_run: false }).unwrap_err();
        assert!(
            e.starts_with("unsupported: ") && e.ends_with("not reload"),
            "{e}"
        );
    }
}
