"""Scoring a training run on a split of the data it was trained on, or on other data."""

import os

import numpy as np

from codapack.files import atomic_path, write_json
from codapack.dataset import load_dataset
from codapack.errors import CodapackError
from codapack.profile import load_profile
from codapack.splits import load_split
from evaluator.metrics import classification_metrics
from trainer import run_dir

ALL = "all"


def evaluate_run(path, data_path, split_name="test", *, profile=None, batch_size=128, out_dir=None):
    """Score one run on a split and save the figures beside it.

    Args:
        path: a run directory.
        data_path: the `.npz` to score on.
        split_name: "train", "val" or "test" of the run's own split (the data
            must be the data the run was trained on), or "all" for every image
            of `data_path`.
        profile: the `Profile`; defaults to the one the run was trained with.
        batch_size: images per prediction batch.
        out_dir: where to save `<split>.json` and `<split>_confusion.png`;
            defaults to `<run>/evaluation`.

    Returns:
        The metrics dict of `evaluator.metrics.classification_metrics`, plus
        `run`, `split` and `data_sha256`.

    Raises:
        CodapackError: the data differs from the run's and a named split was asked for.
    """
    record = run_dir.read_run(path)
    profile = profile or load_profile(record["profile"]["source"])
    dataset = load_dataset(data_path, profile)
    indices = _indices(record, dataset, split_name)
    images, labels = dataset.subset(indices)

    network = run_dir.load_run_network(record)
    probabilities = network.predict(images.astype(np.float32), batch_size=batch_size,
                                    verbose=1 if os.isatty(1) else 0)
    metrics = classification_metrics(labels, probabilities.argmax(axis=1), profile.classes)
    metrics.update(run=record["name"], split=split_name, data_sha256=dataset.sha256)

    out_dir = out_dir or os.path.join(record["dir"], "evaluation")
    write_json(os.path.join(out_dir, f"{split_name}.json"), metrics)
    save_confusion_png(metrics["confusion_matrix"], profile.classes,
                       os.path.join(out_dir, f"{split_name}_confusion.png"),
                       title=f"{record['name']} on {split_name} (n={metrics['n']})")
    return metrics


def _indices(record, dataset, split_name):
    if split_name == ALL:
        return np.arange(len(dataset))
    if dataset.sha256 != record["data"]["sha256"]:
        raise CodapackError(
            f"{dataset.path}: not the data run `{record['name']}` was trained on "
            f"({record['data']['path']}), so its `{split_name}` split is unknown here. "
            f"Pass --split all to score every image of this file")
    return load_split(os.path.join(record["dir"], run_dir.SPLIT_FILE))[split_name]


def save_confusion_png(matrix, class_names, path, *, title):
    """Save a row-normalised confusion matrix as a PNG, counts written in each cell.

    Args:
        matrix: (k, k) counts, rows true classes, columns predictions.
        class_names: the k class names.
        path: the PNG to write.
        title: the figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = np.asarray(matrix)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(class_names), 0.8 + 0.8 * len(class_names)))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(class_names)):
        for j in range(len(class_names)):
            ax.text(j, i, f"{rates[i, j]:.2f}\n({counts[i, j]})", ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
