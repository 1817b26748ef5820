//! The async_blink walkthrough of asyncmd, in Rust: a `blink(pin, sleep)` task added twice
//! (`blink`, `blink@1`), served with its journal on the socket `ASYNCMD_SOCKET` names (else the
//! default path), so that from another shell you can do what asyncmd's README does:
//!
//! ```sh
//! cargo run --example async_blink &
//! asyncmctl status                      # both blinks running
//! asyncmctl debug on; asyncmctl status  # ┗━► args / kwargs / runtime / Loop info
//! asyncmctl stop blink
//! asyncmctl config blink --kwargs '{"sleep": 3}'
//! asyncmctl start blink
//! asyncmjournal -u 'blink*' -F
//! ```
//!
//! There is no board here: the LED is simulated, and each toggle is a journal line. The task
//! also logs with plain `tracing`, which the journal layer routes to the journal.

use std::time::Duration;

use asyncmdd::task_runtime::{Ctx, Options, TaskResult};
use asyncmdd::tracing_journal::JournalLayer;
use serde_json::{json, Map, Value};
use tracing_subscriber::prelude::*;

/// Blinks (a simulated) LED on `pin`: on for 500 ms, then off for `sleep` seconds.
async fn blink(ctx: Ctx) -> TaskResult {
    let pin = ctx.args.first().and_then(Value::as_u64).unwrap_or(2);
    let sleep = ctx.kwarg_f64("sleep", 5.0);
    let mut toggles = 0u64;
    // Plain tracing: the JournalLayer installed in main puts it in the journal under this task.
    tracing::warn!(pin, "no board here: the LED is simulated");
    loop {
        ctx.info(&format!("LED {pin} on"));
        tokio::time::sleep(Duration::from_millis(500)).await;
        ctx.info(&format!("LED {pin} off"));
        toggles += 1;
        ctx.set_stat("toggles", toggles);
        tokio::time::sleep(Duration::from_secs_f64(sleep)).await;
    }
}

fn kwargs(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let sup = asyncmdd::standalone("blinkhost", 256 * 1024);
    tracing_subscriber::registry()
        .with(JournalLayer::new(sup.journal().clone()))
        .init();
    let tasks = sup.tasks();
    for (pin, sleep) in [(2, 5), (3, 2)] {
        let name = tasks.add(
            "blink",
            blink,
            Options {
                args: vec![json!(pin)],
                kwargs: kwargs(json!({ "sleep": sleep })),
                start: true,
                ..Default::default()
            },
        );
        println!("Started task {name} (pin {pin}, sleep {sleep})");
    }
    let socket = asyncmd_proto::endpoint::socket_path(None);
    println!("Serving on {}; Ctrl-C to stop", socket.display());
    tokio::select! {
        r = asyncmdd::serve(sup.clone(), &socket) => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
