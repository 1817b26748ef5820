//! `asyncmjournal`: read and follow the ring journal of a running asyncmdd, like journalctl.
//!
//! Filtering happens in the daemon; this program asks, prints and, when following, flushes
//! every batch as it arrives and exits quietly (status 0) once its output pipe is closed.

mod agent;
mod fleet;
mod since;

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;

use asyncmd_proto::client::{Client, ClientError};
use asyncmd_proto::text::ColorWhen;
use asyncmd_proto::{
    endpoint, Entry, ErrorCode, JournalQuery, Level, Request, Response, TextFormat, TextStyle,
};
use clap::{Parser, ValueEnum};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// Read the journal of a running asyncmdd.
#[derive(Parser)]
#[command(
    name = "asyncmjournal",
    version,
    after_help = "Exit status:
  0  the entries were shown (or the reader of the output went away)
  1  asyncmdd could not be reached, or the query was refused
  2  the command line is wrong
  4  a unit named matched no unit (entries of the others are still shown)"
)]
struct Cli {
    /// Follow: print new entries as they are logged (-F works too, as with tail).
    #[arg(short = 'f', long, short_alias = 'F', conflicts_with = "reverse")]
    follow: bool,
    /// While following, miss nothing: the services' output waits whenever this follower falls
    /// more than half the journal behind (root and the daemon's user only; a follower that
    /// stops reading for 100 ms holds nothing back until it reads again).
    #[arg(long, requires = "follow", conflicts_with_all = ["agent", "mqtt"])]
    lossless: bool,
    /// Only entries of these units (names or globs; repeatable).
    #[arg(short = 'u', long = "unit", value_name = "UNIT")]
    units: Vec<String>,
    /// Only the newest N entries, or `all` [default: all; 10 when following].
    #[arg(short = 'n', long, value_name = "N", value_parser = parse_lines)]
    lines: Option<Lines>,
    /// Only entries whose message matches this regular expression; case-insensitive unless
    /// it has an upper-case letter.
    #[arg(short = 'g', long, value_name = "REGEX")]
    grep: Option<String>,
    /// Match --grep with case as it is written, whatever letters it has.
    #[arg(long)]
    case_sensitive: bool,
    /// Only entries at this level or more severe: debug, info, warning, error, critical (or
    /// syslog's names and numbers 0-7); FROM..TO for a range: -p err..warning.
    #[arg(short = 'p', long = "priority", value_name = "LEVEL", value_parser = levels)]
    level: Option<(Level, Option<Level>)>,
    /// Only entries since this time: "2026-11-25 10:00:00", "10:00", "today", "yesterday",
    /// "-5m", "5 min ago", or RFC 3339.
    #[arg(long, value_name = "TIME", value_parser = since::parse, allow_hyphen_values = true)]
    since: Option<i64>,
    /// Only entries until this time (the forms of --since, and "tomorrow", "+5m").
    #[arg(long, value_name = "TIME", value_parser = since::parse, allow_hyphen_values = true)]
    until: Option<i64>,
    /// Newest entries first.
    #[arg(short = 'r', long)]
    reverse: bool,
    /// This boot's entries: the journal lives in memory since asyncmdd started, so that is all
    /// of them (only 0, the current boot, can be asked for).
    #[arg(short = 'b', long = "boot", value_name = "ID", num_args = 0..=1,
          default_missing_value = "0")]
    boot: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Short)]
    output: Output,
    /// Times in UTC.
    #[arg(long)]
    utc: bool,
    /// Never page the output (on a terminal it goes through $PAGER, else less).
    #[arg(long)]
    no_pager: bool,
    /// Control socket [default: $ASYNCMD_SOCKET, else the daemon's default path].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Read a board's journal through its agent instead of asyncmdd's: tcp:HOST:PORT or a
    /// serial device (/dev/ttyACM0, /dev/ttyACM0@115200).
    #[arg(long, value_name = "ADDR", conflicts_with = "socket")]
    agent: Option<String>,
    /// Read a fleet device's journal through an MQTT broker: mqtt://HOST[:PORT] or
    /// mqtts://HOST[:PORT] (with --device).
    #[arg(long, value_name = "URL", conflicts_with_all = ["socket", "agent"], requires = "device")]
    mqtt: Option<String>,
    /// The device id (its mqtt unit's hostname).
    #[arg(long, value_name = "ID", requires = "mqtt")]
    device: Option<String>,
    /// The broker's user name.
    #[arg(long, value_name = "USER")]
    mqtt_user: Option<String>,
    /// A file holding the broker's password [else $ASYNCMD_MQTT_PASSWORD].
    #[arg(long, value_name = "FILE")]
    mqtt_password_file: Option<PathBuf>,
    /// The CA certificate (PEM) of an mqtts:// broker [else the system's].
    #[arg(long, value_name = "FILE")]
    mqtt_ca: Option<PathBuf>,
    /// Trust a daemon that runs as USER (a name or uid) besides root and yourself.
    #[arg(long, value_name = "USER")]
    expect_user: Option<String>,
    /// When to colour: auto (on a terminal; never with NO_COLOR, always with CLICOLOR_FORCE,
    /// not with TERM=dumb), always or never.
    #[arg(long, value_name = "WHEN", default_value = "auto", value_parser = str::parse::<ColorWhen>)]
    color: ColorWhen,
    /// The same as --color never.
    #[arg(long)]
    no_color: bool,
    /// Write this program's man page (asyncmjournal.1) into DIR.
    #[arg(long, hide = true, value_name = "DIR")]
    man: Option<PathBuf>,
}

