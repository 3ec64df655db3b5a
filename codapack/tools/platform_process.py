"""Launching `platform_worker.py` the way the platform launches a submission, under one time limit.

The worker runs walled in (`tools/sandbox.py`); the harness watches the whole
process tree: its memory (peak, and an optional limit) and, on time-out,
memory limit, Ctrl-C or any error of the harness, one kill for every process
in it. A Docker container is out of its sight: the engine enforces the memory
limit there, and the container is killed by its name.
"""

import json
import os
import secrets
import signal
import subprocess
import threading
import time

from tqdm import tqdm

from codapack.tools import process_tree, sandbox

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "platform_worker.py")
# Variables the platform's worker would also have; everything else of the user's is dropped.
KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
# The submission's output kept in memory: its last bytes, where the error is.
OUTPUT_TAIL_BYTES = 256 * 1024
# Stages that start once predict has returned: the platform's clock has stopped.
AFTER_PREDICT = ("predicted", "batch_check", "done")
SAMPLE_S = 0.1
# Exit statuses of `docker run` itself: the engine refused (125), or the image's command could not run (126, 127).
DOCKER_RUN_FAILED = (125, 126, 127)


def platform_environment():
    """The user's environment stripped to what a platform container has, with no GPU visible."""
    env = {key: os.environ[key] for key in KEPT_ENV if key in os.environ}
    env.update(CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return env


def run_worker(python, job, cwd, limit, n, *, run_dir=None, network=False, sandbox_mode=sandbox.AUTO,
               memory_limit_mb=None, image=None):
    """Run the worker on `job` and wait at most `limit` seconds.

    Args:
        python: the interpreter playing the platform (with "docker", the image's own runs whatever this says).
        job: the worker's job dict (see platform_worker.py); written next to its result file.
        cwd: the working directory of the run.
        limit: seconds for Model() plus predict; at the limit the worker and
            every process it started are killed.
        n: number of images, for the progress bar.
        run_dir: the folder the submission may see and write (holds the job's files);
            the job file's folder when None.
        network: let the submission reach the network.
        sandbox_mode: "auto", "docker" or "none" (see tools/sandbox.py).
        memory_limit_mb: kill the run once its processes hold more memory than this; None: no limit.
            With "docker" the engine enforces it (`--memory`) and nothing is sampled.
        image: the Docker image, for "docker".

    Returns:
        A dict: `timed_out`, `memory_exceeded`, `returncode`, `signal` (the name of the signal
        that ended the worker, or None), `seconds` (until predict returned, or the worker
        ended), `limit_s`, `memory_limit_mb`, `peak_tree_mb` (peak resident memory of all its
        processes, sampled; None with "docker"), `log` (the tail of the run's output), `worker`
        (its result file, or {}), `last_stage`, `checks_timed_out` (the checks after predict, which
        get a limit of their own, were killed), `sandbox_warning`, `docker` (it ran in a container).
    """
    job_path = job["result"] + ".job.json"
    with open(job_path, "w", encoding="utf-8") as f:
        json.dump(job, f)
    docker = sandbox_mode == sandbox.DOCKER
    container = sandbox.container_name() if docker else None
    channel = FifoChannel(job["result"] + ".progress") if docker else PipeChannel()
    argv, env, warning = sandbox.wrap([python, "-I", WORKER, job_path, channel.argument],
                                      run_dir=run_dir or os.path.dirname(job_path), cwd=cwd,
                                      env=platform_environment(), network=network, sandbox=sandbox_mode,
                                      image=image, container=container, memory_limit_mb=memory_limit_mb)
    started = time.perf_counter()
    try:
        process = subprocess.Popen(argv, cwd=cwd, env=env, pass_fds=channel.pass_fds, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        channel.started()
    watch = _Watch(process, memory_limit_mb)
    log, stages, predicted = OutputTail(OUTPUT_TAIL_BYTES), ["start"], threading.Event()
    readers = [threading.Thread(target=_follow_worker, args=(channel.read_fd, n, stages, predicted, channel.last_line),
                                daemon=True),
               threading.Thread(target=log.read_all, args=(process.stdout,), daemon=True)]
    if not docker:  # a container's processes are not ours to see; the engine enforces its memory limit
        readers.append(threading.Thread(target=watch.run, daemon=True))
    for reader in readers:
        reader.start()
    try:
        timed_out = not _wait_for_predict(process, predicted, limit, container)
        seconds = time.perf_counter() - started
        checks_timed_out = not timed_out and not _wait_for_exit(process, limit, container)
    finally:  # also on Ctrl-C and on any error of the harness itself
        end_tree(process, container)
        channel.ended()
    for reader in readers:
        reader.join(timeout=5)
    worker = read_result(job["result"])
    return {"timed_out": timed_out and not watch.exceeded, "memory_exceeded": watch.exceeded,
            "returncode": process.returncode, "signal": signal_name(process.returncode),
            "seconds": seconds, "limit_s": limit, "memory_limit_mb": memory_limit_mb,
            "peak_tree_mb": None if docker else watch.peak_mb, "log": log.text(), "worker": worker,
            "last_stage": stages[-1], "checks_timed_out": checks_timed_out, "sandbox_warning": warning,
            "docker": docker}


class PipeChannel:
    """The worker's progress channel with bubblewrap or none: an inherited pipe, named by its descriptor.

    The reader sees the end once every process of the run has closed the pipe.
    """

    last_line = None

    def __init__(self):
        self.read_fd, self._write_fd = os.pipe()
        self.argument, self.pass_fds = str(self._write_fd), (self._write_fd,)

    def started(self):
        """The worker holds its own copy now (or never will): ours would hide the end from the reader."""
        os.close(self._write_fd)

    def ended(self):
        pass


class FifoChannel:
    """The progress channel with Docker, where no descriptor crosses into the container: a named pipe.

    It lies in the run folder, which the container mounts. The harness opens it read-write, so that
    its open never blocks and its reader never sees an end, even if the worker never opens it; once
    the run has ended, a line only the harness knows (`last_line`) stops the reader.
    """

    pass_fds = ()

    def __init__(self, path):
        os.mkfifo(path, 0o600)
        self.argument = path
        self.read_fd = os.open(path, os.O_RDWR)
        self._end_fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)  # never blocks: a reader exists
        self.last_line = f"end {secrets.token_hex(16)}"

    def started(self):
        pass

    def ended(self):
        """Stop the reader; a reader already gone, or a full pipe, leaves that to the join's time-out."""
        try:
            os.write(self._end_fd, (self.last_line + "\n").encode())
        except OSError:
            pass
        finally:
            os.close(self._end_fd)


def read_result(path):
    """The worker's result dict, or {} when there is none or the submission replaced it.

    The submission can write its folder, the result file included: not following links keeps the
    harness from reading files of its own choosing, and garbage counts as no result.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, encoding="utf-8") as f:
            result = json.load(f)
    except (OSError, ValueError):
        return {}
    return result if isinstance(result, dict) else {}


def end_tree(process, container=None):
    """Kill every process below `process`, then `process` itself, and reap it.

    Once `process` has ended (bwrap and reaper.py take their processes with them), its pid may be
    reused by a stranger, whose children must not be touched. A container (`container`, its name)
    holds no process of ours: killing `docker run` leaves it running, so it is killed by name first.
    """
    if process.poll() is None:
        if container:
            sandbox.kill_container(container)
        process_tree.kill_below(process.pid)
        process.kill()
    process.wait()


def signal_name(returncode):
    """The signal that ended the worker: Popen reports -N; bwrap and reaper.py exit with 128 + N."""
    if returncode is None or returncode == 0:
        return None
    number = -returncode if returncode < 0 else returncode - 128
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


class _Watch:
    """Sample the memory of the worker's process tree; kill it above the limit."""

    def __init__(self, process, limit_mb):
        self.process, self.limit_mb = process, limit_mb
        self.peak_mb, self.exceeded = 0.0, False

    def run(self):
        while self.process.poll() is None:
            current, peak = process_tree.memory_mb(process_tree.descendants(self.process.pid))
            self.peak_mb = max(self.peak_mb, peak, current)
            if self.limit_mb and current > self.limit_mb:
                self.exceeded = True
                process_tree.kill_below(self.process.pid)
                return
            time.sleep(SAMPLE_S)


def _wait_for_predict(process, predicted, limit, container=None):
    """Wait until predict returns or the worker ends; False (and the worker killed) at the limit."""
    deadline = time.perf_counter() + limit
    while process.poll() is None and not predicted.is_set():
        left = deadline - time.perf_counter()
        if left <= 0:
            end_tree(process, container)
            return False
        predicted.wait(min(left, 0.05))
    return True


def _wait_for_exit(process, limit, container=None):
    try:
        process.wait(timeout=limit)
        return True
    except subprocess.TimeoutExpired:
        end_tree(process, container)
        return False


class OutputTail:
    """The last `limit` bytes of a stream, and how many came before them."""

    def __init__(self, limit):
        self.limit, self.buffer, self.dropped = limit, bytearray(), 0

    def read_all(self, stream):
        for chunk in iter(lambda: stream.read1(65536), b""):
            self.buffer += chunk
            if len(self.buffer) > 2 * self.limit:
                excess = len(self.buffer) - self.limit
                del self.buffer[:excess]
                self.dropped += excess

    def text(self):
        tail = bytes(self.buffer[-self.limit:]).decode("utf-8", "replace")
        dropped = self.dropped + max(len(self.buffer) - self.limit, 0)
        return f"[... {dropped} earlier bytes of output dropped ...]\n{tail}" if dropped else tail


def _follow_worker(read_fd, n, stages, predicted, last_line=None):
    """Read the worker's stage and progress lines up to `last_line`, showing prediction progress as a bar."""
    with os.fdopen(read_fd, errors="replace") as pipe, tqdm(total=n, desc="predict", unit="img", leave=False,
                                                            disable=None) as bar:
        for line in pipe:
            if last_line is not None and line.rstrip("\n") == last_line:
                return
            kind, *values = line.split() or [""]
            try:
                if kind == "stage":
                    stages.append(values[0])
                    if values[0] in AFTER_PREDICT:
                        predicted.set()
                elif kind == "progress":
                    bar.update(int(values[0]) - bar.n)
            except (IndexError, ValueError):
                continue  # the submission holds this pipe too and may write anything to it


def crash_message(outcome):
    """What ended a worker that left no result: a memory limit, a signal or docker itself; else None."""
    if outcome["worker"].get("stage") == "done" and not outcome["memory_exceeded"]:
        return None
    where = f" in stage `{outcome['last_stage']}`"
    if outcome["memory_exceeded"]:
        return (f"killed{where}: its processes held more than the {_size(outcome['memory_limit_mb'])} memory "
                f"limit (--memory-limit or the profile's limits.memory_limit_mb)")
    if outcome["worker"]:
        return None  # the worker reported its own error
    if outcome.get("docker") and outcome["returncode"] in DOCKER_RUN_FAILED:
        said = [line.strip() for line in outcome["log"].splitlines() if line.strip()]
        return (f"docker run failed (exit status {outcome['returncode']}): "
                f"{said[-1][:150] if said else 'it said nothing'}")
    name = outcome["signal"]
    if name is None:
        return None
    if outcome["peak_tree_mb"] is None:  # a container: the engine's memory limit kills unseen
        limit = outcome["memory_limit_mb"]
        cause = (f", probably at the {_size(limit)} memory limit docker enforces (--memory-limit or the profile's "
                 "limits.memory_limit_mb)" if limit else ", probably out of memory")
        return (f"killed by {name}{where}{cause if name == 'SIGKILL' else ''} (peak memory is not sampled "
                "with --sandbox docker)")
    peak = _size(outcome["peak_tree_mb"])
    if name == "SIGKILL":
        return f"killed by SIGKILL{where}, probably out of memory at {peak} (peak seen)"
    return f"killed by {name}{where} (peak memory {peak})"


def _size(mb):
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"
