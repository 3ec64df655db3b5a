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
        A dict: `timed_out`, `returncode`, `seconds`, `log` (the run's output),
        `worker` (its result file, or {}), `last_stage`.
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
    log, stages = [], ["start"]
    readers = [threading.Thread(target=_follow_worker, args=(read_fd, n, stages), daemon=True),
               threading.Thread(target=lambda: log.extend(process.stdout), daemon=True)]
    for reader in readers:
        reader.start()
    try:
        process.wait(timeout=limit)
        timed_out = False
    except subprocess.TimeoutExpired:
        # The whole process group: the submission may have started children of its own.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        timed_out = True
    for reader in readers:
        reader.join(timeout=5)
    worker = {}
    if os.path.exists(job["result"]):
        with open(job["result"], encoding="utf-8") as f:
            worker = json.load(f)
    return {"timed_out": timed_out, "returncode": process.returncode, "seconds": time.perf_counter() - started,
            "log": b"".join(log).decode("utf-8", "replace"), "worker": worker, "last_stage": stages[-1]}


def _follow_worker(read_fd, n, stages):
    """Read the worker's stage and progress lines, showing prediction progress as a bar."""
    with os.fdopen(read_fd) as pipe, tqdm(total=n, desc="predict", unit="img", leave=False,
                                          disable=None) as bar:
        for line in pipe:
            kind, *values = line.split()
            if kind == "stage":
                stages.append(values[0])
            elif kind == "progress":
                bar.update(int(values[0]) - bar.n)
