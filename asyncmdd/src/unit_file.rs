//! Unit files: `units/NAME.service` in TOML, each parsed into a [`UnitFile`].
//!
//! Unknown keys, wrong types and bad values are errors that name the file, line and column, so
//! a typo never silently changes what runs.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use asyncmd_proto::UnitType;
use nix::sys::signal::Signal;
use serde::{Deserialize, Deserializer};

pub use asyncmd_proto::unit::SUFFIX;

/// What a unit runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Run {
    /// A process: program and arguments.
    Exec(Vec<String>),
    /// An in-process service of the runtime, by name.
    Builtin(String),
    /// A board's agent, reached over its serial line: its tasks become the daemon's.
    Agent(AgentLink),
}

/// A unit's `[agent]` section: where a board's agent answers, and the name its tasks go by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentLink {
    /// `tcp:HOST:PORT` or a serial device (`/dev/ttyACM0`, `/dev/ttyACM0@115200`).
    pub port: String,
    /// The board's name: its tasks show as `BOARD:TASK`.
    pub board: String,
}

pub use asyncmd_core::restart::{Backoff, Restart};

/// A unit's `[schedule]` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    /// When it runs.
    pub spec: asyncmd_core::schedule::Spec,
}

/// A `[health]` check: a command run every `interval` while the unit runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The check's argv; exit status 0 means healthy.
    pub exec: Vec<String>,
    /// Time between checks.
    pub interval: Duration,
    /// A check running longer fails.
    pub timeout: Duration,
    /// Consecutive failures that make the unit unhealthy.
    pub retries: u32,
}

/// A parsed unit file.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitFile {
    /// `hello.service`.
    pub name: String,
    /// The file it came from.
    pub source: PathBuf,
    /// `[unit] description`.
    pub description: String,
    /// `[unit] version`.
    pub version: String,
    /// `[unit] docs`.
    pub docs: String,
    /// `[unit] type`.
    pub kind: UnitType,
    /// Units that must be up first.
    pub requires: Vec<String>,
    /// Units to start after, when they are started at all.
    pub after: Vec<String>,
    /// Units started with this one, whose failure is none of its concern.
    pub wants: Vec<String>,
    /// Units started when this one fails.
    pub on_failure: Vec<String>,
    /// Lower boots first among units ready together.
    pub priority: i32,
    /// What runs.
    pub run: Run,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Working directory, resolved against the unit file's directory.
    pub workdir: Option<PathBuf>,
    /// Restart policy.
    pub restart: Restart,
    /// Restart delays and the start limit.
    pub backoff: Backoff,
    /// The signal `stop` sends first (SIGTERM unless `stop_signal` says otherwise).
    pub stop_signal: nix::sys::signal::Signal,
    /// How long `stop` waits after the stop signal before SIGKILL.
    pub stop_timeout: Duration,
    /// The signal `asyncmctl reload UNIT` sends its main process (SIGHUP unless
    /// `reload_signal` says otherwise).
    pub reload_signal: nix::sys::signal::Signal,
    /// How long a `notify` unit may take to send `READY=1`.
    pub start_timeout: Duration,
    /// The health check, if any.
    pub health: Option<Health>,
    /// Watchdog interval for notify units.
    pub watchdog: Option<Duration>,
    /// The schedule, if any.
    pub schedule: Option<Schedule>,
}

/// Default time a stopping service gets between SIGTERM and SIGKILL.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time a `notify` unit gets to send `READY=1`.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(90);

