//! Criterion micro-benchmarks of the hot paths: ring append, line splitting, the journal
//! filter, status building for 1,000 units and the boot plan of 10,000 units.
//!
//! `cargo bench -p asyncmdd --bench hot` (also run by `bash bench/run.sh`).

use std::hint::black_box;

use asyncmd_core::lifecycle::{Event, Life};
use asyncmd_core::plan::{plan, Node, Pull};
use asyncmd_core::status;
use asyncmd_proto::{JournalQuery, Level, Response, UnitType};
use asyncmdd::capture::lines;
use asyncmdd::clock::HostClock;
use asyncmdd::control_socket::journal_filter;
use asyncmdd::journal::{records, Journal, Line, Ring, UnitId, MAX_MESSAGE};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const LINE: &[u8] = b"flood line that is sixty bytes long, give or take: xxxxxxxxx";

/// A small deterministic generator, so every run benches the same graph.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

fn ring_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring append");
    g.throughput(Throughput::Elements(1));
    // A full 1 MiB ring: every append drops the oldest entries, the steady state of a flood.
    let mut ring = Ring::new(1 << 20);
    for i in 0..100_000 {
        ring.push(i, i as u64, UnitId(0), Level::Info, LINE);
    }
    let mut t = 0;
    g.bench_function("Ring::push, 60 B into a full 1 MiB ring", |b| {
        b.iter(|| {
            t += 1;
            ring.push(t, t as u64, UnitId(1), Level::Info, black_box(LINE))
        })
    });
    let journal = Journal::new(1 << 20, "bench");
    let id = journal.unit_id("flood.service");
    let batch: Vec<Line<'_>> = (0..64)
        .map(|_| Line {
            level: Level::Info,
            msg: LINE,
        })
        .collect();
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function(
        "Journal::append, a batch of 64 lines (lock, clock, wake)",
        |b| b.iter(|| journal.append(id, black_box(batch.iter().copied()))),
    );
    g.finish();
}

fn line_splitting(c: &mut Criterion) {
    let mut data = Vec::new();
    while data.len() + LINE.len() < 64 * 1024 {
        data.extend_from_slice(LINE);
        data.push(b'\n');
    }
    let n = lines(&data, MAX_MESSAGE, false).count();
    let mut g = c.benchmark_group("line splitting");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("capture::lines, a 64 KiB read of 60 B lines", |b| {
        b.iter(|| lines(black_box(&data), MAX_MESSAGE, false).count())
    });
    g.finish();
}

fn journal_filter_scan(c: &mut Criterion) {
    // A 1 MiB journal of five units at all levels, as a busy box has it.
    let journal = Journal::new(1 << 20, "bench");
    let units = ["hello.service", "world.service", "blink", "mqtt", "watcher"];
    let levels = [Level::Debug, Level::Info, Level::Warning, Level::Error];
    let mut rng = Lcg(7);
    for i in 0..40_000 {
        let id = journal.unit_id(units[i % units.len()]);
        let msg = format!("LED {} toggled! reading {}", i % 4, rng.below(1000));
        journal.log(id, levels[rng.below(levels.len())], &msg);
    }
    let mut copy = Vec::new();
    journal.with_ring(|r| r.read(&mut r.oldest(), &mut copy, usize::MAX));
    let n = records(&copy).count();
    let mut g = c.benchmark_group("journal filter");
    g.throughput(Throughput::Elements(n as u64));
    let queries = [
        ("-u hello", r#"{"units": ["hello"]}"#),
        (
            "-u 'h*' -p warning",
            r#"{"units": ["h*"], "level": "WARNING"}"#,
        ),
        (
            "-g 'toggled! reading 9\\d\\d'",
            r#"{"grep": "toggled! reading 9\\d\\d"}"#,
        ),
    ];
    for (name, q) in queries {
        let q: JournalQuery = serde_json::from_str(q).unwrap();
        g.bench_function(format!("a 1 MiB journal through {name}"), |b| {
            b.iter_batched(
                || journal_filter(&q).unwrap(),
                |mut f| records(&copy).filter(|r| f.matches(&journal, r)).count(),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn status_building(c: &mut Criterion) {
    // 1,000 units that have each run and logged a failure once, then started again.
    let lives: Vec<(String, Life)> = (0..1000)
        .map(|i| {
            let mut life = Life::new(Some(1_700_000_000_000_000));
            let _ = life.step(Event::Spawning, &HostClock);
            let started = Event::Started {
                ready: true,
                what: Some(format!("pid {}", 1000 + i)),
            };
            let _ = life.step(started, &HostClock);
            life.traceback.push_back(format!("Error: unit {i} failed"));
            (format!("unit{i:04}.service"), life)
        })
        .collect();
    let mut g = c.benchmark_group("status");
    g.throughput(Throughput::Elements(lives.len() as u64));
    g.bench_function(
        "status of 1,000 units, built and encoded as the socket sends it",
        |b| {
            b.iter(|| {
                let units = lives
                    .iter()
                    .map(|(name, life)| {
                        status::of(name, "/etc/asyncmd/units", UnitType::Runtime, life, "bench")
                    })
                    .collect();
                let resp = Response::Status {
                    units,
                    debug: false,
                    missing: Vec::new(),
                };
                serde_json::to_vec(&resp).unwrap()
            })
        },
    );
    g.finish();
}

fn boot_plan(c: &mut Criterion) {
    // 10,000 units with about three random requires/after edges each, to units defined
    // before (so no cycle), near and far, and ten priorities.
    let mut rng = Lcg(3);
    let nodes: Vec<Node> = (0..10_000)
        .map(|i| {
            let mut node = Node {
                name: format!("u{i}.service"),
                priority: rng.below(10) as i32,
                enabled: true,
                ..Node::default()
            };
            if i > 0 {
                for _ in 0..2 {
                    node.requires.push(format!("u{}.service", rng.below(i)));
                }
                node.after.push(format!("u{}.service", rng.below(i)));
            }
            node
        })
        .collect();
    let wanted: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let mut g = c.benchmark_group("plan");
    g.sample_size(20);
    g.bench_function("boot plan of 10,000 units, ~30,000 edges", |b| {
        b.iter(|| plan(black_box(&nodes), &wanted, Pull::Enabled))
    });
    g.finish();
}

criterion_group!(
    hot,
    ring_append,
    line_splitting,
    journal_filter_scan,
    status_building,
    boot_plan
);
criterion_main!(hot);
