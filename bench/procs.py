"""Process-tree helpers shared by the bench scripts (imported from their Python parts)."""
import os


def descendants(pid):
    """Every descendant of pid, from /proc/PID/task/TID/children: far cheaper than a scan
    of all of /proc, so a poller steals little CPU from what it measures."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as f:
                    kids = [int(k) for k in f.read().split()]
                out += kids
                todo += kids
        except OSError:
            pass
    return out


def sleeps_under(root, arg):
    """The PIDs of `sleep ARG` processes below root."""
    found = []
    for pid in descendants(root):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read() == b"sleep\0" + arg + b"\0":
                    found.append(pid)
        except OSError:
            pass
    return found
