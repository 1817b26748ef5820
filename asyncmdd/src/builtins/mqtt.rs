//! The builtin `mqtt` service: the daemon joins an MQTT fleet as a device, speaking asyncmd's
//! device protocol (its `aiomqtt.service`), so asyncmd's host CLI, its `dtop` and our own
//! clients see and drive this box like any asyncmd device.
//!
//! `services.config` kwargs, with aiomqtt's names: `server` (default `localhost`), `port`
//! (1883), `hostname` (the device id; default the host name), `keepalive` (300 s), `stats`
//! (publish the status every 10 s), `services` (the glob that status covers, `*.service`),
//! `username` with `password` or `password_file`, `control` (false: every read is answered and
//! every change refused), `logs` (stream each new journal line to `device/<id>/log`), `ssl`
//! (TLS; the port defaults to 8883) and `ssl_params` (`ca`, `cert`, `key`: PEM files).
//!
//! Requests are carried to the runtime's request handling ([`Answer`]) like the control
//! socket's; replies and log lines are queued without waiting, so a broker that is slow or gone
//! never holds up the daemon, and what cannot be queued is dropped and counted.

use super::aiostats::{task_stats, traceback};
use super::kwargs::{duration, flag, number, text};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use asyncmd_core::control::unit_name;
use asyncmd_proto::text::{local_time, now_us, EntryFormatter};
use asyncmd_proto::{ActionOutcome, Level, Request, Response, UnitStatus};
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};
use serde_json::{json, Map, Value};

use super::Context;
use crate::answer::Answer;
use crate::journal::{records, Cursor};

/// How often the status goes out with `stats = true` (asyncmd's period).
const STATS_EVERY: Duration = Duration::from_secs(10);
/// Requests and publications handed to the client and not yet sent: few, since a link that
/// breaks loses them (QoS 0).
const QUEUE: usize = 64;
/// Publications waiting for the client to take them; beyond it they are dropped and counted.
const OUTBOX: usize = 2048;
/// The largest message taken in; a larger one is refused by the link.
const MAX_INCOMING: usize = 256 * 1024;
/// The largest request payload acted on.
const MAX_REQUEST: usize = 64 * 1024;
/// Names (or patterns) one request may list.
const MAX_NAMES: usize = 64;
/// Journal bytes sent per wake, so a flood cannot hog the link.
const LOG_BATCH_BYTES: usize = 32 * 1024;
/// The most journal lines caught up after the link was down; older ones are counted dropped.
const LOG_BACKLOG: u64 = 1000;
/// Longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Requests waiting to be answered; more are dropped with a log line.
const PENDING: usize = 64;

/// The service's settings, from its kwargs.
#[derive(Debug, Clone)]
struct Settings {
    server: String,
    port: u16,
    id: String,
    keepalive: u64,
    stats: bool,
    services: String,
    control: bool,
    logs: bool,
    username: Option<String>,
    password: Option<String>,
    /// TLS to the broker, when `ssl` is on.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Settings {
    fn from(kwargs: &Map<String, Value>) -> Result<Settings, String> {
        let tls = if flag(kwargs, "ssl", false)? {
            Some(tls_config(kwargs.get("ssl_params"))?)
        } else {
            if kwargs.get("ssl_params").is_some_and(|p| p != &json!({})) {
                return Err("kwargs ssl_params are given but ssl is not true".into());
            }
            None
        };
        let password = match (text(kwargs, "password")?, text(kwargs, "password_file")?) {
            (Some(_), Some(_)) => {
                return Err("kwargs password and password_file: give one, not both".into())
            }
            (Some(p), None) => Some(p),
            (None, Some(f)) => Some(
                std::fs::read_to_string(&f)
                    .map_err(|e| format!("kwargs password_file {f}: {e}"))?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            ),
            (None, None) => None,
        };
        let username = text(kwargs, "username")?;
        if password.is_some() && username.is_none() {
            return Err("kwargs password needs a username".into());
        }
        let id = match text(kwargs, "hostname")? {
            Some(h) => h,
            None => nix::unistd::gethostname()
                .map_err(|e| format!("cannot read the host name: {e}; set kwargs hostname"))?
                .to_string_lossy()
                .into_owned(),
        };
        if id.is_empty() || id.contains(['/', '+', '#']) || id == "all" {
            return Err(format!(
                "kwargs hostname '{id}' cannot be a device id (no '/', '+' or '#', not 'all')"
            ));
        }
        Ok(Settings {
            server: text(kwargs, "server")?.unwrap_or_else(|| "localhost".into()),
            port: number(
                kwargs,
                "port",
                if tls.is_some() { 8883 } else { 1883 },
                65_535,
            )? as u16,
            id,
            keepalive: match duration(kwargs, "keepalive", Duration::from_secs(300))?.as_secs() {
                s @ 1..=65_535 => s,
                s => {
                    return Err(format!(
                        "kwargs keepalive must be 1 s to 65535 s, not {s} s"
                    ))
                }
            },
            stats: flag(kwargs, "stats", false)?,
            services: text(kwargs, "services")?.unwrap_or_else(|| "*.service".into()),
            control: flag(kwargs, "control", false)?,
            logs: flag(kwargs, "logs", false)?,
            username,
            password,
            tls,
        })
    }
}

