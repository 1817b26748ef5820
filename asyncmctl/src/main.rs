//! `asyncmctl`: inspect and control the units of a running asyncmdd, like systemctl.
//!
//! Exit codes follow systemctl: 0 all shown units are running (or the action worked), 1 the
//! action failed or the daemon could not be reached, 3 a unit is not running, 4 no such unit.

mod view;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use asyncmd_proto::agent::AgentClient;
use asyncmd_proto::client::Client;
use std::fmt::Write as _;

use asyncmd_proto::{endpoint, ActionOutcome, Change, ErrorCode, Request, Response};
use clap::{Parser, Subcommand};

/// Inspect and control the units of a running asyncmdd.
#[derive(Parser)]
#[command(name = "asyncmctl", version, after_help = EXIT_STATUS)]
struct Cli {
    /// Control socket [default: $ASYNCMD_SOCKET, else the daemon's default path].
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Talk to a board's agent instead of asyncmdd: tcp:HOST:PORT or a serial device
    /// (/dev/ttyACM0, /dev/ttyACM0@115200).
    #[arg(long, global = true, value_name = "ADDR", conflicts_with = "socket")]
    agent: Option<String>,
    /// Talk to devices of a fleet through an MQTT broker: mqtt://HOST[:PORT] or
    /// mqtts://HOST[:PORT] (with --device).
    #[arg(long, global = true, value_name = "URL", conflicts_with_all = ["socket", "agent"], requires = "device")]
    mqtt: Option<String>,
    #[command(flatten)]
    fleet: Fleet,
    /// Trust a daemon that runs as USER (a name or uid) besides root and yourself.
    #[arg(long, global = true, value_name = "USER")]
    expect_user: Option<String>,
    /// Print the answer as JSON (read commands).
    #[arg(long, global = true)]
    json: bool,
    /// Never colour the output (colour is only used on a terminal, and never with NO_COLOR).
    #[arg(long, global = true)]
    no_color: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show units: one line each, or the detailed view (with journal lines) for one unit name.
    Status {
        /// Unit names or globs (`hello`, `hello.service`, `*.service`); all when none.
        patterns: Vec<String>,
        /// Journal lines in the detailed view.
        #[arg(short = 'n', long, default_value_t = 10, value_name = "N")]
        lines: u32,
        /// Detailed view for every unit shown.
        #[arg(short, long)]
        verbose: bool,
    },
    /// One row per unit: UNIT, ENABLED, ACTIVE, SUB, DESCRIPTION.
    List {
        /// Unit names or globs; all when none.
        patterns: Vec<String>,
    },
    /// Start units.
    Start {
        /// Unit names or globs.
        #[arg(required = true)]
        units: Vec<String>,
    },
    /// Stop units (SIGTERM to the process group, SIGKILL after the stop timeout).
    Stop {
        /// Unit names or globs.
        #[arg(required = true)]
        units: Vec<String>,
    },
    /// Stop then start units.
    Restart {
        /// Unit names or globs.
        #[arg(required = true)]
        units: Vec<String>,
    },
    /// Enable units in services.config (they start at boot).
    Enable {
        /// Unit names or globs.
        #[arg(required = true)]
        units: Vec<String>,
        /// Also start them now.
        #[arg(long)]
        now: bool,
    },
    /// Disable units in services.config (they do not start at boot).
    Disable {
        /// Unit names or globs.
        #[arg(required = true)]
        units: Vec<String>,
        /// Also stop them now.
        #[arg(long)]
        now: bool,
    },
    /// Set a unit's args and/or kwargs in services.config, for its next start.
    Config {
        /// Unit name.
        unit: String,
        /// Arguments appended to its command line, as a JSON array: '[2, "x"]'.
        #[arg(long, value_name = "JSON", value_parser = parse_json)]
        args: Option<serde_json::Value>,
        /// Keyword arguments (environment variables), as a JSON object: '{"sleep": 3}'.
        #[arg(long, value_name = "JSON", value_parser = parse_json)]
        kwargs: Option<serde_json::Value>,
    },
    /// Re-read unit files and services.config; apply only what changed.
    Reload {
        /// Print what would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Load unit files added to the units directory since boot, and start them.
    Load {
        /// Unit names.
        #[arg(required = true)]
        units: Vec<String>,
    },
    /// Stop units and forget them.
    Unload {
        /// Unit names or globs.
        #[arg(required = true)]
        units: Vec<String>,
    },
    /// Debug mode: every status shown in full, with args, kwargs, runtime and traceback.
    Debug {
        /// on or off; shows the mode when left out.
        #[arg(value_parser = ["on", "off"])]
        mode: Option<String>,
    },
    /// Forget units' restart history and start limit; failed units become inactive.
    ResetFailed {
        /// Unit names or globs; every failed unit when none.
        units: Vec<String>,
    },
}

/// How to reach devices through a broker.
#[derive(clap::Args)]
struct Fleet {
    /// The device id (its mqtt unit's hostname), or `all` for every device that answers
    /// within 2 s.
    #[arg(long, global = true, value_name = "ID", requires = "mqtt")]
    device: Option<String>,
    /// The broker's user name.
    #[arg(long, global = true, value_name = "USER")]
    mqtt_user: Option<String>,
    /// A file holding the broker's password [else $ASYNCMD_MQTT_PASSWORD].
    #[arg(long, global = true, value_name = "FILE")]
    mqtt_password_file: Option<PathBuf>,
    /// The CA certificate (PEM) of an mqtts:// broker [else the system's].
    #[arg(long, global = true, value_name = "FILE")]
    mqtt_ca: Option<PathBuf>,
}

impl Fleet {
    /// The broker at `url`, with this command line's credentials.
    fn broker(&self, url: &str) -> Result<asyncmd_proto::mqtt::Broker, String> {
        let password = match &self.mqtt_password_file {
            Some(f) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| format!("--mqtt-password-file {}: {e}", f.display()))?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
            None => std::env::var("ASYNCMD_MQTT_PASSWORD").ok(),
        };
        Ok(asyncmd_proto::mqtt::Broker {
            url: url.to_string(),
            user: self.mqtt_user.clone(),
            password,
            ca: self.mqtt_ca.clone(),
        })
    }
}

fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not valid JSON: {e}"))
}

/// The exit codes, as `--help` tells them.
const EXIT_STATUS: &str = "Exit status (as systemctl's):
  0  done; every unit shown is running (a bare `status`: every unit is as it is meant to be)
  1  the action failed, or asyncmdd could not be reached
  2  the command line is wrong
  3  a unit shown is not running (a bare `status`: a unit failed, or an enabled unit that is
     no finished oneshot and has no schedule is not running)
  4  a name or pattern matched no unit (the others are still shown or acted on)";

const EXIT_FAILED: u8 = 1;
const EXIT_NOT_RUNNING: u8 = 3;
const EXIT_NO_UNIT: u8 = 4;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = asyncmd_proto::text::color_enabled(cli.no_color);
    let (req, shape) = request(cli.command);
    // Each answer, with the device it came from when it came over MQTT.
    let answers: Result<Vec<(Option<String>, Response)>, String> = match (&cli.agent, &cli.mqtt) {
        (Some(addr), _) => AgentClient::connect(addr)
            .and_then(|mut c| c.call(req))
            .map(|r| vec![(None, r)])
            .map_err(|e| e.to_string()),
        (None, Some(url)) => {
            let device = cli.fleet.device.clone().unwrap_or_default();
            cli.fleet
                .broker(url)
                .and_then(|b| asyncmd_proto::mqtt::Fleet::connect(&b))
                .and_then(|mut f| f.call(&device, &req))
                .map(|list| {
                    list.into_iter()
                        .filter_map(|(d, mut resp)| {
                            (!resp.is_empty()).then(|| (Some(d), resp.remove(0)))
                        })
                        .collect()
                })
        }
        (None, None) => {
            let path = endpoint::socket_path(cli.socket.as_deref());
            cli.expect_user
                .as_deref()
                .map(asyncmd_proto::client::uid_of)
                .transpose()
                .and_then(|expect| {
                    Client::connect_expecting(&path, expect)
                        .and_then(|mut c| c.call(req))
                        .map(|r| vec![(None, r)])
                        .map_err(|e| e.to_string())
                })
        }
    };
    let answers = match answers {
        Ok(a) => a,
        Err(e) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({"error": {"code": "unreachable", "message": e}})
                );
            }
            return fail(EXIT_FAILED, &e);
        }
    };
    let many = cli.fleet.device.as_deref() == Some("all");
    let mut code = 0;
    let mut out = String::new();
    let mut json_all = serde_json::Map::new();
    for (device, resp) in answers {
        if many && !cli.json {
            let name = device.as_deref().unwrap_or("");
            let _ = writeln!(out, "{}", view::device_header(name, color));
        }
        let mut one = String::new();
        let c = match show(resp, cli.json, shape, color, &mut one) {
            Ok(c) => c,
            Err((c, msg)) => {
                match &device {
                    Some(d) if many => eprintln!("asyncmctl: {d}: {msg}"),
                    // Said the same whether one name or all of them matched nothing.
                    _ if c == EXIT_NO_UNIT => eprintln!("{msg}"),
                    _ => eprintln!("asyncmctl: {msg}"),
                }
                c
            }
        };
        code = code.max(c);
        if many && cli.json {
            let v = serde_json::from_str(&one).unwrap_or(serde_json::Value::Null);
            json_all.insert(device.unwrap_or_default(), v);
        } else {
            out.push_str(&one);
        }
    }
    if many && cli.json {
        out = json(&json_all);
    }
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a message.
    let _ = stdout
        .write_all(out.as_bytes())
        .and_then(|_| stdout.flush());
    ExitCode::from(code)
}