impl Cli {
    /// `--grep` as the daemon is to match it: smart case, as journalctl's.
    fn grep(&self) -> Option<String> {
        let g = self.grep.as_ref()?;
        let sensitive = self.case_sensitive || g.chars().any(char::is_uppercase);
        Some(if sensitive {
            g.clone()
        } else {
            format!("(?i){g}")
        })
    }

    /// The least and most severe levels asked for.
    fn levels(&self) -> (Option<Level>, Option<Level>) {
        match self.level {
            Some((least, most)) => (Some(least), most),
            None => (None, None),
        }
    }

    /// How many of the newest entries to show: all when `None`.
    fn newest(&self) -> Option<u64> {
        match self.lines {
            Some(Lines(n)) => n,
            None if self.follow => Some(10),
            None => None,
        }
    }

    /// The query these options make (the daemon's rendering of text when `text`).
    fn query(&self, text: Option<TextFormat>) -> JournalQuery {
        let (level, level_max) = self.levels();
        JournalQuery {
            units: self.units.clone(),
            lines: self.newest(),
            grep: self.grep(),
            level,
            level_max,
            since_us: self.since,
            until_us: self.until,
            after_seq: None,
            follow: self.follow,
            text,
            lossless: self.lossless,
        }
    }
}

/// `-p LEVEL` or `-p FROM..TO`: the least severe level, and the most severe one of a range.
fn levels(s: &str) -> Result<(Level, Option<Level>), String> {
    let parse = |l: &str| l.parse::<Level>().map_err(|e| format!("'{l}': {e}"));
    match s.split_once("..") {
        None => Ok((parse(s)?, None)),
        Some((a, b)) => {
            let (a, b) = (parse(a)?, parse(b)?);
            Ok((a.min(b), Some(a.max(b))))
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// `2026-11-25 10:00:19 [host] [INFO] [hello.service] LED 3 toggled!`
    Short,
    /// `2026-11-25T10:00:19+01:00 [host] [INFO] [hello.service] LED 3 toggled!`
    ShortIso,
    /// `2026-11-25 10:00:19.123456 [host] [INFO] [hello.service] LED 3 toggled!`
    ShortPrecise,
    /// One JSON object per line.
    Json,
    /// One JSON object per entry, indented.
    JsonPretty,
    /// The message only.
    Cat,
}

impl Output {
    /// The text style the daemon renders it in; None for JSON, rendered here.
    fn style(self) -> Option<TextStyle> {
        match self {
            Output::Short => Some(TextStyle::Short),
            Output::ShortIso => Some(TextStyle::ShortIso),
            Output::ShortPrecise => Some(TextStyle::ShortPrecise),
            Output::Cat => Some(TextStyle::Cat),
            Output::Json | Output::JsonPretty => None,
        }
    }
}

/// One entry in `-o json`: the JSON schema of journal entries (version 1, as the README says).
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    seq: u64,
    /// RFC 3339, to the µs, with the offset from UTC (`2026-11-25T10:00:19.123456+01:00`).
    time: String,
    time_us: i64,
    mono_us: u64,
    host: &'a str,
    level: Level,
    unit: &'a str,
    msg: &'a str,
}

/// `-n`'s value: a count of entries, or none for `all` (as journalctl takes it).
#[derive(Clone, Copy, Debug)]
struct Lines(Option<u64>);

fn parse_lines(s: &str) -> Result<Lines, String> {
    if s == "all" {
        return Ok(Lines(None));
    }
    s.parse()
        .map(|n| Lines(Some(n)))
        .map_err(|_| format!("`{s}` is not a number of entries or `all`"))
}

/// Renders entry batches as `-o json` lines, or `-o json-pretty` objects (text styles come
/// rendered by the daemon).
fn json_lines(text: &mut Vec<u8>, host: &str, entries: &[Entry], pretty: bool, utc: bool) {
    text.clear();
    for e in entries {
        let line = JsonLine {
            seq: e.seq,
            time: rfc3339(e.time_us, utc),
            time_us: e.time_us,
            mono_us: e.mono_us,
            host,
            level: e.level,
            unit: &e.unit,
            msg: &e.msg,
        };
        let _ = if pretty {
            serde_json::to_writer_pretty(&mut *text, &line)
        } else {
            serde_json::to_writer(&mut *text, &line)
        };
        text.push(b'\n');
    }
}

/// `us` as RFC 3339 with µs and the offset of the local time zone (or UTC).
fn rfc3339(us: i64, utc: bool) -> String {
    use chrono::{Local, SecondsFormat, TimeZone, Utc};
    let (secs, micros) = (us.div_euclid(1_000_000), us.rem_euclid(1_000_000) as u32);
    let form = SecondsFormat::Micros;
    if utc {
        Utc.timestamp_opt(secs, micros * 1000)
            .single()
            .map(|t| t.to_rfc3339_opts(form, false))
    } else {
        Local
            .timestamp_opt(secs, micros * 1000)
            .single()
            .map(|t| t.to_rfc3339_opts(form, false))
    }
    .unwrap_or_default()
}

/// Where the output goes: stdout, or a pager when stdout is a terminal.
struct Out {
    w: Box<dyn Write>,
    pager: Option<std::process::Child>,
}

impl Out {
    /// Stdout, or `$PAGER` (else `less -FRSXMK`) fed through a pipe when stdout is a terminal
    /// and the output ends (no --follow, no --no-pager).
    fn open(cli: &Cli) -> Out {
        use std::io::IsTerminal;
        let stdout = || Out {
            w: Box::new(io::BufWriter::with_capacity(64 * 1024, io::stdout())),
            pager: None,
        };
        if cli.no_pager || cli.follow || !io::stdout().is_terminal() {
            return stdout();
        }
        let mut cmd = match std::env::var("PAGER") {
            Ok(p) if p.trim().is_empty() || p.trim() == "cat" => return stdout(),
            Ok(p) => {
                let mut c = std::process::Command::new("sh");
                c.arg("-c").arg(p);
                c
            }
            Err(_) => {
                let mut c = std::process::Command::new("less");
                c.arg("-FRSXMK");
                c
            }
        };
        cmd.env("LESS", "FRSXMK")
            .stdin(std::process::Stdio::piped());
        match cmd.spawn() {
            Ok(mut child) => match child.stdin.take() {
                Some(stdin) => Out {
                    w: Box::new(io::BufWriter::with_capacity(64 * 1024, stdin)),
                    pager: Some(child),
                },
                None => stdout(),
            },
            // No pager to be had: the terminal itself.
            Err(_) => stdout(),
        }
    }

    /// Flushes, closes the pager's input and waits for the reader to quit it.
    fn finish(mut self) {
        let _ = self.w.flush();
        drop(self.w);
        if let Some(mut p) = self.pager.take() {
            let _ = p.wait();
        }
    }
}

/// The command line, with `-b -1` (journalctl's previous boot) kept together as one option,
/// so it is answered as what it asks rather than as an unknown `-1`.
fn args() -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = Vec::new();
    let mut args = std::env::args_os().peekable();
    while let Some(a) = args.next() {
        let boot = a == "-b" || a == "--boot";
        let offset = args.peek().and_then(|n| n.to_str()).is_some_and(|n| {
            n.strip_prefix('-')
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        });
        if boot && offset {
            let mut joined = std::ffi::OsString::from("--boot=");
            joined.push(args.next().unwrap_or_default());
            out.push(joined);
        } else {
            out.push(a);
        }
    }
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(args());
    if let Some(dir) = &cli.man {
        let man = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command());
        return match man.generate_to(dir) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => fail(&format!("{}: {e}", dir.display())),
        };
    }
    let color = asyncmd_proto::text::color_enabled(cli.color, cli.no_color);
    if let Some(boot) = cli.boot.as_deref() {
        if boot != "0" {
            return fail(&format!(
                "-b {boot}: the journal lives in memory since asyncmdd started, so it holds \
                 only the current boot (-b or -b 0)"
            ));
        }
    }
    if let Some(addr) = cli.agent.clone() {
        return agent::journal(&addr, cli, color);
    }
    if let Some(url) = cli.mqtt.clone() {
        return fleet::journal(&url, cli, color);
    }
    // Short and cat lines are rendered by the daemon: one copy to stdout here, no JSON.
    let text = cli.output.style().map(|style| TextFormat {
        style,
        color,
        utc: cli.utc,
    });
    let query = cli.query(text);
    let path = endpoint::socket_path(cli.socket.as_deref());
    let expect = match cli
        .expect_user
        .as_deref()
        .map(asyncmd_proto::client::uid_of)
    {
        None => None,
        Some(Ok(uid)) => Some(uid),
        Some(Err(e)) => return fail(&e),
    };
    let mut client = match Client::connect_expecting(&path, expect) {
        Ok(c) => c,
        Err(e) => return fail(&e.to_string()),
    };
    if let Err(e) = client.send(Request::Journal(query)) {
        return fail(&e.to_string());
    }
    let mut out = Out::open(&cli);
    let code = read(&mut client, &cli, &mut out);
    out.finish();
    code
}

