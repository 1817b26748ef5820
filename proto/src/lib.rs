//! Wire protocol of asyncmd: the requests clients send to `asyncmdd`, the responses and journal
//! entries it sends back, and the newline-delimited JSON framing with its hard size limits.
//!
//! This crate holds types and framing only: no sockets policy, no business logic. Two things
//! a client must read as the daemon writes them live here too: durations as people read them
//! ([`duration`]) and a schedule's keys with its description ([`schedule`]), so that a host
//! describes a board's schedule from its parts; the scheduling itself is the core's. It builds
//! `no_std` with `alloc` (disable the default `std` feature) so the embedded agent speaks the same
//! types; with `std` it adds the shared text formats ([`text`]), the default socket path
//! ([`endpoint`]) and a small blocking client ([`client`]).
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod duration;
pub mod frame;
pub mod journal;
pub mod link;
pub mod request;
pub mod schedule;
pub mod unit;

#[cfg(feature = "std")]
pub mod agent;
#[cfg(feature = "std")]
pub mod client;
#[cfg(feature = "std")]
pub mod endpoint;
#[cfg(feature = "mqtt")]
pub mod mqtt;
#[cfg(feature = "std")]
pub mod text;

pub use journal::{Entry, JournalQuery, Level, TextFormat, TextStyle};
pub use request::{
    ActionOutcome, ActionResult, Change, ChangeAction, Envelope, ErrorCode, KillWhom, Request,
    Response,
};
pub use unit::{ExitResult, UnitState, UnitStatus, UnitType};

/// Protocol version spoken by this build; requests carrying another one are refused.
pub const VERSION: u32 = 1;

/// Largest request frame the daemon accepts, newline included.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Longest journal `grep` pattern the daemon compiles: a regular expression's compile time
/// grows with its length (a hostile 38 KB one takes 0.6 s), and no reader needs more.
pub const MAX_GREP_BYTES: usize = 1024;

/// Largest response frame a client accepts, newline included.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
