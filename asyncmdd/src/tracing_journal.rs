//! A `tracing` layer that writes events into the ring journal under the name of the task that
//! logged them, so code inside a traceable task logs with plain `tracing::info!` and
//! `asyncmjournal -u TASK` shows it. Events outside any task are left to the other layers.
//!
//! ```no_run
//! use tracing_subscriber::prelude::*;
//! let sup = asyncmdd::standalone("host", 1 << 20);
//! tracing_subscriber::registry()
//!     .with(asyncmdd::tracing_journal::JournalLayer::new(sup.journal().clone()))
//!     .init();
//! ```

use std::fmt::Write as _;
use std::sync::Arc;

use asyncmd_proto::Level as JournalLevel;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::journal::Journal;

/// The span every traceable task's polls run in; its `task` field is the task's name.
pub const TASK_SPAN: &str = "asyncmd_task";

/// Routes events inside task spans into the journal.
pub struct JournalLayer {
    journal: Arc<Journal>,
}

impl JournalLayer {
    /// A layer writing into `journal`.
    pub fn new(journal: Arc<Journal>) -> JournalLayer {
        JournalLayer { journal }
    }
}

struct TaskName(String);

#[derive(Default)]
struct Text {
    name: Option<String>,
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "task" => self.name = Some(value.to_string()),
            "message" => self.message.push_str(value),
            other => {
                let _ = write!(self.fields, " {other}={value}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "task" => self.name = Some(format!("{value:?}")),
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            other => {
                let _ = write!(self.fields, " {other}={value:?}");
            }
        }
    }
}

fn level(l: &Level) -> JournalLevel {
    match *l {
        Level::ERROR => JournalLevel::Error,
        Level::WARN => JournalLevel::Warning,
        Level::INFO => JournalLevel::Info,
        _ => JournalLevel::Debug,
    }
}

impl<S> Layer<S> for JournalLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != TASK_SPAN {
            return;
        }
        let mut t = Text::default();
        attrs.record(&mut t);
        if let (Some(name), Some(span)) = (t.name, ctx.span(id)) {
            span.extensions_mut().insert(TaskName(name));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        let Some(name) = scope
            .into_iter()
            .find_map(|span| span.extensions().get::<TaskName>().map(|n| n.0.clone()))
        else {
            return;
        };
        let mut t = Text::default();
        event.record(&mut t);
        let msg = format!("{}{}", t.message, t.fields);
        let id = self.journal.unit_id(&name);
        self.journal.log(id, level(event.metadata().level()), &msg);
    }
}
