"""Inference: the packaged model.py against the course template, on the same weights and images.

Both run in a fresh process through the harness's own worker, so start-up
(`Model()`), prediction speed and peak memory are measured the same way; the two
are run twice, interleaved, and the best of each is kept. The
template loads `weights.keras` with `keras.models.load_model` and calls
`predict(X)`; codapack rebuilds the network from code, loads `.weights.h5` and
predicts through one traced function in fixed batches. Also measured: TTA,
an ensemble of three, zip size against `.keras`, and the harness's overhead.
"""

import os
import tempfile
import time
import zipfile

import numpy as np

from bench.common import Row
from codapack.profile import load_profile
from tools.course_template import COURSE_TEMPLATE_MODEL
from tools.harness import HarnessOptions, run_submission
from tools.package import package_runs
from tools.platform_process import run_worker
from trainer.run_dir import load_run_network

VARIANT_IMAGES = 1024


def template_zip(run, folder):
    """The course template's zip for the same trained weights."""
    keras_path = os.path.join(folder, "weights.keras")
    load_run_network(run).save(keras_path)
    path = os.path.join(folder, "template.zip")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("model.py", COURSE_TEMPLATE_MODEL)
        archive.write(keras_path, "weights.keras")
    return path, os.path.getsize(keras_path)


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


def benchmark(run, images, quick=False):
    """Rows comparing codapack's zip with the template's on `images`."""
    profile = load_profile(run["profile"]["source"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="codapack-bench-") as folder:
        template, keras_bytes = template_zip(run, folder)
        ours = package_runs([run["dir"]], os.path.join(folder, "ours.zip"))["path"]
        # Interleaved and best of two, so a burst of other load on the machine cannot land on one side only.
        runs = {template: [], ours: []}
        for _ in range(2):
            for path in runs:
                runs[path].append(run_zip(path, images, folder))
        (base, base_labels), (mine, my_labels) = (_best(runs[template]), _best(runs[ours]))
        agreement = float(np.mean(base_labels == my_labels))
        n = len(images)
        rows += [
            Row("inference", f"predict images/s ({n} images)", n / mine["predict_seconds"], "img/s",
                n / base["predict_seconds"], "template", note=f"same labels on {agreement:.2%}"),
            Row("inference", "Model() start-up", mine["init_seconds"], "s", base["init_seconds"], "template",
                higher_is_better=False),
            Row("inference", "peak memory (RSS)", mine["peak_rss_mb"], "MB", base["peak_rss_mb"], "template",
                higher_is_better=False),
        ]
        variants = [("TTA flips (3 views)", dict(tta="flips"), 1)]
        if not quick:
            variants += [("TTA d4 (8 views)", dict(tta="d4"), 1), ("ensemble of three", {}, 3)]
        # The variants predict a part of the images: their speed per image is what is compared.
        part = images[:VARIANT_IMAGES]
        for name, options, copies in variants:
            path = package_runs([run["dir"]] * copies, os.path.join(folder, f"v{len(rows)}.zip"), **options)["path"]
            worker, _ = run_zip(path, part, folder)
            views = {"flips": 3, "d4": 8}.get(options.get("tta"), 1) * copies
            rows.append(Row("inference", f"{name}: images/s", len(part) / worker["predict_seconds"], "img/s",
                            n / (base["predict_seconds"] * views), "template, same work",
                            note=f"{len(part)} images; template's speed / {views} forward passes per image"))
        rows.append(Row("size", "zip size", os.path.getsize(ours) / 2 ** 20, "MB", os.path.getsize(template) / 2 ** 20,
                        "template zip (.keras)", higher_is_better=False,
                        note=f".keras file alone {keras_bytes / 2 ** 20:.2f} MB"))
        started = time.perf_counter()
        result = run_submission(ours, images, profile, HarnessOptions(batch_check=0))
        harness_seconds = time.perf_counter() - started
        inside = result["init_seconds"] + result["predict_seconds"]
        rows.append(Row("harness", "harness wall time", harness_seconds, "s", inside, "Model()+predict inside it",
                        higher_is_better=False, note=f"overhead {harness_seconds - inside:.2f} s: unzip, copy, spawn"))
    return rows
