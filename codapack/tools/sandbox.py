"""The submission's walls: bubblewrap where it works, else a subreaper and a warning.

With bubblewrap (`bwrap`, Debian package `bubblewrap`), the worker runs in new
user, pid, ipc, uts and (unless the network is allowed) network namespaces,
with every capability dropped, a cleared environment, and a filesystem made
of: read-only system folders (/usr, /bin, /lib*, /etc, /sys), the interpreter
and its environment read-only, the worker script read-only, the harness's run
folder (submission, images, outputs; never the labels) read-write, and a
private, empty /tmp. The harness's /proc, files, environment and other
processes are out of sight; bwrap's `--die-with-parent` and the pid namespace
take every process of the submission down with it.

Without it, `tools/reaper.py` still kills every process the submission
started, but the submission can read and write whatever the user can.
"""

import functools
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REAPER = os.path.join(HERE, "reaper.py")
AUTO, NONE = "auto", "none"
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/sys")
PRIVATE_TMP = "/tmp"
NO_SANDBOX_WARNING = ("no sandbox: {why}. The submission runs as you: it can read your files (the labels "
                      "included), your environment through /proc and the network")
INSTALL_HINT = ". Install bubblewrap (`apt-get install bubblewrap`) to isolate it"


@functools.lru_cache(maxsize=None)
def bwrap_problem():
    """None when bubblewrap can build a sandbox here, else why not (user namespaces may be off)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    probe = [bwrap, "--unshare-user", "--unshare-pid", "--unshare-net", "--die-with-parent",
             "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap cannot start ({exc})"
    if done.returncode != 0:
        return f"bwrap cannot create namespaces here ({done.stderr.strip() or done.returncode})"
    return None


@functools.lru_cache(maxsize=None)
def interpreter_dirs(python):
    """Folders the interpreter needs outside the system folders: its prefixes, resolved."""
    code = "import json, sys; print(json.dumps([sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]))"
    prefixes = json.loads(subprocess.run([python, "-I", "-c", code], capture_output=True, text=True,
                                         check=True).stdout)
    dirs = {os.path.realpath(p) for p in prefixes} | {os.path.dirname(os.path.realpath(python))}
    dirs |= {os.path.dirname(os.path.abspath(python))}
    outside = [d for d in sorted(dirs) if not any(d == s or d.startswith(s + "/") for s in SYSTEM_DIRS)]
    # A folder inside another one is bound with it.
    return tuple(d for d in outside if not any(d != o and d.startswith(o + "/") for o in outside))


def wrap(command, *, run_dir, cwd, env, network=False, sandbox=AUTO):
    """The command line that runs `command` walled in, and a warning when it cannot be.

    Args:
        command: [python, "-I", worker, ...], as it would run unwalled.
        run_dir: the only folder the submission may write (its files, the images, the outputs).
        cwd: the working directory, inside `run_dir`.
        env: the complete environment the command gets.
        network: keep the network (off by default, as on the platform).
        sandbox: "auto" (bubblewrap when it works) or "none".

    Returns:
        (argv, env for Popen, warning or None).
    """
    why = "turned off (--no-sandbox)" if sandbox == NONE else bwrap_problem()
    if why:
        reaper = [sys.executable, "-I", REAPER, str(os.getpid())]
        warning = NO_SANDBOX_WARNING.format(why=why) + ("" if sandbox == NONE else INSTALL_HINT)
        return reaper + list(command), env, warning
    python, worker = command[0], command[2]
    argv = [shutil.which("bwrap"), "--die-with-parent", "--new-session", "--unshare-user", "--unshare-pid",
            "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--cap-drop", "ALL"]
    if not network:
        argv.append("--unshare-net")
    for folder in SYSTEM_DIRS:
        argv += ["--ro-bind-try", folder, folder]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", PRIVATE_TMP]
    for folder in interpreter_dirs(python):
        argv += ["--ro-bind", folder, folder]
    argv += ["--ro-bind", worker, worker, "--bind", run_dir, run_dir, "--chdir", cwd, "--clearenv"]
    inside = dict(env, HOME=PRIVATE_TMP, TMPDIR=PRIVATE_TMP)
    for key, value in sorted(inside.items()):
        argv += ["--setenv", key, value]
    return argv + ["--"] + list(command), {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, None
