//! The clients' link to a fleet over MQTT (`asyncmctl --mqtt`, `asyncmjournal --mqtt`): a
//! request of this protocol goes to `device/<id>/request` (or `device/all/request`) with a
//! reply topic of this client's own; each device that has the `mqtt` unit answers there with
//! `{"id", "device", "resp": [RESPONSE...]}`.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use serde::Deserialize;

use crate::{Request, Response, VERSION};

/// How long a request to one device waits for its answer.
pub const ONE_WAIT: Duration = Duration::from_secs(10);
/// How long a request to `all` collects answers: every device that answers within it is shown.
pub const ALL_WAIT: Duration = Duration::from_secs(2);

/// Where the broker is and how to log in.
#[derive(Debug, Clone, Default)]
pub struct Broker {
    /// `mqtt://HOST[:PORT]` (1883) or `mqtts://HOST[:PORT]` (8883).
    pub url: String,
    /// The user name, if the broker wants one.
    pub user: Option<String>,
    /// Its password.
    pub password: Option<String>,
    /// A PEM file of the CA that signed the broker's certificate (else the system's roots).
    pub ca: Option<std::path::PathBuf>,
}

/// What came back from the link's thread.
enum Seen {
    Connected,
    Subscribed,
    Message(Vec<u8>),
    Failed(String),
}

/// One device's answer.
#[derive(Debug, Deserialize)]
struct Answer {
    id: u64,
    device: String,
    resp: Vec<Response>,
}

/// A connection to the broker, with a reply topic of its own.
pub struct Fleet {
    client: Client,
    rx: mpsc::Receiver<Seen>,
    reply: String,
    next: u64,
}

fn parse_url(url: &str) -> Result<(bool, String, u16), String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(format!(
            "--mqtt {url}: not an MQTT address (mqtt://HOST[:PORT] or mqtts://HOST[:PORT])"
        ));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("--mqtt {url}: '{p}' is not a port"))?,
        ),
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("--mqtt {url}: no host"));
    }
    Ok((tls, host.to_string(), port))
}

fn tls(ca: Option<&Path>) -> Result<TlsConfiguration, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("--mqtt-ca {}: {e}", path.display()))?;
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| format!("--mqtt-ca {}: {e}", path.display()))?;
            }
        }
        None => {
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConfiguration::Rustls(Arc::new(config)))
}

impl Fleet {
    /// Connects to `broker` and subscribes to a reply topic of its own.
    pub fn connect(broker: &Broker) -> Result<Fleet, String> {
        let (secure, host, port) = parse_url(&broker.url)?;
        let me = format!(
            "asyncmctl-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos()
        );
        let mut opts = MqttOptions::new(me.clone(), host.clone(), port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_max_packet_size(16 * 1024 * 1024, 64 * 1024);
        if let Some(u) = &broker.user {
            opts.set_credentials(u.clone(), broker.password.clone().unwrap_or_default());
        }
        if secure {
            opts.set_transport(Transport::tls_with_config(tls(broker.ca.as_deref())?));
        }
        let (client, mut conn) = Client::new(opts, 16);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                let seen = match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => Seen::Connected,
                    Ok(Event::Incoming(Packet::SubAck(_))) => Seen::Subscribed,
                    Ok(Event::Incoming(Packet::Publish(p))) => Seen::Message(p.payload.to_vec()),
                    Ok(_) => continue,
                    Err(e) => Seen::Failed(match e {
                        rumqttc::ConnectionError::ConnectionRefused(code) => {
                            format!("the broker refused the connection: {code:?}")
                        }
                        other => other.to_string(),
                    }),
                };
                let failed = matches!(seen, Seen::Failed(_));
                if tx.send(seen).is_err() || failed {
                    return;
                }
            }
        });
        let mut fleet = Fleet {
            client,
            rx,
            reply: format!("asyncmd/client/{me}"),
            next: 1,
        };
        let addr = format!("{host}:{port}");
        fleet.expect(|s| matches!(s, Seen::Connected), &addr)?;
        fleet
            .client
            .subscribe(fleet.reply.clone(), QoS::AtMostOnce)
            .map_err(|e| e.to_string())?;
        fleet.expect(|s| matches!(s, Seen::Subscribed), &addr)?;
        Ok(fleet)
    }

    fn expect(&mut self, want: impl Fn(&Seen) -> bool, addr: &str) -> Result<(), String> {
        loop {
            match self.rx.recv_timeout(ONE_WAIT) {
                Ok(Seen::Failed(e)) => {
                    return Err(format!("cannot reach the broker at {addr}: {e}"))
                }
                Ok(s) if want(&s) => return Ok(()),
                Ok(_) => {}
                Err(_) => return Err(format!("the broker at {addr} did not answer")),
            }
        }
    }

    /// Sends `req` to `device` (`all`: to every device) and returns each device's answer: for
    /// one device its first, within [`ONE_WAIT`]; for `all` every answer within [`ALL_WAIT`].
    pub fn call(
        &mut self,
        device: &str,
        req: &Request,
    ) -> Result<Vec<(String, Vec<Response>)>, String> {
        let id = self.next;
        self.next += 1;
        let body = serde_json::json!({"v": VERSION, "id": id, "reply": self.reply, "req": req});
        self.client
            .publish(
                format!("device/{device}/request"),
                QoS::AtMostOnce,
                false,
                body.to_string().into_bytes(),
            )
            .map_err(|e| e.to_string())?;
        let all = device == "all";
        let wait = if all { ALL_WAIT } else { ONE_WAIT };
        let until = Instant::now() + wait;
        let mut answers = Vec::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Seen::Message(m)) => {
                    let Ok(a) = serde_json::from_slice::<Answer>(&m) else {
                        continue;
                    };
                    if a.id != id || (!all && a.device != device) {
                        continue;
                    }
                    answers.push((a.device, a.resp));
                    if !all {
                        return Ok(answers);
                    }
                }
                Ok(Seen::Failed(e)) => return Err(format!("the link to the broker failed: {e}")),
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("the link to the broker ended".into())
                }
            }
        }
        if answers.is_empty() {
            return Err(if all {
                format!("no device answered within {} s", wait.as_secs())
            } else {
                format!(
                    "device {device} did not answer within {} s (is its mqtt unit running, on this broker?)",
                    wait.as_secs()
                )
            });
        }
        answers.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(answers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(parse_url("mqtt://h").unwrap(), (false, "h".into(), 1883));
        assert_eq!(parse_url("mqtts://h").unwrap(), (true, "h".into(), 8883));
        assert_eq!(
            parse_url("mqtt://127.0.0.1:18830/").unwrap(),
            (false, "127.0.0.1".into(), 18830)
        );
        assert_eq!(
            parse_url("mqtt://[::1]:1").unwrap(),
            (false, "::1".into(), 1)
        );
        assert!(parse_url("tcp://h").is_err());
        assert!(parse_url("mqtt://h:x").is_err());
        assert!(parse_url("mqtt://").is_err());
    }
}
