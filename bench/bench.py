"""The peer table of `bash bench/run.sh`: asyncmd against runit, s6 and supervisord, every row in
one run with the same workloads, each figure a median over repeats with its spread, and each
row's ratio to the best peer of that row against the goal of issue 14.

Rows (pick with --rows 1,3,...):
  1. the supervisor's PSS with 100 `sleep` services: /proc/PID/smaps_rollup summed over the
     manager's own processes (asyncmdd; runsvdir and every runsv; s6-svscan and every
     s6-supervise; supervisord), never the services;
  2. `status` of one service as a whole process (hyperfine, no shell), beside the floor of any
     Rust client: a hello world built by the same toolchain;
  3. 1,000,000 lines of 60 bytes from a service, captured and written out to a file by the
     manager's own log path (asyncmdd's journal read by `asyncmjournal -F --lossless -o cat >
     file`, which like the peers' loggers holds the service back rather than lose a line;
     runsv's svlogd; s6-svscan's s6-log; supervisord's log file), timed from the service's own
     start to the workload's last line in the file; the lines in the file are counted and must
     be exactly the workload's;
  4. from the manager's launch to 100 `sleep` services running under it;
  5. SIGKILL of a service's process to its replacement running, at each manager's fastest
     setting, each service having run over a second before each kill (runsv and s6-supervise
     hold back a restart within a second of the last start);
  6. asyncmdd's idle RSS with 12 builtin tasks and a 64 KiB journal (no peer runs tasks);
  7. from the manager's launch to 500 `sleep` services running under it (--boot), the size
     at which a boot's own work, not the services', shows.

`--also LABEL=DIR` measures another build of asyncmd (DIR holds asyncmdd, asyncmctl and
asyncmjournal) in an extra column, for an A/B of two commits in one run.
"""
import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from procs import descendants, sleeps_under  # noqa: E402

PEERS = ["runit", "s6", "supervisord"]
LINE = "flood line that is sixty bytes long, give or take: xxxxxxxxx"
FLOOD = 1_000_000
END = "FLOOD-END"


def fail(msg):
    raise SystemExit(f"bench: {msg}")


def wait(what, cond, timeout=120, every=0.002):
    """Polls cond until it is true; fails naming what it waited for."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def quartiles(xs):
    xs = sorted(xs)
    if len(xs) < 4:
        return xs[0], statistics.median(xs), xs[-1]
    q = statistics.quantiles(xs, n=4)
    return q[0], q[1], q[2]


class Proc:
    """A manager run in a session of its own, torn down with everything under it."""

    def __init__(self, cmd, cwd=None, stdout=subprocess.DEVNULL):
        self.cmd = cmd
        self.p = subprocess.Popen(cmd, cwd=cwd, stdout=stdout, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        self.pid = self.p.pid

    def stop(self):
        kids = descendants(self.pid)
        try:
            os.killpg(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        # What a manager left behind (s6-svscan's and runsv's services, supervisord's
        # programs) goes too, so that the next measure starts on a quiet machine.
        for pid in kids + [self.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.p.wait()
        for pid in kids:
            wait(f"process {pid} of {self.cmd[0]} to go", lambda: not os.path.exists(f"/proc/{pid}"),
                 timeout=30, every=0.01)


def pss(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    fail(f"no VmRSS for {pid}")


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


class Setup:
    """Writes each manager's configuration for a set of services into a work directory."""

    def __init__(self, work):
        self.work = work

    def dir(self, *parts):
        d = os.path.join(self.work, *parts)
        os.makedirs(d, exist_ok=True)
        return d

    @staticmethod
    def script(path, body):
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body + "\n")
        os.chmod(path, 0o755)

    def asyncmd(self, name, services, extra=""):
        """services: {unit: shell command}; returns the units directory."""
        d = self.dir(name, "units")
        for unit, cmd in services.items():
            with open(f"{d}/{unit}.service", "w") as f:
                f.write(f'[service]\nexec = ["sh", "-c", {json.dumps(cmd)}]\n'
                        f'stop_timeout = "1s"\n{extra}')
        return d

    def runit(self, name, services, logs=None):
        d = self.dir(name, "sv")
        for unit, cmd in services.items():
            self.dir(name, "sv", unit)
            self.script(f"{d}/{unit}/run", cmd)
            if logs and unit in logs:
                self.dir(name, "sv", unit, "log")
                self.script(f"{d}/{unit}/log/run", logs[unit])
        return d

    def s6(self, name, services, logs=None):
        d = self.dir(name, "s6")
        for unit, cmd in services.items():
            self.dir(name, "s6", unit)
            self.script(f"{d}/{unit}/run", cmd)
            if logs and unit in logs:
                self.dir(name, "s6", unit, "log")
                self.script(f"{d}/{unit}/log/run", logs[unit])
        return d

    def supervisord(self, name, services, program_extra=""):
        d = self.dir(name, "sup")
        with open(f"{d}/supervisord.conf", "w") as f:
            f.write(f"[supervisord]\nnodaemon=true\nlogfile={d}/supervisord.log\n"
                    f"pidfile={d}/supervisord.pid\nminfds=4096\n"
                    f"[unix_http_server]\nfile={d}/supervisor.sock\n"
                    "[rpcinterface:supervisor]\n"
                    "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
                    f"[supervisorctl]\nserverurl=unix://{d}/supervisor.sock\n")
            for unit, cmd in services.items():
                # supervisord reads a command as shlex does and expands %(...)s in it.
                f.write(f"[program:{unit}]\ncommand=sh -c {shlex.quote(cmd.replace('%', '%%'))}\n"
                        "startsecs=0\n"
                        f"{program_extra}")
        return f"{d}/supervisord.conf"


