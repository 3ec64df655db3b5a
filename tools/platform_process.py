"""Launching `platform_worker.py` the way the platform launches a submission, under one time limit."""

import json
import os
import signal
import subprocess
import threading
import time

from tqdm import tqdm

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "platform_worker.py")
# Variables the platform's worker would also have; everything else of the user's is dropped.
KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
# The submission's output kept in memory: its last bytes, where the error is.
OUTPUT_TAIL_BYTES = 256 * 1024
# Stages that start once predict has returned: the platform's clock has stopped.
AFTER_PREDICT = ("predicted", "batch_check", "done")


def platform_environment():
    """The user's environment stripped to what a platform container has, with no GPU visible."""
    env = {key: os.environ[key] for key in KEPT_ENV if key in os.environ}
    env.update(CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return env


def run_worker(python, job, cwd, limit, n):
    """Run the worker on `job` and wait at most `limit` seconds.

    Args:
        python: the interpreter playing the platform.
        job: the worker's job dict (see platform_worker.py); written next to its result file.
        cwd: the working directory of the run.
        limit: seconds for Model() plus predict; at the limit the worker and
            every process it started are killed.
        n: number of images, for the progress bar.

    Returns:
        A dict: `timed_out`, `returncode`, `seconds` (until predict returned, or
        the worker ended), `log` (the tail of the run's output), `worker` (its
        result file, or {}), `last_stage`, `checks_timed_out` (the checks after
        predict, which get a limit of their own, were killed).
    """
    job_path = job["result"] + ".job.json"
    with open(job_path, "w", encoding="utf-8") as f:
        json.dump(job, f)
    read_fd, write_fd = os.pipe()
    started = time.perf_counter()
    process = subprocess.Popen([python, "-I", WORKER, job_path, str(write_fd)], cwd=cwd,
                               env=platform_environment(), pass_fds=(write_fd,), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    os.close(write_fd)
    log, stages, predicted = OutputTail(OUTPUT_TAIL_BYTES), ["start"], threading.Event()
    readers = [threading.Thread(target=_follow_worker, args=(read_fd, n, stages, predicted), daemon=True),
               threading.Thread(target=log.read_all, args=(process.stdout,), daemon=True)]
    for reader in readers:
        reader.start()
    timed_out = not _wait_for_predict(process, predicted, limit)
    seconds = time.perf_counter() - started
    checks_timed_out = not timed_out and not _wait_for_exit(process, limit)
    for reader in readers:
        reader.join(timeout=5)
    worker = {}
    if os.path.exists(job["result"]):
        with open(job["result"], encoding="utf-8") as f:
            worker = json.load(f)
    return {"timed_out": timed_out, "returncode": process.returncode, "seconds": seconds, "log": log.text(),
            "worker": worker, "last_stage": stages[-1], "checks_timed_out": checks_timed_out}


def _wait_for_predict(process, predicted, limit):
    """Wait until predict returns or the worker ends; False (and the worker killed) at the limit."""
    deadline = time.perf_counter() + limit
    while process.poll() is None and not predicted.is_set():
        left = deadline - time.perf_counter()
        if left <= 0:
            _kill(process)
            return False
        predicted.wait(min(left, 0.05))
    return True


def _wait_for_exit(process, limit):
    try:
        process.wait(timeout=limit)
        return True
    except subprocess.TimeoutExpired:
        _kill(process)
        return False


def _kill(process):
    # The whole process group: the submission may have started children of its own.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # it ended on its own a moment ago
        pass
    process.wait()


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


def _follow_worker(read_fd, n, stages, predicted):
    """Read the worker's stage and progress lines, showing prediction progress as a bar."""
    with os.fdopen(read_fd) as pipe, tqdm(total=n, desc="predict", unit="img", leave=False,
                                          disable=None) as bar:
        for line in pipe:
            kind, *values = line.split()
            if kind == "stage":
                stages.append(values[0])
                if values[0] in AFTER_PREDICT:
                    predicted.set()
            elif kind == "progress":
                bar.update(int(values[0]) - bar.n)
