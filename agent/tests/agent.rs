//! The agent on the host: its tasks, schedule, journal and link answers, driven through the
//! same requests a board gets over its serial line (embassy-time's std driver keeps time).

use std::time::{Duration, Instant};

use asyncmd_agent::{Agent, Ctx, TaskDef, TaskFuture};
use asyncmd_core::schedule::Spec;
use asyncmd_proto::link::{Ask, Reply, Stat, TaskStatus};
use asyncmd_proto::{ActionOutcome, Level, UnitState};
use embassy_futures::select::{select, Either};
use embassy_time::Timer;
use serde_json::Value;

fn count(ctx: Ctx) -> TaskFuture {
    Box::pin(async move {
        let mut n = 0u64;
        loop {
            n += 1;
            ctx.info(&format!("tick {n}"));
            ctx.set_stat("n", n);
            Timer::after_millis(ctx.kwarg_ms("sleep", 5)).await;
        }
    })
}

fn once(ctx: Ctx) -> TaskFuture {
    Box::pin(async move {
        ctx.log(Level::Warning, "once: ran");
        // Seconds as each kind of number a kwarg may be, in milliseconds.
        for key in ["int", "float", "decimal", "text"] {
            ctx.set_stat(key, ctx.kwarg_ms(key, 7));
        }
        Ok(Value::from(42))
    })
}

fn flood(ctx: Ctx) -> TaskFuture {
    Box::pin(async move {
        for i in 0..300 {
            ctx.info(&format!("line {i:03} {}", "x".repeat(i % 50)));
        }
        Ok(Value::Null)
    })
}

fn fails(_ctx: Ctx) -> TaskFuture {
    Box::pin(async move { Err("sensor not found".into()) })
}

fn agent() -> &'static Agent {
    let ring: &'static mut [u8] = Box::leak(vec![0u8; 8 * 1024].into_boxed_slice());
    let defs = vec![
        TaskDef {
            name: "count",
            run: count,
            args: vec![Stat::Int(2)],
            kwargs: vec![("sleep".into(), Stat::Float(0.005))],
            start: true,
            schedule: None,
        },
        TaskDef {
            name: "once",
            run: once,
            args: Vec::new(),
            kwargs: vec![
                ("int".into(), Stat::Int(2)),
                ("float".into(), Stat::Float(0.25)),
                ("decimal".into(), Stat::Decimal(15, 1)),
                ("text".into(), Stat::from("soon")),
            ],
            start: false,
            schedule: Some(
                Spec::new(
                    Some(Duration::from_millis(20)),
                    Some(Duration::from_millis(40)),
                    None,
                )
                .unwrap(),
            ),
        },
        TaskDef {
            name: "flood",
            run: flood,
            args: Vec::new(),
            kwargs: Vec::new(),
            start: false,
            schedule: None,
        },
        TaskDef {
            name: "fails",
            run: fails,
            args: Vec::new(),
            kwargs: Vec::new(),
            start: false,
            schedule: None,
        },
    ];
    Box::leak(Box::new(
        Agent::new("testboard", "0.1.0", ring, defs).unwrap(),
    ))
}

/// Runs the agent's tasks and schedules beside `script` until it ends.
fn drive<F: std::future::Future>(a: &'static Agent, script: F) -> F::Output {
    assert_eq!(a.tasks(), 4, "a runner for each task");
    let runners = async {
        let tasks =
            embassy_futures::join::join_array(core::array::from_fn::<_, 4, _>(|i| a.run_task(i)));
        embassy_futures::join::join(tasks, a.run_schedules()).await;
    };
    match embassy_futures::block_on(select(runners, script)) {
        Either::First(_) => unreachable!("the runners never end"),
        Either::Second(out) => out,
    }
}

/// Task `name` asked to stop (or what that would do).
async fn stop(a: &'static Agent, name: &str, dry_run: bool) -> Reply {
    let units = vec![name.into()];
    a.answer(Ask::Stop { units, dry_run }).await
}

async fn status(a: &'static Agent, pattern: &str) -> Vec<TaskStatus> {
    match a
        .answer(Ask::Status {
            patterns: vec![pattern.into()],
            lines: 3,
        })
        .await
    {
        Reply::Status(s) => s,
        other => panic!("not a status: {other:?}"),
    }
}

/// Waits (on the agent's clock) until `cond` holds of `name`'s status.
async fn until(
    a: &'static Agent,
    name: &str,
    what: &str,
    cond: impl Fn(&TaskStatus) -> bool,
) -> TaskStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = status(a, name).await.remove(0);
        if cond(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        Timer::after_millis(2).await;
    }
}