class Bench:
    def __init__(self, args):
        self.args = args
        self.work = tempfile.mkdtemp(prefix="asyncmd-bench.")
        self.setup = Setup(self.work)
        self.builds = [("asyncmd", args.bin)] + [tuple(a.split("=", 1)) for a in args.also]
        self.n = 0

    def tag(self):
        """A unique argument for `sleep`, so each measure finds only its own services."""
        self.n += 1
        return str(300000 + self.n)

    def launch(self, who, count, tag, bindir=None):
        """Starts `who` on `count` sleep services; returns the Proc once all are running."""
        services = {f"s{i}": f"exec sleep {tag}" for i in range(count)}
        name = f"{who}-{tag}"
        if who == "runit":
            p = Proc(["runsvdir", self.setup.runit(name, services)])
        elif who == "s6":
            p = Proc(["s6-svscan", self.setup.s6(name, services)])
        elif who == "supervisord":
            p = Proc(["supervisord", "-c", self.setup.supervisord(name, services)])
        else:
            units = self.setup.asyncmd(name, services)
            p = Proc([f"{bindir}/asyncmdd", "--units", units, "--socket", f"{units}/../a.sock"])
        return p

    def running(self, p, count, tag):
        return len(sleeps_under(p.pid, tag.encode())) >= count

    # Row 1 -------------------------------------------------------------------------------
    def memory(self, who, bindir=None, repeats=3):
        out = []
        for _ in range(repeats):
            tag = self.tag()
            p = self.launch(who, 100, tag, bindir)
            try:
                wait(f"100 services under {who}", lambda: self.running(p, 100, tag))
                time.sleep(2)  # let start-up garbage settle, as on a box that has been up a while
                services = set(sleeps_under(p.pid, tag.encode()))
                # The shells of `sh -c "exec sleep"` are the services themselves, exec'd away.
                managers = [p.pid] + [d for d in descendants(p.pid) if d not in services]
                out.append(sum(pss(m) for m in managers))
            finally:
                p.stop()
        return out

    # Row 2 -------------------------------------------------------------------------------
    def status(self, who, bindir=None):
        tag = self.tag()
        name = f"{who}-status-{tag}"
        svc = {"hello": f"exec sleep {tag}"}
        if who == "runit":
            d = self.setup.runit(name, svc)
            p = Proc(["runsvdir", d])
            cmd, runs = f"sv status {d}/hello", 1000
        elif who == "s6":
            d = self.setup.s6(name, svc)
            p = Proc(["s6-svscan", d])
            cmd, runs = f"s6-svstat {d}/hello", 1000
        elif who == "supervisord":
            conf = self.setup.supervisord(name, svc)
            p = Proc(["supervisord", "-c", conf])
            cmd, runs = f"supervisorctl -c {conf} status hello", 30
        else:
            units = self.setup.asyncmd(name, svc)
            sock = f"{units}/../a.sock"
            p = Proc([f"{bindir}/asyncmdd", "--units", units, "--socket", sock])
            cmd, runs = f"{bindir}/asyncmctl --socket {sock} status hello.service", 1000
        try:
            wait(f"hello under {who}", lambda: self.running(p, 1, tag))
            wait(f"`{cmd}` to succeed", lambda: subprocess.run(
                cmd.split(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0,
                 timeout=60, every=0.1)
            return self.hyperfine(cmd, runs, f"{self.work}/status-{tag}.json")
        finally:
            p.stop()

    def client_floor(self, runs=1000):
        """A Rust program that does nothing but print, built by the same toolchain as the
        clients (release, dynamically linked as they are), timed as row 2 times them: the
        start-up any Rust client pays before it does anything."""
        d = self.setup.dir(f"hello-{self.tag()}")
        with open(f"{d}/hello.rs", "w") as f:
            f.write('fn main() { println!("hello"); }\n')
        subprocess.run(["rustc", "-C", "opt-level=3", "-o", f"{d}/hello", f"{d}/hello.rs"],
                       check=True)
        return self.hyperfine(f"{d}/hello", runs, f"{d}/hello.json")

    @staticmethod
    def hyperfine(cmd, runs, js):
        """The times of `runs` runs of `cmd` as a whole process (no shell), after a warm-up."""
        subprocess.run(["hyperfine", "-N", "--warmup", str(min(runs, 100)), "--runs", str(runs),
                        "--export-json", js, cmd], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        return json.load(open(js))["results"][0]["times"]

    # Row 3 -------------------------------------------------------------------------------
    def flood_script(self, d):
        """The workload, as a script each manager runs with `exec sh FILE`: it notes its own
        start, writes the lines and a last line, then idles so that no manager restarts it."""
        self.setup.script(f"{d}/flood.sh", f"date +%s%N > {d}/start\n"
                          f"yes '{LINE}' | head -n {FLOOD}\necho {END}\nexec sleep 1000000")
        return f"exec sh {d}/flood.sh"

    def log_path(self, who, bindir=None, repeats=3):
        out, lost = [], 0
        for _ in range(repeats):
            tag = self.tag()
            name = f"{who}-log-{tag}"
            d = self.setup.dir(name)
            svc = {"flood": self.flood_script(d)}
            follower = None
            if who == "runit":
                logdir = self.setup.dir(name, "logdir")
                open(f"{logdir}/config", "w").write("s0\n")  # svlogd: never rotate
                self.setup.runit(name, svc, {"flood": f"exec svlogd {logdir}"})
                file = f"{logdir}/current"
                start = lambda: Proc(["runsv", f"{d}/sv/flood"])  # noqa: E731
            elif who == "s6":
                logdir = f"{d}/logdir"
                # s6-log rotates at 16 MiB at most: the flood's 61 MB fill a few archives.
                self.setup.s6(name, svc, {"flood": f"exec s6-log n100 s16777215 {logdir}"})
                file = f"{logdir}/current"
                start = lambda: Proc(["s6-svscan", f"{d}/s6"])  # noqa: E731
            elif who == "supervisord":
                file = f"{d}/flood.log"
                conf = self.setup.supervisord(
                    name, svc, f"stdout_logfile={file}\nstdout_logfile_maxbytes=0\n")
                start = lambda: Proc(["supervisord", "-c", conf])  # noqa: E731
            else:
                units = self.setup.asyncmd(name, {**svc, "mark": "echo MARK; exec sleep 1000000"})
                with open(f"{units}/services.config", "w") as f:
                    f.write('{"flood": {"enabled": false}}\n')
                sock = f"{d}/a.sock"
                file = f"{d}/follow.out"
                daemon = Proc([f"{bindir}/asyncmdd", "--units", units, "--socket", sock,
                               "--journal-size", "1M"])
                ctl = [f"{bindir}/asyncmctl", "--socket", sock]
                wait("asyncmdd's socket", lambda: subprocess.run(
                    ctl + ["list"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                ).returncode == 0, every=0.05)
                # An older build (--also) without --lossless follows as well as it can.
                helps = subprocess.run([f"{bindir}/asyncmjournal", "--help"], capture_output=True,
                                       text=True).stdout
                lossless = ["--lossless"] if "--lossless" in helps else []
                follower = Proc([f"{bindir}/asyncmjournal", "--socket", sock, "-F", *lossless,
                                 "-n", "100", "-u", "flood", "-u", "mark", "-o", "cat"],
                                stdout=open(file, "w"))
                # Attached once it shows the marker (logged at boot, among the last 100).
                wait("the follower to attach", lambda: b"MARK\n" in open(file, "rb").read(64))

                def start():
                    subprocess.run(ctl + ["start", "flood.service"], check=True,
                                   stdout=subprocess.DEVNULL)
                    return daemon
            try:
                p = start()
                wait(f"{who}'s log of the flood to end", lambda: ended(file), timeout=300,
                     every=0.001)
                took = time.time_ns()
                began = int(open(f"{d}/start").read())
                lines = count(os.path.dirname(file) if who in ("runit", "s6") else file)
                if lines != FLOOD and who in PEERS:
                    fail(f"{who} wrote {lines} of the {FLOOD} lines")
                lost += FLOOD - lines
                out.append(FLOOD / ((took - began) / 1e9))
            finally:
                if follower:
                    follower.stop()
                p.stop()
        return out, lost

    def pipeline_floor(self, repeats=3):
        """The workload piped through two `cat`s into a file: a producer, two copies and a
        writer, the process hops a manager with a separate follower cannot avoid."""
        out = []
        for _ in range(repeats):
            d = self.setup.dir(f"floor-{self.tag()}")
            t0 = time.monotonic()
            subprocess.run(["sh", "-c", f"yes '{LINE}' | head -n {FLOOD} | cat | cat > {d}/out"],
                           check=True)
            out.append(FLOOD / (time.monotonic() - t0))
        return out

    # Row 4 -------------------------------------------------------------------------------
    def launch_time(self, who, bindir=None, count=None, repeats=5):
        count = count or self.args.launch
        out = []
        for _ in range(repeats):
            tag = self.tag()
            t0 = time.monotonic()
            p = self.launch(who, count, tag, bindir)
            try:
                wait(f"{count} services under {who}", lambda: self.running(p, count, tag))
                out.append(time.monotonic() - t0)
            finally:
                p.stop()
        return out

    def launch_floor(self, repeats=5):
        """The services alone: N `sh -c 'exec sleep'` started at once by a shell, the work of
        exec'ing every service that no manager can avoid."""
        out = []
        for _ in range(repeats):
            tag = self.tag()
            t0 = time.monotonic()
            p = Proc(["bash", "-c", f"for i in $(seq {self.args.launch}); do "
                                    f"sh -c 'exec sleep {tag}' & done; wait"])
            try:
                wait("the bare services", lambda: self.running(p, self.args.launch, tag))
                out.append(time.monotonic() - t0)
            finally:
                p.stop()
        return out

    # Row 5 -------------------------------------------------------------------------------
    def restart(self, who, bindir=None, runs=30):
        tag = self.tag()
        name = f"{who}-restart-{tag}"
        svc = {"s": f"exec sleep {tag}"}
        if who == "runit":
            p = Proc(["runsv", f"{self.setup.runit(name, svc)}/s"])
        elif who == "s6":
            p = Proc(["s6-supervise", f"{self.setup.s6(name, svc)}/s"])
        elif who == "supervisord":
            p = Proc(["supervisord", "-c", self.setup.supervisord(
                name, svc, "autorestart=true\nstartretries=1000\n")])
        else:
            units = self.setup.asyncmd(name, svc, 'restart = "always"\nrestart_delay = "0s"\n'
                                                  "start_limit = 0\n")
            p = Proc([f"{bindir}/asyncmdd", "--units", units, "--socket", f"{units}/../a.sock"])
        times = []
        try:
            find = lambda: (sleeps_under(p.pid, tag.encode()) or [None])[0]  # noqa: E731
            old = wait(f"the service under {who}", find)
            for _ in range(runs):
                time.sleep(1.1)
                t0 = time.monotonic()
                os.kill(old, signal.SIGKILL)
                while True:
                    new = find()
                    if new is not None and new != old:
                        break
                    if time.monotonic() - t0 > 30:
                        fail(f"no restart within 30 s under {who}")
                times.append(time.monotonic() - t0)
                old = new
        finally:
            p.stop()
        return times

    # Row 6 -------------------------------------------------------------------------------
    def idle(self, bindir, repeats=3):
        out = []
        for _ in range(repeats):
            tag = self.tag()
            d = self.setup.dir(f"idle-{tag}", "units")
            builtins = ["hello"] * 6 + ["sensor"] * 5 + ["watcher"]
            for i, b in enumerate(builtins):
                with open(f"{d}/t{i}.service", "w") as f:
                    f.write(f'[service]\nbuiltin = "{b}"\n')
            sock = f"{d}/../a.sock"
            p = Proc([f"{bindir}/asyncmdd", "--units", d, "--socket", sock, "--journal-size", "64K"])
            try:
                def all_running():
                    r = subprocess.run([f"{bindir}/asyncmctl", "--socket", sock, "list", "--json"],
                                       capture_output=True, text=True)
                    if r.returncode != 0:
                        return False
                    units = json.loads(r.stdout)
                    return sum(1 for u in units if u.get("state") == "running") >= 12
                wait("12 builtin tasks running", all_running, every=0.1)
                # Idle, after each task has logged a few times and the journal has wrapped.
                time.sleep(5)
                out.append(rss(p.pid))
            finally:
                p.stop()
        return out


def ended(file):
    """Whether the workload's last line has reached the end of file."""
    try:
        with open(file, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 64))
            return f.read().endswith((END + "\n").encode())
    except FileNotFoundError:
        return False


def count(path):
    """The workload's lines in a file, or in every log file of a directory (s6-log and
    svlogd archive what they rotate beside `current`)."""
    want = (LINE + "\n").encode()
    files = [path]
    if os.path.isdir(path):
        files = [os.path.join(path, f) for f in os.listdir(path)
                 if f == "current" or f.startswith("@")]
    n = 0
    for name in files:
        with open(name, "rb") as f:
            n += sum(1 for line in f if line == want)
    return n


def fmt_mem(b):
    return f"{b / 2**20:.1f} MiB"


def fmt_ms(s):
    return f"{s * 1e3:.2f} ms" if s < 0.01 else f"{s * 1e3:.0f} ms"


def fmt_rate(r):
    return f"{r / 1e6:.2f} M/s"


def cell(xs, fmt):
    lo, med, hi = quartiles(xs)
    return med, f"{fmt(med)} ({fmt(lo)}-{fmt(hi)})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bin", required=True, help="directory of the asyncmd binaries to measure")
    ap.add_argument("--also", action="append", default=[], metavar="LABEL=DIR",
                    help="another build of asyncmd to measure in a column of its own")
    ap.add_argument("--rows", default="1,2,3,4,5,6,7", help="which rows to measure")
    ap.add_argument("--peers", default=",".join(PEERS),
                    help="which peers to measure (comma-separated; empty for none)")
    ap.add_argument("--launch", type=int, default=100, help="services for row 4")
    ap.add_argument("--boot", type=int, default=500, help="services for row 7")
    ap.add_argument("--json", help="also write every sample here")
    args = ap.parse_args()
    rows = {int(r) for r in args.rows.split(",")}
    b = Bench(args)
    samples = {}
    table = []

    chosen = [p for p in args.peers.split(",") if p]
    for p in chosen:
        if p not in PEERS:
            fail(f"unknown peer {p}: pick from {', '.join(PEERS)}")

    def row(num, title, measure, fmt, lower_better, goal_text, goal, peers=chosen):
        print(f"== {num}. {title}", flush=True)
        cols = {}
        for label, bindir in b.builds:
            xs = measure(label, bindir)
            samples[f"{num}/{label}"] = xs
            cols[label] = cell(xs, fmt)
            print(f"   {label}: {cols[label][1]}", flush=True)
        for who in peers:
            xs = measure(who, None)
            samples[f"{num}/{who}"] = xs
            cols[who] = cell(xs, fmt)
            print(f"   {who}: {cols[who][1]}", flush=True)
        ours = cols["asyncmd"][0]
        if peers:
            best_who = (min if lower_better else max)(peers, key=lambda w: cols[w][0])
            best = cols[best_who][0]
            ratio = f"{ours / best:.2f}x {best_who}"
        else:
            ratio = "-"
        try:
            met = "-" if goal is None else \
                "met" if goal(ours, {w: cols[w][0] for w in peers}) else "MISSED"
        except (KeyError, ValueError):
            met = "-"  # its peer was not measured
        table.append((f"{num}. {title}", cols, ratio, goal_text, met))

    if 1 in rows:
        row(1, "supervisor PSS, 100 sleep services", lambda who, d: b.memory(who, d), fmt_mem,
            True, "<= 0.5x runit", lambda o, p: o <= 0.5 * p["runit"])
    if 2 in rows:
        row(2, "status of one service, whole process", lambda who, d: b.status(who, d), fmt_ms,
            True, "<= 1.0x runit", lambda o, p: o <= p["runit"])
        floor = b.client_floor()
        samples["2/floor"] = floor
        print(f"   the floor of any Rust client: a hello world built by the same toolchain: "
              f"{cell(floor, fmt_ms)[1]}")
    if 3 in rows:
        lost = {}

        def logs(who, d):
            xs, lost[who] = b.log_path(who, d)
            return xs
        row(3, "1 M lines of 60 B to a file through the log path", logs, fmt_rate, False,
            ">= 1.0x supervisord", lambda o, p: o >= p["supervisord"])
        for label, _ in b.builds:
            print(f"   {label}'s follower missed {lost[label]} of {3 * FLOOD} lines")
        floor = b.pipeline_floor()
        samples["3/floor"] = floor
        print(f"   the floor of any follower: the workload through two `cat`s to a file (four "
              f"processes, as with asyncmdd and its follower): {cell(floor, fmt_rate)[1]}")
    if 4 in rows:
        row(4, f"launch to {args.launch} services running", lambda who, d: b.launch_time(who, d),
            fmt_ms, True, "<= 0.5x s6", lambda o, p: o <= 0.5 * p["s6"])
        floor = b.launch_floor()
        samples["4/floor"] = floor
        print(f"   the floor of any manager: {args.launch} `sh -c 'exec sleep'` started at once by "
              f"a shell: {cell(floor, fmt_ms)[1]}")
    if 5 in rows:
        row(5, "SIGKILL to replacement running", lambda who, d: b.restart(who, d), fmt_ms, True,
            "<= 1.0x the best", lambda o, p: o <= min(p.values()))
    if 6 in rows:
        row(6, "idle RSS, 12 builtin tasks, 64 KiB journal", lambda who, d: b.idle(d), fmt_mem,
            True, "<= 2.3 MB", lambda o, p: o <= 2.3e6, peers=[])

    if 7 in rows:
        row(7, f"launch to {args.boot} services running",
            lambda who, d: b.launch_time(who, d, args.boot), fmt_ms, True,
            "-", None)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(samples, f, indent=1)
    labels = [label for label, _ in b.builds]
    print()
    print("median (quartiles) of each row; ratio: asyncmd to the best peer")
    head = ["figure"] + labels + PEERS + ["ratio", "goal", ""]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for title, cols, ratio, goal_text, met in table:
        cells = [cols[w][1] if w in cols else "-" for w in labels + PEERS]
        print("| " + " | ".join([title] + cells + [ratio, goal_text, met])
              + " |")
    subprocess.run(["rm", "-rf", b.work])


if __name__ == "__main__":
    main()
