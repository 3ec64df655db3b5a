"""The platform's side of a harness run, executed in a separate Python process.

Run by `tools/harness.py`, never imported by it: this file uses only the
standard library and numpy, as the platform's ingestion does, so it also runs
in the target environment where codapack is not installed.

    python -I platform_worker.py JOB.json PROGRESS_FD

JOB.json names the submission folder, the input `.npy`, where to write the
predictions and the result, and which extra checks to run. Only the submission
folder goes on `sys.path`; codapack's own packages cannot be imported (the
platform has none of them). The worker times `from model import Model;
Model()` and `predict(X)`, notes files opened by relative paths, and checks on
a few samples that predictions do not depend on the batch they came in.
"""

import importlib.abc
import json
import os
import resource
import sys
import time
import traceback

# codapack's own top-level packages: a submission that imports them works on a
# developer's machine and fails on the platform, so the harness fails it too.
PROJECT_PACKAGES = ("codapack", "trainer", "evaluator", "tools", "submission")


class BlockProjectImports(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in PROJECT_PACKAGES:
            error = ModuleNotFoundError(
                f"No module named {fullname!r} (codapack is not installed on the platform; "
                "a submission may import only what ships in its zip)")
            error.name = fullname
            raise error
        return None


def watch_relative_opens(found):
    """Record files opened by relative paths: they resolve against whatever folder the platform runs from."""

    def hook(event, args):
        if event == "open" and args and isinstance(args[0], (str, bytes)):
            path = os.fsdecode(args[0])
            if path and not os.path.isabs(path) and path not in found and len(found) < 20:
                found.append(path)

    sys.addaudithook(hook)


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
    """Predict the first `count` samples together and one by one; both must match the full run."""
    import numpy as np

    count = min(count, len(X))
    if count == 0:
        return True, ""
    together = np.asarray(model.predict(X[:count])).reshape(-1)
    alone = np.concatenate([np.asarray(model.predict(X[i:i + 1])).reshape(-1) for i in range(count)])
    expected = np.asarray(y).reshape(-1)[:count]
    if np.array_equal(together, expected) and np.array_equal(alone, expected):
        return True, ""
    return False, (f"first {count} predictions: in the full batch {expected.tolist()}, "
                   f"as a batch of {count} {together.tolist()}, one at a time {alone.tolist()}")


def main(job_path, progress_fd):
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    sys.meta_path.insert(0, BlockProjectImports())
    sys.path.insert(0, job["submission_dir"])
    import numpy as np

    X = np.load(job["input"], allow_pickle=False)
    result = {"relative_opens": []}
    # Line protocol to the harness: "stage NAME" as each stage starts, "progress DONE TOTAL" per batch.
    channel = os.fdopen(int(progress_fd), "w", buffering=1)

    def enter(stage):
        result["stage"] = stage
        channel.write(f"stage {stage}\n")

    watch_relative_opens(result["relative_opens"])
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
        np.save(job["predictions"], np.asarray(y), allow_pickle=False)
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
    with open(job["result"], "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0 if result["stage"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
