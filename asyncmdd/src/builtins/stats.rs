//! The builtin `stats` service (asyncmd's stats.service): the units' status over HTTP, in
//! asyncmd's JSON schema at `/` (its `:/debug` fields at `/debug`), and as Prometheus metrics at
//! `/metrics`.
//!
//! `services.config` kwargs: `host` (the address to listen on, default `127.0.0.1`: unlike
//! asyncmd's `0.0.0.0`, nothing is served beyond the box unless asked), `port` (8888) and
//! `connections` (at most this many at once, default 16; one more is answered 503). A request
//! is GET or HEAD with no body and at most 8 KiB of head; anything else gets its 4xx answer.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use asyncmd_proto::{UnitState, UnitStatus};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Map, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::Semaphore;

use super::aiostats::task_stats;
use super::kwargs::{number, text};
use super::{Context, UnitsView};
use crate::journal::Journal;

/// The most bytes of a request's head (line and headers); hyper's smallest buffer.
const HEAD_LIMIT: usize = 8 * 1024;
/// How long a client may take to send its head, and how long a connection may last at all.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECTION_LIMIT: Duration = Duration::from_secs(60);

/// What the site serves from.
struct Site {
    units: UnitsView,
    journal: Arc<Journal>,
    requests: AtomicU64,
}

