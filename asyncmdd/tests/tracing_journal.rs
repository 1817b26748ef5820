//! `tracing` events inside a task reach the journal under the task's name.
//!
//! A test binary of its own: tracing caches each callsite's interest globally, and a test on
//! another thread of a shared binary (with no subscriber, or its own) can leave this one's
//! span or event cached as "never". Alone in its process, with a global subscriber, it cannot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use asyncmd_proto::UnitState;
use asyncmdd::journal::{records, Journal};
use asyncmdd::task_runtime::{Ctx, Options, Registry};
use asyncmdd::tracing_journal::JournalLayer;
use tracing_subscriber::prelude::*;

#[test]
fn tracing_events_inside_a_task_reach_the_journal_under_its_name() {
    let journal = Arc::new(Journal::new(64 * 1024, "test"));
    tracing_subscriber::registry()
        .with(JournalLayer::new(journal.clone()))
        .init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let reg = Registry::new(journal.clone());
        reg.add(
            "sensor",
            |_ctx: Ctx| async move {
                tracing::warn!(celsius = 31, "too warm");
                Ok(serde_json::json!(null))
            },
            Options {
                start: true,
                ..Default::default()
            },
        );
        tracing::info!("outside any task: not in the journal");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = reg.status(&["sensor".to_string()], "h").remove(0);
            if !matches!(s.state, UnitState::Running | UnitState::Stopping) {
                break;
            }
            assert!(Instant::now() < deadline, "sensor never ended: {s:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let mut copy = Vec::new();
    journal.with_ring(|r| r.read(&mut r.oldest(), &mut copy, usize::MAX));
    let lines: Vec<(String, String)> = records(&copy)
        .map(|r| {
            let e = r.to_entry("?");
            (
                format!("{:?}", e.level),
                String::from_utf8_lossy(r.msg).into_owned(),
            )
        })
        .collect();
    assert!(
        lines.contains(&("Warning".into(), "too warm celsius=31".into())),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|(_, m)| m.contains("outside any task")));
}
