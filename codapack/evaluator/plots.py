"""Figures of the evaluation report: confusion matrices, training curves, robustness."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from codapack.files import atomic_path  # noqa: E402


def _save(fig, path):
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def save_confusion_png(matrix, class_names, path, *, title):
    """Save a row-normalised confusion matrix as a PNG, counts written in each cell.

    Args:
        matrix: (k, k) counts, rows true classes, columns predictions.
        class_names: the k class names.
        path: the PNG to write.
        title: the figure title.
    """
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
    _save(fig, path)


def save_training_curves_png(history, path, *, title):
    """Loss and accuracy per epoch, train against validation.

    Args:
        history: the run's history.json (`loss`, `accuracy`, `val_loss`, `val_accuracy`).
        path: the PNG to write.
        title: the figure title.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-o"), ("val_", "--s")):
            values = history.get(prefix + key)
            if values:
                ax.plot(range(1, len(values) + 1), values, style, markersize=3, label=(prefix or "train_") + key)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    _save(fig, path)


def save_robustness_png(results, path, *, title):
    """Accuracy against severity, one line per shift family (held-out families dashed), with the clean accuracy.

    Args:
        results: the dict of `evaluator.robustness.robustness_suite`.
        path: the PNG to write.
        title: the figure title.
    """
    from codapack.evaluator.corruptions import FAMILY_OF

    by_family = {}
    for name, row in results["table"].items():
        by_family.setdefault(FAMILY_OF[name], []).append(row)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for family, rows in by_family.items():
        severities = sorted(rows[0], key=int)
        accuracy = [sum(row[s]["accuracy"] for row in rows) / len(rows) for s in severities]
        held_out = family in results.get("held_out_families", by_family)
        ax.plot([int(s) for s in severities], accuracy, "--o" if held_out else "-o", markersize=3,
                label=f"{family} (held out)" if held_out else family)
    ax.axhline(results["clean_accuracy"], color="black", linestyle=":", label="clean")
    ax.set_xlabel("severity")
    ax.set_ylabel("accuracy")
    ax.set_xticks(range(1, 6))
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    _save(fig, path)
