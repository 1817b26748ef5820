//! A real broker for the fleet tests: mosquitto on a free loopback port, and a client of the
//! tests' own (rumqttc) that watches topics and publishes.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

use crate::{free_port, wait_for, DEADLINE};

/// A mosquitto broker of the test's own.
pub struct Broker {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    conf: std::path::PathBuf,
}

impl Broker {
    /// Starts mosquitto on a free port (its config and log in `dir`) and waits until it listens.
    pub fn start(dir: &Path) -> Broker {
        Broker::on(dir, free_port(), "allow_anonymous true\n")
    }

    /// Starts mosquitto on a free port with `conf` (TLS files, a password file...) for its
    /// listener.
    pub fn with(dir: &Path, conf: &str) -> Broker {
        Broker::on(dir, free_port(), conf)
    }

    /// Starts mosquitto on `port`, its listener configured by `extra`.
    fn on(dir: &Path, port: u16, extra: &str) -> Broker {
        let conf = dir.join("mosquitto.conf");
        // As root, mosquitto would become user mosquitto, who cannot read the test's files.
        let user = if nix::unistd::geteuid().is_root() {
            "user root\n"
        } else {
            ""
        };
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\n{user}{extra}")).unwrap();
        let log = std::fs::File::create(dir.join(format!("mosquitto-{port}.log"))).unwrap();
        // Debian puts it in /usr/sbin, which a user's PATH may lack.
        let exe = ["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mosquitto");
        let child = Command::new(exe)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "mosquitto does not start ({e}): install it with \
                     apt-get install -y --no-install-recommends mosquitto (tests/run.sh does)"
                )
            });
        let mut b = Broker { port, child, conf };
        wait_for("mosquitto to listen", || {
            if let Ok(Some(st)) = b.child.try_wait() {
                let log = std::fs::read_to_string(dir.join(format!("mosquitto-{port}.log")));
                panic!("mosquitto exited ({st}): {}", log.unwrap_or_default());
            }
            TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        });
        b
    }

    /// Kills it (SIGKILL) and waits for it to go.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port, as it was.
    pub fn restart(&mut self) {
        self.kill();
        let dir = self.conf.parent().unwrap().to_path_buf();
        let text = std::fs::read_to_string(&self.conf).unwrap();
        let extra = text
            .lines()
            .skip(1)
            .filter(|l| *l != "user root")
            .map(|l| format!("{l}\n"))
            .collect::<String>();
        let again = Broker::on(&dir, self.port, &extra);
        *self = again;
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One message seen by a [`Watch`].
#[derive(Debug, Clone)]
pub struct Message {
    /// Its topic.
    pub topic: String,
    /// Its payload, as text.
    pub text: String,
    /// Whether the broker delivered it as retained.
    pub retained: bool,
}

impl Message {
    /// The payload as JSON (panics, naming it, when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {}", self.topic, self.text))
    }
}

/// A client that subscribes to `filter` and keeps what arrives, to be waited on.
pub struct Watch {
    client: Client,
    rx: mpsc::Receiver<Message>,
    /// Everything seen so far, in order.
    pub seen: Vec<Message>,
}

impl Watch {
    /// Connects to the broker on `port` and subscribes to `filter` (say `device/#`).
    pub fn new(port: u16, filter: &str) -> Watch {
        let id = format!("test-{}-{}", std::process::id(), free_port());
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut conn) = Client::new(opts, 64);
        client.subscribe(filter, QoS::AtMostOnce).unwrap();
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ready_tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let m = Message {
                            topic: p.topic.clone(),
                            text: String::from_utf8_lossy(&p.payload).into_owned(),
                            retained: p.retain,
                        };
                        if tx.send(m).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        ready_rx
            .recv_timeout(DEADLINE)
            .expect("the test client's subscription");
        Watch {
            client,
            rx,
            seen: Vec::new(),
        }
    }

    /// Publishes `payload` on `topic`.
    pub fn publish(&self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtMostOnce, false, payload.as_bytes().to_vec())
            .unwrap();
    }

    /// Waits for the next message (after those already taken) on `topic` that `pick` accepts.
    pub fn next(&mut self, topic: &str, pick: impl Fn(&Message) -> bool) -> Message {
        let start = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(start.elapsed());
            let m = self.rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "timed out waiting for a message on {topic}; seen: {:#?}",
                    self.seen.iter().rev().take(10).collect::<Vec<_>>()
                )
            });
            self.seen.push(m.clone());
            if m.topic == topic && pick(&m) {
                return m;
            }
        }
    }

    /// Publishes `payload` on `topic`, then waits for the answer on `reply` that `pick` accepts.
    pub fn ask(
        &mut self,
        topic: &str,
        payload: &str,
        reply: &str,
        pick: impl Fn(&Message) -> bool,
    ) -> Message {
        self.publish(topic, payload);
        self.next(reply, pick)
    }
}
