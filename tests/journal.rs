//! asyncmjournal: every filter, output formats, follow through pipes, and the byte budget.

use std::process::{Command, Stdio};

use asyncmd_e2e::{on_a_terminal, output_within, stderr, stdout, wait_for, Daemon, Lines, Setup};

fn setup() -> Daemon {
    Setup::new()
        .sh("hello.service", "", "i=0; while :; do i=$((i+1)); echo \"LED $i toggled!\"; sleep 0.1; done")
        .sh("hello2.service", "type = \"oneshot\"", "echo 'second hello'")
        .sh(
            "levels.service",
            "type = \"oneshot\"",
            "echo plain; echo '<4>careful now'; echo '<7>debug detail'; echo 'to stderr' >&2; echo '<2>very bad'",
        )
        .boot()
}

#[test]
fn cat_by_default_in_the_contract_format() {
    let d = setup();
    let t = stdout(&d.journal(&[]));
    let re = regex::Regex::new(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[testhost\] \[(DEBUG|INFO|WARNING|ERROR|CRITICAL)\] \[[\w.@-]+\] .*$",
    )
    .unwrap();
    assert!(t.lines().count() > 5, "{t}");
    for l in t.lines() {
        assert!(re.is_match(l), "{l:?}");
    }
    assert!(t.contains("[INFO] [levels.service] plain"));
}

