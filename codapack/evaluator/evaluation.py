"""Scoring one run on a split of the data it was trained on, or on other data.

Predictions go through `submission.model.Ensemble`, the class the shipped
`model.py` uses, so a score here is the score of the packaged zip.
"""

import os

import numpy as np
from tqdm import tqdm

from codapack.dataset import load_dataset
from codapack.errors import CodapackError
from codapack.evaluator.ensemble import load_ensemble
from codapack.evaluator.plots import save_confusion_png, save_training_curves_png
from codapack.files import read_json, write_json
from codapack.metrics import classification_metrics
from codapack.profile import load_profile
from codapack.splits import load_split
from codapack.trainer import run_dir

ALL = "all"


def split_indices(record, dataset, split_name):
    """Indices of `split_name` of the run's own split, or every index for "all".

    Raises:
        CodapackError: a named split of data the run was not trained on.
    """
    if split_name == ALL:
        return np.arange(len(dataset))
    if dataset.sha256 != record["data"]["sha256"]:
        raise CodapackError(
            f"{dataset.path}: not the data run `{record['name']}` was trained on "
            f"({record['data']['path']}), so its `{split_name}` split is unknown here. "
            f"Pass --split all to score every image of this file")
    return load_split(os.path.join(record["dir"], run_dir.SPLIT_FILE))[split_name]


def predict_with_progress(ensemble, images, description):
    """`ensemble.predict_proba(images)` with a tqdm bar over its batches."""
    with tqdm(total=len(images), desc=description, unit="img", leave=False, disable=None) as bar:
        ensemble.on_progress = lambda done, total: bar.update(done - bar.n)
        try:
            return ensemble.predict_proba(images)
        finally:
            ensemble.on_progress = None


def evaluate_run(path, data_path, split_name="test", *, profile=None, tta="none", out_dir=None, dataset=None):
    """Score one run on a split and save the figures beside it.

    Args:
        path: a run directory.
        data_path: the `.npz` to score on.
        split_name: "train", "val" or "test" of the run's own split (the data
            must be the data the run was trained on), or "all" for every image.
        profile: the `Profile`; defaults to the one the run was trained with.
        tta: a test-time augmentation policy of `submission.tta`.
        out_dir: where to save `<split>.json`, `<split>_confusion.png` and
            `training_curves.png`; defaults to `<run>/evaluation`.
        dataset: the already loaded `Dataset` of `data_path`, to avoid reading it again.

    Returns:
        The metrics dict of `classification_metrics`, plus `run`, `split`,
        `tta`, `data_sha256` and the paths of the figures.
    """
    record = run_dir.read_run(path)
    profile = profile or load_profile(record["profile"]["source"])
    dataset = dataset if dataset is not None else load_dataset(data_path, profile)
    images, labels = dataset.subset(split_indices(record, dataset, split_name))
    ensemble = load_ensemble([record], profile, tta=tta)
    probabilities = predict_with_progress(ensemble, images, f"{record['name']} {split_name}")
    metrics = classification_metrics(labels, probabilities.argmax(axis=1), profile.classes)
    metrics.update(run=record["name"], split=split_name, tta=tta, data_sha256=dataset.sha256)

    out_dir = out_dir or os.path.join(record["dir"], "evaluation")
    suffix = "" if tta == "none" else f"_tta-{tta}"
    metrics["confusion_png"] = os.path.join(out_dir, f"{split_name}{suffix}_confusion.png")
    save_confusion_png(metrics["confusion_matrix"], profile.classes, metrics["confusion_png"],
                       title=f"{record['name']} on {split_name} (n={metrics['n']}, TTA {tta})")
    history_path = os.path.join(record["dir"], run_dir.HISTORY_FILE)
    if os.path.isfile(history_path):
        metrics["curves_png"] = os.path.join(out_dir, "training_curves.png")
        save_training_curves_png(read_json(history_path), metrics["curves_png"], title=record["name"])
    write_json(os.path.join(out_dir, f"{split_name}{suffix}.json"), metrics)
    return metrics
