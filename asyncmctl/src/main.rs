//! `asyncmctl`: inspect and control the units of a running asyncmdd, like systemctl.
//!
//! Exit codes follow systemctl: 0 all shown units are running (or the action worked), 1 the
//! action failed or the daemon could not be reached, 3 a unit is not running, 4 no such unit.

mod link;
mod progress;
mod properties;
mod top;
mod tree;
mod view;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use asyncmd_proto::client::Client;
use link::Link;
use std::fmt::Write as _;

use asyncmd_proto::text::ColorWhen;
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
    /// When to colour: auto (on a terminal; never with NO_COLOR, always with CLICOLOR_FORCE,
    /// not with TERM=dumb), always or never.
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto",
          value_parser = str::parse::<ColorWhen>)]
    color: ColorWhen,
    /// The same as --color never.
    #[arg(long, global = true)]
    no_color: bool,
    /// Print nothing on stdout; the exit code tells (is-active, is-enabled, is-failed).
    #[arg(short, long, global = true)]
    quiet: bool,
    /// start, stop, restart: ask, and return at once without waiting for the units.
    #[arg(long, global = true)]
    no_block: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show units: one line each, or the detailed view (with journal lines) for one unit name.
    Status {
        /// Unit names or globs (`hello`, `hello.service`, `*.service`); all when none.
        #[arg(add = units_known())]
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
        #[arg(add = units_known())]
        patterns: Vec<String>,
    },
    /// Start units.
    Start {
        /// Unit names or globs.
        #[arg(required = true, add = units_known())]
        units: Vec<String>,
    },
    /// Stop units (SIGTERM to the process group, SIGKILL after the stop timeout); the running
    /// units that require them are stopped first, and wait for them.
    Stop {
        /// Unit names or globs.
        #[arg(required = true, add = units_known())]
        units: Vec<String>,
        /// Say what would be stopped, and stop nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop then start units; the units that require them come back once they are ready.
    Restart {
        /// Unit names or globs.
        #[arg(required = true, add = units_known())]
        units: Vec<String>,
        /// Say what would be restarted, and touch nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Enable units in services.config (they start at boot).
    Enable {
        /// Unit names or globs.
        #[arg(required = true, add = units_known())]
        units: Vec<String>,
        /// Also start them now.
        #[arg(long)]
        now: bool,
    },
    /// Disable units in services.config (they do not start at boot).
    Disable {
        /// Unit names or globs.
        #[arg(required = true, add = units_known())]
        units: Vec<String>,
        /// Also stop them now.
        #[arg(long)]
        now: bool,
    },
    /// Set a unit's args and/or kwargs in services.config, for its next start.
    Config {
        /// Unit name.
        #[arg(add = units_known())]
        unit: String,
        /// Arguments appended to its command line, as a JSON array: '[2, "x"]'.
        #[arg(long, value_name = "JSON", value_parser = parse_json)]
        args: Option<serde_json::Value>,
        /// Keyword arguments (environment variables), as a JSON object: '{"sleep": 3}'.
        #[arg(long, value_name = "JSON", value_parser = parse_json)]
        kwargs: Option<serde_json::Value>,
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
        #[arg(required = true, add = units_known())]
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
        #[arg(add = units_known())]
        units: Vec<String>,
    },
    /// Whether units run: active, activating, deactivating, failed or inactive, one per line.
    #[command(after_help = "Exit status: 0 at least one unit is active; 3 none is; \
                            4 a name matched no unit.")]
    IsActive {
        /// Unit names or globs.
        #[arg(required = true, add = units_known())]
        units: Vec<String>,
    },
    /// Whether units start at boot: enabled, disabled, masked, or static (a task), one per line.
    #[command(
        after_help = "Exit status: 0 at least one unit is enabled (or static); 1 none \
                            is; 4 a name matched no unit."
    )]
    IsEnabled {
        /// Unit names or globs.
        #[arg(required = true, add = units_known())]
        units: Vec<String>,
    },
    /// Whether units failed: their active state, one per line.
    #[command(
        after_help = "Exit status: 0 at least one unit failed; 1 none did; 4 a name \
                            matched no unit."
    )]
    IsFailed {
        /// Unit names or globs.
        #[arg(required = true, add = units_known())]
        units: Vec<String>,
    },
    /// A unit's properties as KEY=VALUE lines (systemd's names where they mean the same).
    #[command(
        after_help = "Exit status: 0 shown; 1 a property asked for does not exist; \
                            4 a name matched no unit."
    )]
    Show {
        /// Unit names or globs.
        #[arg(required = true, add = units_known())]
        units: Vec<String>,
        /// Only these properties (repeat, or separate with commas): -p ActiveState,MainPID.
        #[arg(
            short = 'p',
            long = "property",
            value_name = "KEY",
            value_delimiter = ','
        )]
        properties: Vec<String>,
        /// Print only the values.
        #[arg(long)]
        value: bool,
    },
    /// A unit's file and its services.config entry, as they are on disk now.
    #[command(
        after_help = "Exit status: 0 shown; 1 refused (only root and the daemon's user \
                            may read unit files); 4 a name matched no unit."
    )]
    Cat {
        /// Unit names or globs.
        #[arg(required = true, add = units_known())]
        units: Vec<String>,
    },
    /// The units a unit requires, and theirs, as a tree (every unit nothing requires, when no
    /// unit is named).
    ListDependencies {
        /// The unit at the root.
        #[arg(add = units_known())]
        unit: Option<String>,
        /// The units that require it instead.
        #[arg(long)]
        reverse: bool,
        /// Follow `after` (ordering) instead of `requires`.
        #[arg(long)]
        after: bool,
    },
    /// Send a signal to units' processes.
    Kill {
        /// Unit names or globs.
        #[arg(required = true, add = units_known())]
        units: Vec<String>,
        /// The signal: a name (SIGHUP, HUP) or a number.
        #[arg(short, long, default_value = "SIGTERM")]
        signal: String,
        /// The main process only, or every process of the unit's run.
        #[arg(long, value_enum, default_value = "all")]
        kill_whom: Whom,
    },
    /// Mask units in services.config: nothing starts them (boot, start, enable, a schedule, a
    /// restart) until they are unmasked. A running unit goes on running.
    Mask {
        /// Unit names or globs.
        #[arg(required = true, add = units_known())]
        units: Vec<String>,
    },
    /// Unmask units.
    Unmask {
        /// Unit names or globs.
        #[arg(required = true, add = units_known())]
        units: Vec<String>,
    },
    /// With units: ask them to reload their configuration (their reload_signal, SIGHUP, to the
    /// main process). Without: what daemon-reload does.
    Reload {
        /// Unit names or globs.
        #[arg(add = units_known())]
        units: Vec<String>,
        /// With no units: print what would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Re-read unit files and services.config; apply only what changed.
    DaemonReload {
        /// Print what would change, and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// A live view of the units (and tasks): state, since, restarts, PID, CPU, memory, stats;
    /// keys to start, stop and restart the selected one, filter by glob, and follow its journal.
    Top {
        /// Seconds between refreshes.
        #[arg(
            short = 'd',
            long = "delay",
            default_value_t = 1.0,
            value_name = "SECS"
        )]
        interval: f64,
        /// Only units matching these globs.
        #[arg(add = units_known())]
        patterns: Vec<String>,
    },
    /// Print the shell's completion script, which completes commands, options and the names
    /// of the running daemon's units: `source <(asyncmctl completions bash)`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        #[arg(value_parser = ["bash", "zsh", "fish", "elvish", "powershell"])]
        shell: String,
    },
    /// Write this program's man pages (asyncmctl.1, and asyncmctl-COMMAND.1 for each command)
    /// into DIR.
    Man {
        /// Where to write them (/usr/local/share/man/man1).
        dir: PathBuf,
    },
}

