//! The portable core of asyncmd: the logic the daemon and the embedded agent share, with no
//! tokio, no std and no operating system beneath it.
//!
//! Everything here is pure: time comes in through [`clock::Clock`] (or as plain arguments), and
//! decisions go out as values for a driver to carry out. The host daemon (`asyncmdd`) is one
//! such driver; a board's agent is another.

#![no_std]
#![warn(missing_docs)]

extern crate alloc;

pub mod clock;
pub mod control;
/// Durations as people read them: the protocol's, as a schedule's description is written there.
pub use asyncmd_proto::duration;
pub mod journal;
pub mod lifecycle;
pub mod pattern;
pub mod plan;
pub mod restart;
pub mod schedule;
pub mod status;
pub mod suggest;
pub mod table;