#[test]
fn tasks_run_stop_start_and_report_through_the_link_answers() {
    let a = agent();
    drive(a, async {
        let s = until(a, "count", "count to tick a few times", |s| {
            s.stats
                .iter()
                .any(|(k, v)| k == "n" && matches!(v, Stat::Int(n) if *n >= 3))
        })
        .await;
        assert_eq!(s.state, UnitState::Running);
        assert_eq!(s.journal.len(), 3, "the newest 3 lines: {:?}", s.journal);
        assert!(s.journal.iter().all(|e| e.msg.starts_with("tick ")));

        // A dry run says what it would do, and does nothing.
        let r = stop(a, "count", true).await;
        assert!(
            matches!(&r, Reply::Actions(v) if v[0].message == "would stop"),
            "{r:?}"
        );
        assert_eq!(status(a, "count").await[0].state, UnitState::Running);

        // Stop, then start again: a second run.
        let r = stop(a, "count", false).await;
        assert!(
            matches!(&r, Reply::Actions(v) if v[0].outcome == ActionOutcome::Ok),
            "{r:?}"
        );
        until(a, "count", "count to stop", |s| {
            s.state == UnitState::Stopped
        })
        .await;
        a.answer(Ask::Start {
            units: vec!["c*".into()],
        })
        .await;
        let s = until(a, "count", "count's second run", |s| {
            s.starts == 2 && s.state == UnitState::Running
        })
        .await;
        assert_eq!(s.args, vec![Stat::Int(2)]);
        assert_eq!(s.kwargs, vec![("sleep".into(), Stat::Float(0.005))]);
        assert!(
            matches!(&s.stats[..], [(k, Stat::Int(_))] if k == "n"),
            "{:?}",
            s.stats
        );

        // A failing task: its error, and the core's words for it.
        a.answer(Ask::Start {
            units: vec!["fails".into()],
        })
        .await;
        let s = until(a, "fails", "fails to fail", |s| {
            s.state == UnitState::Failed
        })
        .await;
        assert_eq!(s.error.as_deref(), Some("sensor not found"));

        // A name that matches nothing, and what a board does not serve.
        let r = a
            .answer(Ask::Restart {
                units: vec!["nope".into()],
                dry_run: false,
            })
            .await;
        assert!(
            matches!(&r, Reply::Actions(v) if v[0].outcome == ActionOutcome::NoSuchUnit),
            "{r:?}"
        );
        // A typo of a task's name gets the task it likely meant, from a board's tasks alone.
        let r = stop(a, "cuont", false).await;
        assert!(
            matches!(&r, Reply::Actions(v) if v[0].message == "Unit cuont not found. Did you mean count?"),
            "{r:?}"
        );
    });
}

#[test]
fn a_schedule_fires_and_the_journal_pages_from_a_sequence_number() {
    let a = agent();
    drive(a, async {
        let s = until(a, "once", "the scheduled task to run twice", |s| {
            s.starts >= 2
        })
        .await;
        assert_eq!(s.state, UnitState::Done);
        let (spec, _last, next) = s.schedule.expect("a schedule");
        assert_eq!(spec.describe(), "first in 20ms, every 40ms");
        assert!(next.is_some());
        assert_eq!(s.result, Some(asyncmd_proto::link::Stat::Int(42)));
        let ms: Vec<_> = s
            .stats
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_i64()))
            .collect();
        assert_eq!(
            ms,
            [
                ("int", Some(2000)),
                ("float", Some(250)),
                ("decimal", Some(1500)),
                ("text", Some(7))
            ]
        );

        // The journal of `once`, from the start, then from where the last page ended.
        let page = |after_seq| {
            a.answer(Ask::Journal {
                units: vec!["once".into()],
                after_seq,
                lines: None,
                level: None,
            })
        };
        let Reply::Entries {
            entries,
            missed,
            next_seq,
        } = page(None).await
        else {
            panic!()
        };
        assert_eq!(missed, 0);
        assert!(entries
            .iter()
            .any(|e| e.msg == "once: ran" && e.level == Level::Warning));
        assert!(entries.iter().all(|e| e.unit == "once"));
        // No host has told the time yet: a due time is said as time since the boot.
        let due: Vec<&str> = entries
            .iter()
            .filter_map(|e| e.msg.strip_prefix("Starting the run due at "))
            .collect();
        assert!(due.len() >= 2, "{entries:?}");
        for d in &due {
            let secs = d.strip_suffix("s after boot").expect(d);
            let (s, ms) = secs.split_once('.').expect(d);
            assert!(s.parse::<u32>().is_ok() && ms.len() == 3, "{d}");
        }
        let Reply::Entries { entries: later, .. } = page(Some(next_seq)).await else {
            panic!()
        };
        assert!(later.iter().all(|e| e.seq >= next_seq));

        // Hello sets the board's wall clock from the host's.
        let Reply::Hello { board, .. } = a
            .answer(Ask::Hello {
                host_wall_us: 1_764_000_000_000_000,
            })
            .await
        else {
            panic!()
        };
        assert_eq!(board, "testboard");
        // From then on, on the wall clock (2025-11-24, as the host told it): a run comes
        // every 40 ms, so one is logged soon.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut from = next_seq;
        loop {
            let Reply::Entries {
                entries, next_seq, ..
            } = page(Some(from)).await
            else {
                panic!()
            };
            from = next_seq;
            if entries
                .iter()
                .any(|e| e.msg.starts_with("Starting the run due at 2025-11-24 "))
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no run due on the wall clock: {entries:?}"
            );
            Timer::after_millis(2).await;
        }
        a.answer(Ask::Start {
            units: vec!["fails".into()],
        })
        .await;
        let s = until(a, "fails", "fails to fail", |s| {
            s.state == UnitState::Failed
        })
        .await;
        assert!(s.since_us.unwrap() > 1_764_000_000_000_000);
    });
}

