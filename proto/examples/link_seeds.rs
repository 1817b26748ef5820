//! Writes the fuzzer's seed corpus for the serial link (`fuzz/corpus/link`): real frames of
//! every ask and reply as the daemon and a board send them, which a fuzzer could not forge
//! alone for their CRC. Run: `cargo run -p asyncmd-proto --example link_seeds -- DIR`.

use std::time::Duration;

use asyncmd_proto::link::{encode, Ask, LinkSpec, Reply, Stat, TaskStatus};
use asyncmd_proto::request::{ActionOutcome, ActionResult, ErrorCode};
use asyncmd_proto::schedule::Spec;
use asyncmd_proto::unit::{LoopInfo, UnitSummary};
use asyncmd_proto::{Entry, Level, UnitState, UnitType};

fn main() -> std::io::Result<()> {
    let dir = std::env::args().nth(1).expect("usage: link_seeds DIR");
    std::fs::create_dir_all(&dir)?;
    let blink = vec!["blink".to_string()];
    let asks = [
        Ask::Hello {
            host_wall_us: 1_764_000_000_000_000,
        },
        Ask::Status {
            patterns: vec!["*".into()],
            lines: 5,
        },
        Ask::List { patterns: vec![] },
        Ask::Start {
            units: blink.clone(),
        },
        Ask::Stop {
            units: blink.clone(),
            dry_run: false,
        },
        Ask::Restart {
            units: blink,
            dry_run: true,
        },
        Ask::Journal {
            units: vec!["b*".into()],
            after_seq: Some(7),
            lines: Some(10),
            level: Some(Level::Warning),
        },
    ];
    let entry = Entry {
        seq: 3,
        time_us: 1_764_000_000_000_000,
        mono_us: 42,
        level: Level::Error,
        unit: "sensor".into(),
        msg: "ValueError: no reading".into(),
    };
    let task = TaskStatus {
        name: "blink".into(),
        kind: UnitType::Task,
        state: UnitState::Running,
        since_us: Some(1_764_000_000_000_000),
        started_us: Some(1_764_000_000_000_000),
        done_us: None,
        error: None,
        traceback: vec!["Traceback".into()],
        starts: 2,
        last_exit: Some("exited 1".into()),
        schedule: Some((
            LinkSpec::from(&Spec::new(None, Some(Duration::from_secs(1)), Some("07:30")).unwrap()),
            Some(1),
            Some(2),
        )),
        stats: vec![
            ("led".into(), Stat::Int(3)),
            ("t".into(), Stat::Float(21.5)),
            ("temp".into(), Stat::Decimal(213, 1)),
            (
                "pins".into(),
                Stat::List(vec![Stat::Bool(true), Stat::Null, Stat::Text("x".into())]),
            ),
            ("o".into(), Stat::Object(vec![("k".into(), Stat::Int(-1))])),
        ],
        args: vec![Stat::Int(1)],
        kwargs: vec![("sleep".into(), Stat::Float(0.5))],
        result: Some(Stat::Null),
        loop_info: Some(LoopInfo {
            polls: 10,
            busy_us: 20,
        }),
        journal: vec![entry.clone()],
    };
    let replies = [
        Reply::Hello {
            board: "qemu-netduinoplus2".into(),
            firmware: "0.1.0".into(),
            uptime_us: 1000,
        },
        Reply::Status(vec![task]),
        Reply::List(vec![UnitSummary {
            name: "blink".into(),
            enabled: true,
            loaded: true,
            state: UnitState::Running,
            description: "LED".into(),
            masked: false,
            kind: asyncmd_proto::UnitType::Task,
            requires: Vec::new(),
            after: Vec::new(),
        }]),
        Reply::Actions(vec![ActionResult {
            unit: "blink".into(),
            outcome: ActionOutcome::Ok,
            message: String::new(),
        }]),
        Reply::Entries {
            entries: vec![entry],
            missed: 1,
            next_seq: 4,
        },
        Reply::Error {
            code: ErrorCode::BadRequest,
            message: "no".into(),
        },
    ];
    let write = |name: String, frames: &[Vec<u8>]| {
        // The fuzz target's first byte is the read size: 255 -> 256-byte reads.
        let mut seed = vec![255u8];
        for f in frames {
            seed.extend_from_slice(f);
        }
        std::fs::write(format!("{dir}/{name}"), seed)
    };
    for (i, ask) in asks.iter().enumerate() {
        let mut f = Vec::new();
        encode(&(i as u16, ask), &mut f).expect("an ask encodes");
        write(format!("ask-{i}"), &[f])?;
    }
    for (i, reply) in replies.iter().enumerate() {
        let mut f = Vec::new();
        encode(&(i as u16, reply), &mut f).expect("a reply encodes");
        // A frame behind line noise, as after a board's reset.
        write(format!("reply-{i}"), &[b"\x13noise\x00".to_vec(), f])?;
    }
    Ok(())
}