#[test]
fn levels_from_streams_and_syslog_prefixes() {
    let d = setup();
    let e = d.entries(&["-u", "levels.service"]);
    let level = |m: &str| {
        e.iter()
            .find(|x| x["msg"] == m)
            .map(|x| x["level"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(level("plain"), "INFO");
    assert_eq!(level("careful now"), "WARNING");
    assert_eq!(level("debug detail"), "DEBUG");
    assert_eq!(level("to stderr"), "ERROR");
    assert_eq!(level("very bad"), "CRITICAL");
    // -p: this level or more severe; syslog names and numbers work too.
    let msgs = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["-u", "levels", "-o", "cat"];
        a.extend_from_slice(args);
        // stdout and stderr are separate pipes: their relative order is not defined.
        let mut v: Vec<String> = stdout(&d.journal(&a)).lines().map(String::from).collect();
        v.sort();
        v
    };
    assert_eq!(
        msgs(&["-p", "warning"]),
        ["careful now", "to stderr", "very bad"]
    );
    assert_eq!(msgs(&["-p", "err"]), ["to stderr", "very bad"]);
    assert_eq!(msgs(&["-p", "2"]), ["very bad"]);
    let o = d.journal(&["-p", "loud"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("debug, info, warning"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unit_globs_lines_grep_and_since() {
    let d = setup();
    wait_for("five LED lines", || {
        (d.entries(&["-u", "hello", "-g", "LED"]).len() >= 5).then_some(())
    });
    let units = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = d
            .entries(args)
            .iter()
            .map(|e| e["unit"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v.dedup();
        v
    };
    assert_eq!(
        units(&["-u", "hello*"]),
        ["hello.service", "hello2.service"]
    );
    assert_eq!(units(&["-u", "hello"]), ["hello.service"]);
    assert_eq!(
        units(&["-u", "hello2", "-u", "levels.service"]),
        ["hello2.service", "levels.service"]
    );
    let all = d.entries(&["-u", "hello"]);
    let last3 = d.entries(&["-u", "hello", "-n", "3"]);
    assert_eq!(last3.len(), 3);
    // `-n all`, as journalctl takes it: no limit (hello logs on, so at least as many).
    assert!(d.entries(&["-u", "hello", "-n", "all"]).len() >= all.len());
    let o = d.journal(&["-n", "lots"]);
    assert!(
        !o.status.success() && stderr(&o).contains("`lots` is not a number of entries or `all`")
    );
    let seqs = |v: &[serde_json::Value]| {
        v.iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert!(
        seqs(&last3)[0] >= seqs(&all)[all.len() - 3],
        "the newest three"
    );
    let g = d.entries(&["-g", r"^LED \d+ toggled!$"]);
    assert!(g.len() >= 5 && g.iter().all(|e| e["unit"] == "hello.service"));
    let o = d.journal(&["-g", "("]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("invalid regular expression"),
        "{}",
        stderr(&o)
    );
    // A pattern long enough to cost the daemon time to compile is refused before it tries.
    let o = d.journal(&["-g", &"(?i)[\\p{L}--\\p{Lu}&&\\w]".repeat(100)]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("a grep pattern of 2300 bytes is longer than the limit of 1024 bytes"),
        "{}",
        stderr(&o)
    );
    // --since: a time after every entry so far selects only newer ones.
    assert!(d.entries(&["--since", "now", "-u", "hello2"]).is_empty());
    assert_eq!(d.entries(&["--since", "-10min", "-u", "hello2"]).len(), 3);
    assert_eq!(d.entries(&["--since", "today", "-u", "hello2"]).len(), 3);
    let o = d.journal(&["--since", "whenever"]);
    assert!(!o.status.success() && stderr(&o).contains("invalid time"));
}

#[test]
fn output_formats() {
    let d = setup();
    let cat = stdout(&d.journal(&["-u", "hello2", "-o", "cat"]));
    assert!(cat.lines().any(|l| l == "second hello"), "{cat}");
    let json = d.entries(&["-u", "hello2"]);
    let e = json.iter().find(|e| e["msg"] == "second hello").unwrap();
    for key in [
        "seq", "time", "time_us", "mono_us", "host", "level", "unit", "msg",
    ] {
        assert!(!e[key].is_null(), "missing {key} in {e}");
    }
    assert_eq!(e["host"], "testhost");
}

fn pipeline(d: &Daemon, script: &str) -> std::process::Child {
    Command::new("bash")
        .args(["-c", &format!("set -o pipefail; {script}")])
        .env("J", d.shell_cmd("asyncmjournal", ""))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn follow_through_grep_shows_new_lines() {
    let d = setup();
    let mut child = pipeline(&d, "$J -F -n 0 | grep --line-buffered LED");
    let lines = Lines::new(child.stdout.take().unwrap());
    let first = lines.next_line("a first LED line through grep");
    let second = lines.next_line("a second LED line through grep");
    assert!(first.contains("[hello.service] LED "), "{first}");
    assert!(second.contains("[hello.service] LED "), "{second}");
    assert_ne!(first, second);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn follow_exits_zero_when_the_pipe_closes() {
    let d = setup();
    // head takes one line and leaves: the follower must notice and exit 0.
    let child = pipeline(&d, "$J -F | head -n 1");
    let out = output_within(child, "a follower whose reader took one line");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    assert!(
        out.stderr.is_empty(),
        "quiet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Even when nothing is logged any more: a quiet unit, and a reader that leaves at once.
    let child = pipeline(&d, "$J -F -u hello2 -n 0 | true");
    let out = output_within(child, "a quiet follower whose reader left");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn follow_with_filters_only_sends_matches() {
    let d = setup();
    let mut child = pipeline(&d, "$J -f -n 2 -u 'hello*' -g 'toggled' -o cat");
    let lines = Lines::new(child.stdout.take().unwrap());
    for k in 0..5 {
        let l = lines.next_line(&format!("filtered line {k}"));
        assert!(l.starts_with("LED ") && l.ends_with(" toggled!"), "{l}");
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_flood_stays_within_the_budget_and_keeps_the_newest() {
    let d = Setup::new()
        .unit(
            "flood.service",
            // 2.5 M lines of 60 bytes: 150 MB as fast as `yes` can write them.
            "[service]\nexec = [\"sh\", \"-c\", \"yes 'flood line that is sixty bytes long, give or take: xxxxxx' | head -n 2500000; echo FLOOD-END\"]\n",
        )
        .unit(
            "endless.service",
            "[service]\nexec = [\"yes\", \"endless flood line\"]\nstop_timeout = \"30s\"\n",
        )
        .config(r#"{"flood": {"enabled": false}, "endless": {"enabled": false}}"#)
        .arg("--journal-size")
        .arg("1M")
        .boot();
    let idle_kb = d.mem_kb("VmRSS");
    assert!(d.ctl(&["start", "flood"]).status.success());
    d.wait_state("flood.service", "done");
    let peak_kb = d.mem_kb("VmHWM");
    let grown = peak_kb.saturating_sub(idle_kb);
    // The ring itself (1 MiB, touched as it fills) plus a few MiB of slack.
    assert!(
        grown < 4 * 1024,
        "daemon grew {grown} kB over idle {idle_kb} kB (peak {peak_kb} kB)"
    );

    let e = d.entries(&[]);
    let bytes: usize = e
        .iter()
        .map(|x| 32 + x["msg"].as_str().unwrap().len())
        .sum();
    assert!(bytes <= 1 << 20, "{bytes} bytes held in a 1 MiB ring");
    assert!(
        bytes > (1 << 20) * 9 / 10,
        "the ring is nearly full: {bytes}"
    );
    let seqs: Vec<u64> = e.iter().map(|x| x["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] + 1 == w[1]),
        "newest entries, contiguous"
    );
    assert!(
        seqs[0] > 2_400_000,
        "only the newest are kept: oldest is {}",
        seqs[0]
    );
    let flood: Vec<&serde_json::Value> =
        e.iter().filter(|x| x["unit"] == "flood.service").collect();
    let last_line = flood
        .iter()
        .rev()
        .find(|x| !x["msg"].as_str().unwrap().starts_with("Finished"))
        .unwrap();
    assert_eq!(last_line["msg"], "FLOOD-END");
    assert!(flood.len() > 10_000, "{}", flood.len());

    // A flood that never ends: the daemon still answers (each client run has a deadline),
    // reports it running while its lines pour in, and stops it.
    assert!(d.ctl(&["start", "endless"]).status.success());
    let last_seq = |d: &Daemon| d.entries(&["-n", "1"])[0]["seq"].as_u64().unwrap();
    let before = last_seq(&d);
    wait_for("the endless flood to fill the ring", || {
        (last_seq(&d) > before + 100_000).then_some(())
    });
    let o = d.ctl(&["--json", "status", "endless"]);
    let answer: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("a status answer during the flood: {e}: {}", stderr(&o)));
    assert_eq!(answer[0]["state"], "running", "{answer}");
    let o = d.ctl(&["stop", "endless"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(d.state("endless.service"), "stopped");
}

#[test]
fn partial_huge_and_binary_lines_are_kept_safely() {
    let d = Setup::new()
        .unit(
            "odd.service",
            "[unit]\ntype = \"oneshot\"\n[service]\nexec = [\"sh\", \"-c\", \"printf 'bin\\\\377\\\\376ary\\\\n'; head -c 40000 /dev/zero | tr '\\\\0' 'a'; printf '\\\\nno newline at end'\"]\n",
        )
        .boot();
    let e = d.entries(&["-u", "odd"]);
    let msgs: Vec<&str> = e.iter().map(|x| x["msg"].as_str().unwrap()).collect();
    assert!(msgs.contains(&"bin\u{fffd}\u{fffd}ary"), "{msgs:?}");
    let a_total: usize = msgs
        .iter()
        .filter(|m| m.starts_with('a'))
        .map(|m| m.len())
        .sum();
    assert_eq!(
        a_total, 40000,
        "a 40 kB line is split into entries, none lost"
    );
    assert!(msgs
        .iter()
        .filter(|m| m.starts_with('a'))
        .all(|m| m.len() <= 16 * 1024));
    assert!(msgs.contains(&"no newline at end"), "{msgs:?}");
}

#[test]
fn a_follower_during_a_flood_gets_every_line_or_is_told_it_missed_it() {
    let d = Setup::new()
        .unit(
            "flood.service",
            "[unit]\ntype = \"oneshot\"\n[service]\nexec = [\"sh\", \"-c\", \"yes 'a flood line' | head -n 200000\"]\n",
        )
        .unit(
            "mark.service",
            "[unit]\ntype = \"oneshot\"\n[service]\nexec = [\"echo\", \"MARK\"]\n",
        )
        .config(r#"{"flood": {"enabled": false}, "mark": {"enabled": false}}"#)
        .boot();
    let out = d.dir.path().join("follow.out");
    let err = d.dir.path().join("follow.err");
    let mut follower = Command::new(asyncmd_e2e::bin("asyncmjournal"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["-F", "-n", "0"])
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    // Only once the follower shows a marker logged after its start is it surely attached.
    wait_for("the follower to attach", || {
        assert!(d.ctl(&["start", "mark"]).status.success());
        read(&out).contains("[mark.service] MARK").then_some(())
    });
    assert!(d.ctl(&["start", "flood"]).status.success());
    // 200,000 lines plus the Started and Finished entries; the marker lines were all received.
    let total = 200_002u64;
    let (received, missed) = wait_for("the follower to account for every entry", || {
        let received = read(&out)
            .lines()
            .filter(|l| l.contains("[flood.service]"))
            .count() as u64;
        let missed: u64 = read(&err)
            .lines()
            .filter_map(|l| {
                l.strip_prefix("-- ")?
                    .split(' ')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum();
        (received + missed >= total).then_some((received, missed))
    });
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(
        received + missed,
        total,
        "received {received}, told of {missed} missed"
    );
}

#[test]
fn a_lossless_follower_misses_nothing_of_a_flood_and_a_stopped_one_holds_nothing_back() {
    // 200,000 lines of 13 bytes through a 64 KiB journal: it holds a few thousand at a time.
    let d = Setup::new()
        .unit(
            "flood.service",
            "[unit]\ntype = \"oneshot\"\n[service]\nexec = [\"sh\", \"-c\", \"yes 'a flood line' | head -n 200000\"]\n",
        )
        .unit(
            "mark.service",
            "[unit]\ntype = \"oneshot\"\n[service]\nexec = [\"echo\", \"MARK\"]\n",
        )
        .config(r#"{"flood": {"enabled": false}, "mark": {"enabled": false}}"#)
        .arg("--journal-size")
        .arg("64K")
        .boot();
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let floods = |p: &std::path::Path| read(p).lines().filter(|l| *l == "a flood line").count();
    let follow = |name: &str| {
        let out = d.dir.path().join(format!("{name}.out"));
        let err = d.dir.path().join(format!("{name}.err"));
        let child = Command::new(asyncmd_e2e::bin("asyncmjournal"))
            .arg("--socket")
            .arg(&d.socket)
            .args([
                "-F",
                "--lossless",
                "-n",
                "0",
                "-u",
                "flood",
                "-u",
                "mark",
                "-o",
                "cat",
            ])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        // Only once it shows a marker logged after its start is it surely attached.
        wait_for(&format!("the {name} follower to attach"), || {
            assert!(d.ctl(&["start", "mark"]).status.success());
            read(&out).contains("MARK").then_some(())
        });
        (child, out, err)
    };
    let (mut first, out, err) = follow("first");
    assert!(d.ctl(&["start", "flood"]).status.success());
    wait_for("the first run through the follower", || {
        (floods(&out) == 200_000).then_some(())
    });
    assert_eq!(read(&err), "", "told of nothing missed");

    // A second run, with a follower that stops reading (a paused pager): the run still ends,
    // the first follower still gets every line, and the stopped one is told what it missed.
    let (mut paused, paused_out, paused_err) = follow("paused");
    let pid = nix::unistd::Pid::from_raw(paused.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    assert!(d.ctl(&["start", "flood"]).status.success());
    wait_for("the second run through the reading follower", || {
        (floods(&out) == 400_000).then_some(())
    });
    assert_eq!(read(&err), "", "told of nothing missed");
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    wait_for("the paused follower to be told what it missed", || {
        read(&paused_err).contains("missed").then_some(())
    });
    assert!(floods(&paused_out) < 200_000);
    for c in [&mut first, &mut paused] {
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[test]
fn journalctl_flags_reverse_until_ranges_smart_case_boot_utc_and_styles() {
    let d = setup();
    d.wait_state("levels.service", "done");
    let lines = |args: &[&str]| -> Vec<String> {
        let o = d.journal(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o).lines().map(String::from).collect()
    };
    // -r: newest first, the same entries.
    let fwd = lines(&["-u", "levels", "-o", "cat"]);
    let mut rev = lines(&["-u", "levels", "-o", "cat", "-r"]);
    rev.reverse();
    assert_eq!(fwd, rev);
    // -p FROM..TO: warning up to error, whichever way round.
    let range = lines(&["-u", "levels", "-o", "cat", "-p", "err..warning"]);
    assert!(range.contains(&"careful now".to_string()), "{range:?}");
    assert!(range.contains(&"to stderr".to_string()), "{range:?}");
    assert!(
        !range.iter().any(|l| l == "very bad" || l == "plain"),
        "{range:?}"
    );
    assert_eq!(range, lines(&["-u", "levels", "-o", "cat", "-p", "4..3"]));
    // -g is case-insensitive unless it has an upper-case letter (or --case-sensitive).
    let none = ["-- No entries --"];
    assert_eq!(lines(&["-u", "levels", "-o", "cat", "-g", "CAREFUL"]), none);
    assert_eq!(
        lines(&["-u", "levels", "-o", "cat", "-g", "careful"]),
        ["careful now"]
    );
    assert_eq!(lines(&["-u", "levels", "-o", "cat", "-g", "caREful"]), none);
    let o = d.journal(&[
        "-u",
        "levels",
        "-o",
        "cat",
        "-g",
        "CAREFUL",
        "--case-sensitive",
    ]);
    assert_eq!(stdout(&o), "-- No entries --\n");
    // --until: nothing before an hour ago; -b: this boot, which is everything.
    assert_eq!(lines(&["--until", "-1h"]), ["-- No entries --"]);
    assert_eq!(lines(&["-u", "levels", "-b"]), lines(&["-u", "levels"]));
    let o = d.journal(&["-b", "-1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("only the current boot"),
        "{}",
        stderr(&o)
    );
    // -o short-iso and short-precise, in UTC with --utc.
    let iso = lines(&["-u", "hello2", "-o", "short-iso", "--utc"]);
    let re = regex::Regex::new(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 \[testhost\] \[INFO\] \[hello2.service\] ",
    )
    .unwrap();
    assert!(iso.iter().all(|l| re.is_match(l)), "{iso:?}");
    let precise = lines(&["-u", "hello2", "-o", "short-precise"]);
    let re = regex::Regex::new(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} \[testhost\] ").unwrap();
    assert!(precise.iter().all(|l| re.is_match(l)), "{precise:?}");
    // JSON carries the time with its offset beside time_us; json-pretty is the same objects.
    let e = d.entries(&["-u", "hello2", "--utc"]);
    let t = e[0]["time"].as_str().unwrap();
    assert!(
        t.ends_with("+00:00") && t.contains('T') && t.contains('.'),
        "{t}"
    );
    let parsed = chrono::DateTime::parse_from_rfc3339(t).unwrap();
    assert_eq!(parsed.timestamp_micros(), e[0]["time_us"].as_i64().unwrap());
    let pretty = stdout(&d.journal(&["-u", "hello2", "-o", "json-pretty", "--utc"]));
    let objects: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&pretty)
        .into_iter()
        .map(|v| v.unwrap())
        .collect();
    assert_eq!(objects, e);
    assert!(pretty.contains("\n  \"msg\": "), "{pretty}");
}

#[test]
fn a_terminal_gets_a_pager_unless_told_not_to() {
    let d = setup();
    d.wait_state("hello2.service", "done");
    let run = |args: &[&str]| {
        let mut c = Command::new(asyncmd_e2e::bin("asyncmjournal"));
        c.arg("--socket")
            .arg(&d.socket)
            .args(["-u", "hello2", "-o", "cat"])
            .args(args)
            .env("PAGER", "sed 's/^/paged: /'");
        c
    };
    let (t, code) = on_a_terminal(run(&[]));
    assert_eq!(code, Some(0));
    assert!(t.contains("paged: second hello"), "{t:?}");
    let (t, _) = on_a_terminal(run(&["--no-pager"]));
    assert!(t.contains("second hello") && !t.contains("paged:"), "{t:?}");
    // A pipe is no terminal: no pager.
    let o = output_within(
        run(&[]).stdout(Stdio::piped()).spawn().unwrap(),
        "asyncmjournal into a pipe",
    );
    let t = stdout(&o);
    assert!(t.contains("second hello\n") && !t.contains("paged:"), "{t}");
}

#[test]
fn a_follower_whose_daemon_stops_says_the_journal_ends() {
    let mut d = setup();
    let mut child = Command::new(asyncmd_e2e::bin("asyncmjournal"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["-F", "-u", "hello"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Lines::new(child.stdout.take().unwrap());
    lines.next_line("a line while following");
    assert_eq!(d.stop(), Some(0));
    let o = output_within(child, "the follower after its daemon stopped");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).trim(),
        "-- asyncmdd stopped: the journal ends here --"
    );
}
