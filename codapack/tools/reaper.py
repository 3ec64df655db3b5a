"""Run one command as a subreaper and take all of its processes down with it.

    python -I reaper.py PARENT_PID [--docker-kill NAME] COMMAND...

The harness's launcher where no sandbox is available (see tools/sandbox.py),
and the guard of `docker run` with --sandbox docker: a container is no process
of ours, so with `--docker-kill NAME`, on a signal (the harness's death
included) it runs `docker kill NAME` before it kills its own processes.

As a child subreaper (prctl PR_SET_CHILD_SUBREAPER), this process inherits
every orphan below it, `setsid` or double-fork included, so it can always find
and kill them. It kills them all when the command ends, on SIGTERM or SIGINT
(the harness's time limit or Ctrl-C), and when the harness dies (parent-death
signal). Exit status: the command's, or 128 + the signal that killed it.
"""

import ctypes
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import process_tree  # noqa: E402  (standard library only, beside this file)
import sandbox  # noqa: E402  (standard library only, beside this file)

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_container = None  # the container to kill on the way out (--docker-kill)


def _prctl(option, value):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def _end_all(signum, frame):
    if _container:
        sandbox.kill_container(_container)
    process_tree.kill_below(os.getpid(), reap=True)
    os._exit(128 + signum)


def main(command, parent, container=None):
    global _container
    _container = container
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _end_all)
    if os.getppid() != parent:  # the harness died before the parent-death signal was armed
        _end_all(signal.SIGTERM, None)
    child = subprocess.Popen(command, pass_fds=_inherited_fds())
    status = child.wait()
    process_tree.kill_below(os.getpid(), reap=True)
    return 128 - status if status < 0 else status


def _inherited_fds():
    """Every descriptor above stderr we were given: the worker's progress pipe among them."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))  # the listing's own descriptor is already closed
        except OSError:
            continue
        if int(name) > 2:
            found.append(int(name))
    return tuple(found)


def _parse(args):
    """(command, parent pid, container name or None) from the command line."""
    parent, rest = int(args[0]), args[1:]
    if rest[:1] == [sandbox.REAPER_DOCKER_KILL]:
        return rest[2:], parent, rest[1]
    return rest, parent, None


if __name__ == "__main__":
    sys.exit(main(*_parse(sys.argv[1:])))
