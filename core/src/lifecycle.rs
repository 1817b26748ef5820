//! The run lifecycle of a unit or task as one explicit state machine: `(state, event) ->
//! (state, effects)`, as s6-supervise's action table is.
//!
//! A [`Life`] holds what describes the runs of one unit or task (its state, the current run's
//! number, how the last one ended, its restart bookkeeping); [`Life::step`] changes it, and so
//! do the three transitions a task has, which are `step`'s own arms and may be called by name
//! ([`Life::started`], [`Life::ended`], [`Life::stop`]: a board's agent does, so that the rest
//! is not in its firmware). The driver feeds it what happened ([`Event`]) and carries out what
//! it asks for ([`Effect`]): a journal line, a stop of the run's processes, a restart timer. A late
//! event of an earlier run names its run number and is told apart here, once.

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use asyncmd_proto::{ExitResult, Level, UnitState};
use serde_json::Value;

use crate::clock::Clock;
use crate::duration::Human;
use crate::restart::{Backoff, Decision, Restart, Restarts};

/// Stderr lines kept as a unit's traceback.
pub const TRACEBACK_LINES: usize = 10;

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    /// Its process exited (a builtin service: 0 when it returned, 1 on an error).
    Exit(ExitResult),
    /// The driver lost track of its process; why.
    Lost(String),
    /// A task returned this value.
    Value(Value),
    /// A task failed: its message, and the chain of causes (a traceback).
    Error {
        /// What went wrong.
        message: String,
        /// The message and its causes, outermost first.
        chain: Vec<String>,
    },
}

/// Something that happened to a unit or task.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A plan holds it back until `deps` are ready (none: no longer).
    Wait(Vec<String>),
    /// Its process is about to be spawned.
    Spawning,
    /// A run began: its process was spawned, or its future started. `ready` is false for a
    /// `notify` unit, which waits for `READY=1`; `what` says what runs (`pid 42`).
    Started {
        /// Whether it is ready at once.
        ready: bool,
        /// What runs, for the journal line.
        what: Option<String>,
    },
    /// It could not start: why (a spawn error, a failed dependency, a broken file).
    StartFailed(String),
    /// The current run told it is ready (`READY=1`).
    Ready,
    /// The daemon gives up on run `run` (a watchdog, a health check, a builtin's error): it
    /// ends as failed with `why`.
    Condemn {
        /// The run number.
        run: u32,
        /// Why.
        why: String,
    },
    /// Run `run` ended. `restart` is the policy of the unit it ran as (None: never).
    Ended {
        /// The run number.
        run: u32,
        /// How.
        end: End,
        /// The restart policy it ran with.
        restart: Option<(Restart, Backoff)>,
    },
    /// A stop was asked for.
    Stop,
    /// The stop could not be carried out (the signal failed): it keeps running.
    StopFailed,
    /// A person started it: the restart history counts from zero and a pending automatic
    /// restart is given up.
    Manual,
    /// `reset-failed`: the restart history goes, and `failed` becomes `inactive`.
    ResetFailed,
}

/// What the driver is to do after a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Write this line under the unit's name.
    Log(Level, String),
    /// End the current run: its stop signal, or the stop request of a builtin or task.
    Terminate,
    /// Kill the current run, condemned (see [`Event::Condemn`]).
    Kill,
    /// Start it again after `delay`, if [`Life::restart_due`] still holds for `gen` then.
    ArmRestart {
        /// How long to wait.
        delay: Duration,
        /// The restart generation it is for.
        gen: u64,
    },
}