/// Runs the site until the unit is stopped.
pub async fn run(mut ctx: Context) -> Result<(), String> {
    let host = text(&ctx.kwargs, "host")?.unwrap_or_else(|| "127.0.0.1".into());
    let port = number(&ctx.kwargs, "port", 8888, 65_535)? as u16;
    let most = number(&ctx.kwargs, "connections", 16, 4096)? as usize;
    let listener = tokio::net::TcpListener::bind((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot listen on {host}:{port}: {e}"))?;
    let at = listener
        .local_addr()
        .map_or_else(|_| format!("{host}:{port}"), |a| a.to_string());
    ctx.log(
        asyncmd_proto::Level::Info,
        &format!("Serving http://{at}/ (status), /debug and /metrics"),
    );
    let site = Arc::new(Site {
        units: std::mem::replace(&mut ctx.units, Box::new(Vec::new)),
        journal: ctx.journal.clone(),
        requests: AtomicU64::new(0),
    });
    let places = Arc::new(Semaphore::new(most));
    // The connections live and die with the service.
    let mut open = tokio::task::JoinSet::new();
    let publish = |site: &Site, ctx: &Context| {
        let mut s = Map::new();
        s.insert("listening".into(), json!(at));
        s.insert(
            "requests".into(),
            json!(site.requests.load(Ordering::Relaxed)),
        );
        ctx.set_stats(s);
    };
    publish(&site, &ctx);
    loop {
        tokio::select! {
            _ = ctx.stopped() => return Ok(()),
            Some(_) = open.join_next(), if !open.is_empty() => publish(&site, &ctx),
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // Out of descriptors, say: a moment's want, not the end of the site.
                        ctx.log(asyncmd_proto::Level::Warning, &format!("accept: {e}"));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                match places.clone().try_acquire_owned() {
                    Ok(place) => {
                        open.spawn(serve(stream, site.clone(), place));
                    }
                    Err(_) => {
                        open.spawn(busy(stream, most));
                    }
                }
            }
        }
    }
}

/// One connection, while it holds its `place` among the open ones.
async fn serve(
    stream: tokio::net::TcpStream,
    site: Arc<Site>,
    place: tokio::sync::OwnedSemaphorePermit,
) {
    let _place = place;
    let io = hyper_util::rt::TokioIo::new(stream);
    let service = hyper::service::service_fn(move |req| {
        let site = site.clone();
        async move { Ok::<_, Infallible>(site.answer(&req)) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .max_buf_size(HEAD_LIMIT)
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .serve_connection(io, service);
    let _ = tokio::time::timeout(CONNECTION_LIMIT, conn).await;
}

/// A connection beyond the limit: told so, and closed.
async fn busy(mut stream: tokio::net::TcpStream, most: usize) {
    let body = format!("busy: {most} connections are open, the most this site takes\n");
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(HEAD_TIMEOUT, async {
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(body.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

impl Site {
    fn answer(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut r = reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "GET or HEAD only\n",
            );
            r.headers_mut().insert(
                "allow",
                hyper::header::HeaderValue::from_static("GET, HEAD"),
            );
            return r;
        }
        let has_body = req.headers().contains_key(hyper::header::TRANSFER_ENCODING)
            || req
                .headers()
                .get(hyper::header::CONTENT_LENGTH)
                .is_some_and(|l| l.as_bytes() != b"0");
        if has_body {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                "a request here has no body\n",
            );
        }
        let json = "application/json";
        let r = match req.uri().path() {
            "/" => reply(StatusCode::OK, json, &self.status(false)),
            "/debug" => reply(StatusCode::OK, json, &self.status(true)),
            "/metrics" => reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                &self.metrics(),
            ),
            other => reply(
                StatusCode::NOT_FOUND,
                "text/plain",
                &format!("no {other} here: try /, /debug or /metrics\n"),
            ),
        };
        if req.method() == Method::HEAD {
            let (parts, _) = r.into_parts();
            return Response::from_parts(parts, Full::new(Bytes::new()));
        }
        r
    }

    /// Every unit in asyncmd's schema, with `hostname`, as its stats.service answers.
    fn status(&self, debug: bool) -> String {
        let mut out = Map::new();
        for u in (self.units)() {
            out.insert(u.name.clone(), task_stats(&u, debug));
        }
        out.insert("hostname".into(), json!(self.journal.host()));
        let mut s = Value::Object(out).to_string();
        s.push('\n');
        s
    }

    /// The Prometheus text of the units and the journal.
    fn metrics(&self) -> String {
        metrics(&(self.units)(), &self.journal)
    }
}

fn reply(code: StatusCode, kind: &'static str, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = code;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(kind),
    );
    r
}

/// Every state a unit can be in, as the `state` label says it.
const STATES: [UnitState; 9] = [
    UnitState::Inactive,
    UnitState::Waiting,
    UnitState::Starting,
    UnitState::Running,
    UnitState::Stopping,
    UnitState::Done,
    UnitState::Failed,
    UnitState::Stopped,
    UnitState::Restarting,
];

/// `units` and `journal` in Prometheus's text format (version 0.0.4).
pub fn metrics(units: &[UnitStatus], journal: &Journal) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, rows: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let unit = |u: &str| format!("{{unit=\"{}\"}}", escape(u));
    family(
        "asyncmd_up_seconds",
        "gauge",
        "Seconds since asyncmdd started.",
        vec![(
            String::new(),
            format!("{:.3}", journal.uptime().as_secs_f64()),
        )],
    );
    family(
        "asyncmd_unit_state",
        "gauge",
        "1 for the state a unit is in, 0 for the others.",
        units
            .iter()
            .flat_map(|u| {
                STATES.iter().map(move |s| {
                    let labels =
                        format!("{{unit=\"{}\",state=\"{}\"}}", escape(&u.name), s.as_str());
                    (labels, u8::from(u.state == *s).to_string())
                })
            })
            .collect(),
    );
    family(
        "asyncmd_unit_starts_total",
        "counter",
        "Runs started since asyncmdd started.",
        units
            .iter()
            .map(|u| (unit(&u.name), u.starts.to_string()))
            .collect(),
    );
    family(
        "asyncmd_unit_restarts",
        "gauge",
        "Automatic restarts since the unit was last started by hand.",
        units
            .iter()
            .map(|u| (unit(&u.name), u.restarts.to_string()))
            .collect(),
    );
    family(
        "asyncmd_unit_cpu_seconds_total",
        "counter",
        "CPU time of the unit's current or last run (its cgroup, where it has one).",
        units
            .iter()
            .filter_map(|u| Some((unit(&u.name), format!("{:.6}", u.cpu_us? as f64 / 1e6))))
            .collect(),
    );
    family(
        "asyncmd_unit_memory_bytes",
        "gauge",
        "Resident memory of the unit's main process (its cgroup, where it has one).",
        units
            .iter()
            .filter_map(|u| Some((unit(&u.name), u.memory_bytes?.to_string())))
            .collect(),
    );
    let tally = journal.tally();
    family(
        "asyncmd_unit_log_lines_total",
        "counter",
        "Lines the unit logged into the journal.",
        tally
            .iter()
            .map(|(n, t)| (unit(n), t.logged.to_string()))
            .collect(),
    );
    family(
        "asyncmd_unit_log_lines_dropped_total",
        "counter",
        "Lines of the unit the journal ring dropped to make room for newer ones.",
        tally
            .iter()
            .map(|(n, t)| (unit(n), t.dropped.to_string()))
            .collect(),
    );
    let (used, entries, dropped) = journal.with_ring(|r| (r.used(), r.len(), r.first_seq()));
    family(
        "asyncmd_journal_bytes",
        "gauge",
        "Bytes of the journal ring in use.",
        vec![(String::new(), used.to_string())],
    );
    family(
        "asyncmd_journal_capacity_bytes",
        "gauge",
        "The journal ring's fixed byte budget.",
        vec![(String::new(), journal.capacity().to_string())],
    );
    family(
        "asyncmd_journal_entries",
        "gauge",
        "Entries held in the journal ring.",
        vec![(String::new(), entries.to_string())],
    );
    family(
        "asyncmd_journal_entries_dropped_total",
        "counter",
        "Entries the journal ring dropped to make room for newer ones.",
        vec![(String::new(), dropped.to_string())],
    );
    out
}

/// A label value as Prometheus's text format writes it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
