//! `asyncmctl top`: a live view of the units, as htop is of processes and asyncmd's `dtop` of a
//! fleet. One thread asks the daemon (or the board, or the devices) for their status every
//! interval and, when a unit's journal is open, for its newest lines; another carries out the
//! starts, stops and restarts asked for; the screen only ever draws the latest answer, so a
//! slow daemon slows the numbers, never the keys. The terminal is given back as it was on every
//! way out: `q`, Ctrl-C, a panic, SIGTERM, SIGINT or SIGHUP.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use asyncmd_proto::text::{ago, now_us};
use asyncmd_proto::{Request, Response, UnitState, UnitStatus};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use crate::link::Link;

/// The fastest the screen is drawn again, whatever happens.
const FRAME: Duration = Duration::from_millis(250);
/// Journal lines kept for the open pane.
const JOURNAL_LINES: u32 = 200;

/// One row: a unit (of a device, through a broker) and what its numbers say.
#[derive(Clone)]
struct Item {
    device: Option<String>,
    unit: UnitStatus,
    /// CPU use since the last look, in percent of one core.
    cpu: Option<f64>,
}

impl Item {
    /// The name actions and the journal go by; `DEVICE:NAME` when there are many devices.
    fn label(&self) -> String {
        match &self.device {
            Some(d) => format!("{d}:{}", self.unit.name),
            None => self.unit.name.clone(),
        }
    }
}

/// What the screen shows: the latest answers, written by the worker threads.
#[derive(Default)]
struct Seen {
    items: Vec<Item>,
    error: Option<String>,
    at: Option<i64>,
    journal: Vec<String>,
    note: String,
}

/// What the screen asks of the worker threads.
enum Job {
    /// Only units matching these (all when empty).
    Filter(Vec<String>),
    /// Open (or close, with None) the journal of this unit of this device.
    Follow(Option<(Option<String>, String)>),
    /// Look again now.
    Refresh,
}

/// An action on one unit, for the action thread.
struct Act {
    verb: &'static str,
    device: Option<String>,
    unit: String,
}

/// Set by SIGTERM, SIGINT and SIGHUP: leave as by `q`.
static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: nix::libc::c_int) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

/// Runs the view until the person quits it (or a signal ends it).
pub fn run(link: Link, patterns: Vec<String>, every: Duration) -> ExitCode {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            let _ = sigaction(sig, &action);
        }
    }
    let many = link.many();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (jobs, job_rx) = mpsc::channel();
    let (acts, act_rx) = mpsc::channel::<Act>();
    let actions = link.fresh();
    {
        let seen = seen.clone();
        std::thread::spawn(move || look(link, patterns, every, job_rx, &seen));
    }
    {
        let seen = seen.clone();
        let jobs = jobs.clone();
        std::thread::spawn(move || act(actions, act_rx, &seen, &jobs));
    }
    let mut terminal = ratatui::init();
    let mut screen = Screen {
        table: TableState::default().with_selected(Some(0)),
        filter: None,
        following: None,
        many,
    };
    let mut drawn = Instant::now() - FRAME;
    let code = loop {
        if SIGNALLED.load(Ordering::SeqCst) {
            break ExitCode::from(143);
        }
        if drawn.elapsed() >= FRAME {
            let seen = lock(&seen);
            let _ = terminal.draw(|f| screen.draw(f, &seen));
            drawn = Instant::now();
        }
        if !event::poll(Duration::from_millis(50)).unwrap_or(false) {
            continue;
        }
        let Ok(Event::Key(key)) = event::read() else {
            // A resize, say: draw again at once.
            drawn = Instant::now() - FRAME;
            continue;
        };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        let items = lock(&seen).items.clone();
        match screen.key(key, &items) {
            Some(Do::Quit) => break ExitCode::SUCCESS,
            Some(Do::Job(j)) => {
                let _ = jobs.send(j);
            }
            Some(Do::Act(a)) => {
                lock(&seen).note = format!("{} {}...", a.verb, a.unit);
                let _ = acts.send(a);
            }
            None => {}
        }
        drawn = Instant::now() - FRAME;
    };
    ratatui::restore();
    code
}

