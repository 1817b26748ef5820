//! The asyncmd host runtime: the tokio driver of the portable core (`asyncmd-core`). It reads
//! unit files, spawns and reaps service processes, speaks sd_notify, runs health checks,
//! captures output into the ring journal, edits `services.config`, and serves the control
//! socket that `asyncmctl` and `asyncmjournal` talk to. The `asyncmdd` binary wires these
//! together; a tokio application uses it as a library: [`standalone`] and [`serve`].

pub mod answer;
pub mod boards;
pub mod boot;
pub mod builtins;
pub mod capture;
pub mod cgroup;
pub mod clock;
pub mod control_socket;
pub mod daemon;
pub mod driver;
pub mod health;
pub mod host;
pub mod journal;
pub mod process;
pub mod reload;
pub mod schedule;
pub mod sd_notify;
pub mod services_config;
pub mod spawn;
pub mod task_runtime;
pub mod tracing_journal;
pub mod trim;
pub mod unit_file;

pub use host::{serve, standalone};