/// A unit file that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError {
    /// The file, as given.
    pub file: PathBuf,
    /// 1-based line and column, where known.
    pub at: Option<(usize, usize)>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for UnitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.at {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for UnitError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    unit: UnitSection,
    #[serde(default)]
    service: ServiceSection,
    agent: Option<AgentSection>,
    schedule: Option<ScheduleSection>,
    health: Option<HealthSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthSection {
    exec: Vec<String>,
    #[serde(default, deserialize_with = "duration")]
    interval: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    timeout: Option<Duration>,
    retries: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UnitSection {
    #[serde(default)]
    description: String,
    #[serde(default, deserialize_with = "string_or_number")]
    version: String,
    #[serde(default)]
    docs: String,
    #[serde(rename = "type", default)]
    kind: UnitType,
    #[serde(default)]
    requires: Vec<String>,
    #[serde(default)]
    after: Vec<String>,
    #[serde(default)]
    wants: Vec<String>,
    #[serde(default)]
    on_failure: Vec<String>,
    #[serde(default)]
    priority: i32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentSection {
    port: String,
    board: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ServiceSection {
    exec: Option<Vec<String>>,
    builtin: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    workdir: Option<PathBuf>,
    #[serde(default)]
    restart: Restart,
    #[serde(default, deserialize_with = "duration")]
    restart_delay: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    restart_max_delay: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    restart_reset_after: Option<Duration>,
    start_limit: Option<u32>,
    #[serde(default, deserialize_with = "duration")]
    start_limit_interval: Option<Duration>,
    stop_signal: Option<String>,
    reload_signal: Option<String>,
    #[serde(default, deserialize_with = "duration")]
    stop_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    start_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    watchdog: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleSection {
    #[serde(default, deserialize_with = "duration")]
    start_in: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    every: Option<Duration>,
    at: Option<String>,
}

/// The longest duration a unit file may give: beyond it, time arithmetic (a deadline, a
/// restart's backoff) could overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    let d = humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration '{s}': {e} (write e.g. \"5s\", \"100ms\", \"2m\")"
        ))
    })?;
    if d > MAX_DURATION {
        return Err(serde::de::Error::custom(format!(
            "duration '{s}' is longer than the limit of 10 years"
        )));
    }
    Ok(Some(d))
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum V {
        S(String),
        I(i64),
        F(f64),
    }
    Ok(match V::deserialize(d)? {
        V::S(s) => s,
        V::I(i) => i.to_string(),
        V::F(f) => f.to_string(),
    })
}

/// The byte offset of `key` in `[section]` of a unit file's text: where a person should look when
/// the value is wrong (the same key may be in another section too, as `exec` is in `[health]`).
fn key_in(text: &str, section: &str, key: &str) -> Option<usize> {
    let mut current = "";
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let body = line.trim_start();
        let at = offset + (line.len() - body.len());
        offset += line.len();
        if let Some(rest) = body.strip_prefix('[') {
            current = rest.split(']').next().unwrap_or("").trim();
            continue;
        }
        let after = body.strip_prefix(key);
        if current == section && after.is_some_and(|a| a.trim_start().starts_with('=')) {
            return Some(at);
        }
    }
    None
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Whether `name` is a valid unit name: `NAME.service` with letters, digits and `_-.@:`.
pub fn valid_name(name: &str) -> bool {
    match name.strip_suffix(SUFFIX) {
        Some(stem) => {
            !stem.is_empty()
                && stem
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.@:".contains(c))
        }
        None => false,
    }
}

