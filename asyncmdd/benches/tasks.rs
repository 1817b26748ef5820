//! Benchmarks of traceable tasks and schedules (not tests; run with
//! `cargo bench -p asyncmdd --bench tasks`):
//!   1. scheduling precision: lateness of 1,000 runs of a task scheduled `every = 10ms`,
//!      measured against each run's absolute due time (p50, p99, max), and the drift of the
//!      last run; beside asyncmd's figure from ../shared/reference (1 s check loop, period
//!      1001.2 ms, 14 ms drift over 12 periods);
//!   2. the cost of tracing a task: a future that yields 1,000,000 times, spawned bare with
//!      `tokio::spawn` and spawned through the registry, in ns per poll.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use asyncmd_core::schedule::Spec;
use asyncmdd::journal::Journal;
use asyncmdd::task_runtime::{Ctx, Options, Registry};
use serde_json::json;

const RUNS: usize = 1000;
const PERIOD: Duration = Duration::from_millis(10);
const POLLS: u64 = 1_000_000;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn precision(reg: &Arc<Registry>) {
    let seen: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::with_capacity(RUNS)));
    let s2 = seen.clone();
    let t0 = Instant::now();
    reg.add(
        "tick",
        move |_ctx: Ctx| {
            let s = s2.clone();
            async move {
                s.lock().unwrap().push(Instant::now());
                Ok(json!(null))
            }
        },
        Options {
            schedule: Some(Spec::new(Some(PERIOD), Some(PERIOD), None).unwrap()),
            ..Default::default()
        },
    );
    while seen.lock().unwrap().len() < RUNS {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    reg.delete(&["tick".to_string()]);
    let runs = seen.lock().unwrap().clone();
    // Run k is due at t0 + (k + 1) * PERIOD (start_in = every = PERIOD).
    let mut late: Vec<f64> = runs
        .iter()
        .take(RUNS)
        .enumerate()
        .map(|(k, at)| {
            let due = t0 + PERIOD * (k as u32 + 1);
            at.saturating_duration_since(due).as_secs_f64() * 1e3
        })
        .collect();
    let drift = late[RUNS - 1];
    late.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "== 1. schedule precision, {RUNS} runs every {PERIOD:?}: lateness p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms; last run {:.3} ms after its due time (no drift: deadlines are absolute)",
        percentile(&late, 0.5),
        percentile(&late, 0.99),
        late[RUNS - 1],
        drift
    );
    println!("   asyncmd (reference): 1 s check loop; period mean 1001.2 ms, max 1003 ms; 14 ms drift over 12 periods");
}

async fn yielding(n: u64) -> u64 {
    for _ in 0..n {
        tokio::task::yield_now().await;
    }
    n
}

async fn overhead(reg: &Arc<Registry>) {
    let mut bare = Vec::new();
    let mut traced = Vec::new();
    // Both sides are waited for the same way, by a oneshot the future completes, so the
    // difference is the tracing alone and not how the benchmark waits.
    for _ in 0..5 {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let t = Instant::now();
        tokio::spawn(async move {
            let _ = tx.send(yielding(POLLS).await);
        });
        rx.await.unwrap();
        bare.push(t.elapsed().as_nanos() as f64 / POLLS as f64);

        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = Arc::new(Mutex::new(Some(tx)));
        let t = Instant::now();
        let name = reg.add(
            "y",
            move |_ctx: Ctx| {
                let tx = tx.clone();
                async move {
                    let n = yielding(POLLS).await;
                    if let Some(tx) = tx.lock().unwrap().take() {
                        let _ = tx.send(n);
                    }
                    Ok(json!(n))
                }
            },
            Options {
                start: true,
                ..Default::default()
            },
        );
        rx.await.unwrap();
        traced.push(t.elapsed().as_nanos() as f64 / POLLS as f64);
        reg.delete(&[name]);
    }
    bare.sort_by(|a, b| a.partial_cmp(b).unwrap());
    traced.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (b, t) = (bare[2], traced[2]);
    println!(
        "== 2. per poll, median of 5 x {POLLS} yields: bare tokio::spawn {b:.1} ns, traceable task {t:.1} ns (+{:.1} ns, {:.2}x)",
        t - b,
        t / b
    );
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let reg = Registry::new(Arc::new(Journal::new(1 << 20, "bench")));
        overhead(&reg).await;
        precision(&reg).await;
    });
}
