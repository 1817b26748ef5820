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
use asyncmd_proto::text::local_time;
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
    #[arg(short = 'f', long, short_alias = 'F')]
    follow: bool,
    /// Only entries of these units (names or globs; repeatable).
    #[arg(short = 'u', long = "unit", value_name = "UNIT")]
    units: Vec<String>,
    /// Only the newest N entries [default: all; 10 when following].
    #[arg(short = 'n', long, value_name = "N")]
    lines: Option<u64>,
    /// Only entries whose message matches this regular expression.
    #[arg(short = 'g', long, value_name = "REGEX")]
    grep: Option<String>,
    /// Only entries at this level or more severe: debug, info, warning, error, critical (or 0-7).
    #[arg(short = 'p', long = "priority", value_name = "LEVEL")]
    level: Option<Level>,
    /// Only entries since this time: "2026-11-25 10:00:00", "10:00", "today", "yesterday",
    /// "-5m", "5 min ago", or RFC 3339.
    #[arg(long, value_name = "TIME", value_parser = since::parse, allow_hyphen_values = true)]
    since: Option<i64>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Output::Short)]
    output: Output,
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
    /// Never colour the output.
    #[arg(long)]
    no_color: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// `2026-11-25 10:00:19 [host] [INFO] [hello.service] LED 3 toggled!`
    Short,
    /// One JSON object per line.
    Json,
    /// The message only.
    Cat,
}

/// One entry in `-o json`.
#[derive(serde::Serialize)]
struct JsonLine<'a> {
    seq: u64,
    time: String,
    time_us: i64,
    mono_us: u64,
    host: &'a str,
    level: Level,
    unit: &'a str,
    msg: &'a str,
}

/// Renders entry batches as `-o json` lines (short and cat lines come rendered by the daemon).
fn json_lines(text: &mut Vec<u8>, host: &str, entries: &[Entry]) {
    text.clear();
    for e in entries {
        let line = JsonLine {
            seq: e.seq,
            time: local_time(e.time_us),
            time_us: e.time_us,
            mono_us: e.mono_us,
            host,
            level: e.level,
            unit: &e.unit,
            msg: &e.msg,
        };
        let _ = serde_json::to_writer(&mut *text, &line);
        text.push(b'\n');
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = asyncmd_proto::text::color_enabled(cli.no_color);
    if let Some(addr) = cli.agent.clone() {
        return agent::journal(&addr, cli, color);
    }
    if let Some(url) = cli.mqtt.clone() {
        return fleet::journal(&url, cli, color);
    }
    let query = JournalQuery {
        units: cli.units,
        lines: cli.lines.or(if cli.follow { Some(10) } else { None }),
        grep: cli.grep,
        level: cli.level,
        since_us: cli.since,
        after_seq: None,
        follow: cli.follow,
        // Short and cat lines are rendered by the daemon: one copy to stdout here, no JSON.
        text: match cli.output {
            Output::Short => Some(TextFormat {
                style: TextStyle::Short,
                color,
            }),
            Output::Cat => Some(TextFormat {
                style: TextStyle::Cat,
                color,
            }),
            Output::Json => None,
        },
    };
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
    let mut json = Vec::with_capacity(64 * 1024);
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    // Names that matched nothing (when others did) make the exit code 4 once all is read.
    let mut done = ExitCode::SUCCESS;
    loop {
        let resp = match next(&mut client, cli.follow) {
            Ok(Some(r)) => r,
            // Our reader went away: nothing more to do.
            Ok(None) => return done,
            Err(e) => return fail(&e.to_string()),
        };
        let (missed, lines) = match resp {
            Response::Entries {
                host,
                entries,
                missed,
            } => {
                json_lines(&mut json, &host, &entries);
                (missed, Ok(&json[..]))
            }
            Response::Text { bytes, missed } => (missed, client.payload(bytes as usize)),
            Response::End { .. } => return done,
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
            let _ = out.flush();
            eprintln!("-- {missed} entries missed: this reader fell behind the journal ring --");
        }
        let written = match lines {
            Ok(bytes) => out.write_all(bytes).and_then(|_| out.flush()),
            Err(e) => return fail(&e.to_string()),
        };
        match written {
            Ok(()) => {}
            // Our reader went away (`| head`): that is how a pipeline ends, not an error.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return done,
            Err(e) => return fail(&format!("cannot write output: {e}")),
        }
    }
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
