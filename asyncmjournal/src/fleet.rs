//! `asyncmjournal --mqtt URL --device ID`: a fleet device's journal through the broker.
//!
//! The device filters (units, level, grep, since, the newest N) as the daemon does on its
//! socket, and answers a page at a time with where the next read goes on; following asks again
//! from there every half second.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use asyncmd_proto::mqtt::{Broker, Fleet};
use asyncmd_proto::{JournalQuery, Request, Response};

use crate::agent::{stdout_gone, Filters, Printer};
use crate::{fail, Cli};

/// How often a follower asks for new entries.
const POLL_EVERY: Duration = Duration::from_millis(500);

/// Prints the device's journal (and, following, what it logs from then on).
pub fn journal(url: &str, cli: Cli, color: bool) -> ExitCode {
    let password = match &cli.mqtt_password_file {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(p) => Some(p.trim_end_matches(['\r', '\n']).to_string()),
            Err(e) => return fail(&format!("--mqtt-password-file {}: {e}", f.display())),
        },
        None => std::env::var("ASYNCMD_MQTT_PASSWORD").ok(),
    };
    let broker = Broker {
        url: url.to_string(),
        user: cli.mqtt_user.clone(),
        password,
        ca: cli.mqtt_ca.clone(),
    };
    let device = cli.device.clone().unwrap_or_default();
    if device == "all" {
        return fail("--device all is for asyncmctl; asyncmjournal reads one device's journal");
    }
    let mut fleet = match Fleet::connect(&broker) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    if cli.reverse {
        return fail(
            "--reverse reads asyncmdd's journal on its socket; a device's is read oldest first",
        );
    }
    // The device applies every filter itself.
    let mut printer = Printer::stdout(&cli, color, Filters::default());
    let mut query = JournalQuery {
        follow: false,
        text: None,
        ..cli.query(None)
    };
    loop {
        let answer = match fleet.call(&device, &Request::Journal(query.clone())) {
            Ok(mut a) => a.remove(0).1,
            Err(e) => return fail(&e),
        };
        let mut next_seq = None;
        let mut got = false;
        for resp in answer {
            match resp {
                Response::Entries {
                    host,
                    entries,
                    missed,
                } => {
                    if missed > 0 {
                        let _ = printer.out.flush();
                        eprintln!(
                            "-- {missed} entries missed: this reader fell behind the journal ring --"
                        );
                    }
                    got = !entries.is_empty();
                    if let Err(e) = printer.print(&host, &entries) {
                        if e.kind() == io::ErrorKind::BrokenPipe {
                            return ExitCode::SUCCESS;
                        }
                        return fail(&format!("cannot write output: {e}"));
                    }
                }
                Response::End { next_seq: n } => next_seq = Some(n),
                Response::Error { message, .. } => return fail(&format!("{device}: {message}")),
                other => return fail(&format!("unexpected answer from {device}: {other:?}")),
            }
        }
        let Some(n) = next_seq else {
            return fail(&format!("{device} did not say where its journal goes on"));
        };
        if query.after_seq.is_some_and(|seen| n < seen) {
            eprintln!("-- {device}'s journal starts again (its daemon restarted) --");
        }
        // A page of the whole journal was read: go on from its end, unless it was the last.
        let paged = query.lines.is_none() && got;
        query.lines = None;
        query.after_seq = Some(n);
        if paged {
            let _ = printer.out.flush();
            continue;
        }
        if !cli.follow {
            return ExitCode::SUCCESS;
        }
        if stdout_gone(POLL_EVERY) {
            return ExitCode::SUCCESS;
        }
    }
}
