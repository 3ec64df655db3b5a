"""A stand-in for the `docker` client and its engine, for the tests of `harness --sandbox docker`.

No Docker engine runs where these tests run, so this file plays both parts:

    python fake_docker.py --engine STATE     the engine: serves STATE/engine.sock until SIGTERM
    python fake_docker.py ARGS...            the client (`docker ARGS...`, via STATE/bin/docker)

The client records every call in STATE/calls.jsonl and implements `info`,
`image inspect`, `kill`, `ps` and `run`. `run` checks what an engine would
refuse (unknown flags, an image not pulled, a name in use, a bind source that
does not exist, a command path outside every mount, a malformed --user or
--memory) and then has the engine start the command on this machine with only
the `-e` environment (over the image's PATH) in the `-w` folder. As with a
real engine, the container is no process of the client's: it is a child of the
engine, so killing `docker run` leaves it running and only `docker kill NAME`
stops it, with everything it started (its init is a child subreaper). What it
cannot check: the read-only root and mounts, the network, the capabilities,
the user and the memory limit are flags here, not walls.

STATE/images.json lists the images "pulled"; no engine running means
`docker info` fails as it does when the daemon is down.
"""

import csv
import ctypes
import hashlib
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading

HERE = os.path.abspath(__file__)


def _process_tree():
    """codapack's stdlib-only process_tree, loaded by path: this file also runs as a bare script."""
    path = os.path.join(os.path.dirname(os.path.dirname(HERE)), "codapack", "tools", "process_tree.py")
    spec = importlib.util.spec_from_file_location("fake_docker_process_tree", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


process_tree = _process_tree()
STATE_ENV = "FAKE_DOCKER_STATE"
VALUE_FLAGS = {"--name", "--network", "--cap-drop", "--security-opt", "--tmpfs", "--user", "-e", "--env",
               "--mount", "-w", "--workdir", "--memory", "--memory-swap", "--pull"}
BOOL_FLAGS = {"--rm", "--init", "--read-only"}
DAEMON_DOWN = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
PR_SET_CHILD_SUBREAPER = 36


def install(state):
    """Create STATE with a `docker` executable in STATE/bin; returns that folder, to put first on PATH."""
    bin_dir = os.path.join(state, "bin")
    os.makedirs(bin_dir, exist_ok=True)
    path = os.path.join(bin_dir, "docker")
    with open(path, "w") as f:
        f.write(f'#!/bin/sh\nexec "{sys.executable}" "{HERE}" "$@"\n')
    os.chmod(path, 0o755)
    set_images(state, [])
    return bin_dir


def set_images(state, images):
    with open(os.path.join(state, "images.json"), "w") as f:
        json.dump(list(images), f)


def calls(state):
    """Every client call so far, as argv lists."""
    try:
        with open(os.path.join(state, "calls.jsonl")) as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


# ---- the client -------------------------------------------------------------------------------


def client(args):
    state = os.environ[STATE_ENV]
    with open(os.path.join(state, "calls.jsonl"), "a") as f:
        f.write(json.dumps(args) + "\n")
    if args[:1] == ["info"]:
        reply = _ask(state, {"op": "ping"})
        return _done(reply, "fake-engine 1.0")
    if args[:2] == ["image", "inspect"]:
        image = args[-1]
        if _ask(state, {"op": "ping"}) is None:
            return _fail(DAEMON_DOWN, 1)
        if image not in _images(state):
            return _fail(f"Error response from daemon: No such image: {image}", 1)
        print("sha256:" + hashlib.sha256(image.encode()).hexdigest())
        return 0
    if args[:1] == ["kill"]:
        return _done(_ask(state, {"op": "kill", "name": args[1]}), args[1])
    if args[:1] == ["ps"]:
        reply = _ask(state, {"op": "ps"})
        return _done(reply, "\n".join(reply["names"]) if reply else "")
    if args[:1] == ["run"]:
        return _run(state, args[1:])
    return _fail(f"fake docker: unsupported command {args[:2]}", 1)


def _done(reply, output):
    if reply is None:
        return _fail(DAEMON_DOWN, 1)
    if reply.get("error"):
        return _fail(f"Error response from daemon: {reply['error']}", 1)
    if output:
        print(output)
    return 0


def _fail(message, status):
    print(message, file=sys.stderr)
    return status


def _images(state):
    with open(os.path.join(state, "images.json")) as f:
        return json.load(f)


def _run(state, args):
    """Parse and check `docker run` as an engine would, then run the command in the engine."""
    flags, rest = _parse(args)
    if isinstance(flags, str):
        return _fail(f"docker: {flags}", 125)
    if not rest:
        return _fail("docker: \"docker run\" requires at least 1 argument.", 125)
    image, command = rest[0], rest[1:]
    if _ask(state, {"op": "ping"}) is None:
        return _fail(f"docker: {DAEMON_DOWN}", 125)
    if image not in _images(state):
        return _fail(f"docker: Error response from daemon: No such image: {image}", 125)
    problem = _refused(flags, command)
    if problem:
        return _fail(f"docker: Error response from daemon: {problem}", 125)
    env = {"PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin"}  # the image's ENV
    env.update(value.split("=", 1) for value in flags.get("-e", []) + flags.get("--env", []))
    request = {"op": "run", "name": flags.get("--name", [None])[-1], "rm": "--rm" in flags, "command": command,
               "env": env, "cwd": (flags.get("-w") or flags.get("--workdir") or ["/"])[-1]}
    status = _ask(state, request, fds=[1, 2], wait_exit=True)
    return _fail(f"docker: {DAEMON_DOWN}", 125) if status is None else status


def _parse(args):
    """({flag: [values]}, [image, command...]), or an error message."""
    flags, i = {}, 0
    while i < len(args) and args[i].startswith("-"):
        flag = args[i]
        if flag in BOOL_FLAGS:
            flags[flag] = [True]
            i += 1
        elif flag in VALUE_FLAGS and i + 1 < len(args):
            flags.setdefault(flag, []).append(args[i + 1])
            i += 2
        else:
            return f"unknown flag: {flag}", []
    return flags, args[i:]


def _refused(flags, command):
    """What an engine would refuse in these flags, or None."""
    user = flags.get("--user", ["0:0"])[-1]
    if not re.fullmatch(r"\d+:\d+", user):
        return f"invalid --user {user!r}"
    for flag in ("--memory", "--memory-swap"):
        for value in flags.get(flag, []):
            if not re.fullmatch(r"\d+[bkmg]", value):
                return f"invalid {flag} {value!r}"
    targets = []
    for value in flags.get("--mount", []):
        fields = dict(field.split("=", 1) if "=" in field else (field, True) for field in next(csv.reader([value])))
        if fields.get("type") != "bind" or not os.path.exists(fields.get("source", "")):
            return f"invalid mount config: bind source path does not exist: {fields.get('source')}"
        targets.append(fields["target"])
    cwd = (flags.get("-w") or flags.get("--workdir") or ["/"])[-1]
    for path in [cwd] + [arg for arg in command if arg.startswith("/")]:
        if not any(path == t or path.startswith(t.rstrip("/") + "/") for t in targets):
            return f"fake docker: {path} is not inside any mount, so the container would not have it"
    return None


def _ask(state, request, fds=(), wait_exit=False):
    """Send one request to the engine; its reply (or, for a run, the container's exit status); None if it is down."""
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.connect(os.path.join(state, "engine.sock"))
    except OSError:
        return None
    with sock, sock.makefile("rb") as replies:
        socket.send_fds(sock, [json.dumps(request).encode() + b"\n"], list(fds))
        reply = json.loads(replies.readline())
        if not wait_exit:
            return reply
        if reply.get("error"):
            return _fail(f"docker: Error response from daemon: {reply['error']}", 125)
        return json.loads(replies.readline())["exit"]


# ---- the engine -------------------------------------------------------------------------------


class Engine:
    """Runs containers as its own children, so that they outlive the client that asked for them."""

    def __init__(self, state):
        self.state, self.containers, self.lock = state, {}, threading.Lock()

    def serve(self):
        path = os.path.join(self.state, "engine.sock")
        server = socket.socket(socket.AF_UNIX)
        server.bind(path + ".new")
        server.listen(64)
        os.replace(path + ".new", path)  # the socket appears once it answers
        signal.signal(signal.SIGTERM, self._stop)
        while True:
            conn, _ = server.accept()
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _stop(self, signum, frame):
        with self.lock:
            for process in self.containers.values():
                _signal(process.pid, signal.SIGTERM)
        os._exit(0)

    def _handle(self, conn):
        with conn:
            data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 2)
            while not data.endswith(b"\n"):
                data += conn.recv(1 << 20)
            request = json.loads(data)
            try:
                reply = getattr(self, "_" + request["op"])(request, fds, conn)
            finally:
                for fd in fds:  # the container has its own copies
                    os.close(fd)
            if reply is not None:
                _send(conn, reply)

    def _ping(self, request, fds, conn):
        return {"ok": True}

    def _ps(self, request, fds, conn):
        with self.lock:
            return {"names": sorted(self.containers)}

    def _kill(self, request, fds, conn):
        with self.lock:
            process = self.containers.get(request["name"])
        if process is None:
            return {"error": f"No such container: {request['name']}"}
        _signal(process.pid, signal.SIGTERM)  # the init kills everything below it, as a pid namespace dies
        process.wait()
        return {"killed": request["name"]}

    def _run(self, request, fds, conn):
        name = request["name"]
        with self.lock:
            if name in self.containers:
                return {"error": f'Conflict. The container name "/{name}" is already in use'}
            try:
                process = subprocess.Popen([sys.executable, HERE, "--container-init", *request["command"]],
                                           env=request["env"], cwd=request["cwd"], stdin=subprocess.DEVNULL,
                                           stdout=fds[0], stderr=fds[1], start_new_session=True)
            except OSError as exc:
                return {"error": f"failed to create the container: {exc}"}
            self.containers[name] = process
        for fd in fds:
            os.close(fd)
        fds.clear()
        try:
            _send(conn, {"started": process.pid})
        except OSError:
            pass  # the client is gone already; the container runs all the same
        status = process.wait()
        status = 128 - status if status < 0 else status
        with self.lock:
            if request["rm"]:
                self.containers.pop(name, None)
        try:
            _send(conn, {"exit": status})
        except OSError:
            pass  # the client was killed; the container ran on regardless
        return None


def _send(conn, reply):
    conn.sendall(json.dumps(reply).encode() + b"\n")


def _signal(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def container_init(command):
    """The container's pid 1: runs the command, and takes every process below it down when it or we end."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)

    def end(signum, frame):
        process_tree.kill_below(os.getpid(), reap=True)
        os._exit(128 + signal.SIGKILL)  # `docker kill` sends SIGKILL: the container's status is 137

    signal.signal(signal.SIGTERM, end)
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        print(f"exec: {command[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    status = child.wait()
    process_tree.kill_below(os.getpid(), reap=True)
    return 128 - status if status < 0 else status


if __name__ == "__main__":
    if sys.argv[1:2] == ["--engine"]:
        Engine(sys.argv[2]).serve()
    elif sys.argv[1:2] == ["--container-init"]:
        sys.exit(container_init(sys.argv[2:]))
    else:
        sys.exit(client(sys.argv[1:]))