/// Renders one answer into `out`; the exit code, or the code and message of a failure.
fn show(
    resp: Response,
    as_json: bool,
    shape: Shape,
    color: bool,
    out: &mut String,
) -> Result<u8, (u8, String)> {
    let code = match resp {
        Response::Status {
            units,
            debug,
            missing,
        } => {
            let detailed = shape.detailed || debug;
            if as_json {
                *out = json(&units);
            } else {
                let now = asyncmd_proto::text::now_us();
                for u in &units {
                    if detailed {
                        view::detailed(out, u, now, color);
                    } else {
                        view::compact(out, u, now, color);
                    }
                }
            }
            let not_running = if shape.bare {
                units.iter().any(view::unwell)
            } else {
                !units.iter().all(|u| u.state.is_active())
            };
            let code = if not_running { EXIT_NOT_RUNNING } else { 0 };
            code.max(report_missing(&missing))
        }
        Response::List { units, missing } => {
            if as_json {
                *out = json(&units);
            } else {
                view::list(out, &units, color);
            }
            report_missing(&missing)
        }
        Response::Actions { results } => {
            let mut code = 0;
            for r in &results {
                match r.outcome {
                    ActionOutcome::Ok if !r.message.is_empty() && !as_json => {
                        let _ = writeln!(out, "{}: {}", r.unit, r.message);
                    }
                    ActionOutcome::Ok => {}
                    ActionOutcome::NoSuchUnit => {
                        eprintln!("{}", r.message);
                        code = EXIT_NO_UNIT;
                    }
                    ActionOutcome::Failed => {
                        eprintln!("Failed on {}: {}", r.unit, r.message);
                        code = code.max(EXIT_FAILED);
                    }
                }
            }
            if as_json {
                *out = json(&results);
            }
            code
        }
        Response::Reload {
            dry_run,
            changes,
            unchanged,
        } => {
            if as_json {
                *out = json(&changes);
            } else {
                for c in &changes {
                    let _ = writeln!(out, "{}", c.line(dry_run));
                }
                let _ = writeln!(
                    out,
                    "{}",
                    Change::summary(dry_run, changes.len(), unchanged)
                );
            }
            if changes.iter().all(|c| c.outcome == ActionOutcome::Ok) {
                0
            } else {
                EXIT_FAILED
            }
        }
        Response::Error { code, message } => {
            let exit = match code {
                ErrorCode::NoSuchUnit => EXIT_NO_UNIT,
                _ => EXIT_FAILED,
            };
            if as_json {
                *out = json(&serde_json::json!({"error": {"code": code, "message": message}}));
            }
            return Err((exit, message));
        }
        other => {
            return Err((
                EXIT_FAILED,
                format!("unexpected answer from asyncmdd: {other:?}"),
            ))
        }
    };
    Ok(code)
}

/// How an answer is shown.
#[derive(Debug, Clone, Copy, Default)]
struct Shape {
    /// In the detailed view.
    detailed: bool,
    /// A status of every unit (no names given): a unit that is not meant to run now does not
    /// make the exit code 3.
    bare: bool,
}

/// Tells on stderr of each name that matched nothing; the exit code that makes.
fn report_missing(missing: &[asyncmd_proto::ActionResult]) -> u8 {
    for m in missing {
        eprintln!("{}", m.message);
    }
    if missing.is_empty() {
        0
    } else {
        EXIT_NO_UNIT
    }
}

/// The request a command line makes, and how its answer is shown.
fn request(command: Command) -> (Request, Shape) {
    let req = match command {
        Command::Status {
            patterns,
            lines,
            verbose,
        } => {
            let one_name = patterns.len() == 1 && !asyncmd_proto::unit::is_glob(&patterns[0]);
            let detailed = verbose || one_name;
            let lines = if detailed { lines } else { 0 };
            let bare = patterns.is_empty();
            return (
                Request::Status { patterns, lines },
                Shape { detailed, bare },
            );
        }
        Command::List { patterns } => Request::List { patterns },
        Command::Start { units } => Request::Start { units },
        Command::Stop { units } => Request::Stop { units },
        Command::Restart { units } => Request::Restart { units },
        Command::Enable { units, now } => Request::Enable { units, now },
        Command::Disable { units, now } => Request::Disable { units, now },
        Command::Config { unit, args, kwargs } => Request::Config { unit, args, kwargs },
        Command::Reload { dry_run } => Request::Reload { dry_run },
        Command::Load { units } => Request::Load { units },
        Command::Unload { units } => Request::Unload { units },
        Command::Debug { mode } => Request::Debug {
            on: mode.as_deref().map(|m| m == "on"),
        },
        Command::ResetFailed { units } => Request::ResetFailed { units },
    };
    (req, Shape::default())
}

fn json<T: serde::Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

fn fail(code: u8, msg: &str) -> ExitCode {
    eprintln!("asyncmctl: {msg}");
    ExitCode::from(code)
}