/// Parses the text of unit file `source` as unit `name`.
pub fn parse(name: &str, source: &Path, text: &str) -> Result<UnitFile, UnitError> {
    let err = |at, message: String| UnitError {
        file: source.to_path_buf(),
        at,
        message,
    };
    if !valid_name(name) {
        return Err(err(
            None,
            format!(
                "'{name}' is not a valid unit name (NAME.service, with letters, digits and _-.@:)"
            ),
        ));
    }
    let file: File = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| line_col(text, s.start));
        let mut message = e.message().trim().replace('\n', " ");
        if message.is_empty() {
            // toml says nothing of some characters (a control character in a comment).
            let c = e.span().and_then(|s| text.get(s.start..)?.chars().next());
            message = c.map_or("invalid TOML".into(), |c| {
                format!("invalid character U+{:04X}", u32::from(c))
            });
        }
        err(at, message)
    })?;
    let key_at = |section: &str, key: &str| key_in(text, section, key).map(|o| line_col(text, o));
    let s = file.service;
    let run = match (file.agent, s.exec, s.builtin) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(err(
                key_at("agent", "port"),
                "an [agent] unit runs no exec or builtin of its own: keep [agent], or [service]"
                    .into(),
            ))
        }
        (Some(a), None, None) => {
            let p = &a.port;
            let ok = p.starts_with('/')
                || p.strip_prefix("tcp:")
                    .is_some_and(|hp| hp.rsplit_once(':').is_some());
            if !ok {
                return Err(err(
                    key_at("agent", "port"),
                    format!(
                        "port {p:?} is not tcp:HOST:PORT or a serial device such as /dev/ttyACM0"
                    ),
                ));
            }
            let board = a
                .board
                .unwrap_or_else(|| name.strip_suffix(SUFFIX).unwrap_or(name).to_string());
            if board.is_empty() || board.contains([':', '*', '?', '[', ' ']) {
                return Err(err(
                    key_at("agent", "board"),
                    format!("board {board:?} must be a plain name (no ':', spaces or wildcards)"),
                ));
            }
            Run::Agent(AgentLink {
                port: a.port,
                board,
            })
        }
        (None, Some(_), Some(_)) => {
            return Err(err(
                key_at("service", "builtin"),
                "[service] has both exec and builtin: keep one".into(),
            ))
        }
        (None, None, None) => {
            return Err(err(
                None,
                "[service] needs exec = [\"program\", ...] or builtin = \"name\" (or the unit \
                 an [agent] section)"
                    .into(),
            ))
        }
        (None, Some(argv), None) if argv.is_empty() || argv[0].is_empty() => {
            return Err(err(
                key_at("service", "exec"),
                "exec is empty: name the program to run".into(),
            ))
        }
        (None, Some(argv), None) => Run::Exec(argv),
        (None, None, Some(b)) => Run::Builtin(b),
    };
    for key in s.env.keys() {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(err(
                key_at("service", "env"),
                format!("env has an invalid variable name '{key}'"),
            ));
        }
    }
    let u = &file.unit;
    for (key, names) in [
        ("requires", &u.requires),
        ("after", &u.after),
        ("wants", &u.wants),
        ("on_failure", &u.on_failure),
    ] {
        if let Some(dep) = names.iter().find(|d| !valid_name(d)) {
            return Err(err(
                key_at("unit", key),
                format!("'{dep}' is not a unit name (NAME.service)"),
            ));
        }
    }
    let signal = |key: &str, given: &Option<String>, default| match given {
        None => Ok(default),
        Some(name) => parse_signal(name).ok_or_else(|| {
            err(
                key_at("service", key),
                format!("{key} '{name}' is not a signal (write e.g. \"SIGINT\")"),
            )
        }),
    };
    let stop_signal = signal("stop_signal", &s.stop_signal, Signal::SIGTERM)?;
    let reload_signal = signal("reload_signal", &s.reload_signal, Signal::SIGHUP)?;
    let defaults = Backoff::default();
    let delay = s.restart_delay.unwrap_or(defaults.delay);
    let backoff = Backoff {
        delay,
        // A first delay longer than the default cap raises the cap with it.
        max_delay: s.restart_max_delay.unwrap_or(defaults.max_delay.max(delay)),
        reset_after: s.restart_reset_after.unwrap_or(defaults.reset_after),
        limit: s.start_limit.unwrap_or(defaults.limit),
        limit_interval: s.start_limit_interval.unwrap_or(defaults.limit_interval),
    };
    if backoff.max_delay < backoff.delay {
        return Err(err(
            key_at("service", "restart_max_delay"),
            "restart_max_delay is shorter than restart_delay".into(),
        ));
    }
    let health = match file.health {
        None => None,
        Some(h) if h.exec.is_empty() => {
            return Err(err(
                key_at("health", "exec"),
                "[health] exec is empty: name the check to run".into(),
            ))
        }
        Some(h) => Some(Health {
            exec: h.exec,
            interval: h.interval.unwrap_or(Duration::from_secs(30)),
            timeout: h.timeout.unwrap_or(Duration::from_secs(10)),
            retries: h.retries.unwrap_or(3).max(1),
        }),
    };
    let schedule = match file.schedule {
        None => None,
        Some(sc) => Some(Schedule {
            spec: asyncmd_core::schedule::Spec::new(sc.start_in, sc.every, sc.at.as_deref())
                .map_err(|e| {
                    err(
                        key_at("schedule", "at").or_else(|| key_at("schedule", "every")),
                        e,
                    )
                })?,
        }),
    };
    let dir = source.parent().unwrap_or(Path::new("."));
    Ok(UnitFile {
        name: name.to_string(),
        source: source.to_path_buf(),
        description: file.unit.description,
        version: file.unit.version,
        docs: file.unit.docs,
        kind: file.unit.kind,
        requires: file.unit.requires,
        after: file.unit.after,
        wants: file.unit.wants,
        on_failure: file.unit.on_failure,
        priority: file.unit.priority,
        run,
        env: s.env,
        workdir: s.workdir.map(|w| dir.join(w)),
        restart: s.restart,
        backoff,
        stop_signal,
        reload_signal,
        stop_timeout: s.stop_timeout.unwrap_or(DEFAULT_STOP_TIMEOUT),
        start_timeout: s.start_timeout.unwrap_or(DEFAULT_START_TIMEOUT),
        health,
        watchdog: s.watchdog,
        schedule,
    })
}