/// The lifecycle of one unit or task.
#[derive(Debug, Clone)]
pub struct Life {
    /// Current state.
    pub state: UnitState,
    /// When it entered that state (wall µs).
    pub since_us: Option<i64>,
    /// When the current or last run started.
    pub started_us: Option<i64>,
    /// When the last run ended.
    pub done_us: Option<i64>,
    /// Runs started so far; the current run's number.
    pub starts: u32,
    /// A run is going: spawned (or started) and not yet ended.
    pub running: bool,
    /// The last run's exit result.
    pub result: Option<ExitResult>,
    /// The last task run's return value.
    pub value: Option<Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// The last lines of its stderr, or a task's chain of causes.
    pub traceback: VecDeque<String>,
    /// Units whose readiness it waits for.
    pub waiting_for: Vec<String>,
    /// How many pending starts a stop cancelled: a plan compares it before it starts.
    pub cancels: u64,
    /// Restart bookkeeping since the last manual start.
    pub restarts: Restarts,
    /// Bumped by anything that overrides a pending automatic restart.
    pub restart_gen: u64,
    /// When the pending automatic restart is due (wall µs).
    pub next_restart_us: Option<i64>,
    /// Why the last failed run failed.
    pub last_exit: Option<String>,
    /// Whether the last run that ended failed (whether or not a restart follows).
    pub last_failed: bool,
    /// A stop of the current run was asked for.
    stop_requested: bool,
    /// Why the daemon condemned the current run.
    kill_reason: Option<String>,
    /// When the current run started (monotonic µs).
    started_mono: Option<u64>,
}

impl Default for Life {
    fn default() -> Life {
        Life::new(None)
    }
}

impl Life {
    /// A lifecycle that has not run, inactive since `since_us`.
    pub fn new(since_us: Option<i64>) -> Life {
        Life {
            state: UnitState::Inactive,
            since_us,
            started_us: None,
            done_us: None,
            starts: 0,
            running: false,
            result: None,
            value: None,
            error: None,
            traceback: VecDeque::new(),
            waiting_for: Vec::new(),
            cancels: 0,
            restarts: Restarts::default(),
            restart_gen: 0,
            next_restart_us: None,
            last_exit: None,
            last_failed: false,
            stop_requested: false,
            kill_reason: None,
            started_mono: None,
        }
    }

    fn set(&mut self, state: UnitState, clock: &impl Clock) {
        self.state = state;
        self.since_us = Some(clock.wall_us());
    }

    /// Whether run `run` is the current one and still going.
    pub fn is_current(&self, run: u32) -> bool {
        self.starts == run && self.running
    }

    /// Whether a stop of the current run was asked for.
    pub fn stop_requested(&self) -> bool {
        self.stop_requested
    }

    /// Whether the automatic restart of generation `gen` is still pending.
    pub fn restart_due(&self, gen: u64) -> bool {
        self.state == UnitState::Restarting && self.restart_gen == gen
    }

    /// Whether a run is going or being started: a start now would only join it.
    pub fn is_active(&self) -> bool {
        matches!(
            self.state,
            UnitState::Running | UnitState::Starting | UnitState::Stopping
        )
    }

    /// Keeps `line` as the newest of the traceback's last [`TRACEBACK_LINES`].
    pub fn push_traceback(&mut self, line: String) {
        if self.traceback.len() == TRACEBACK_LINES {
            self.traceback.pop_front();
        }
        self.traceback.push_back(line);
    }

    /// The last result, for a person: `exit status 1`, or `no result`.
    pub fn result_text(&self) -> String {
        self.result
            .as_ref()
            .map_or_else(|| String::from("no result"), ToString::to_string)
    }

    /// Why the last run failed, for a person: the error, or the result and the last stderr
    /// line.
    pub fn failure_reason(&self) -> String {
        if let Some(e) = &self.error {
            return e.clone();
        }
        let mut s = self.result_text();
        if let Some(last) = self.traceback.back() {
            s.push_str(": ");
            s.push_str(last);
        }
        s
    }