/// Reads the answer to the journal query off `client` and writes it to `out`: as it comes, or
/// all of it newest first with --reverse.
fn read(client: &mut Client, cli: &Cli, out: &mut Out) -> ExitCode {
    let mut json = Vec::with_capacity(64 * 1024);
    let pretty = cli.output == Output::JsonPretty;
    // With --reverse, everything is held and written at the end, newest first.
    let mut held: Option<Vec<u8>> = cli.reverse.then(Vec::new);
    let mut shown = false;
    // Names that matched nothing (when others did) make the exit code 4 once all is read.
    let mut done = ExitCode::SUCCESS;
    loop {
        let resp = match next(client, cli.follow) {
            Ok(Some(r)) => r,
            // Our reader went away: nothing more to do.
            Ok(None) => return done,
            // A follower's daemon stopped after it had been answering: that ends the journal,
            // it is no fault of the reader's.
            Err(ClientError::Closed) if cli.follow => {
                let _ = out.w.flush();
                eprintln!("-- asyncmdd stopped: the journal ends here --");
                return done;
            }
            Err(e) => return fail(&e.to_string()),
        };
        let (missed, lines) = match resp {
            Response::Entries {
                host,
                entries,
                missed,
            } => {
                json_lines(&mut json, &host, &entries, pretty, cli.utc);
                (missed, Ok(&json[..]))
            }
            Response::Text { bytes, missed } => (missed, client.payload(bytes as usize)),
            Response::End { .. } => {
                if let Some(all) = held.take() {
                    if write(out, &reversed(&all, pretty)).is_err() {
                        return done;
                    }
                }
                if !shown && cli.output.style().is_some() {
                    let _ = write(out, b"-- No entries --\n");
                }
                return done;
            }
            Response::Actions { results } => {
                for r in results {
                    eprintln!("{}", r.message);
                }
                done = ExitCode::from(EXIT_NO_UNIT);
                continue;
            }
            Response::Error {
                code: ErrorCode::NoSuchUnit,
                message,
            } => {
                eprintln!("{message}");
                return ExitCode::from(EXIT_NO_UNIT);
            }
            Response::Error { message, .. } => return fail(&message),
            other => return fail(&format!("unexpected answer from asyncmdd: {other:?}")),
        };
        if missed > 0 {
            let _ = out.w.flush();
            eprintln!("-- {missed} entries missed: this reader fell behind the journal ring --");
        }
        let bytes = match lines {
            Ok(bytes) => bytes,
            Err(e) => return fail(&e.to_string()),
        };
        shown |= !bytes.is_empty();
        if let Some(all) = held.as_mut() {
            all.extend_from_slice(bytes);
            continue;
        }
        match write(out, bytes) {
            Ok(()) => {}
            // Our reader went away (`| head`): that is how a pipeline ends, not an error.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return done,
            Err(e) => return fail(&format!("cannot write output: {e}")),
        }
    }
}

