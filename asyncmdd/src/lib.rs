//! The asyncmd runtime: unit files, boot order, the supervisor of service processes, the ring
//! journal and the control server that `asyncmctl` and `asyncmjournal` talk to. The `asyncmdd`
//! binary wires these together; a tokio application can use them as a library.

pub mod boot;
pub mod builtin;
pub mod capture;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod examples;
pub mod host;
pub mod journal;
pub mod monitor;
pub mod notify;
pub mod process;
pub mod reload;
pub mod schedule;
pub mod server;
pub mod supervisor;
pub mod task;
pub mod tracing_journal;
pub mod unit;
pub mod watcher;
