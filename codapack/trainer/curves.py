"""Training curves: loss and accuracy per epoch, train against validation, phases marked."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from codapack.files import atomic_path  # noqa: E402


def plot_curves(history, path, title=""):
    """Save loss and accuracy curves as a PNG.

    Args:
        history: {"loss": [...], "val_loss": [...], "accuracy": [...], "val_accuracy": [...],
            "phase": [...]} per epoch.
        path: the PNG to write.
        title: shown above the plots.
    """
    epochs = range(1, len(history.get("loss", [])) + 1)
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            if key in history:
                axis.plot(epochs, history[key], style, marker="o", markersize=3,
                          label="train" if key == metric else "validation")
        phases = history.get("phase", [])
        for epoch in range(1, len(phases)):
            if phases[epoch] != phases[epoch - 1]:
                axis.axvline(epoch + 0.5, color="grey", linewidth=0.8, linestyle=":")
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
