"""Verifying a zip in the platform's environment: same labels, probabilities within 1e-4.

`tools/package.py` calls this on every zip it writes unless `--no-verify`: the
zip runs through the harness once in this environment and once in the
profile's pinned target environment on the same images, and the two outputs
are compared.
"""

import os

import numpy as np

from codapack.dataset import load_dataset
from codapack.errors import CodapackError
from codapack.splits import split_for
from codapack.synthetic import make_images
from tools.diagnosis import OK
from tools.harness import HarnessOptions, run_submission
from tools.target_env import CURRENT, TARGET

TOLERANCE = 1e-4
SAMPLE_SIZE = 64


def sample_images(profile, data_path=None, count=SAMPLE_SIZE):
    """Up to `count` validation images of `data_path` when it is readable, else generated ones.

    Returns:
        (images, description of where they came from).
    """
    if data_path and os.path.isfile(data_path):
        try:
            dataset = load_dataset(data_path, profile)
            picked = split_for(dataset, profile)["val"][:count]
            return dataset.images[picked], f"{len(picked)} validation images of {data_path}"
        except CodapackError:
            pass  # the data moved or changed since training; generated images still test fidelity
    labels = np.arange(count) % profile.num_classes
    return make_images(labels, profile.input_shape, seed=0), f"{count} generated images"


def verify_zip(zip_path, profile, images, *, log=print):
    """Run a zip in the current and the target environment and compare the outputs.

    Args:
        zip_path: the submission zip.
        profile: the competition `Profile`.
        images: the images to predict.
        log: where progress is reported.

    Returns:
        A dict: `verified` (bool), `target` (the pinned packages), `labels_equal`,
        `max_probability_difference` (None when the model has no `predict_proba`),
        and `problem` when not verified.
    """
    options = dict(probabilities=True, batch_check=0)
    report = {"verified": False, "target": list(profile.platform_packages), "labels_equal": None,
              "max_probability_difference": None}
    runs = {}
    for env in (CURRENT, TARGET):
        log(f"verifying in the {env} environment ...")
        runs[env] = run = run_submission(zip_path, images, profile, HarnessOptions(env=env, **options))
        if run["verdict"] != OK:  # a zip broken here is rejected even where the target cannot be built
            return dict(report, problem=f"{env} environment: verdict {run['verdict']}: {run['error']}")
    report["labels_equal"] = bool(np.array_equal(runs[CURRENT]["predictions"], runs[TARGET]["predictions"]))
    if "probabilities" in runs[CURRENT] and "probabilities" in runs[TARGET]:
        difference = float(np.max(np.abs(runs[CURRENT]["probabilities"] - runs[TARGET]["probabilities"])))
        report["max_probability_difference"] = difference
        if difference > TOLERANCE:
            return dict(report, problem=f"probabilities differ by up to {difference:.2g} (> {TOLERANCE:g})")
    if not report["labels_equal"]:
        return dict(report, problem="the target environment predicts different labels")
    return dict(report, verified=True, problem=None)
