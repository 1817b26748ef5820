//! `asyncmjournal --agent ADDR`: a board's journal, read page by page over its serial link.
//!
//! A board keeps its ring and filters by unit and level; the `--grep` and `--since` filters
//! are applied here. Following polls for entries after the last one seen. A board that resets
//! starts its journal again: the follower says so on stderr and carries on from its start.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::time::Duration;

use asyncmd_proto::agent::AgentClient;
use asyncmd_proto::link::{Ask, Reply};
use asyncmd_proto::text::EntryFormatter;
use asyncmd_proto::Entry;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use regex::bytes::Regex;

use crate::{fail, json_lines, Cli, Output};

/// How often a follower asks for new entries.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// Prints the board's journal (and, following, what it logs from then on).
pub fn journal(addr: &str, cli: Cli, color: bool) -> ExitCode {
    if cli.reverse {
        return fail("--reverse reads asyncmdd's journal; a board's is read oldest first");
    }
    let grep = match cli.grep().as_deref().map(Regex::new).transpose() {
        Ok(g) => g,
        Err(e) => return fail(&format!("bad --grep: {e}")),
    };
    let mut client = match AgentClient::connect(addr) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    let lines = cli.newest();
    let (level, level_max) = cli.levels();
    let filters = Filters {
        grep,
        since_us: cli.since,
        until_us: cli.until,
        level_max,
    };
    let mut printer = Printer::stdout(&cli, color, filters);
    let ask = |after_seq: Option<u64>, lines: Option<u32>| Ask::Journal {
        units: cli.units.clone(),
        after_seq,
        lines,
        level,
    };
    // The newest `lines` first: a board answers them in one page, unless they must also match
    // a filter the board does not know (grep, times, a most severe level); then every page is
    // read and the newest `lines` matches kept here. Without `lines`, every page from the
    // oldest.
    let host_filters = printer.filters.any();
    let mut backlog = match lines {
        Some(n) if host_filters => Some((n as usize, VecDeque::new())),
        _ => None,
    };
    let mut next: Option<u64> = None;
    let mut first = match backlog {
        Some(_) => None,
        None => lines.map(|n| n.min(u64::from(u32::MAX)) as u32),
    };
    loop {
        let limit = first.take();
        let reply = match client.ask(&ask(next, limit)) {
            Ok(r) => r,
            Err(e) => return fail(&e.to_string()),
        };
        let (entries, missed, next_seq) = match reply {
            Reply::Entries {
                entries,
                missed,
                next_seq,
            } => (entries, missed, next_seq),
            Reply::Error { message, .. } => return fail(&message),
            other => return fail(&format!("unexpected answer from the board: {other:?}")),
        };
        if client.take_reset() || next.is_some_and(|n| next_seq < n) {
            eprintln!("-- the board reset: its journal starts again --");
            next = None;
            continue;
        }
        if missed > 0 {
            let _ = printer.out.flush();
            eprintln!("-- {missed} entries missed: this reader fell behind the journal ring --");
        }
        let got = !entries.is_empty();
        let mut shown = printer.keep(&entries);
        if let Some((n, kept)) = backlog.as_mut() {
            kept.extend(shown.drain(..));
            while kept.len() > *n {
                kept.pop_front();
            }
            if got {
                next = Some(next_seq);
                continue;
            }
            shown = backlog.take().map(|(_, k)| k.into()).unwrap_or_default();
            if !cli.follow {
                return match printer.print(client.board(), &shown) {
                    Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                        fail(&format!("cannot write output: {e}"))
                    }
                    _ => ExitCode::SUCCESS,
                };
            }
        }
        if let Err(e) = printer.print(client.board(), &shown) {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return ExitCode::SUCCESS;
            }
            return fail(&format!("cannot write output: {e}"));
        }
        next = Some(next_seq);
        if limit.is_some() && !cli.follow {
            return ExitCode::SUCCESS;
        }
        if !got {
            if !cli.follow {
                return ExitCode::SUCCESS;
            }
            if stdout_gone(POLL_EVERY) {
                return ExitCode::SUCCESS;
            }
        }
    }
}

/// Waits `d`; whether stdout's reader went away meanwhile.
pub(crate) fn stdout_gone(d: Duration) -> bool {
    let stdout = io::stdout();
    let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::empty())];
    let ms = u16::try_from(d.as_millis()).unwrap_or(u16::MAX);
    let _ = poll(&mut fds, PollTimeout::from(ms));
    fds[0]
        .revents()
        .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP))
}

/// The filters applied here, to what a far end that cannot apply them sends.
#[derive(Default)]
pub(crate) struct Filters {
    grep: Option<Regex>,
    since_us: Option<i64>,
    until_us: Option<i64>,
    level_max: Option<asyncmd_proto::Level>,
}

impl Filters {
    /// Whether any is set.
    fn any(&self) -> bool {
        self.grep.is_some()
            || self.since_us.is_some()
            || self.until_us.is_some()
            || self.level_max.is_some()
    }
}

/// Prints entries as `-o` says, after the filters the far end could not apply.
pub(crate) struct Printer<W: Write> {
    pub(crate) out: W,
    fmt: EntryFormatter,
    text: String,
    json: Vec<u8>,
    output: Output,
    utc: bool,
    filters: Filters,
}

impl Printer<io::BufWriter<io::StdoutLock<'static>>> {
    /// A printer to stdout as `cli` says, applying `filters` itself.
    pub(crate) fn stdout(cli: &Cli, color: bool, filters: Filters) -> Self {
        Printer {
            out: io::BufWriter::new(io::stdout().lock()),
            fmt: EntryFormatter::new(color).utc(cli.utc),
            text: String::new(),
            json: Vec::new(),
            output: cli.output,
            utc: cli.utc,
            filters,
        }
    }
}

impl<W: Write> Printer<W> {
    /// The entries that pass the filters applied here.
    pub(crate) fn keep(&self, entries: &[Entry]) -> Vec<Entry> {
        let f = &self.filters;
        entries
            .iter()
            .filter(|e| f.since_us.is_none_or(|s| e.time_us >= s))
            .filter(|e| f.until_us.is_none_or(|u| e.time_us <= u))
            .filter(|e| f.level_max.is_none_or(|l| e.level <= l))
            .filter(|e| f.grep.as_ref().is_none_or(|g| g.is_match(e.msg.as_bytes())))
            .cloned()
            .collect()
    }

    /// Writes `keep`, logged on `host`, and flushes.
    pub(crate) fn print(&mut self, host: &str, keep: &[Entry]) -> io::Result<()> {
        match self.output.style() {
            None => {
                let pretty = self.output == Output::JsonPretty;
                json_lines(&mut self.json, host, keep, pretty, self.utc);
                self.out.write_all(&self.json)?;
            }
            Some(style) => {
                self.text.clear();
                for e in keep {
                    self.fmt.line(
                        &mut self.text,
                        style,
                        host,
                        e.time_us,
                        e.level,
                        &e.unit,
                        &e.msg,
                    );
                }
                self.out.write_all(self.text.as_bytes())?;
            }
        }
        self.out.flush()
    }
}
