"""The platform's side of a harness run, executed in a separate Python process.

Run by `tools/harness.py`, never imported by it: this file uses only the
standard library and numpy, as the platform's ingestion does, so it also runs
in a target environment where codapack is not installed.

    python -I platform_worker.py SUBMISSION_DIR INPUT.npy OUTPUT.npy RESULT.json PROGRESS_FD

It puts only SUBMISSION_DIR on `sys.path`, blocks imports of codapack's own
packages (the platform has none of them), then times `from model import Model;
Model()` and `predict(X)` and writes the predictions and timings.
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
            raise ModuleNotFoundError(
                f"No module named {fullname!r} (codapack is not installed on the platform; "
                "a submission may import only what ships in its zip)")
        return None


def main(submission_dir, input_path, output_path, result_path, progress_fd):
    sys.meta_path.insert(0, BlockProjectImports())
    sys.path.insert(0, submission_dir)
    import numpy as np

    X = np.load(input_path, allow_pickle=False)
    result = {}
    # Line protocol to the harness: "stage NAME" as each stage starts, "progress DONE TOTAL" per batch.
    channel = os.fdopen(int(progress_fd), "w", buffering=1)

    def enter(stage):
        result["stage"] = stage
        channel.write(f"stage {stage}\n")

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
        np.save(output_path, np.asarray(y), allow_pickle=False)
        enter("done")
    except BaseException as exc:  # the harness reports any failure of the submission
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    with open(result_path, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0 if result["stage"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:6]))