fn lock(seen: &Mutex<Seen>) -> std::sync::MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|e| e.into_inner())
}

/// The looking thread: the status of the units every `every` (and at once when a job comes),
/// and the open journal's newest lines.
fn look(
    mut link: Link,
    mut patterns: Vec<String>,
    every: Duration,
    jobs: mpsc::Receiver<Job>,
    seen: &Mutex<Seen>,
) {
    let mut follow: Option<(Option<String>, String)> = None;
    let mut cpu_before: BTreeMap<String, (u64, Instant)> = BTreeMap::new();
    loop {
        let asked = Request::Status {
            patterns: patterns.clone(),
            lines: 0,
        };
        let now = Instant::now();
        match link.call(asked) {
            Ok(answers) => {
                let mut items = Vec::new();
                let mut errors = Vec::new();
                for (device, resp) in answers {
                    match resp {
                        Response::Status { units, .. } => {
                            items.extend(units.into_iter().map(|unit| Item {
                                device: device.clone(),
                                unit,
                                cpu: None,
                            }))
                        }
                        Response::Error { message, .. } => errors.push(message),
                        other => errors.push(format!("unexpected answer: {other:?}")),
                    }
                }
                for it in &mut items {
                    let key = it.label();
                    if let Some(c) = it.unit.cpu_us {
                        if let Some((was, when)) = cpu_before.get(&key) {
                            let spent = c.saturating_sub(*was) as f64;
                            let span = now.duration_since(*when).as_micros().max(1) as f64;
                            it.cpu = Some(100.0 * spent / span);
                        }
                        cpu_before.insert(key, (c, now));
                    }
                }
                let mut s = lock(seen);
                s.items = items;
                s.error = (!errors.is_empty()).then(|| errors.join("; "));
                s.at = Some(now_us());
            }
            Err(e) => lock(seen).error = Some(e),
        }
        if let Some((device, unit)) = &follow {
            let lines = journal_of(&mut link, device.as_deref(), unit);
            lock(seen).journal = lines;
        }
        // Until the next look, or a job that wants one at once.
        match jobs.recv_timeout(every) {
            Ok(Job::Filter(p)) => patterns = p,
            Ok(Job::Follow(f)) => {
                follow = f;
                lock(seen).journal.clear();
            }
            Ok(Job::Refresh) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// The newest journal lines of `unit` (of `device`), as the status of one unit carries them.
fn journal_of(link: &mut Link, device: Option<&str>, unit: &str) -> Vec<String> {
    let req = Request::Status {
        patterns: vec![unit.to_string()],
        lines: JOURNAL_LINES,
    };
    let Ok(answers) = link.call(req) else {
        return Vec::new();
    };
    let mut fmt = asyncmd_proto::text::EntryFormatter::new(false);
    let mut out = Vec::new();
    for (d, resp) in answers {
        if device.is_some() && d.as_deref() != device {
            continue;
        }
        if let Response::Status { units, .. } = resp {
            for u in units.iter().filter(|u| u.name == unit) {
                for e in &u.journal {
                    let mut line = String::new();
                    fmt.short(&mut line, &u.host, e);
                    out.push(line.trim_end().to_string());
                }
            }
        }
    }
    out
}

/// The acting thread: each start, stop or restart in turn, its outcome as the note.
fn act(mut link: Link, acts: mpsc::Receiver<Act>, seen: &Mutex<Seen>, jobs: &mpsc::Sender<Job>) {
    while let Ok(a) = acts.recv() {
        let units = vec![a.unit.clone()];
        let req = match a.verb {
            "start" => Request::Start { units },
            "stop" => Request::Stop {
                units,
                dry_run: false,
            },
            _ => Request::Restart {
                units,
                dry_run: false,
            },
        };
        let note = match link.call(req) {
            Ok(answers) => {
                let mut said = Vec::new();
                for (d, resp) in answers {
                    if a.device.is_some() && d != a.device {
                        continue;
                    }
                    match resp {
                        Response::Actions { results } => {
                            said.extend(results.into_iter().map(|r| {
                                if r.message.is_empty() {
                                    format!("{} {}: {:?}", a.verb, r.unit, r.outcome).to_lowercase()
                                } else {
                                    format!("{} {}: {}", a.verb, r.unit, r.message)
                                }
                            }))
                        }
                        Response::Error { message, .. } => said.push(message),
                        _ => {}
                    }
                }
                said.join("; ")
            }
            Err(e) => format!("{} {}: {e}", a.verb, a.unit),
        };
        lock(seen).note = note;
        let _ = jobs.send(Job::Refresh);
    }
}

/// What a key asks for.
enum Do {
    Quit,
    Job(Job),
    Act(Act),
}

/// What the screen itself keeps: the selection, the filter being typed, the open journal.
struct Screen {
    table: TableState,
    /// The filter being typed, while it is.
    filter: Option<String>,
    /// The label of the unit whose journal is open.
    following: Option<String>,
    many: bool,
}

impl Screen {
    fn key(&mut self, key: KeyEvent, items: &[Item]) -> Option<Do> {
        let ctrl_c =
            key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
        if ctrl_c {
            return Some(Do::Quit);
        }
        if let Some(typed) = self.filter.as_mut() {
            match key.code {
                KeyCode::Enter => {
                    let patterns = match typed.trim() {
                        "" => Vec::new(),
                        t => vec![t.to_string()],
                    };
                    self.filter = None;
                    self.table.select(Some(0));
                    return Some(Do::Job(Job::Filter(patterns)));
                }
                KeyCode::Esc => self.filter = None,
                KeyCode::Backspace => {
                    typed.pop();
                }
                KeyCode::Char(c) => typed.push(c),
                _ => {}
            }
            return None;
        }
        let selected = self
            .table
            .selected()
            .and_then(|i| items.get(i.min(items.len().saturating_sub(1))));
        let on = |verb: &'static str| {
            selected.map(|it| {
                Do::Act(Act {
                    verb,
                    device: it.device.clone(),
                    unit: it.unit.name.clone(),
                })
            })
        };
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc if self.following.is_none() => Some(Do::Quit),
            KeyCode::Char('q') | KeyCode::Esc => {
                self.following = None;
                Some(Do::Job(Job::Follow(None)))
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.table.select_next();
                None
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.table.select_previous();
                None
            }
            KeyCode::Home | KeyCode::Char('g') => {
                self.table.select_first();
                None
            }
            KeyCode::End | KeyCode::Char('G') => {
                self.table.select_last();
                None
            }
            KeyCode::Char('/') => {
                self.filter = Some(String::new());
                None
            }
            KeyCode::Char('s') => on("start"),
            KeyCode::Char('x') => on("stop"),
            KeyCode::Char('r') => on("restart"),
            KeyCode::Enter | KeyCode::Char('l') => {
                let it = selected?;
                if self.following.as_deref() == Some(&it.label()) {
                    self.following = None;
                    return Some(Do::Job(Job::Follow(None)));
                }
                self.following = Some(it.label());
                let what = (it.device.clone(), it.unit.name.clone());
                Some(Do::Job(Job::Follow(Some(what))))
            }
            _ => None,
        }
    }

    fn draw(&mut self, f: &mut Frame, seen: &Seen) {
        let journal = self.following.is_some();
        let [head, body, pane, foot] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Percentage(if journal { 45 } else { 0 }),
            Constraint::Length(1),
        ])
        .areas(f.area());
        let running = seen
            .items
            .iter()
            .filter(|i| i.unit.state == UnitState::Running)
            .count();
        let failed = seen
            .items
            .iter()
            .filter(|i| i.unit.state == UnitState::Failed)
            .count();
        let host = seen.items.first().map_or("", |i| i.unit.host.as_str());
        let mut title = format!(
            "asyncmd top - {host} - {} units, {running} running, {failed} failed",
            seen.items.len()
        );
        if let Some(e) = &seen.error {
            title.push_str(&format!(" - {e}"));
        }
        f.render_widget(
            Paragraph::new(title).style(Style::new().add_modifier(Modifier::BOLD)),
            head,
        );

        let now = now_us();
        let mut header = vec![
            "UNIT", "STATE", "SINCE", "RESTARTS", "PID", "CPU%", "MEM", "STATS",
        ];
        if self.many {
            header.insert(0, "DEVICE");
        }
        let rows: Vec<Row> = seen
            .items
            .iter()
            .map(|it| {
                let u = &it.unit;
                let color = match u.state {
                    UnitState::Running => Color::Green,
                    UnitState::Failed => Color::Red,
                    UnitState::Restarting | UnitState::Stopping | UnitState::Starting => {
                        Color::Yellow
                    }
                    _ => Color::Reset,
                };
                let mut cells = vec![
                    Cell::from(u.name.clone()),
                    Cell::from(u.state.as_str()).style(Style::new().fg(color)),
                    Cell::from(u.since_us.map(|s| ago(now, s)).unwrap_or_default()),
                    Cell::from(u.restarts.to_string()),
                    Cell::from(u.pid.map(|p| p.to_string()).unwrap_or_default()),
                    Cell::from(it.cpu.map(|c| format!("{c:.1}")).unwrap_or_default()),
                    Cell::from(u.memory_bytes.map(memory).unwrap_or_default()),
                    Cell::from(stats(u)),
                ];
                if self.many {
                    cells.insert(0, Cell::from(it.device.clone().unwrap_or_default()));
                }
                Row::new(cells)
            })
            .collect();
        let mut widths = vec![
            Constraint::Min(16),
            Constraint::Length(10),
            Constraint::Length(14),
            Constraint::Length(8),
            Constraint::Length(7),
            Constraint::Length(6),
            Constraint::Length(7),
            Constraint::Fill(1),
        ];
        if self.many {
            widths.insert(0, Constraint::Length(12));
        }
        // A selection past the end (units went) falls back to the last one.
        if let Some(last) = seen.items.len().checked_sub(1) {
            if self.table.selected().is_none_or(|i| i > last) {
                self.table
                    .select(Some(last.min(self.table.selected().unwrap_or(0))));
            }
        }
        let table = Table::new(rows, widths)
            .header(Row::new(header).style(Style::new().add_modifier(Modifier::REVERSED)))
            .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD));
        f.render_stateful_widget(table, body, &mut self.table);

        if let Some(unit) = &self.following {
            let height = pane.height.saturating_sub(2) as usize;
            let skip = seen.journal.len().saturating_sub(height);
            let lines: Vec<Line> = seen.journal[skip..]
                .iter()
                .map(|l| Line::from(l.as_str()))
                .collect();
            let block =
                Block::bordered().title(format!(" journal of {unit} (following; q closes) "));
            f.render_widget(Paragraph::new(lines).block(block), pane);
        }

        let foot_text = match &self.filter {
            Some(typed) => Line::from(vec![
                Span::styled(
                    "filter (glob, Enter to apply, Esc to cancel): ",
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(typed.clone()),
            ]),
            None => Line::from(vec![
                Span::styled(
                    "↑↓ select  s start  x stop  r restart  l journal  / filter  q quit",
                    Style::new().add_modifier(Modifier::DIM),
                ),
                Span::raw(if seen.note.is_empty() {
                    String::new()
                } else {
                    format!("   {}", seen.note)
                }),
            ]),
        };
        f.render_widget(Paragraph::new(foot_text), foot);
    }
}

/// `12.3M`, as top writes resident memory.
fn memory(bytes: u64) -> String {
    let mib = bytes as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{:.1}G", mib / 1024.0)
    } else {
        format!("{mib:.1}M")
    }
}

/// A unit's stats on one line: `temp: 21.5; toggles: 3`.
fn stats(u: &UnitStatus) -> String {
    u.stats
        .iter()
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}: {s}"),
            other => format!("{k}: {other}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}