    /// Applies `event` at the time `clock` tells; returns what the driver is to do.
    pub fn step(&mut self, event: Event, clock: &impl Clock) -> Vec<Effect> {
        let mut out = Vec::new();
        match event {
            Event::Wait(deps) => {
                if deps.is_empty() {
                    if self.state == UnitState::Waiting {
                        self.set(UnitState::Inactive, clock);
                    }
                } else if self.state != UnitState::Waiting {
                    self.set(UnitState::Waiting, clock);
                }
                self.waiting_for = deps;
            }
            Event::Spawning => {
                self.set(UnitState::Starting, clock);
                self.waiting_for.clear();
            }
            Event::Started { ready, what } => return self.started(ready, what, clock),
            Event::StartFailed(msg) => {
                self.waiting_for.clear();
                self.set(UnitState::Failed, clock);
                self.done_us = self.since_us;
                self.running = false;
                self.result = None;
                out.push(Effect::Log(Level::Error, format!("Failed to start: {msg}")));
                self.error = Some(msg);
            }
            Event::Ready => {
                if self.state == UnitState::Starting && self.running {
                    self.set(UnitState::Running, clock);
                    out.push(Effect::Log(Level::Info, "Ready (READY=1)".into()));
                }
            }
            Event::Condemn { run, why } => {
                if self.is_current(run) && !self.stop_requested {
                    self.kill_reason = Some(why);
                    out.push(Effect::Kill);
                }
            }
            Event::Ended { run, end, restart } => return self.ended(run, end, restart, clock),
            Event::Stop => return self.stop(clock),
            Event::StopFailed => {
                self.stop_requested = false;
                if self.state == UnitState::Stopping {
                    self.set(UnitState::Running, clock);
                }
            }
            Event::Manual => {
                self.restarts.reset();
                self.restart_gen += 1;
                self.next_restart_us = None;
            }
            Event::ResetFailed => {
                // The count goes; a restart already pending stays due.
                self.restarts.reset();
                if self.state == UnitState::Failed {
                    self.set(UnitState::Inactive, clock);
                    self.error = None;
                }
            }
        }
        out
    }

    /// [`Event::Started`]: a driver that has only tasks calls this, [`Life::ended`] and
    /// [`Life::stop`] directly, so that the events of units stay out of a board's firmware.
    pub fn started(
        &mut self,
        ready: bool,
        what: Option<String>,
        clock: &impl Clock,
    ) -> Vec<Effect> {
        let state = if ready {
            UnitState::Running
        } else {
            UnitState::Starting
        };
        self.set(state, clock);
        self.waiting_for.clear();
        self.started_us = self.since_us;
        self.started_mono = Some(clock.mono_us());
        self.done_us = None;
        self.running = true;
        self.result = None;
        self.value = None;
        self.error = None;
        self.traceback.clear();
        self.starts += 1;
        self.stop_requested = false;
        self.next_restart_us = None;
        self.kill_reason = None;
        let line = match what {
            Some(w) => format!("Started ({w})"),
            None => String::from("Started"),
        };
        vec![Effect::Log(Level::Info, line)]
    }

    /// [`Event::Stop`].
    pub fn stop(&mut self, clock: &impl Clock) -> Vec<Effect> {
        let fx = match self.state {
            UnitState::Restarting => {
                self.restart_gen += 1;
                self.next_restart_us = None;
                self.set(UnitState::Stopped, clock);
                Effect::Log(Level::Info, "Pending restart cancelled".into())
            }
            UnitState::Waiting => {
                self.waiting_for.clear();
                self.cancels += 1;
                self.set(UnitState::Stopped, clock);
                Effect::Log(
                    Level::Info,
                    "Start cancelled while waiting for dependencies".into(),
                )
            }
            UnitState::Running | UnitState::Stopping | UnitState::Starting if self.running => {
                self.stop_requested = true;
                self.set(UnitState::Stopping, clock);
                Effect::Terminate
            }
            _ => return Vec::new(),
        };
        vec![fx]
    }

