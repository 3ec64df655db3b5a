"""The submission's walls: bubblewrap where it works, else a subreaper and a warning; or Docker.

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

With Docker (mode "docker", asked for by name, never a fallback), the worker
runs in a container of the platform's image, with the image's own Python: no
network, every capability dropped, no new privileges, a read-only root with a
private /tmp, the caller's uid and gid, the cleared environment, and only the
run folder (read-write) and the worker script (read-only) mounted. Killing
`docker run` leaves the container running, so the container gets a name the
harness kills it by (`kill_container`), and `reaper.py` kills it by that name
if the harness dies.
"""

import csv
import functools
import io
import json
import os
import secrets
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REAPER = os.path.join(HERE, "reaper.py")
REAPER_DOCKER_KILL = "--docker-kill"  # reaper.py's option: the container it kills if the harness dies
AUTO, DOCKER, NONE = "auto", "docker", "none"
MODES = (AUTO, DOCKER, NONE)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/sys")
PRIVATE_TMP = "/tmp"
NO_SANDBOX_WARNING = ("no sandbox: {why}. The submission runs as you: it can read your files (the labels "
                      "included), your environment through /proc and the network")
INSTALL_HINT = ". Install bubblewrap (`apt-get install bubblewrap`) to isolate it"
CONTAINER_PREFIX = "codapack-harness-"
# The image's own interpreter, found on the image's PATH (which is why PATH is not passed in).
IMAGE_PYTHON = "python"
OTHER_SANDBOX = "or use the default bubblewrap sandbox (--sandbox auto)"
DOCKER_TIMEOUT_S = 60
_docker_ready = set()  # (docker client, image) pairs found usable; a problem is looked at again each time


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


def docker_problem(image):
    """None when `docker run IMAGE` can start here, else one line: what is missing and the fix.

    Checked before anything runs, so that asking for Docker never falls back to another sandbox.
    """
    docker = shutil.which("docker")
    if docker is None:
        return f"--sandbox docker: `docker` is not on PATH. Install Docker and start its engine, {OTHER_SANDBOX}"
    if (docker, image) in _docker_ready:
        return None
    why = _docker_fails(docker, "info", "--format", "{{.ServerVersion}}")
    if why:
        return (f"--sandbox docker: the Docker engine does not answer (`docker info`: {why}). Start it "
                f"(`sudo systemctl start docker`, or Docker Desktop), {OTHER_SANDBOX}")
    why = _docker_fails(docker, "image", "inspect", "--format", "{{.Id}}", image)
    if why:
        return (f"--sandbox docker: the image `{image}` is not on this machine ({why}). Pull it once with "
                f"`docker pull {image}`, {OTHER_SANDBOX}")
    _docker_ready.add((docker, image))
    return None


def _docker_fails(docker, *args):
    """None when `docker ARGS` succeeds, else the first line of what it said."""
    try:
        done = subprocess.run([docker, *args], capture_output=True, text=True, timeout=DOCKER_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)[:200]
    if done.returncode == 0 and done.stdout.strip():
        return None
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return lines[0][:200] if lines else f"exit status {done.returncode}"


def container_name():
    """A fresh container name: the harness kills the container by it, since killing `docker run` does not."""
    return CONTAINER_PREFIX + secrets.token_hex(8)


def kill_container(name):
    """`docker kill NAME`, quietly: the container may have ended already (`--rm` then removed it)."""
    docker = shutil.which("docker")
    if docker is None:
        return
    try:
        subprocess.run([docker, "kill", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=DOCKER_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        pass


def wrap(command, *, run_dir, cwd, env, network=False, sandbox=AUTO, image=None, container=None,
         memory_limit_mb=None):
    """The command line that runs `command` walled in, and a warning when it cannot be.

    Args:
        command: [python, "-I", worker, ...], as it would run unwalled.
        run_dir: the only folder the submission may write (its files, the images, the outputs).
        cwd: the working directory, inside `run_dir`.
        env: the complete environment the command gets.
        network: keep the network (off by default, as on the platform).
        sandbox: "auto" (bubblewrap when it works), "docker" or "none".
        image: the Docker image (docker only; check it first with `docker_problem`).
        container: the container's name (docker only, from `container_name`), to kill it by.
        memory_limit_mb: docker only: the container's memory limit, enforced by the engine.

    Returns:
        (argv, env for Popen, warning or None).
    """
    if sandbox == DOCKER:
        return _docker_wrap(command, run_dir, cwd, env, network, image, container, memory_limit_mb)
    why = "turned off (--sandbox none)" if sandbox == NONE else bwrap_problem()
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


def _docker_wrap(command, run_dir, cwd, env, network, image, container, memory_limit_mb):
    """`docker run` of the image's Python on the worker, under `reaper.py`, which kills the container if we die.

    The `docker` client keeps the user's environment (DOCKER_HOST, its config); the container gets only
    `env`, less PATH, so that the image's own PATH finds the image's Python.
    """
    if not image or not container:
        raise ValueError("--sandbox docker needs an image and a container name")
    worker = os.path.abspath(command[2])
    run_dir, cwd = os.path.abspath(run_dir), os.path.abspath(cwd)
    argv = [shutil.which("docker") or "docker", "run", "--rm", "--init", "--name", container, "--pull", "never"]
    if not network:
        argv += ["--network", "none"]
    argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--read-only", "--tmpfs", PRIVATE_TMP,
             "--user", f"{os.getuid()}:{os.getgid()}"]
    if memory_limit_mb:
        size = f"{max(int(memory_limit_mb), 6)}m"  # the engine's smallest limit is 6 MB
        argv += ["--memory", size, "--memory-swap", size]  # the same figure for both: no swap beyond it
    inside = {key: value for key, value in env.items() if key != "PATH"}
    inside.update(HOME=PRIVATE_TMP, TMPDIR=PRIVATE_TMP)
    for key, value in sorted(inside.items()):
        argv += ["-e", f"{key}={value}"]
    argv += ["--mount", _bind(run_dir), "--mount", _bind(worker, readonly=True), "-w", cwd, image,
             IMAGE_PYTHON, *command[1:]]
    guard = [sys.executable, "-I", REAPER, str(os.getpid()), REAPER_DOCKER_KILL, container]
    return guard + argv, dict(os.environ), None


def _bind(path, readonly=False):
    """A `--mount` value binding `path` at the same path; written as CSV, which is how docker parses it."""
    fields = ["type=bind", f"source={path}", f"target={path}"] + (["readonly"] if readonly else [])
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(fields)
    return line.getvalue()