/// Writes `bytes` and flushes, so a follower's reader sees every batch at once.
fn write(out: &mut Out, bytes: &[u8]) -> io::Result<()> {
    out.w.write_all(bytes)?;
    out.w.flush()
}

/// The lines of `text` newest first: lines one by one, or the indented objects of
/// `-o json-pretty` whole.
fn reversed(text: &[u8], pretty: bool) -> Vec<u8> {
    let mut items: Vec<&[u8]> = Vec::new();
    if pretty {
        // Each object ends with a line that is "}" alone.
        let mut start = 0;
        let mut i = 0;
        while let Some(at) = text[i..].windows(2).position(|w| w == b"}\n") {
            let end = i + at + 2;
            if end == 2 || text[end - 3] == b'\n' {
                items.push(&text[start..end]);
                start = end;
            }
            i = end;
        }
    } else {
        items = text.split_inclusive(|&b| b == b'\n').collect();
    }
    items.reverse();
    items.concat()
}

/// The next response; when following, `None` as soon as stdout's reader has gone (a pipe whose
/// other end closed reports POLLERR), even if no entry is logged for a long time.
fn next(client: &mut Client, follow: bool) -> Result<Option<Response>, ClientError> {
    loop {
        if let Some(r) = client.buffered()? {
            return Ok(Some(r));
        }
        if follow {
            let stdout = io::stdout();
            let mut fds = [
                PollFd::new(client.as_fd(), PollFlags::POLLIN),
                PollFd::new(stdout.as_fd(), PollFlags::empty()),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(ClientError::Io(e.into())),
            }
            let gone = PollFlags::POLLERR | PollFlags::POLLHUP;
            if fds[1].revents().is_some_and(|r| r.intersects(gone)) {
                return Ok(None);
            }
            if fds[0].revents().is_none_or(|r| r.is_empty()) {
                continue;
            }
        }
        client.fill()?;
    }
}

/// The exit code when a unit named matched nothing.
const EXIT_NO_UNIT: u8 = 4;

fn fail(msg: &str) -> ExitCode {
    eprintln!("asyncmjournal: {msg}");
    ExitCode::FAILURE
}