    /// [`Event::Ended`]: run `run` ended as `end`, under the restart policy `restart`.
    pub fn ended(
        &mut self,
        run: u32,
        end: End,
        restart: Option<(Restart, Backoff)>,
        clock: &impl Clock,
    ) -> Vec<Effect> {
        let mut out = Vec::new();
        if self.starts != run {
            // A later run already owns the state; this one's end is only history.
            out.push(Effect::Log(
                Level::Warning,
                format!("An earlier run (start #{run}) ended"),
            ));
            return out;
        }
        let condemned = self.kill_reason.take();
        let stopped = self.stop_requested;
        self.running = false;
        self.done_us = Some(clock.wall_us());
        let task = matches!(end, End::Value(_) | End::Error { .. });
        let mut state = match &end {
            _ if stopped => UnitState::Stopped,
            _ if condemned.is_some() => UnitState::Failed,
            End::Exit(r) if r.success() => UnitState::Done,
            End::Value(_) => UnitState::Done,
            _ => UnitState::Failed,
        };
        match end {
            End::Exit(r) => self.result = Some(r),
            End::Lost(e) => self.error = Some(format!("lost track of the process: {e}")),
            End::Value(v) if !stopped => self.value = Some(v),
            End::Error { message, chain } if !stopped => {
                self.error = Some(message);
                self.traceback = chain.into();
            }
            End::Value(_) | End::Error { .. } => {}
        }
        if let Some(why) = condemned {
            self.error = Some(why);
        }
        let mut text = match (state, task) {
            (UnitState::Stopped, true) => String::from("Stopped"),
            (UnitState::Stopped, false) => format!("Stopped ({})", self.result_text()),
            (UnitState::Done, true) => done_text(self.value.as_ref()),
            (UnitState::Done, false) => String::from("Finished (exit status 0)"),
            _ => format!("Failed: {}", self.failure_reason()),
        };
        // A failed run is an error whether or not a restart follows it.
        let failed = !matches!(state, UnitState::Stopped | UnitState::Done);
        self.last_failed = failed;
        if state == UnitState::Failed {
            self.last_exit = Some(self.failure_reason());
        }
        if let (Some((policy, backoff)), UnitState::Done | UnitState::Failed) = (restart, state) {
            let now = clock.mono_us();
            let ran = Duration::from_micros(now.saturating_sub(self.started_mono.unwrap_or(now)));
            let failed = state == UnitState::Failed;
            match self.restarts.on_exit(policy, &backoff, failed, ran, now) {
                Decision::Stay => {}
                Decision::GiveUp(why) => {
                    text = format!("{text}; {why}");
                    self.error = Some(why);
                }
                Decision::RestartIn(delay) => {
                    state = UnitState::Restarting;
                    let us = i64::try_from(delay.as_micros()).unwrap_or(i64::MAX);
                    self.next_restart_us = Some(clock.wall_us().saturating_add(us));
                    text = format!(
                        "{text}; restarting in {} (restart {})",
                        Human(delay),
                        self.restarts.count
                    );
                    out.push(Effect::ArmRestart {
                        delay,
                        gen: self.restart_gen,
                    });
                }
            }
        }
        self.set(state, clock);
        let level = if failed { Level::Error } else { Level::Info };
        out.insert(0, Effect::Log(level, text));
        out
    }
}

/// The journal line of a task's run that ended returning `value`.
#[cfg(feature = "result-in-journal")]
fn done_text(value: Option<&Value>) -> String {
    // `to_string`, not `Display`, whose pretty-printing branch would come along.
    let json = serde_json::to_string(value.unwrap_or(&Value::Null)).unwrap_or_default();
    format!("Done: result {json}")
}