/// Reads and parses one unit file; its name is the file name.
pub fn load(path: &Path) -> Result<UnitFile, UnitError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let fail = |message: String| UnitError {
        file: path.to_path_buf(),
        at: None,
        message,
    };
    // Looked at before it is read: a FIFO would block the boot, a directory cannot be read.
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => {}
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            let t = m.file_type();
            let what = if t.is_dir() {
                "a directory"
            } else if t.is_fifo() {
                "a FIFO"
            } else if t.is_socket() {
                "a socket"
            } else {
                "a device"
            };
            return Err(fail(format!("not a unit file: it is {what}")));
        }
        Err(e) if path.is_symlink() => {
            return Err(fail(format!(
                "cannot read: a symlink to nothing usable ({e})"
            )))
        }
        Err(e) => return Err(fail(format!("cannot read: {e}"))),
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    parse(&name, path, &text)
}

/// The signal `name` says: `SIGHUP`, `HUP` or its number.
pub fn parse_signal(name: &str) -> Option<Signal> {
    if let Ok(n) = name.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let full = if name.starts_with("SIG") {
        name.to_string()
    } else {
        format!("SIG{name}")
    };
    full.parse().ok()
}

/// The unit files of `dir` (`*.service`), sorted by name: every entry of that name, so one
/// that is not a file (a directory, a FIFO, a broken symlink) gets its boot line and error.
pub fn files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().ends_with(SUFFIX))
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<UnitFile, UnitError> {
        parse("t.service", Path::new("units/t.service"), text)
    }

    #[test]
    fn parses_every_contract_key() {
        let u = p(r#"
[unit]
description = "Hello example runner"
version = "1.0"
docs = "https://example.org/hello"
type = "runtime"
requires = ["hello_core.service"]
after = ["network.service"]
priority = 10

[service]
exec = ["sh", "-c", "echo hi"]
env = { LED = "3" }
workdir = "."
restart = "on-failure"
stop_timeout = "5s"
watchdog = "10s"

[schedule]
start_in = "20s"
every = "60s"
at = "07:30"
"#)
        .unwrap();
        assert_eq!(u.description, "Hello example runner");
        assert_eq!(u.kind, UnitType::Runtime);
        assert_eq!(u.requires, vec!["hello_core.service"]);
        assert_eq!(u.priority, 10);
        assert_eq!(
            u.run,
            Run::Exec(vec!["sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(u.env["LED"], "3");
        assert_eq!(u.workdir, Some(PathBuf::from("units/.")));
        assert_eq!(u.restart, Restart::OnFailure);
        assert_eq!(u.stop_timeout, Duration::from_secs(5));
        assert_eq!(u.watchdog, Some(Duration::from_secs(10)));
        let s = u.schedule.unwrap().spec;
        assert_eq!(s.every, Some(Duration::from_secs(60)));
        assert_eq!(
            s.at,
            Some(asyncmd_core::schedule::At::Daily(
                chrono::NaiveTime::from_hms_opt(7, 30, 0).unwrap()
            ))
        );
    }

    #[test]
    fn minimal_unit_takes_defaults() {
        let u = p("[service]\nbuiltin = \"hello\"\n").unwrap();
        assert_eq!(u.run, Run::Builtin("hello".into()));
        assert_eq!(u.kind, UnitType::Runtime);
        assert_eq!(u.stop_timeout, DEFAULT_STOP_TIMEOUT);
    }

    #[test]
    fn unknown_key_names_key_file_and_line() {
        let e = p("[unit]\ndescription = \"x\"\n\n[service]\nexce = [\"true\"]\n").unwrap_err();
        let s = e.to_string();
        assert!(s.starts_with("units/t.service:5:1: "), "{s}");
        assert!(s.contains("unknown field `exce`"), "{s}");
    }

    #[test]
    fn a_duration_past_the_bound_is_an_error_at_its_key() {
        for (section, key) in [
            ("service", "restart_delay"),
            ("service", "restart_max_delay"),
            ("service", "restart_reset_after"),
            ("service", "start_limit_interval"),
            ("service", "stop_timeout"),
            ("service", "start_timeout"),
            ("service", "watchdog"),
            ("schedule", "start_in"),
            ("schedule", "every"),
            ("health", "interval"),
            ("health", "timeout"),
        ] {
            let extra = match section {
                "service" => format!("{key} = \"500000000000years\"\n"),
                "health" => format!("[health]\nexec = [\"true\"]\n{key} = \"500000000000years\"\n"),
                _ => format!("[schedule]\n{key} = \"500000000000years\"\n"),
            };
            let text = format!("[service]\nexec = [\"true\"]\n{extra}");
            let e = p(&text).unwrap_err();
            assert!(
                e.message.contains("longer than the limit of 10 years"),
                "{key}: {e}"
            );
            let line = text.lines().position(|l| l.starts_with(key)).unwrap() + 1;
            assert_eq!(e.at.map(|a| a.0), Some(line), "{key}: {e}");
        }
        assert!(p("[service]\nexec = [\"true\"]\nrestart_delay = \"3650days\"\n").is_ok());
    }

    #[test]
    fn bad_values_are_located() {
        let e = p("[service]\nexec = [\"true\"]\nstop_timeout = \"soon\"\n").unwrap_err();
        assert_eq!(e.at.map(|a| a.0), Some(3), "{e}");
        assert!(e.message.contains("invalid duration 'soon'"), "{e}");
        let e = p("[unit]\ntype = \"daemon\"\n[service]\nexec = [\"true\"]\n").unwrap_err();
        assert_eq!(e.at.map(|a| a.0), Some(2), "{e}");
        assert!(e.message.contains("daemon"), "{e}");
        let e = p("[service\nexec = 1").unwrap_err();
        assert!(e.at.is_some(), "{e}");
    }

    #[test]
    fn errors_point_at_the_key_in_its_own_section() {
        let text = "[service]\nexec = [\"true\"]\n\n[health]\n  exec = []\n";
        let e = p(text).unwrap_err();
        assert!(e.message.contains("[health] exec is empty"), "{e}");
        assert_eq!(e.at, Some((5, 3)), "{e}");
        let text = "[unit]\n# every service\n[schedule]\nevery= \"0s\"\n[service]\nexec=[\"x\"]\n";
        assert_eq!(p(text).unwrap_err().at, Some((4, 1)));
    }

    #[test]
    fn needs_exactly_one_of_exec_and_builtin() {
        assert!(p("[service]\n").unwrap_err().message.contains("needs exec"));
        assert!(p("[service]\nexec = [\"a\"]\nbuiltin = \"b\"\n")
            .unwrap_err()
            .message
            .contains("both"));
        assert!(p("[service]\nexec = []\n")
            .unwrap_err()
            .message
            .contains("empty"));
        assert!(p("[unit]\n[service]\nexec=[\"x\"]\n[extra]\n").is_err());
    }

    #[test]
    fn an_agent_unit_names_its_port_and_board() {
        let u = p("[agent]\nport = \"tcp:127.0.0.1:4444\"\n").unwrap();
        let Run::Agent(link) = &u.run else {
            panic!("{:?}", u.run)
        };
        assert_eq!(link.port, "tcp:127.0.0.1:4444");
        assert_eq!(link.board, "t", "the unit's name without .service");
        let u = p("[agent]\nport = \"/dev/ttyACM0@115200\"\nboard = \"pyboard\"\n").unwrap();
        assert!(matches!(&u.run, Run::Agent(l) if l.board == "pyboard"));
        let e = p("[agent]\nport = \"COM3\"\n").unwrap_err();
        assert!(e.message.contains("not tcp:HOST:PORT"), "{e}");
        assert_eq!(e.at.map(|(line, _)| line), Some(2), "{e}");
        let e = p("[agent]\nport = \"/dev/x\"\nboard = \"a:b\"\n").unwrap_err();
        assert!(e.message.contains("plain name"), "{e}");
        let e = p("[service]\nexec = [\"a\"]\n[agent]\nport = \"/dev/x\"\n").unwrap_err();
        assert!(e.message.contains("keep [agent], or [service]"), "{e}");
        let e = p("[agent]\nport = \"/dev/x\"\nbaud = 9600\n").unwrap_err();
        assert!(e.message.contains("baud"), "an unknown key is named: {e}");
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("hello.service"));
        assert!(valid_name("blink@1.service"));
        assert!(!valid_name("hello"));
        assert!(!valid_name(".service"));
        assert!(!valid_name("a b.service"));
        let e = p("[unit]\nrequires = [\"core\"]\n[service]\nexec=[\"x\"]\n").unwrap_err();
        assert!(e.message.contains("'core' is not a unit name"), "{e}");
    }

    #[test]
    fn a_control_character_in_a_comment_is_named() {
        // Found by the unit_file fuzz target: toml's message for it is empty.
        let e = parse("x.service", Path::new("x.service"), "# a comment\0\0\n").unwrap_err();
        assert_eq!(e.to_string(), "x.service:1:12: invalid character U+0000");
    }
}
