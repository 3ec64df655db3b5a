"""Inference: the packaged model.py against the course template, on the same weights and images.

Both run in a fresh process through the harness's own worker, so start-up
(`Model()`), prediction speed and peak memory are measured the same way; the two
are run twice, interleaved, and the best of each is kept. The
template loads `weights.keras` with `keras.models.load_model` and calls
`predict(X)`; codapack rebuilds the network from code, loads `.weights.h5` and
predicts through one traced function in fixed batches (format keras), or runs
the network converted to TensorFlow Lite (tflite: float32, tflite-fp16: float16
weights). All four zips hold the same trained weights. Also measured: TTA, an
ensemble of three, zip sizes against `.keras`, where start-up goes
(bench/startup.py), and the harness's overhead.
"""

import os
import tempfile
import time
import zipfile

import numpy as np

from bench.common import Row
from bench.template import template_zip
from codapack.profile import load_profile
from codapack.tools.harness import HarnessOptions, run_submission
from codapack.tools.package import package_runs
from codapack.tools.platform_process import run_worker

VARIANT_IMAGES = 1024


def run_zip(zip_path, images, folder):
    """init seconds, predict seconds, peak MB and predictions of one fresh run of a zip."""
    submission = os.path.join(folder, os.path.basename(zip_path)[:-4])
    zipfile.ZipFile(zip_path).extractall(submission)
    paths = {name: os.path.join(folder, f"{os.path.basename(submission)}-{name}")
             for name in ("input.npy", "predictions.npy", "result.json")}
    np.save(paths["input.npy"], images)
    job = {"submission_dir": submission, "input": paths["input.npy"], "predictions": paths["predictions.npy"],
           "result": paths["result.json"], "batch_check": 0}
    import sys

    outcome = run_worker(sys.executable, job, submission, 600, len(images))
    worker = outcome["worker"]
    if worker.get("stage") != "done":
        raise RuntimeError(f"{zip_path}: {worker.get('error')}")
    return worker, np.load(paths["predictions.npy"])


def _best(results):
    """The fastest of repeated runs of one zip: least start-up and predict time, largest peak memory."""
    workers = [worker for worker, _ in results]
    best = {"init_seconds": min(w["init_seconds"] for w in workers),
            "predict_seconds": min(w["predict_seconds"] for w in workers),
            "peak_rss_mb": max(w["peak_rss_mb"] for w in workers)}
    return best, results[0][1]


COMPILED = ("tflite", "tflite-fp16")


def _format_rows(name, mine, base, n, agreement, accuracy_change):
    change = "" if accuracy_change is None else f", accuracy {accuracy_change * 100:+.2f} pp"
    return [Row("inference", f"{name}: predict images/s ({n} images)", n / mine["predict_seconds"], "img/s",
                n / base["predict_seconds"], "template", note=f"same labels on {agreement:.2%}{change}"),
            Row("inference", f"{name}: Model() start-up", mine["init_seconds"], "s", base["init_seconds"], "template",
                higher_is_better=False),
            Row("inference", f"{name}: peak memory (RSS)", mine["peak_rss_mb"], "MB", base["peak_rss_mb"], "template",
                higher_is_better=False)]


def benchmark(run, images, quick=False, labels=None):
    """Rows comparing codapack's zips (each member format) with the template's on `images`.

    Args:
        run: the run record whose weights every zip holds.
        images: the images to predict.
        quick: fewer variants.
        labels: the images' labels, for the accuracy change of each format against the template.
    """
    from bench.startup import rows as startup_rows

    profile = load_profile(run["profile"]["source"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="codapack-bench-") as folder:
        template, keras_bytes = template_zip(run, folder)
        zips = {"keras": package_runs([run["dir"]], os.path.join(folder, "ours.zip"))["path"]}
        for member_format in COMPILED:
            zips[member_format] = package_runs([run["dir"]], os.path.join(folder, f"{member_format}.zip"),
                                               member_format=member_format)["path"]
        ours = zips["keras"]
        # Interleaved and best of two, so a burst of other load on the machine cannot land on one side only.
        runs = {template: [], **{path: [] for path in zips.values()}}
        for _ in range(2):
            for path in runs:
                runs[path].append(run_zip(path, images, folder))
        base, base_labels = _best(runs[template])
        n = len(images)
        for name, path in zips.items():
            mine, my_labels = _best(runs[path])
            change = None if labels is None else float(np.mean(my_labels == labels) - np.mean(base_labels == labels))
            rows += _format_rows(name, mine, base, n, float(np.mean(base_labels == my_labels)), change)
        variants = [("TTA flips (3 views)", dict(tta="flips"), 1)]
        if not quick:
            variants += [("TTA d4 (8 views)", dict(tta="d4"), 1), ("ensemble of three", {}, 3),
                         ("tflite-fp16, TTA flips (3 views)", dict(tta="flips", member_format="tflite-fp16"), 1),
                         ("tflite-fp16, ensemble of three", dict(member_format="tflite-fp16"), 3)]
        # The variants predict a part of the images: their speed per image is what is compared.
        part = images[:VARIANT_IMAGES]
        for name, options, copies in variants:
            path = package_runs([run["dir"]] * copies, os.path.join(folder, f"v{len(rows)}.zip"), **options)["path"]
            worker, _ = run_zip(path, part, folder)
            views = {"flips": 3, "d4": 8}.get(options.get("tta"), 1) * copies
            rows.append(Row("inference", f"{name}: images/s", len(part) / worker["predict_seconds"], "img/s",
                            n / (base["predict_seconds"] * views), "template, same work",
                            note=f"{len(part)} images; template's speed / {views} forward passes per image"))
        for name, path in zips.items():
            rows.append(Row("size", f"{name}: zip size", os.path.getsize(path) / 2 ** 20, "MB",
                            os.path.getsize(template) / 2 ** 20, "template zip (.keras)", higher_is_better=False,
                            note=f".keras file alone {keras_bytes / 2 ** 20:.2f} MB"))
        rows += startup_rows({"template": template, **zips}, tuple(run["network"]["input_shape"]))
        started = time.perf_counter()
        result = run_submission(ours, images, profile, HarnessOptions(batch_check=0))
        harness_seconds = time.perf_counter() - started
        inside = result["init_seconds"] + result["predict_seconds"]
        rows.append(Row("harness", "harness wall time", harness_seconds, "s", inside, "Model()+predict inside it",
                        higher_is_better=False, note=f"overhead {harness_seconds - inside:.2f} s: unzip, copy, spawn"))
    return rows
