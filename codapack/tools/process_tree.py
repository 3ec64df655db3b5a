"""A process and everything it started, found through /proc: memory use and one kill for all.

Standard library only: `tools/reaper.py` imports it before it starts a
submission. Descendants are found by parent pid, so a child that called
`setsid()` or left its process group is still found; orphans of a killed
process reparent to the nearest subreaper (`reaper.py`), so they stay found too.
"""

import os
import signal


def _parents():
    """{pid: parent pid} of every living process visible in /proc (zombies are already dead)."""
    parents = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                # The command name may hold spaces and parentheses: the fields after the last ')' are fixed.
                fields = f.read().rsplit(b")", 1)[1].split()
            if fields[0] not in (b"Z", b"X"):
                parents[int(name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue  # ended while we looked
    return parents


def descendants(root):
    """Pids of every living process below `root` (not `root` itself)."""
    children = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found, queue = [], list(children.get(root, []))
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, []))
    return found


def memory_mb(pids):
    """(current, peak) resident memory in MB summed over `pids` (VmRSS and VmHWM from /proc)."""
    current = peak = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        current += int(line.split()[1]) / 1024.0
                    elif line.startswith("VmHWM:"):
                        peak += int(line.split()[1]) / 1024.0
        except (OSError, ValueError):
            continue
    return current, peak


def kill_below(root, rounds=50, reap=False):
    """SIGKILL every descendant of `root` until none is left; `root` itself lives on.

    A process may fork while the others die; each round finds and kills the new ones,
    and a killed process cannot fork again. `reap`: also collect our own ended
    children (for a subreaper; anyone else would steal other code's exit statuses).
    """
    for _ in range(rounds):
        pids = descendants(root)
        if not pids:
            return True
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if reap:
            reap_children()
    return not descendants(root)


def reap_children():
    """Collect our own ended children (a subreaper inherits the orphans), so they leave /proc."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