/// The TLS client configuration of `ssl_params`: `ca` (PEM; the system's roots when absent),
/// and `cert` with `key` for a client certificate. Every error names the file.
fn tls_config(params: Option<&Value>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let empty = Map::new();
    let p = match params {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(v) => return Err(format!("kwargs ssl_params must be an object, not {v}")),
    };
    for key in p.keys() {
        if !["ca", "cert", "key"].contains(&key.as_str()) {
            return Err(format!(
                "kwargs ssl_params: unknown key '{key}' (there is: ca, cert, key)"
            ));
        }
    }
    let file = |key: &str| text(p, key).map_err(|e| format!("ssl_params: {e}"));
    let certs = |path: &str| -> Result<Vec<CertificateDer<'static>>, String> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("kwargs ssl_params {path}: {e}"))?;
        if certs.is_empty() {
            return Err(format!(
                "kwargs ssl_params {path}: no PEM certificate in it"
            ));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    match file("ca")? {
        Some(ca) => {
            for c in certs(&ca)? {
                roots
                    .add(c)
                    .map_err(|e| format!("kwargs ssl_params ca {ca}: {e}"))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(
                    "kwargs ssl: no ssl_params ca given and no system CA certificates \
                            found"
                        .into(),
                );
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("kwargs ssl: {e}"))?
        .with_root_certificates(roots);
    let config = match (file("cert")?, file("key")?) {
        (Some(cert), Some(key)) => {
            let k = PrivateKeyDer::from_pem_file(&key)
                .map_err(|e| format!("kwargs ssl_params key {key}: {e}"))?;
            builder
                .with_client_auth_cert(certs(&cert)?, k)
                .map_err(|e| format!("kwargs ssl_params cert {cert} with key {key}: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("kwargs ssl_params: cert and key go together".into()),
    };
    Ok(Arc::new(config))
}

/// The state of the link, for the unit's stats.
#[derive(Debug, Default)]
struct Link {
    connected_since: Option<i64>,
    last_error: Option<String>,
    next_attempt_us: Option<i64>,
    npub: u64,
    nrecv: u64,
    requests: u64,
    /// Publications the client's queue had no room for.
    dropped: u64,
    /// Journal lines lost while the link was down, not yet reported.
    log_dropped: u64,
}

/// One device on the broker: the client, what it was told, and what it counts.
struct Device {
    s: Settings,
    client: AsyncClient,
    link: Link,
    /// Where the `log` action and the `logger` topic go on from.
    asked: Option<Cursor>,
    /// Where the log stream goes on from.
    streamed: Cursor,
    /// What waits to be handed to the client, oldest first.
    outbox: VecDeque<(String, bool, Vec<u8>)>,
}

fn topic(id: &str, leaf: &str) -> String {
    format!("device/{id}/{leaf}")
}

/// The one string or the list of strings a request names (at most [`MAX_NAMES`]).
fn names(arg: &Value) -> Result<Vec<String>, String> {
    let list = match arg {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("a name must be a string, not {other}")),
            })
            .collect::<Result<_, _>>()?,
        other => return Err(format!("expected a name or a list of names, not {other}")),
    };
    if list.len() > MAX_NAMES {
        return Err(format!(
            "{} names in one request, more than the limit of {MAX_NAMES}",
            list.len()
        ));
    }
    Ok(list)
}

/// The `services.config` entry of the unit a fleet names (`hello` or `hello.service`).
fn entry_in<'a>(all: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    crate::services_config::entry_of(all, &unit_name(name))
}

impl Device {
    /// Queues a publication without waiting; a full queue drops it and counts it.
    /// Queues a publication in the outbox; a full outbox drops it and counts it.
    fn publish(&mut self, topic: String, retain: bool, payload: impl Into<Vec<u8>>) {
        if self.outbox.len() >= OUTBOX {
            self.link.dropped += 1;
            return;
        }
        self.outbox.push_back((topic, retain, payload.into()));
        self.flush();
    }

    /// Hands the outbox to the client while the link is up and the client has room; what it
    /// has no room for waits for the link to send what it holds.
    fn flush(&mut self) {
        if self.link.connected_since.is_none() {
            return;
        }
        while let Some((topic, retain, payload)) = self.outbox.front() {
            let sent =
                self.client
                    .try_publish(topic.clone(), QoS::AtMostOnce, *retain, payload.clone());
            if sent.is_err() {
                return;
            }
            self.outbox.pop_front();
            self.link.npub += 1;
        }
    }

    /// Whether the outbox has room for another batch of journal lines.
    fn room_for_lines(&self) -> bool {
        self.outbox.len() < OUTBOX / 2
    }

    fn reply(&mut self, leaf: &str, v: &Value) {
        let t = topic(&self.s.id, leaf);
        self.publish(t, false, v.to_string());
    }

    /// The link's state as the unit's stats.
    fn stats(&self) -> Map<String, Value> {
        let l = &self.link;
        let state = match (l.connected_since, &l.last_error) {
            (Some(t), _) => format!(
                "connected to {}:{} since {}",
                self.s.server,
                self.s.port,
                local_time(t)
            ),
            (None, Some(e)) => match l.next_attempt_us {
                Some(n) => format!("{e}; next attempt at {}", local_time(n)),
                None => e.clone(),
            },
            (None, None) => format!("connecting to {}:{}", self.s.server, self.s.port),
        };
        let mut m = Map::new();
        m.insert("link".into(), json!(state));
        m.insert("device".into(), json!(self.s.id));
        m.insert("control".into(), json!(self.s.control));
        m.insert("npub".into(), json!(l.npub));
        m.insert("nrecv".into(), json!(l.nrecv));
        m.insert("requests".into(), json!(l.requests));
        m.insert("dropped".into(), json!(l.dropped));
        m
    }

    /// The subscriptions of the protocol, then `online` on the retained presence topic.
    fn on_connect(&mut self) {
        let id = self.s.id.clone();
        for leaf in [
            "service", "task", "state", "cmd", "ota", "logger", "request",
        ] {
            let _ = self.client.try_subscribe(topic(&id, leaf), QoS::AtMostOnce);
        }
        for leaf in ["cmd", "ota", "logger", "service", "request"] {
            let _ = self
                .client
                .try_subscribe(topic("all", leaf), QoS::AtMostOnce);
        }
        self.publish(topic(&id, "presence"), true, "online");
    }

    /// Statuses of `pattern`, or why there are none.
    async fn statuses(
        answer: &Answer,
        pattern: &str,
        lines: u32,
    ) -> Result<Vec<UnitStatus>, String> {
        let req = Request::Status {
            patterns: vec![pattern.to_string()],
            lines,
        };
        match answer(req).await {
            Response::Status { units, .. } => Ok(units),
            Response::Error { message, .. } => Err(message),
            other => Err(format!("unexpected answer {other:?}")),
        }
    }

    /// The status of what `pattern` (with an optional `:/debug`) names, published.
    async fn status(&mut self, answer: &Answer, pattern: &str) {
        let (pattern, debug) = match pattern.strip_suffix(":/debug") {
            Some(p) => (p, true),
            None => (pattern, false),
        };
        let mut out = Map::new();
        match Self::statuses(answer, pattern, u32::from(debug)).await {
            Ok(units) => {
                for u in &units {
                    out.insert(u.name.clone(), task_stats(u, debug));
                }
            }
            // asyncmd says nothing; saying why is kinder to a fleet view.
            Err(e) => {
                out.insert("error".into(), json!(e));
            }
        }
        out.insert("hostname".into(), json!(self.s.id));
        self.reply("status", &Value::Object(out));
    }

    async fn traceback(&mut self, answer: &Answer, pattern: &str) {
        let mut out = Map::new();
        match Self::statuses(answer, pattern, 0).await {
            Ok(units) => {
                for u in &units {
                    out.insert(u.name.clone(), json!({"traceback": traceback(u)}));
                }
            }
            Err(e) => {
                out.insert("error".into(), json!(e));
            }
        }
        out.insert("hostname".into(), json!(self.s.id));
        self.reply("status", &Value::Object(out));
    }

    /// A change refused because remote control is off.
    fn refuse(&mut self, leaf: &str, what: &str, action: &str, ctx: &Context) {
        let why = "refused: remote control is off on this device (kwargs control = false)";
        ctx.log(
            Level::Warning,
            &format!("Refused {action} {what}: remote control is off"),
        );
        self.reply(leaf, &json!({ what: { action: why } }));
    }

    /// `start` or `stop` of `pattern`: one reply per unit, with its state after.
    async fn act(&mut self, answer: &Answer, action: &str, pattern: &str, ctx: &Context) {
        if !self.s.control {
            return self.refuse("status", pattern, action, ctx);
        }
        let units = vec![pattern.to_string()];
        let req = match action {
            "start" => Request::Start { units },
            _ => Request::Stop {
                units,
                dry_run: false,
            },
        };
        let results = match answer(req).await {
            Response::Actions { results } => results,
            Response::Error { message, .. } => {
                return self.reply("status", &json!({ pattern: { action: message } }));
            }
            other => {
                let e = format!("unexpected answer {other:?}");
                return self.reply("status", &json!({ pattern: { action: e } }));
            }
        };
        for r in results {
            let said = match r.outcome {
                ActionOutcome::Ok => match Self::statuses(answer, &r.unit, 0).await {
                    Ok(s) if s.len() == 1 => task_stats(&s[0], false)["status"].clone(),
                    _ => json!("done"),
                },
                _ => json!(format!("error: {}", r.message)),
            };
            self.reply("status", &json!({ r.unit: { action: said } }));
        }
    }

    /// `services.config` as written (no `${VAR}` substituted), or why it cannot be read.
    fn config_file(ctx: &Context) -> Result<Map<String, Value>, String> {
        let path = ctx
            .config
            .as_ref()
            .ok_or("this runtime has no services.config")?;
        crate::services_config::written(path)
    }

    /// `{"config": {"get"|"enable"|"disable"|"set": ...}}`, answered on `device/<id>/config`.
    async fn config(&mut self, answer: &Answer, arg: &Value, ctx: &Context) {
        let Some((verb, what)) = arg.as_object().and_then(|m| m.iter().next()) else {
            let e = "config takes {\"get\"|\"enable\"|\"disable\"|\"set\": ...}";
            return self.reply("config", &json!({ "error": e }));
        };
        let (verb, what) = (verb.clone(), what.clone());
        match verb.as_str() {
            "get" => {
                let reply = match (Self::config_file(ctx), what.as_str()) {
                    (Err(e), _) => json!({ "error": e }),
                    (Ok(all), Some("*")) => Value::Object(all),
                    (Ok(all), Some(name)) => entry_in(&all, name).cloned().unwrap_or(json!(false)),
                    (Ok(_), None) => json!({"error": "config get takes a name or \"*\""}),
                };
                self.reply("config", &reply);
            }
            "enable" | "disable" if !self.s.control => {
                let names = what.to_string();
                self.refuse("config", &names, &verb, ctx)
            }
            "enable" | "disable" => {
                let units = match names(&what) {
                    Ok(n) => n,
                    Err(e) => return self.reply("config", &json!({ "error": e })),
                };
                let req = if verb == "enable" {
                    Request::Enable { units, now: false }
                } else {
                    Request::Disable { units, now: false }
                };
                let reply = actions(answer(req).await, &verb);
                self.reply("config", &reply);
            }
            "set" if !self.s.control => {
                self.refuse("config", "set", "set", ctx);
            }
            "set" => {
                let Some(entries) = what.as_object() else {
                    let e = "config set takes {\"NAME\": {\"args\": [...], \"kwargs\": {...}}}";
                    return self.reply("config", &json!({ "error": e }));
                };
                let mut out = Map::new();
                for (name, entry) in entries.iter().take(MAX_NAMES) {
                    out.insert(name.clone(), set_entry(answer, ctx, name, entry).await);
                }
                self.reply("config", &json!({ "set": out }));
            }
            other => {
                let e = format!(
                    "unknown config action '{other}' (there is: get, enable, disable, set)"
                );
                self.reply("config", &json!({ "error": e }));
            }
        }
    }

    /// Journal lines from `cursor` on, formatted as asyncmd's log lines, about `max_bytes` of
    /// records; the lines the ring overwrote before they were read are added to `missed`.
    fn lines_from(
        ctx: &Context,
        cursor: &mut Cursor,
        max_bytes: usize,
        missed: &mut u64,
    ) -> Vec<String> {
        let mut copy = Vec::new();
        let mut out = Vec::new();
        let mut fmt = EntryFormatter::new(false);
        let host = ctx.journal.host().to_string();
        let mut taken = 0;
        while taken < max_bytes {
            copy.clear();
            let got = ctx
                .journal
                .with_ring(|r| r.read(cursor, &mut copy, (max_bytes - taken).min(64 * 1024)));
            taken += copy.len();
            *missed += got.missed;
            if got.copied == 0 {
                break;
            }
            for rec in records(&copy) {
                let mut line = String::new();
                let e = rec.to_entry(&ctx.journal.unit_name(rec.unit));
                fmt.short(&mut line, &host, &e);
                out.push(line);
            }
        }
        out
    }

    /// The `log` action and the `logger` topic: the lines since the last time it was asked
    /// (the first time, the whole ring), one publication each.
    fn send_log(&mut self, ctx: &Context) {
        let mut cursor = self
            .asked
            .take()
            .unwrap_or_else(|| ctx.journal.with_ring(|r| r.oldest()));
        let mut missed = 0;
        let lines = Self::lines_from(ctx, &mut cursor, usize::MAX, &mut missed);
        self.asked = Some(cursor);
        let t = topic(&self.s.id, "log");
        for line in lines {
            self.publish(t.clone(), false, line);
        }
    }

    /// With `logs = true`: the journal's new lines, a batch per call; after the link was
    /// down, a backlog of at most [`LOG_BACKLOG`] lines, the rest counted and reported.
    fn stream_log(&mut self, ctx: &Context) -> bool {
        let newest = ctx.journal.with_ring(|r| r.newest());
        let behind = newest.seq().saturating_sub(self.streamed.seq());
        if behind > LOG_BACKLOG {
            self.link.log_dropped += behind - LOG_BACKLOG;
            self.streamed = ctx
                .journal
                .with_ring(|r| r.cursor_at(newest.seq() - LOG_BACKLOG));
        }
        let mut missed = 0;
        let mut cursor = self.streamed;
        let lines = Self::lines_from(ctx, &mut cursor, LOG_BATCH_BYTES, &mut missed);
        let more = cursor != ctx.journal.with_ring(|r| r.newest());
        self.streamed = cursor;
        self.link.log_dropped += missed;
        let t = topic(&self.s.id, "log");
        if self.link.log_dropped > 0 {
            let note = format!(
                "{} [{}] [WARNING] [{}] {} log lines were dropped while the link was down or behind\n",
                local_time(now_us()),
                ctx.journal.host(),
                ctx.name,
                self.link.log_dropped
            );
            self.publish(t.clone(), false, note);
            self.link.log_dropped = 0;
        }
        for line in lines {
            self.publish(t.clone(), false, line);
        }
        more
    }

    /// `device/<id>/cmd`: `help`, `NAME?`, or a command, as text or `{"cmd": NAME, ...}`.
    async fn command(&mut self, answer: &Answer, payload: &str, ctx: &Context) {
        let name = match serde_json::from_str::<Value>(payload) {
            Ok(Value::Object(m)) => m.get("cmd").and_then(Value::as_str).map(String::from),
            _ => Some(payload.trim().to_string()),
        }
        .unwrap_or_default();
        let help = json!({
            "help": {"args": null, "kwargs": null, "help": "this list; NAME? for one"},
            "reload": {"args": null, "kwargs": null,
                       "help": "re-read unit files and services.config, apply what changed (needs control)"},
        });
        if name == "help" {
            return self.reply("help", &help);
        }
        if let Some(one) = name.strip_suffix('?') {
            let entry = help.get(one).cloned().unwrap_or(json!(false));
            return self.reply("help", &entry);
        }
        let (msg, resp) = match name.as_str() {
            "reload" if !self.s.control => (
                "refused: remote control is off on this device (kwargs control = false)".into(),
                Value::Null,
            ),
            "reload" => match answer(Request::Reload { dry_run: false }).await {
                Response::Reload { changes, .. } => ("RELOADED".to_string(), json!(changes.len())),
                Response::Error { message, .. } => (message, Value::Null),
                other => (format!("unexpected answer {other:?}"), Value::Null),
            },
            other => {
                ctx.log(Level::Error, &format!("Command {other} not found"));
                (format!("Command {other} not found"), Value::Null)
            }
        };
        let id = self.s.id.clone();
        self.reply(
            "resp",
            &json!({"msg": msg, "resp": resp, "hostname": id, "cmd": name}),
        );
    }

    /// One message from the broker.
    async fn handle(&mut self, answer: &Answer, topic_name: &str, payload: &[u8], ctx: &Context) {
        self.link.nrecv += 1;
        let Some(leaf) = topic_name
            .strip_prefix(&format!("device/{}/", self.s.id))
            .or_else(|| topic_name.strip_prefix("device/all/"))
        else {
            return;
        };
        if payload.len() > MAX_REQUEST {
            let e = format!(
                "@ [{topic_name}]: a {} byte message, more than the limit of {MAX_REQUEST}: ignored",
                payload.len()
            );
            return ctx.log(Level::Error, &e);
        }
        let text = String::from_utf8_lossy(payload).into_owned();
        self.link.requests += 1;
        match leaf {
            "service" => self.service(answer, topic_name, &text, ctx).await,
            "request" => self.request(answer, &text, ctx).await,
            "cmd" => self.command(answer, &text, ctx).await,
            "logger" if text.trim() == "log" => self.send_log(ctx),
            "logger" => ctx.log(
                Level::Error,
                &format!("@ [{topic_name}]: no such log file '{}'", text.trim()),
            ),
            "ota" => ctx.log(Level::Info, "No OTA service found"),
            _ => ctx.log(Level::Info, &format!("@ [{topic_name}]: {text}")),
        }
    }

    /// `device/<id>/service`: `{ACTION: ARG}`, a list ARG once per element.
    async fn service(&mut self, answer: &Answer, topic_name: &str, text: &str, ctx: &Context) {
        ctx.log(Level::Info, &format!("@ [{topic_name}]: {text}"));
        let actions = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(other) => {
                let e = format!("a request must be a JSON object {{ACTION: ARG}}, not {other}");
                ctx.log(Level::Error, &e);
                return self.reply("status", &json!({"error": e, "hostname": self.s.id}));
            }
            Err(e) => {
                let e = format!("Receive callback: {e}");
                ctx.log(Level::Error, &e);
                return self.reply("status", &json!({"error": e, "hostname": self.s.id}));
            }
        };
        for (action, arg) in actions {
            match action.as_str() {
                "status" | "traceback" | "start" | "stop" => {
                    let list = match names(&arg) {
                        Ok(n) => n,
                        Err(e) => {
                            let e = format!("{action}: {e}");
                            self.reply("status", &json!({"error": e, "hostname": self.s.id}));
                            continue;
                        }
                    };
                    for name in list {
                        match action.as_str() {
                            "status" => self.status(answer, &name).await,
                            "traceback" => self.traceback(answer, &name).await,
                            _ => self.act(answer, &action, &name, ctx).await,
                        }
                    }
                }
                "log" => self.send_log(ctx),
                "config" => self.config(answer, &arg, ctx).await,
                other => {
                    let e = format!(
                        "unknown action '{other}' (there is: status, start, stop, traceback, log, config)"
                    );
                    ctx.log(Level::Error, &e);
                    self.reply("status", &json!({"error": e, "hostname": self.s.id}));
                }
            }
        }
    }
}

/// What our own clients send on `device/<id>/request` (or `device/all/request`): a request
/// of the control protocol and where its answer goes.
#[derive(serde::Deserialize)]
struct Asked {
    /// The protocol version the client speaks.
    v: u32,
    /// The client's number for it, given back with the answer.
    id: u64,
    /// The topic the answer goes to.
    reply: String,
    req: Value,
}

impl Device {
    /// A request of our clients (`asyncmctl --mqtt`), answered on its reply topic as
    /// `{"id", "device", "resp": [RESPONSE...]}`: the runtime's answer, or for a journal query
    /// its entries and where the next read goes on. Changes need `control = true`.
    async fn request(&mut self, answer: &Answer, text: &str, ctx: &Context) {
        let asked: Asked = match serde_json::from_str(text) {
            Ok(a) => a,
            Err(e) => {
                return ctx.log(
                    Level::Error,
                    &format!("a request on device/{}/request: {e}", self.s.id),
                )
            }
        };
        if asked.reply.is_empty() || asked.reply.len() > 256 || asked.reply.contains(['+', '#']) {
            return ctx.log(
                Level::Error,
                "a request whose reply topic is empty, too long or has a wildcard: ignored",
            );
        }
        let resp = if asked.v != asyncmd_proto::VERSION {
            vec![error(
                asyncmd_proto::ErrorCode::Version,
                format!(
                    "the client speaks protocol version {}; this device speaks {}",
                    asked.v,
                    asyncmd_proto::VERSION
                ),
            )]
        } else {
            match serde_json::from_value::<Request>(asked.req) {
                Err(e) => vec![error(
                    asyncmd_proto::ErrorCode::BadRequest,
                    format!("malformed request: {e}"),
                )],
                Ok(req) if req.privileged() && !self.s.control => vec![error(
                    asyncmd_proto::ErrorCode::PermissionDenied,
                    format!(
                        "device {} refuses changes over MQTT: remote control is off \
                         (kwargs control = false)",
                        self.s.id
                    ),
                )],
                Ok(Request::Journal(q)) => journal(ctx, &q),
                Ok(req) => vec![answer(req).await],
            }
        };
        let id = self.s.id.clone();
        let body = json!({"id": asked.id, "device": id, "resp": resp});
        self.publish(asked.reply, false, body.to_string());
    }
}

fn error(code: asyncmd_proto::ErrorCode, message: String) -> Response {
    Response::Error { code, message }
}

/// The most entry bytes one journal answer carries; a reader goes on from its `next_seq`.
const JOURNAL_BYTES: usize = 128 * 1024;

/// A journal query answered at once: the matching entries (the newest `lines` of them, or a
/// page from `after_seq` on, at most [`JOURNAL_BYTES`]), then `End` with where to go on: an
/// empty page means there is no more. A follower asks again from there.
fn journal(ctx: &Context, q: &asyncmd_proto::JournalQuery) -> Vec<Response> {
    let mut filter = match crate::control_socket::journal_filter(q) {
        Ok(f) => f,
        Err(e) => return vec![error(asyncmd_proto::ErrorCode::BadRequest, e)],
    };
    let j = &ctx.journal;
    let mut copy = Vec::new();
    let (cursor, missed) = j.with_ring(|r| {
        let mut c = match q.after_seq {
            Some(seq) => r.cursor_at(seq),
            None => r.oldest(),
        };
        let missed = q
            .after_seq
            .map_or(0, |seq| r.oldest().seq().saturating_sub(seq));
        r.read(&mut c, &mut copy, usize::MAX);
        (c, missed)
    });
    let mut entries: Vec<asyncmd_proto::Entry> = records(&copy)
        .filter(|r| filter.matches(&**j, r))
        .map(|r| r.to_entry(&j.unit_name(r.unit)))
        .collect();
    let size = |e: &asyncmd_proto::Entry| e.msg.len() + e.unit.len() + 64;
    let mut next_seq = cursor.seq();
    let mut bytes = 0;
    if let Some(n) = q.lines {
        // The newest `lines`, as many of them as an answer carries.
        let skip = entries.len().saturating_sub(n as usize);
        entries.drain(..skip);
        let keep = entries
            .iter()
            .rev()
            .take_while(|e| {
                bytes += size(e);
                bytes <= JOURNAL_BYTES
            })
            .count();
        let cut = entries.len() - keep;
        entries.drain(..cut);
    } else {
        // A page from the oldest asked for; the reader goes on after its last entry.
        let keep = entries
            .iter()
            .take_while(|e| {
                bytes += size(e);
                bytes <= JOURNAL_BYTES
            })
            .count()
            .max(1)
            .min(entries.len());
        if keep < entries.len() {
            next_seq = entries[keep - 1].seq + 1;
            entries.truncate(keep);
        }
    }
    vec![
        Response::Entries {
            host: j.host().to_string(),
            entries,
            missed,
        },
        Response::End { next_seq },
    ]
}

/// Action results as `{UNIT: {ACTION: "ok" | "error: ..."}}`.
fn actions(resp: Response, action: &str) -> Value {
    match resp {
        Response::Actions { results } => {
            let mut out = Map::new();
            for r in results {
                let said = match r.outcome {
                    ActionOutcome::Ok => "ok".to_string(),
                    _ => format!("error: {}", r.message),
                };
                out.insert(r.unit, json!({ action: said }));
            }
            Value::Object(out)
        }
        Response::Error { message, .. } => json!({ "error": message }),
        other => json!({ "error": format!("unexpected answer {other:?}") }),
    }
}

/// `config set` of one entry, as asyncmd does it: args replaced, kwargs merged into what the
/// file has, the unit enabled.
async fn set_entry(answer: &Answer, ctx: &Context, name: &str, entry: &Value) -> Value {
    let (Some(args), Some(Value::Object(kwargs))) = (entry.get("args"), entry.get("kwargs")) else {
        return json!("error: set takes both \"args\" (a list) and \"kwargs\" (an object)");
    };
    let mut merged = Device::config_file(ctx)
        .ok()
        .and_then(|all| entry_in(&all, name).cloned())
        .and_then(|e| e.get("kwargs").and_then(Value::as_object).cloned())
        .unwrap_or_default();
    merged.extend(kwargs.clone());
    let unit = unit_name(name);
    let req = Request::Config {
        unit: unit.clone(),
        args: Some(args.clone()),
        kwargs: Some(Value::Object(merged)),
    };
    if let Response::Error { message, .. } = answer(req).await {
        return json!(format!("error: {message}"));
    }
    match answer(Request::Enable {
        units: vec![unit],
        now: false,
    })
    .await
    {
        Response::Actions { results } if results.iter().all(|r| r.outcome == ActionOutcome::Ok) => {
            json!("ok")
        }
        Response::Actions { results } => json!(format!(
            "error: {}",
            results
                .iter()
                .map(|r| r.message.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        )),
        Response::Error { message, .. } => json!(format!("error: {message}")),
        other => json!(format!("error: unexpected answer {other:?}")),
    }
}

fn options(s: &Settings) -> MqttOptions {
    let mut o = MqttOptions::new(s.id.clone(), s.server.clone(), s.port);
    o.set_keep_alive(Duration::from_secs(s.keepalive));
    o.set_clean_session(true);
    o.set_max_packet_size(MAX_INCOMING, MAX_INCOMING);
    o.set_last_will(LastWill::new(
        topic(&s.id, "presence"),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(u) = &s.username {
        o.set_credentials(u.clone(), s.password.clone().unwrap_or_default());
    }
    if let Some(tls) = &s.tls {
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(tls.clone()),
        ));
    }
    o
}

/// What a failed connection attempt says, without the broker's password.
fn describe(e: &rumqttc::ConnectionError) -> String {
    match e {
        rumqttc::ConnectionError::ConnectionRefused(code) => {
            format!("the broker refused the connection: {code:?}")
        }
        other => other.to_string(),
    }
}

/// Runs the device until it is stopped.
pub async fn run(mut ctx: Context) -> Result<(), String> {
    let s = Settings::from(&ctx.kwargs)?;
    let answer = ctx
        .answer
        .clone()
        .ok_or("this runtime does not carry requests to a builtin")?;
    let (client, mut events): (AsyncClient, EventLoop) = AsyncClient::new(options(&s), QUEUE);
    ctx.log(
        Level::Info,
        &format!(
            "Device {} on the broker at {}:{} (remote control {})",
            s.id,
            s.server,
            s.port,
            if s.control { "on" } else { "off" }
        ),
    );
    let streamed = ctx.journal.with_ring(|r| r.newest());
    let mut dev = Device {
        s,
        client,
        link: Link::default(),
        asked: None,
        streamed,
        outbox: VecDeque::new(),
    };
    ctx.set_stats(dev.stats());
    let mut stats_tick = tokio::time::interval(STATS_EVERY);
    let mut journal = ctx.journal.subscribe();
    let mut pending: VecDeque<(String, Vec<u8>)> = VecDeque::new();
    let mut backoff = Duration::from_secs(1);
    let mut log_more = false;
    loop {
        let connected = dev.link.connected_since.is_some();
        if let Some((t, p)) = pending.pop_front() {
            dev.handle(&answer, &t, &p, &ctx).await;
            ctx.set_stats(dev.stats());
            continue;
        }
        let stream = dev.s.logs && connected && log_more && dev.room_for_lines();
        if stream {
            log_more = dev.stream_log(&ctx);
        }
        let streaming = stream && log_more && dev.room_for_lines();
        tokio::select! {
            _ = ctx.stopped() => {
                dev.publish(topic(&dev.s.id, "presence"), true, "offline");
                let _ = dev.client.try_disconnect();
                // Let the goodbye go out, briefly: a broker that is gone gets no more time.
                let _ = tokio::time::timeout(Duration::from_millis(500), async {
                    while let Ok(ev) = events.poll().await {
                        if matches!(ev, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                            break;
                        }
                    }
                })
                .await;
                return Ok(());
            }
            ev = events.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    dev.link.connected_since = Some(now_us());
                    dev.link.last_error = None;
                    dev.link.next_attempt_us = None;
                    backoff = Duration::from_secs(1);
                    dev.on_connect();
                    ctx.log(Level::Info, &format!("Connected to {}:{}", dev.s.server, dev.s.port));
                    ctx.set_stats(dev.stats());
                    if dev.s.stats {
                        let services = dev.s.services.clone();
                        dev.status(&answer, &services).await;
                    }
                    log_more = true;
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if pending.len() < PENDING {
                        pending.push_back((p.topic.clone(), p.payload.to_vec()));
                    } else {
                        ctx.log(Level::Warning, &format!("@ [{}]: too many requests waiting; dropped", p.topic));
                    }
                }
                Ok(_) => dev.flush(),
                Err(e) => {
                    let why = describe(&e);
                    if dev.link.connected_since.take().is_some() || dev.link.last_error.as_ref() != Some(&why) {
                        ctx.log(Level::Warning, &format!("MQTT link to {}:{}: {why}; retrying", dev.s.server, dev.s.port));
                    }
                    dev.link.last_error = Some(why);
                    dev.link.next_attempt_us = Some(now_us() + backoff.as_micros() as i64);
                    ctx.set_stats(dev.stats());
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = ctx.stopped() => return Ok(()),
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            },
            _ = stats_tick.tick(), if dev.s.stats && connected => {
                let services = dev.s.services.clone();
                dev.status(&answer, &services).await;
                ctx.set_stats(dev.stats());
            }
            _ = tokio::task::yield_now(), if streaming => {}
            r = journal.changed(), if dev.s.logs && connected => {
                if r.is_ok() {
                    log_more = true;
                }
            }
        }
    }
}
