"""Run a submission zip the way the platform does: `python tools/harness.py submission.zip --data FILE.npz`.

The zip is unpacked into a fresh temporary folder and run in a separate Python
process (`tools/platform_worker.py`) with the platform's working directory,
only the submission folder on `sys.path`, no GPU, a stripped environment and
one time limit over `Model()` plus `predict`. The output is checked, scored
and recorded in the leaderboard; the last line printed is JSON.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import click
import numpy as np
from tqdm import tqdm

from codapack.cli_common import command, emit_json, profile_option
from codapack.dataset import load_dataset
from codapack.errors import CodapackError
from codapack.files import file_sha256
from codapack.profile import WORKDIR_CHOICES, load_profile
from codapack.splits import SPLIT_NAMES, split_for
from evaluator.metrics import classification_metrics
from tools import leaderboard
from tools.zip_safety import unpack_zip

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "platform_worker.py")
# Variables the platform's worker would also have; everything else of the user's is dropped.
KEPT_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
OK, ERROR, TIMEOUT, BAD_OUTPUT = "OK", "ERROR", "TIMEOUT", "BAD_OUTPUT"


@dataclasses.dataclass
class HarnessOptions:
    """How to run a submission.

    Args:
        split: "train", "val", "test", "final" (of the saved split of the data) or "all".
        dtype: "uint8" or "float32", the dtype of the images given to predict.
        workdir: "submission" or "elsewhere"; None follows the profile.
        time_limit_s: limit over Model() plus predict; None follows the profile.
        python: the interpreter that plays the platform; defaults to this one.
    """

    split: str = "test"
    dtype: str = "uint8"
    workdir: str = None
    time_limit_s: float = None
    python: str = sys.executable


def run_harness(zip_path, data_path, profile, options=HarnessOptions()):
    """Run a zip on labelled data as the platform would and score it.

    Args:
        zip_path: the submission zip.
        data_path: a competition `.npz` with labels.
        profile: the competition `Profile`.
        options: `HarnessOptions`.

    Returns:
        A JSON-ready dict: `verdict`, the headline metrics (`accuracy`,
        `precision`, `recall`, `f1` are macro-averaged), `n`, `seconds`,
        `init_seconds`, `predict_seconds`, `peak_rss_mb`, zip hash and size, and `error`.
    """
    dataset = load_dataset(data_path, profile)
    if options.split == "all":
        indices = np.arange(len(dataset))
    else:
        indices = split_for(dataset, profile)[options.split]
    images, labels = dataset.subset(indices)
    images = images.astype(options.dtype, copy=False)
    workdir = options.workdir or profile.platform_workdir
    limit = options.time_limit_s or profile.time_limit_s

    with tempfile.TemporaryDirectory(prefix="codapack-harness-") as scratch:
        submission = os.path.join(scratch, "submission")
        os.makedirs(submission)
        unpack_zip(zip_path, submission)
        members = _member_names(submission)
        cwd = submission if workdir == "submission" else os.path.join(scratch, "elsewhere")
        os.makedirs(cwd, exist_ok=True)
        paths = {name: os.path.join(scratch, name) for name in ("input.npy", "output.npy", "result.json")}
        np.save(paths["input.npy"], images)
        outcome = _run_worker(options.python, submission, paths, cwd, limit, len(images))
        result = _judge(outcome, paths["output.npy"], labels, profile)

    result.update(zip=os.path.abspath(zip_path), zip_sha256=file_sha256(zip_path),
                  zip_bytes=os.path.getsize(zip_path), data_sha256=dataset.sha256, split=options.split,
                  dtype=options.dtype, workdir=workdir, time_limit_s=limit, members=members)
    return result


def _member_names(submission):
    """Names of the runs inside a codapack-built zip; empty for other zips."""
    try:
        with open(os.path.join(submission, "manifest.json"), encoding="utf-8") as f:
            return [member["name"] for member in json.load(f)["members"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _run_worker(python, submission, paths, cwd, limit, n):
    env = {key: os.environ[key] for key in KEPT_ENV if key in os.environ}
    env.update(CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    read_fd, write_fd = os.pipe()
    started = time.perf_counter()
    process = subprocess.Popen(
        [python, "-I", WORKER, submission, paths["input.npy"], paths["output.npy"], paths["result.json"],
         str(write_fd)],
        cwd=cwd, env=env, pass_fds=(write_fd,), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
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
    seconds = time.perf_counter() - started
    output = b"".join(log).decode("utf-8", "replace")
    worker_result = {}
    if os.path.exists(paths["result.json"]):
        with open(paths["result.json"], encoding="utf-8") as f:
            worker_result = json.load(f)
    return {"timed_out": timed_out, "returncode": process.returncode, "seconds": seconds,
            "log": output, "worker": worker_result, "last_stage": stages[-1]}


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


def _judge(outcome, output_path, labels, profile):
    worker = outcome["worker"]
    result = {"verdict": OK, "n": int(len(labels)), "seconds": round(outcome["seconds"], 3),
              "init_seconds": _round(worker.get("init_seconds")),
              "predict_seconds": _round(worker.get("predict_seconds")),
              "peak_rss_mb": _round(worker.get("peak_rss_mb")), "error": None}
    if outcome["timed_out"]:
        return dict(result, verdict=TIMEOUT, error=f"Model() plus predict took longer than the limit; "
                                                   f"killed in stage `{outcome['last_stage']}`")
    if outcome["returncode"] != 0 or worker.get("stage") != "done":
        detail = worker.get("traceback") or outcome["log"][-3000:]
        return dict(result, verdict=ERROR, error=worker.get("error") or "the submission process crashed",
                    traceback=detail)
    problem = _check_output(np.load(output_path, allow_pickle=False), worker["output_type"], len(labels),
                            profile.num_classes)
    if problem:
        return dict(result, verdict=BAD_OUTPUT, error=problem)
    predictions = np.load(output_path, allow_pickle=False).astype(np.int64)
    metrics = classification_metrics(labels, predictions, profile.classes)
    result.update(accuracy=metrics["accuracy"], precision=metrics["precision_macro"],
                  recall=metrics["recall_macro"], f1=metrics["f1_macro"], metrics=metrics)
    return result


def _check_output(y, output_type, n, num_classes):
    if output_type != "numpy.ndarray":
        return f"predict should return a numpy array; it returned {output_type}"
    if y.shape != (n,):
        return f"predict should return shape ({n},); it returned {y.shape}"
    if y.dtype.kind not in "iu":
        return f"predict should return integer class ids; it returned dtype {y.dtype}"
    if n and (y.min() < 0 or y.max() >= num_classes):
        return f"predicted class ids should lie in 0..{num_classes - 1}; found {int(y.min())}..{int(y.max())}"
    return None


def _round(value):
    return None if value is None else round(float(value), 3)


def summary_line(result):
    if result["verdict"] != OK:
        return f"verdict {result['verdict']}: {result['error']}"
    return (f"verdict OK: accuracy {result['accuracy']:.4f}, macro F1 {result['f1']:.4f} on {result['n']} images "
            f"in {result['seconds']:.1f} s (Model() {result['init_seconds']:.1f} s, predict "
            f"{result['predict_seconds']:.1f} s), peak memory {result['peak_rss_mb']:.0f} MB")


@command(name="harness")
@click.argument("zip_path", metavar="ZIP", type=click.Path())
@click.option("--data", "data_path", required=True, type=click.Path(), help="Labelled competition .npz.")
@click.option("--split", default="test", type=click.Choice(SPLIT_NAMES + ("all",)),
              help="Which images of --data to score: a split of the saved train/val/test split, or all.")
@click.option("--dtype", default="uint8", type=click.Choice(("uint8", "float32")),
              help="Dtype of the images given to predict (values 0..255 either way).")
@click.option("--workdir", default=None, type=click.Choice(WORKDIR_CHOICES),
              help="Working directory of the run [default: the profile's platform.workdir].")
@click.option("--time-limit", "time_limit_s", default=None, type=float,
              help="Seconds for Model() plus predict [default: the profile's limits.time_limit_s].")
@click.option("--phase", default=leaderboard.DEVELOPMENT, type=click.Choice(leaderboard.PHASES),
              help="development: score --split, shown at once; final: score the held-back final split, whose "
                   "scores the leaderboard hides until `leaderboard --reveal`.")
@click.option("--db", default=None, type=click.Path(), help="Leaderboard database [default: .codapack/leaderboard.sqlite].")
@click.option("--note", default="", help="Free note stored with the leaderboard entry.")
@click.option("--no-record", is_flag=True, help="Do not record this run in the leaderboard.")
@profile_option
@click.option("--json", "as_json", is_flag=True,
              help="Print only the JSON line (it is always the last line printed).")
def main(zip_path, data_path, split, dtype, workdir, time_limit_s, phase, db, note, no_record, profile_name, as_json):
    """Run a submission zip as the platform does, check its output and score it.

    Exits 1 when the verdict is not OK (ERROR, TIMEOUT, BAD_OUTPUT).
    """
    profile = load_profile(profile_name)
    if time_limit_s is not None and time_limit_s <= 0:
        raise CodapackError(f"--time-limit should be positive. Received: {time_limit_s}")
    if phase == leaderboard.FINAL:
        if click.get_current_context().get_parameter_source("split").name != "DEFAULT" or no_record:
            raise CodapackError("--phase final scores the held-back final split and records it; "
                                "leave out --split and --no-record")
        split = leaderboard.FINAL
    options = HarnessOptions(split=split, dtype=dtype, workdir=workdir, time_limit_s=time_limit_s)
    result = run_harness(zip_path, data_path, profile, options)
    if not no_record:
        result["leaderboard_id"] = leaderboard.Leaderboard(db).record(result, profile.name, note=note, phase=phase)
    if phase == leaderboard.FINAL:
        result = leaderboard.seal(result)
    if result.get("traceback"):
        click.echo(result["traceback"], err=True)
    if not as_json:
        click.echo(summary_line(result) if phase == leaderboard.DEVELOPMENT else leaderboard.final_summary(result))
    emit_json({k: v for k, v in result.items() if k not in ("metrics", "traceback")})
    if result["verdict"] != OK:
        sys.exit(1)


if __name__ == "__main__":
    main()
