"""The platform's side of a harness run, executed in a separate Python process.

Run by `tools/harness.py`, never imported by it: this file uses only the
standard library and numpy, as the platform's ingestion does, so it also runs
in the target environment where codapack is not installed.

    python -I platform_worker.py JOB.json PROGRESS

JOB.json names the submission folder, the input `.npy`, where to write the
predictions and the result, and which extra checks to run; PROGRESS is the
harness's channel for stage and progress lines: an inherited pipe's descriptor
number, or, where no descriptor can cross (a Docker container), the path of a
named pipe in the run folder. Only the submission folder goes on `sys.path`;
codapack's own packages cannot be imported (the platform has none of them).
The worker times `from model import Model; Model()` and `predict(X)`, notes
every relative path the submission opens, lists, globs or probes, and, after
the timed run, checks on a few samples that predictions do not depend on the
batch they came in.
"""

import functools
import importlib.abc
import json
import os
import resource
import sys
import time
import traceback

# codapack itself: a submission that imports it works on a
# developer's machine and fails on the platform, so the harness fails it too.
PROJECT_PACKAGES = ("codapack",)  # a zip may ship its own tools.py or trainer/: those are its own


class BlockProjectImports(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in PROJECT_PACKAGES:
            error = ModuleNotFoundError(
                f"No module named {fullname!r} (codapack is not installed on the platform; "
                "a submission may import only what ships in its zip)")
            error.name = fullname
            raise error
        return None


# Audit events whose first argument is a path the submission reaches (None for os.listdir() means ".").
WATCHED_EVENTS = {"open": "opens", "os.listdir": "lists", "os.scandir": "lists", "glob.glob": "globs"}
# Probes without an audit event; wrapped so that `os.path.exists('weights.keras')` is seen too.
WATCHED_PROBES = ("exists", "isfile", "isdir")
MAX_WATCHED = 40


def watch_relative_paths(found):
    """Record [how, path] for each relative path reached: it resolves against whatever folder the platform runs from."""

    def note(how, path):
        if path is None:
            path = "."
        if isinstance(path, (str, bytes)):
            path = os.fsdecode(path)
            if path and not os.path.isabs(path) and [how, path] not in found and len(found) < MAX_WATCHED:
                found.append([how, path])

    def hook(event, args):
        if event in WATCHED_EVENTS and args:
            note(WATCHED_EVENTS[event], args[0])

    sys.addaudithook(hook)
    for name in WATCHED_PROBES:
        setattr(os.path, name, _probe(getattr(os.path, name), note))


def _probe(check, note):
    @functools.wraps(check)
    def probe(path):
        note("probes", path)
        return check(path)

    return probe


def peak_rss_mb():
    """This process's peak resident memory in MB.

    Linux's ru_maxrss carries the parent's peak across fork and exec, so a
    harness holding a large dataset would be charged to the submission; VmHWM
    belongs to this process image alone.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def batch_consistency(model, X, y, count):
    """Predict the first `count` samples as one batch and the first two one by one; all must match the full run.

    Runs after the timed run, so three calls, not one per sample, keep a slow submission's check short.
    """
    import numpy as np

    count = min(count, len(X))
    if count == 0:
        return True, ""
    expected = np.asarray(y).reshape(-1)[:count]
    try:
        together = np.asarray(model.predict(X[:count])).reshape(-1)
        alone = np.concatenate([np.asarray(model.predict(X[i:i + 1])).reshape(-1) for i in range(min(count, 2))])
    except Exception as exc:  # the platform never predicts small batches: a warning, not a failure
        return False, f"predict on a batch of {count} or of 1 raised {type(exc).__name__}: {exc}"[:300]
    if np.array_equal(together, expected) and np.array_equal(alone, expected[:len(alone)]):
        return True, ""
    return False, (f"first {count} predictions: in the full batch {expected.tolist()}, "
                   f"as a batch of {count} {together.tolist()}, one at a time {alone.tolist()}")


def save_predictions(path, y, result):
    """Save `y` as the platform's ingestion does (np.save of np.asarray); note when that cannot be done."""
    import numpy as np

    try:
        np.save(path, np.asarray(y), allow_pickle=False)
    except (ValueError, TypeError) as exc:  # ragged lists, objects: no array of numbers to score
        result["output_unsaveable"] = f"{type(exc).__name__}: {exc}"[:200]


def write_result(result, path):
    """Write the result file; written after predict and again at the end, so a check killed later loses nothing."""
    with open(path + ".partial", "w", encoding="utf-8") as f:
        json.dump(result, f)
    os.replace(path + ".partial", path)


def open_channel(progress):
    """The harness's line channel: a descriptor number (bubblewrap, no sandbox) or a named pipe's path (docker)."""
    if progress.isdigit():
        return os.fdopen(int(progress), "w", buffering=1)
    return open(progress, "w", buffering=1, encoding="utf-8")  # the harness holds it open: no wait


def main(job_path, progress):
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    sys.meta_path.insert(0, BlockProjectImports())
    sys.path.insert(0, job["submission_dir"])
    import numpy as np

    X = np.load(job["input"], allow_pickle=False)
    result = {"relative_paths": []}
    # Line protocol to the harness: "stage NAME" as each stage starts, "progress DONE TOTAL" per batch.
    channel = open_channel(progress)

    def enter(stage):
        result["stage"] = stage
        channel.write(f"stage {stage}\n")

    watch_relative_paths(result["relative_paths"])
    try:
        enter("import")
        started = time.perf_counter()
        from model import Model  # noqa: the module under test

        enter("init")
        model = Model()
        result["init_seconds"] = time.perf_counter() - started
        if hasattr(model, "on_progress"):
            model.on_progress = lambda done, total: channel.write(f"progress {done} {total}\n")
        enter("predict")
        predict_started = time.perf_counter()
        y = model.predict(X)
        result["predict_seconds"] = time.perf_counter() - predict_started
        result["output_type"] = f"{type(y).__module__}.{type(y).__name__}"
        save_predictions(job["predictions"], y, result)
        # The platform's time ends here; what follows runs under the harness's separate, later limit.
        enter("predicted")
        result["peak_rss_mb"] = peak_rss_mb()
        write_result(result, job["result"])
        if job.get("probabilities") and hasattr(model, "predict_proba"):
            np.save(job["probabilities"], np.asarray(model.predict_proba(X)), allow_pickle=False)
        if job.get("batch_check"):
            enter("batch_check")
            if hasattr(model, "on_progress"):
                model.on_progress = None  # the probe's small batches would move the bar backwards
            result["batch_consistent"], result["batch_detail"] = batch_consistency(model, X, y, job["batch_check"])
        enter("done")
    except BaseException as exc:  # the harness reports any failure of the submission
        result["error_type"] = type(exc).__name__
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["missing_module"] = getattr(exc, "name", None) if isinstance(exc, ImportError) else None
        result["traceback"] = traceback.format_exc()
    result["peak_rss_mb"] = peak_rss_mb()
    write_result(result, job["result"])
    return 0 if result["stage"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
