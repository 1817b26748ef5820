//! A journal query as a peer sends it (JSON), run as the control socket runs it over a journal
//! of a few units: compiled (unit patterns, `grep`), started at a cursor, filtered, cut to the
//! newest `lines` and rendered as text. Nothing may panic, and what passes the filter honours
//! the query's level, start time, sequence and line count.

#![no_main]

use std::sync::OnceLock;

use asyncmd_proto::text::EntryFormatter;
use asyncmd_proto::{JournalQuery, Level, TextStyle};
use asyncmdd::control_socket::journal_filter;
use asyncmdd::journal::{records, text, Journal, Record};
use libfuzzer_sys::fuzz_target;

/// A small journal whose ring has wrapped, so old cursors point at lost records.
fn journal() -> &'static Journal {
    static J: OnceLock<Journal> = OnceLock::new();
    J.get_or_init(|| {
        let j = Journal::new(asyncmdd::journal::MIN_BUDGET, "fuzzhost");
        let units = [
            "hello.service",
            "blink.service",
            "asyncmdd",
            "täsk@1",
            "pyboard:blink",
        ];
        let levels = [
            Level::Debug,
            Level::Info,
            Level::Warning,
            Level::Error,
            Level::Critical,
        ];
        for i in 0..5000usize {
            let id = j.unit_id(units[i % units.len()]);
            let msg = match i % 4 {
                0 => format!("LED {i} toggled!"),
                1 => format!("ZeroDivisionError: division by zero ({i})"),
                2 => "ünïcödé and \u{1b}[31mescapes\u{1b}[0m".to_string(),
                _ => String::new(),
            };
            j.log(id, levels[i % levels.len()], &msg);
        }
        j
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(q) = serde_json::from_slice::<JournalQuery>(data) else {
        return;
    };
    let j = journal();
    let Ok(mut filter) = journal_filter(&q) else {
        return;
    };
    let mut copy = Vec::new();
    j.with_ring(|r| {
        let mut c = match q.after_seq {
            Some(seq) => r.cursor_at(seq),
            None => r.oldest(),
        };
        r.read(&mut c, &mut copy, usize::MAX)
    });
    let matched: Vec<Record<'_>> = records(&copy).filter(|r| filter.matches(j, r)).collect();
    let skip = q
        .lines
        .map_or(0, |n| matched.len().saturating_sub(n as usize));
    let shown = &matched[skip..];
    if let Some(n) = q.lines {
        assert!(shown.len() as u64 <= n);
    }
    let mut fmt = EntryFormatter::new(q.text.is_some_and(|t| t.color));
    let style = q.text.map_or(TextStyle::Short, |t| t.style);
    let mut out = String::new();
    for r in shown {
        assert!(
            q.level.is_none_or(|l| r.level >= l),
            "a record below the level"
        );
        assert!(
            q.since_us.is_none_or(|s| r.wall_us >= s),
            "a record before since"
        );
        assert!(
            q.after_seq.is_none_or(|s| r.seq >= s),
            "a record before after_seq"
        );
        let unit = filter.name(j, r.unit).to_string();
        assert!(!unit.is_empty(), "a shown record has no unit name");
        fmt.line(
            &mut out,
            style,
            j.host(),
            r.wall_us,
            r.level,
            &unit,
            &text(r.msg),
        );
    }
    assert_eq!(
        out.matches('\n').count(),
        shown.len(),
        "one line per record"
    );
});
