//! `asyncmctl top` in a real terminal: tmux runs it, `send-keys` types at it and
//! `capture-pane` reads what it drew.

use std::process::Command;

use asyncmd_e2e::{bin, wait_for, Daemon, Setup};

/// A tmux server of this test's own, with one shell 140x35 in it.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start() -> Tmux {
        let found = Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "tmux is missing: apt-get install -y tmux (tests/run.sh installs it)"
        );
        let t = Tmux {
            socket: format!("asyncmd-top-{}", std::process::id()),
        };
        t.run(&[
            "new-session",
            "-d",
            "-x",
            "140",
            "-y",
            "35",
            "bash --norc --noprofile",
        ]);
        t
    }

    fn run(&self, args: &[&str]) -> String {
        let o = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs");
        assert!(
            o.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-t", "0", "-p"])
    }

    /// Waits until the screen shows `what`; the screen then.
    fn shows(&self, what: &str) -> String {
        let deadline = std::time::Instant::now() + asyncmd_e2e::DEADLINE;
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the terminal never showed {what:?}; it shows:\n{s}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Starts top against `d` in the shell; its pid.
    fn top(&self, d: &Daemon) -> i32 {
        let cmd = format!(
            "{} --socket {} top -d 0.2",
            bin("asyncmctl").display(),
            d.socket.display()
        );
        self.keys(&[&cmd, "Enter"]);
        self.shows("asyncmd top");
        let shell = self.run(&["display-message", "-p", "-t", "0", "#{pane_pid}"]);
        wait_for("top's pid", || {
            let o = Command::new("pgrep")
                .args(["-P", shell.trim()])
                .output()
                .ok()?;
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<i32>()
                .ok()
        })
    }

    /// Waits for top (`pid`) to have ended, then checks that the shell is itself again: it
    /// answers a command on a clean screen. (Keys typed before top ends would be top's.)
    fn shell_is_back(&self, pid: i32, marker: &str) {
        wait_for("top to end", || {
            (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
        });
        self.keys(&[&format!("echo {marker}-$((40+2))"), "Enter"]);
        let s = self.shows(&format!("{marker}-42"));
        assert!(
            !s.contains("asyncmd top"),
            "the terminal was given back: {s}"
        );
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

#[test]
fn top_shows_the_units_acts_on_keys_follows_a_journal_and_gives_the_terminal_back() {
    let d = Setup::new()
        .sh(
            "hello.service",
            "",
            "i=0; while :; do i=$((i+1)); echo \"LED $i toggled\"; sleep 0.2; done",
        )
        .sh("other.service", "", "sleep 1000")
        .boot();
    d.wait_state("hello.service", "running");
    let t = Tmux::start();
    let top = t.top(&d);
    let s = t.shows("other.service");
    assert!(s.contains("2 units, 2 running, 0 failed"), "{s}");
    assert!(
        s.contains("UNIT") && s.contains("RESTARTS") && s.contains("MEM"),
        "{s}"
    );

    // Filter by glob, stop the one left with `x`, start it again with `s`.
    t.keys(&["/", "hel*", "Enter"]);
    wait_for("the filter to leave one unit", || {
        let s = t.screen();
        (s.contains("1 units") && !s.contains("other.service")).then_some(())
    });
    t.keys(&["x"]);
    wait_for("hello to be stopped by the key", || {
        (d.state("hello.service") == "stopped").then_some(())
    });
    t.shows("stopped");
    t.keys(&["s"]);
    wait_for("hello to run again", || {
        (d.state("hello.service") == "running").then_some(())
    });

    // Its journal in a pane that follows: newer lines keep coming.
    t.keys(&["l"]);
    let s = t.shows("journal of hello.service");
    let led = |s: &str| -> u64 {
        s.lines()
            .filter_map(|l| l.split("LED ").nth(1)?.split(' ').next()?.parse().ok())
            .max()
            .unwrap_or(0)
    };
    let first = led(&s);
    wait_for("the pane to follow newer lines", || {
        let now = led(&t.screen());
        (now > first + 2).then_some(())
    });

    // q closes the pane, q again leaves: the shell is as it was.
    t.keys(&["q"]);
    wait_for("the pane to close", || {
        (!t.screen().contains("journal of")).then_some(())
    });
    t.keys(&["q"]);
    t.shell_is_back(top, "after-q");

    // Ctrl-C leaves as q does, and so does a SIGTERM.
    let top = t.top(&d);
    t.keys(&["C-c"]);
    t.shell_is_back(top, "after-ctrl-c");
    let top = t.top(&d);
    let pid = nix::unistd::Pid::from_raw(top);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    t.shell_is_back(top, "after-sigterm");
}
