"""Verifying a zip in the platform's environment, with agreement thresholds per member format.

`tools/package.py` calls this on every zip it writes unless `--no-verify`. A
zip of Keras members runs through the harness once in this environment and
once in the profile's pinned target environment on the same images, and must
give the same labels with probabilities within 1e-4. A zip with compiled
(TFLite) members runs in the target environment and is compared with its
Keras twin (the same runs packaged as keras) run here, on the validation
split: the share of equal labels, the largest probability difference and the
accuracy lost must each stay within the format's `THRESHOLDS`.
"""

import dataclasses
import os

import numpy as np

from codapack.dataset import load_dataset
from codapack.errors import CodapackError
from codapack.splits import split_for
from codapack.synthetic import make_images
from codapack.tools.diagnosis import OK
from codapack.tools.harness import HarnessOptions, run_submission
from codapack.tools.target_env import CURRENT, TARGET, resolve_python

TOLERANCE = 1e-4
SAMPLE_SIZE = 64
# Compiled members are checked on enough images for the accuracy threshold to mean something.
COMPILED_SAMPLE_SIZE = 2048


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """How closely a zip must reproduce its reference.

    Args:
        labels: the least share of labels equal to the reference's.
        probability: the largest difference of any probability.
        accuracy_drop: the largest accuracy lost on labelled images (0.001 is 0.1 percentage point).
    """

    labels: float
    probability: float
    accuracy_drop: float


# keras: the same computation in another TensorFlow. tflite: float32 kernels that sum in another
# order (measured ~1e-5). tflite-fp16: weights rounded to 11 significant bits (measured ~2e-3 on
# MobileNetV2, 99.6 % equal labels on the kit's hidden images).
THRESHOLDS = {"keras": Thresholds(1.0, TOLERANCE, 0.0), "tflite": Thresholds(0.999, 1e-3, 0.001),
              "tflite-fp16": Thresholds(0.995, 0.05, 0.001)}


def sample_images(profile, data_path=None, count=SAMPLE_SIZE):
    """Up to `count` validation images of `data_path` when it is readable, else generated ones.

    Returns:
        (images, description of where they came from).
    """
    images, _, where = sample_labelled(profile, data_path, count)
    return images, where


def sample_labelled(profile, data_path=None, count=SAMPLE_SIZE):
    """Like `sample_images`, with the validation labels (None for generated images)."""
    if data_path and os.path.isfile(data_path):
        try:
            dataset = load_dataset(data_path, profile)
            picked = split_for(dataset, profile)["val"][:count]
            return (*dataset.subset(picked), f"{len(picked)} validation images of {data_path}")
        except CodapackError:
            pass  # the data moved or changed since training; generated images still test fidelity
    labels = np.arange(count) % profile.num_classes
    return make_images(labels, profile.input_shape, seed=0), None, f"{count} generated images"


def compare(reference, candidate, thresholds, labels=None):
    """Check a run of a zip against a reference run of the same images.

    Args:
        reference, candidate: results of `tools.harness.run_submission` (verdict OK).
        thresholds: the `Thresholds` to hold.
        labels: the images' true labels, or None (no accuracy check).

    Returns:
        A dict: `labels_equal`, `label_agreement`, `max_probability_difference` (None when the
        model has no `predict_proba`), `accuracy` and `reference_accuracy` (None without labels),
        and `problem` (None when every threshold holds).
    """
    agreement = float(np.mean(reference["predictions"] == candidate["predictions"]))
    report = {"labels_equal": agreement == 1.0, "label_agreement": agreement, "max_probability_difference": None,
              "accuracy": None, "reference_accuracy": None, "thresholds": dataclasses.asdict(thresholds)}
    problems = []
    if "probabilities" in reference and "probabilities" in candidate:
        difference = float(np.max(np.abs(reference["probabilities"] - candidate["probabilities"]), initial=0.0))
        report["max_probability_difference"] = difference
        if difference > thresholds.probability:
            problems.append(f"probabilities differ by up to {difference:.2g} (> {thresholds.probability:g})")
    if agreement < thresholds.labels:
        problems.append(f"{agreement:.2%} of the labels are equal (< {thresholds.labels:.2%})"
                        if thresholds.labels < 1 else "the target environment predicts different labels")
    if labels is not None:
        report["accuracy"] = float(np.mean(candidate["predictions"] == labels))
        report["reference_accuracy"] = float(np.mean(reference["predictions"] == labels))
        drop = report["reference_accuracy"] - report["accuracy"]
        if drop > thresholds.accuracy_drop:
            problems.append(f"accuracy {report['accuracy']:.4f} against {report['reference_accuracy']:.4f} "
                            f"(-{drop * 100:.2f} pp > {thresholds.accuracy_drop * 100:g} pp)")
    return dict(report, problem="; ".join(problems) or None)


def verify_zip(zip_path, profile, images, *, log=print, reference_zip=None, labels=None,
               thresholds=THRESHOLDS["keras"], env=TARGET):
    """Run a zip in the target environment and compare it with a reference run here.

    Args:
        zip_path: the submission zip.
        profile: the competition `Profile`.
        images: the images to predict.
        log: where progress is reported.
        reference_zip: the zip whose run in this environment is the reference (the Keras twin of a
            compiled zip); None: `zip_path` itself.
        labels: the images' labels, for the accuracy threshold; None skips it.
        thresholds: the `Thresholds` to hold (see `THRESHOLDS`).
        env: where the zip runs: "target", or "current" for the agreement check alone.

    Returns:
        A dict: `verified` (bool: every threshold holds in the target environment), `target` (the
        pinned packages), `env`, the figures of `compare`, and `problem` when one does not hold.

    Raises:
        CodapackError: the target environment cannot be built here.
    """
    # The zip (or its Keras twin) runs here first: a zip broken here is rejected even where the target
    # environment cannot be built.
    runs, report = {}, {"verified": False, "target": list(profile.platform_packages), "env": env,
                        "labels_equal": None, "max_probability_difference": None}
    for name, path, where in (("reference", reference_zip or zip_path, CURRENT), ("zip", zip_path, env)):
        python = resolve_python(where, profile, log=log)
        log(f"verifying: {'the keras twin' if reference_zip and name == 'reference' else 'the zip'} "
            f"in the {where} environment ...")
        options = HarnessOptions(env=where, python=python, probabilities=True, batch_check=0)
        runs[name] = run = run_submission(path, images, profile, options)
        if run["verdict"] != OK:
            return dict(report, problem=f"{where} environment: verdict {run['verdict']}: {run['error']}")
    report.update(compare(runs["reference"], runs["zip"], thresholds, labels))
    return dict(report, verified=report["problem"] is None and env == TARGET)
