//! How asyncmctl reaches what it asks: asyncmdd's local socket, a board's agent over its
//! serial link, or fleet devices through an MQTT broker. Each answers a request with one
//! response per device (one, but for `--device all`).

use std::path::PathBuf;

use asyncmd_proto::agent::AgentClient;
use asyncmd_proto::client::Client;
use asyncmd_proto::mqtt::{Broker, Fleet};
use asyncmd_proto::{Request, Response};

/// A response, with the device it came from when it came through a broker.
pub type Answer = (Option<String>, Response);

/// Where requests go, connected on the first one.
pub enum Link {
    /// asyncmdd's socket, trusting a daemon of user `expect` besides root and oneself.
    Socket {
        path: PathBuf,
        expect: Option<u32>,
        client: Option<Client>,
    },
    /// A board's agent at `addr`.
    Agent {
        addr: String,
        client: Option<AgentClient>,
    },
    /// `device` (or `all`) through `broker`.
    Mqtt {
        broker: Broker,
        device: String,
        fleet: Option<Fleet>,
    },
}

impl Link {
    /// The same place, not yet connected: a second link, for a second thread.
    pub fn fresh(&self) -> Link {
        match self {
            Link::Socket { path, expect, .. } => Link::Socket {
                path: path.clone(),
                expect: *expect,
                client: None,
            },
            Link::Agent { addr, .. } => Link::Agent {
                addr: addr.clone(),
                client: None,
            },
            Link::Mqtt { broker, device, .. } => Link::Mqtt {
                broker: broker.clone(),
                device: device.clone(),
                fleet: None,
            },
        }
    }

    /// Whether answers come from many devices (`--device all`).
    pub fn many(&self) -> bool {
        matches!(self, Link::Mqtt { device, .. } if device == "all")
    }

    /// Sends `req` and waits for the answer(s). A connection that failed is made again on the
    /// next call.
    pub fn call(&mut self, req: Request) -> Result<Vec<Answer>, String> {
        let r = self.call_(req);
        if r.is_err() {
            self.forget();
        }
        r
    }

    fn call_(&mut self, req: Request) -> Result<Vec<Answer>, String> {
        match self {
            Link::Socket {
                path,
                expect,
                client,
            } => {
                if client.is_none() {
                    *client =
                        Some(Client::connect_expecting(path, *expect).map_err(|e| e.to_string())?);
                }
                let c = client.as_mut().expect("connected above");
                let r = c.call(req).map_err(|e| e.to_string())?;
                Ok(vec![(None, r)])
            }
            Link::Agent { addr, client } => {
                if client.is_none() {
                    *client = Some(AgentClient::connect(addr).map_err(|e| e.to_string())?);
                }
                let c = client.as_mut().expect("connected above");
                let r = c.call(req).map_err(|e| e.to_string())?;
                Ok(vec![(None, r)])
            }
            Link::Mqtt {
                broker,
                device,
                fleet,
            } => {
                if fleet.is_none() {
                    *fleet = Some(Fleet::connect(broker)?);
                }
                let f = fleet.as_mut().expect("connected above");
                let list = f.call(device, &req)?;
                Ok(list
                    .into_iter()
                    .filter_map(|(d, mut resp)| {
                        (!resp.is_empty()).then(|| (Some(d), resp.remove(0)))
                    })
                    .collect())
            }
        }
    }

    fn forget(&mut self) {
        match self {
            Link::Socket { client, .. } => *client = None,
            Link::Agent { client, .. } => *client = None,
            Link::Mqtt { fleet, .. } => *fleet = None,
        }
    }
}