/// Completes unit names from the running daemon (the socket of $ASYNCMD_SOCKET, else the
/// default), quietly nothing when there is none to ask.
fn units_known() -> clap_complete::engine::ArgValueCandidates {
    clap_complete::engine::ArgValueCandidates::new(|| {
        let path = endpoint::socket_path(None);
        let names = Client::connect(&path)
            .and_then(|mut c| c.call(Request::List { patterns: vec![] }))
            .map(|r| match r {
                Response::List { units, .. } => units.into_iter().map(|u| u.name).collect(),
                _ => Vec::new(),
            })
            .unwrap_or_default();
        names
            .into_iter()
            .map(clap_complete::engine::CompletionCandidate::new)
            .collect()
    })
}

/// The completion script of `shell`: it asks this program (by the path it was run as) to
/// complete each command line.
fn completions(shell: &str) -> Result<String, String> {
    let shells = clap_complete::env::Shells::builtins();
    let completer = shells
        .completer(shell)
        .ok_or_else(|| format!("no completion for {shell}"))?;
    let mut me = PathBuf::from(std::env::args_os().next().unwrap_or_default());
    if me.components().count() > 1 {
        if let Ok(dir) = std::env::current_dir() {
            me = dir.join(me);
        }
    }
    let mut out = Vec::new();
    completer
        .write_registration(
            "COMPLETE",
            "asyncmctl",
            "asyncmctl",
            &me.to_string_lossy(),
            &mut out,
        )
        .map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// Whom `kill` signals.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Whom {
    /// The unit's main process.
    Main,
    /// Every process of its run.
    All,
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

/// Where the command line says requests go.
fn link_of(cli: &Cli) -> Result<Link, String> {
    Ok(match (&cli.agent, &cli.mqtt) {
        (Some(addr), _) => Link::Agent {
            addr: addr.clone(),
            client: None,
        },
        (None, Some(url)) => Link::Mqtt {
            broker: cli.fleet.broker(url)?,
            device: cli.fleet.device.clone().unwrap_or_default(),
            fleet: None,
        },
        (None, None) => Link::Socket {
            path: endpoint::socket_path(cli.socket.as_deref()),
            expect: cli
                .expect_user
                .as_deref()
                .map(asyncmd_proto::client::uid_of)
                .transpose()?,
            client: None,
        },
    })
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
    // A shell asking for completions (COMPLETE=bash asyncmctl -- ...) is answered and exits.
    clap_complete::CompleteEnv::with_factory(<Cli as clap::CommandFactory>::command).complete();
    let cli = Cli::parse();
    match &cli.command {
        Command::Completions { shell } => {
            return match completions(shell) {
                Ok(script) => {
                    print!("{script}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(EXIT_FAILED, &e),
            };
        }
        Command::Man { dir } => {
            let cmd = <Cli as clap::CommandFactory>::command();
            return match clap_mangen::generate_to(cmd, dir) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(EXIT_FAILED, &format!("{}: {e}", dir.display())),
            };
        }
        _ => {}
    }
    let color = asyncmd_proto::text::color_enabled(cli.color, cli.no_color);
    let link = match link_of(&cli) {
        Ok(l) => l,
        Err(e) => return fail(EXIT_FAILED, &e),
    };
    if let Command::Top { interval, patterns } = &cli.command {
        let every = std::time::Duration::from_secs_f64(interval.clamp(0.1, 3600.0));
        return top::run(link, patterns.clone(), every);
    }
    let (req, mut shape) = request(cli.command);
    shape.quiet = cli.quiet;
    // Each answer, with the device it came from when it came over MQTT.
    let answers = match link {
        Link::Socket { path, expect, .. } => {
            let acts = match &req {
                Request::Start { units }
                | Request::Stop {
                    units,
                    dry_run: false,
                }
                | Request::Restart {
                    units,
                    dry_run: false,
                } => Some(units.clone()),
                _ => None,
            };
            (|| {
                let mut client =
                    Client::connect_expecting(&path, expect).map_err(|e| e.to_string())?;
                if cli.no_block && acts.is_some() {
                    // Asked: the daemon carries it out whether or not anyone waits.
                    client.send(req).map_err(|e| e.to_string())?;
                    return Ok(Vec::new());
                }
                use std::io::IsTerminal;
                let watch = acts.filter(|_| !cli.quiet && std::io::stderr().is_terminal());
                let progress = watch.map(|units| progress::Progress::start(&path, expect, units));
                let answer = client.call(req).map_err(|e| e.to_string());
                drop(progress);
                answer.map(|r| vec![(None, r)])
            })()
        }
        mut other => other.call(req),
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
        let c = match show(resp, cli.json, &shape, color, &mut one) {
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
    shape: &Shape,
    color: bool,
    out: &mut String,
) -> Result<u8, (u8, String)> {
    let code = match resp {
        Response::Status { units, missing, .. } if !matches!(shape.mode, Mode::Plain) => {
            let code = scripted(&units, as_json, shape, out)?;
            code.max(report_missing(&missing))
        }
        Response::List { units, missing } if !matches!(shape.mode, Mode::Plain) => {
            let code = match &shape.mode {
                Mode::IsEnabled => {
                    let rows = as_asked(&units, |u| &u.name, &shape.asked);
                    let words: Vec<&str> = rows.into_iter().map(enabled_word).collect();
                    if as_json {
                        *out = json(&words);
                    } else if !shape.quiet {
                        for w in &words {
                            let _ = writeln!(out, "{w}");
                        }
                    }
                    if words.iter().any(|w| matches!(*w, "enabled" | "static")) {
                        0
                    } else {
                        EXIT_FAILED
                    }
                }
                Mode::Tree { root, edges } => {
                    if let Some(r) = root.as_deref() {
                        if !units.iter().any(|u| u.name == r) {
                            return Err((EXIT_NO_UNIT, format!("Unit {r} not found.")));
                        }
                    }
                    tree::render(out, &units, root.as_deref(), *edges, color);
                    0
                }
                _ => 0,
            };
            code.max(report_missing(&missing))
        }
        Response::Files { files, missing } => {
            if as_json {
                *out = json(&files);
            } else {
                for (i, f) in files.iter().enumerate() {
                    if i > 0 {
                        out.push('\n');
                    }
                    let _ = writeln!(out, "# {}", f.path);
                    match &f.error {
                        Some(e) => eprintln!("asyncmctl: {e}"),
                        None => out.push_str(&f.text),
                    }
                    if !f.text.is_empty() && !f.text.ends_with('\n') {
                        out.push('\n');
                    }
                    if let Some(entry) = &f.config {
                        let stem = f.unit.strip_suffix(asyncmd_proto::unit::SUFFIX);
                        let stem = stem.unwrap_or(&f.unit);
                        let _ = writeln!(out, "\n# services.config: \"{stem}\"");
                        let entry = serde_json::to_string_pretty(entry).unwrap_or_default();
                        let _ = writeln!(out, "{entry}");
                    }
                }
            }
            let unreadable = files.iter().any(|f| f.error.is_some());
            let code = if unreadable { EXIT_FAILED } else { 0 };
            code.max(report_missing(&missing))
        }
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
#[derive(Debug, Clone, Default)]
struct Shape {
    /// In the detailed view.
    detailed: bool,
    /// A status of every unit (no names given): a unit that is not meant to run now does not
    /// make the exit code 3.
    bare: bool,
    /// Which command's view.
    mode: Mode,
    /// Nothing on stdout (`-q`).
    quiet: bool,
    /// The names as given, whose order the answer is shown in (is-active, show...).
    asked: Vec<String>,
}

/// The commands that show an answer their own way.
#[derive(Debug, Clone, Default)]
enum Mode {
    /// status, list, and the actions.
    #[default]
    Plain,
    IsActive,
    IsEnabled,
    IsFailed,
    Show {
        properties: Vec<String>,
        value: bool,
    },
    Tree {
        root: Option<String>,
        edges: tree::Edges,
    },
}

/// `units` in the order their names were given (names given whole first, in that order; what
/// only a glob matched after them, in name order), as systemctl prints them.
fn as_asked<'a, T>(units: &'a [T], name: impl Fn(&T) -> &str, asked: &[String]) -> Vec<&'a T> {
    let rank = |n: &str| {
        asked
            .iter()
            .position(|a| n == a || n.strip_suffix(asyncmd_proto::unit::SUFFIX) == Some(a))
            .unwrap_or(asked.len())
    };
    let mut sorted: Vec<&T> = units.iter().collect();
    sorted.sort_by_key(|u| rank(name(u)));
    sorted
}

/// How is-active, is-failed and show render a status answer; their exit code.
fn scripted(
    units: &[asyncmd_proto::UnitStatus],
    as_json: bool,
    shape: &Shape,
    out: &mut String,
) -> Result<u8, (u8, String)> {
    let units = as_asked(units, |u| &u.name, &shape.asked);
    let words = || -> Vec<&str> { units.iter().map(|u| u.state.active_word()).collect() };
    let mut print = |words: Vec<&str>| {
        if as_json {
            *out = json(&words);
        } else if !shape.quiet {
            for w in words {
                let _ = writeln!(out, "{w}");
            }
        }
    };
    let any = |state| units.iter().any(|u| u.state == state);
    Ok(match &shape.mode {
        Mode::IsActive => {
            print(words());
            if any(asyncmd_proto::UnitState::Running) {
                0
            } else {
                EXIT_NOT_RUNNING
            }
        }
        Mode::IsFailed => {
            print(words());
            if any(asyncmd_proto::UnitState::Failed) {
                0
            } else {
                EXIT_FAILED
            }
        }
        Mode::Show { properties, value } => {
            if let Some(first) = units.first() {
                let unknown = properties::unknown(properties, first);
                if !unknown.is_empty() {
                    let msg = format!(
                        "no property {} (asyncmctl show UNIT lists them all)",
                        unknown.join(", ")
                    );
                    return Err((EXIT_FAILED, msg));
                }
            }
            let wanted = |k: &str| properties.is_empty() || properties.iter().any(|p| p == k);
            if as_json {
                let all: Vec<serde_json::Map<String, serde_json::Value>> = units
                    .iter()
                    .map(|u| {
                        properties::of(u)
                            .into_iter()
                            .filter(|(k, _)| wanted(k))
                            .map(|(k, v)| (k.to_string(), v.into()))
                            .collect()
                    })
                    .collect();
                *out = json(&all);
            } else {
                for (i, u) in units.iter().enumerate() {
                    if i > 0 {
                        out.push('\n');
                    }
                    properties::render(out, u, properties, *value);
                }
            }
            0
        }
        Mode::Plain | Mode::IsEnabled | Mode::Tree { .. } => 0,
    })
}

/// `enabled`, `disabled`, `masked`, or `static` for a task (it has no entry to enable).
fn enabled_word(u: &asyncmd_proto::unit::UnitSummary) -> &'static str {
    match (u.kind, u.masked, u.enabled) {
        (asyncmd_proto::UnitType::Task, _, _) => "static",
        (_, true, _) => "masked",
        (_, false, true) => "enabled",
        (_, false, false) => "disabled",
    }
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
            let shape = Shape {
                detailed,
                bare,
                ..Shape::default()
            };
            return (Request::Status { patterns, lines }, shape);
        }
        Command::List { patterns } => Request::List { patterns },
        Command::Start { units } => Request::Start { units },
        Command::Stop { units, dry_run } => Request::Stop { units, dry_run },
        Command::Restart { units, dry_run } => Request::Restart { units, dry_run },
        Command::Enable { units, now } => Request::Enable { units, now },
        Command::Disable { units, now } => Request::Disable { units, now },
        Command::Config { unit, args, kwargs } => Request::Config { unit, args, kwargs },
        Command::Load { units } => Request::Load { units },
        Command::Unload { units } => Request::Unload { units },
        Command::Debug { mode } => Request::Debug {
            on: mode.as_deref().map(|m| m == "on"),
        },
        Command::ResetFailed { units } => Request::ResetFailed { units },
        Command::IsActive { units } => return status_as(units, Mode::IsActive),
        Command::IsFailed { units } => return status_as(units, Mode::IsFailed),
        Command::Show {
            units,
            properties,
            value,
        } => return status_as(units, Mode::Show { properties, value }),
        Command::IsEnabled { units } => {
            let shape = Shape {
                mode: Mode::IsEnabled,
                asked: units.clone(),
                ..Shape::default()
            };
            return (Request::List { patterns: units }, shape);
        }
        Command::ListDependencies {
            unit,
            reverse,
            after,
        } => {
            let root = unit.map(|u| {
                if u.ends_with(asyncmd_proto::unit::SUFFIX) {
                    u
                } else {
                    format!("{u}{}", asyncmd_proto::unit::SUFFIX)
                }
            });
            let shape = Shape {
                mode: Mode::Tree {
                    root,
                    edges: tree::Edges { after, reverse },
                },
                ..Shape::default()
            };
            return (Request::List { patterns: vec![] }, shape);
        }
        Command::Cat { units } => Request::Cat { units },
        Command::Kill {
            units,
            signal,
            kill_whom,
        } => Request::Kill {
            units,
            signal,
            whom: match kill_whom {
                Whom::Main => asyncmd_proto::KillWhom::Main,
                Whom::All => asyncmd_proto::KillWhom::All,
            },
        },
        Command::Mask { units } => Request::Mask { units },
        Command::Unmask { units } => Request::Unmask { units },
        Command::Reload { units, dry_run } if units.is_empty() => Request::Reload { dry_run },
        Command::Reload { units, .. } => Request::ReloadUnits { units },
        Command::DaemonReload { dry_run } => Request::Reload { dry_run },
        Command::Completions { .. } | Command::Man { .. } | Command::Top { .. } => {
            unreachable!("answered before any request")
        }
    };
    (req, Shape::default())
}

/// A status request without journal lines, shown as `mode` says.
fn status_as(patterns: Vec<String>, mode: Mode) -> (Request, Shape) {
    let shape = Shape {
        mode,
        asked: patterns.clone(),
        ..Shape::default()
    };
    (Request::Status { patterns, lines: 0 }, shape)
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