#[test]
fn paging_through_a_big_journal_loses_nothing_and_a_status_fits_a_frame() {
    let a = agent();
    drive(a, async {
        a.answer(Ask::Start {
            units: vec!["flood".into()],
        })
        .await;
        until(a, "flood", "flood to finish", |s| {
            s.state == UnitState::Done
        })
        .await;
        let mut next = None;
        let mut lines = Vec::new();
        let mut pages = 0;
        loop {
            let reply = a
                .answer(Ask::Journal {
                    units: vec!["flood".into()],
                    after_seq: next,
                    lines: None,
                    level: None,
                })
                .await;
            let Reply::Entries {
                entries, next_seq, ..
            } = reply
            else {
                panic!("{reply:?}")
            };
            if entries.is_empty() {
                break;
            }
            // Every page fits a frame.
            let mut f = Vec::new();
            asyncmd_proto::link::encode(
                &(
                    1u16,
                    Reply::Entries {
                        entries: entries.clone(),
                        missed: 0,
                        next_seq,
                    },
                ),
                &mut f,
            )
            .unwrap();
            lines.extend(
                entries
                    .into_iter()
                    .map(|e| e.msg)
                    .filter(|m| m.starts_with("line ")),
            );
            next = Some(next_seq);
            pages += 1;
            assert!(pages < 100, "paging ends");
        }
        assert!(pages > 1, "the journal took more than one page");
        let want: Vec<String> = (0..300)
            .map(|i| format!("line {i:03} {}", "x".repeat(i % 50)))
            .collect();
        // The ring holds the newest of them: whatever it holds comes once, in order, none skipped.
        let first = want
            .iter()
            .position(|w| *w == lines[0])
            .expect("a line logged");
        assert_eq!(lines, want[first..].to_vec());
        // The newest 7 of flood's: exactly the last seven it logged, in order.
        let reply = a
            .answer(Ask::Journal {
                units: vec!["flood".into()],
                after_seq: None,
                lines: Some(7),
                level: None,
            })
            .await;
        let Reply::Entries { entries, .. } = reply else {
            panic!("{reply:?}")
        };
        let newest: Vec<String> = entries.into_iter().map(|e| e.msg).collect();
        let done = newest.last().expect("seven lines").clone();
        assert!(done.starts_with("Done"), "{newest:?}");
        assert_eq!(newest[..6], want[294..].to_vec()[..], "{newest:?}");
        // The newest N at most, and a status with a big journal, still fit a frame.
        let reply = a
            .answer(Ask::Journal {
                units: Vec::new(),
                after_seq: None,
                lines: Some(10_000),
                level: None,
            })
            .await;
        let mut f = Vec::new();
        asyncmd_proto::link::encode(&(1u16, reply), &mut f).unwrap();
        let reply = a
            .answer(Ask::Status {
                patterns: Vec::new(),
                lines: 10_000,
            })
            .await;
        let mut f = Vec::new();
        asyncmd_proto::link::encode(&(1u16, reply), &mut f).expect("a status fits a frame");
    });
}

/// The board's end of a line: nothing comes in; what goes out is kept.
struct Line(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl embedded_io_async::ErrorType for Line {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::Read for Line {
    async fn read(&mut self, _buf: &mut [u8]) -> Result<usize, Self::Error> {
        core::future::pending().await
    }
}

impl embedded_io_async::Write for Line {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

#[test]
fn a_board_that_reset_mid_reply_is_greeted_on_its_own() {
    let a = agent();
    let sent = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let line = Line(sent.clone());
    drive(a, async {
        let serve = a.serve(Line(line.0.clone()), line);
        let wait = async {
            // Until a whole frame is out.
            let deadline = Instant::now() + Duration::from_secs(20);
            while !(sent.borrow().len() > 1 && sent.borrow().ends_with(&[0])) {
                assert!(
                    Instant::now() < deadline,
                    "no greeting: {:?}",
                    sent.borrow()
                );
                Timer::after_millis(1).await;
            }
        };
        let Either::Second(()) = select(serve, wait).await;
    });
    // What the host reads: half a reply the reset cut off, then what the board sent at boot.
    let mut bytes = Vec::new();
    asyncmd_proto::link::encode(&(3u16, Reply::List(Vec::new())), &mut bytes).unwrap();
    bytes.truncate(bytes.len() / 2);
    bytes.extend(sent.borrow().iter());
    let mut got = Vec::new();
    asyncmd_proto::link::Deframer::new().feed::<(u16, Reply)>(&bytes, |r| got.push(r));
    assert!(
        matches!(
            got.iter().find_map(|r| r.as_ref().ok()),
            Some((0, Reply::Hello { board, .. })) if board == "testboard"
        ),
        "{got:?}"
    );
}