/// The journal line of a task's run that ended returning a value, which is in its status.
#[cfg(not(feature = "result-in-journal"))]
fn done_text(_: Option<&Value>) -> String {
    String::from("Done (its result is in its status)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::MockClock;
    use alloc::vec;

    fn started(life: &mut Life, clock: &MockClock) -> u32 {
        life.step(
            Event::Started {
                ready: true,
                what: Some("pid 7".into()),
            },
            clock,
        );
        life.starts
    }

    fn exit(code: i32) -> End {
        End::Exit(ExitResult::Exited { code })
    }

    fn always() -> Option<(Restart, Backoff)> {
        Some((Restart::Always, Backoff::default()))
    }

    #[test]
    fn a_run_starts_and_finishes() {
        let clock = MockClock::new(1_000, 0);
        let mut life = Life::new(Some(0));
        let fx = life.step(
            Event::Started {
                ready: true,
                what: Some("pid 7".into()),
            },
            &clock,
        );
        assert_eq!(fx, vec![Effect::Log(Level::Info, "Started (pid 7)".into())]);
        assert_eq!(
            (life.state, life.starts, life.running),
            (UnitState::Running, 1, true)
        );
        assert_eq!(life.started_us, Some(1_000));
        clock.pass(500);
        let fx = life.step(
            Event::Ended {
                run: 1,
                end: exit(0),
                restart: None,
            },
            &clock,
        );
        assert_eq!(
            fx,
            vec![Effect::Log(Level::Info, "Finished (exit status 0)".into())]
        );
        assert_eq!(life.state, UnitState::Done);
        assert_eq!((life.done_us, life.since_us), (Some(1_500), Some(1_500)));
        assert!(!life.running);
    }

    #[test]
    fn a_late_end_of_an_earlier_run_leaves_the_current_one_alone() {
        let clock = MockClock::new(0, 0);
        let mut life = Life::new(None);
        started(&mut life, &clock);
        life.step(Event::Stop, &clock);
        life.step(
            Event::Ended {
                run: 1,
                end: exit(143),
                restart: None,
            },
            &clock,
        );
        let run = started(&mut life, &clock);
        assert_eq!(run, 2);
        let fx = life.step(
            Event::Ended {
                run: 1,
                end: exit(1),
                restart: always(),
            },
            &clock,
        );
        assert_eq!(
            fx,
            vec![Effect::Log(
                Level::Warning,
                "An earlier run (start #1) ended".into()
            )]
        );
        assert_eq!((life.state, life.running), (UnitState::Running, true));
        // And a condemnation of the old run is ignored too.
        let fx = life.step(
            Event::Condemn {
                run: 1,
                why: "late".into(),
            },
            &clock,
        );
        assert!(fx.is_empty());
    }

    #[test]
    fn a_failure_restarts_with_backoff_and_a_stop_cancels_it() {
        let clock = MockClock::new(0, 0);
        let mut life = Life::new(None);
        life.push_traceback("boom".into());
        started(&mut life, &clock);
        life.push_traceback("boom".into());
        let fx = life.step(
            Event::Ended {
                run: 1,
                end: exit(2),
                restart: always(),
            },
            &clock,
        );
        assert_eq!(
            fx,
            vec![
                Effect::Log(
                    Level::Error,
                    "Failed: exit status 2: boom; restarting in 100ms (restart 1)".into()
                ),
                Effect::ArmRestart {
                    delay: Duration::from_millis(100),
                    gen: 0
                },
            ]
        );
        assert_eq!(life.state, UnitState::Restarting);
        assert_eq!(life.next_restart_us, Some(100_000));
        assert_eq!(life.last_exit.as_deref(), Some("exit status 2: boom"));
        assert!(life.restart_due(0));
        let fx = life.step(Event::Stop, &clock);
        assert_eq!(
            fx,
            vec![Effect::Log(Level::Info, "Pending restart cancelled".into())]
        );
        assert_eq!(life.state, UnitState::Stopped);
        assert!(!life.restart_due(0));
    }

    #[test]
    fn a_manual_start_overrides_a_pending_restart() {
        let clock = MockClock::new(0, 0);
        let mut life = Life::new(None);
        started(&mut life, &clock);
        life.step(
            Event::Ended {
                run: 1,
                end: exit(1),
                restart: always(),
            },
            &clock,
        );
        assert!(life.restart_due(0));
        life.step(Event::Manual, &clock);
        assert!(!life.restart_due(0));
        assert_eq!((life.restarts.count, life.next_restart_us), (0, None));
    }

    #[test]
    fn a_stop_asked_for_ends_as_stopped_whatever_the_exit() {
        let clock = MockClock::new(0, 0);
        let mut life = Life::new(None);
        started(&mut life, &clock);
        assert_eq!(life.step(Event::Stop, &clock), vec![Effect::Terminate]);
        assert_eq!(life.state, UnitState::Stopping);
        // A second stop while it stops asks again (the driver's wait goes on).
        assert_eq!(life.step(Event::Stop, &clock), vec![Effect::Terminate]);
        let killed = ExitResult::Killed {
            signal: 15,
            name: "SIGTERM".into(),
            core_dumped: false,
        };
        let fx = life.step(
            Event::Ended {
                run: 1,
                end: End::Exit(killed),
                restart: always(),
            },
            &clock,
        );
        assert_eq!(
            fx,
            vec![Effect::Log(
                Level::Info,
                "Stopped (killed by SIGTERM)".into()
            )]
        );
        assert_eq!(life.state, UnitState::Stopped);
        // Nothing to stop now.
        assert!(life.step(Event::Stop, &clock).is_empty());
    }

    #[test]
    fn a_failed_signal_leaves_it_running() {
        let clock = MockClock::new(0, 0);
        let mut life = Life::new(None);
        started(&mut life, &clock);
        life.step(Event::Stop, &clock);
        life.step(Event::StopFailed, &clock);
        assert_eq!(life.state, UnitState::Running);
        assert!(!life.stop_requested());
    }

    #[test]
    fn a_condemned_run_fails_with_the_reason_even_on_exit_0() {
        let clock = MockClock::new(0, 0);
        let mut life = Life::new(None);
        started(&mut life, &clock);
        let fx = life.step(
            Event::Condemn {
                run: 1,
                why: "watchdog timeout".into(),
            },
            &clock,
        );
        assert_eq!(fx, vec![Effect::Kill]);
        life.step(
            Event::Ended {
                run: 1,
                end: exit(0),
                restart: None,
            },
            &clock,
        );
        assert_eq!(life.state, UnitState::Failed);
        assert_eq!(life.error.as_deref(), Some("watchdog timeout"));
    }

    #[test]
    fn notify_units_start_then_become_ready() {
        let clock = MockClock::new(0, 0);
        let mut life = Life::new(None);
        life.step(Event::Ready, &clock);
        assert_eq!(life.state, UnitState::Inactive, "ready before any run");
        life.step(Event::Spawning, &clock);
        life.step(
            Event::Started {
                ready: false,
                what: None,
            },
            &clock,
        );
        assert_eq!(life.state, UnitState::Starting);
        let fx = life.step(Event::Ready, &clock);
        assert_eq!(fx, vec![Effect::Log(Level::Info, "Ready (READY=1)".into())]);
        assert_eq!(life.state, UnitState::Running);
    }

    #[test]
    fn waiting_and_cancelling_a_wait() {
        let clock = MockClock::new(0, 0);
        let mut life = Life::new(None);
        life.step(Event::Wait(vec!["db.service".into()]), &clock);
        assert_eq!(life.state, UnitState::Waiting);
        life.step(Event::Stop, &clock);
        assert_eq!((life.state, life.cancels), (UnitState::Stopped, 1));
        assert!(life.waiting_for.is_empty());
        life.step(Event::Wait(vec!["db.service".into()]), &clock);
        life.step(Event::Wait(Vec::new()), &clock);
        assert_eq!(life.state, UnitState::Inactive);
    }

    #[test]
    fn start_failures_and_reset_failed() {
        let clock = MockClock::new(5, 0);
        let mut life = Life::new(None);
        let fx = life.step(Event::StartFailed("no such file".into()), &clock);
        assert_eq!(
            fx,
            vec![Effect::Log(
                Level::Error,
                "Failed to start: no such file".into()
            )]
        );
        assert_eq!((life.state, life.done_us), (UnitState::Failed, Some(5)));
        life.step(Event::ResetFailed, &clock);
        assert_eq!(
            (life.state, life.error.as_ref()),
            (UnitState::Inactive, None)
        );
    }

    #[test]
    fn tasks_end_with_a_value_an_error_or_a_stop() {
        let clock = MockClock::new(0, 0);
        let mut life = Life::new(None);
        started(&mut life, &clock);
        let fx = life.step(
            Event::Ended {
                run: 1,
                end: End::Value(Value::from(42)),
                restart: None,
            },
            &clock,
        );
        let text = if cfg!(feature = "result-in-journal") {
            "Done: result 42"
        } else {
            "Done (its result is in its status)"
        };
        assert_eq!(fx, vec![Effect::Log(Level::Info, text.into())]);
        assert_eq!(life.value, Some(Value::from(42)));
        started(&mut life, &clock);
        assert_eq!(life.value, None);
        life.step(
            Event::Ended {
                run: 2,
                end: End::Error {
                    message: "bad pin".into(),
                    chain: vec!["bad pin".into(), "at blink.rs:3".into()],
                },
                restart: None,
            },
            &clock,
        );
        assert_eq!(life.state, UnitState::Failed);
        assert_eq!(life.traceback.len(), 2);
        started(&mut life, &clock);
        life.step(Event::Stop, &clock);
        let fx = life.step(
            Event::Ended {
                run: 3,
                end: End::Error {
                    message: "stopped".into(),
                    chain: vec![],
                },
                restart: None,
            },
            &clock,
        );
        assert_eq!(fx, vec![Effect::Log(Level::Info, "Stopped".into())]);
        assert_eq!(life.error, None);
    }

    #[test]
    fn a_tasks_transitions_called_directly_are_steps() {
        let (a, b) = (MockClock::new(0, 0), MockClock::new(0, 0));
        let (mut by_step, mut direct) = (Life::new(None), Life::new(None));
        let end = || End::Error {
            message: "bad pin".into(),
            chain: vec!["bad pin".into()],
        };
        for run in 1..=3 {
            let what = Some(format!("run {run}"));
            let (ready, what2) = (run != 2, what.clone());
            let fx = by_step.step(Event::Started { ready, what }, &a);
            assert_eq!(fx, direct.started(ready, what2, &b));
            a.pass(5);
            b.pass(5);
            if run == 3 {
                assert_eq!(by_step.step(Event::Stop, &a), direct.stop(&b));
                assert_eq!(direct.state, UnitState::Stopping);
            }
            let fx = by_step.step(
                Event::Ended {
                    run,
                    end: end(),
                    restart: None,
                },
                &a,
            );
            assert_eq!(fx, direct.ended(run, end(), None, &b));
            assert_eq!(
                (
                    by_step.state,
                    by_step.since_us,
                    &by_step.error,
                    by_step.starts
                ),
                (direct.state, direct.since_us, &direct.error, direct.starts)
            );
        }
        assert_eq!(direct.state, UnitState::Stopped);
        assert_eq!(by_step.stop(&a), direct.stop(&b), "nothing to stop");
    }

    #[test]
    fn the_start_limit_gives_up() {
        let clock = MockClock::new(0, 0);
        let mut life = Life::new(None);
        let backoff = Backoff {
            limit: 2,
            ..Backoff::default()
        };
        for run in 1..=2 {
            started(&mut life, &clock);
            life.step(
                Event::Ended {
                    run,
                    end: exit(1),
                    restart: Some((Restart::OnFailure, backoff)),
                },
                &clock,
            );
        }
        assert_eq!(life.state, UnitState::Failed);
        assert!(life
            .error
            .as_deref()
            .unwrap()
            .starts_with("start limit hit"));
    }
}
