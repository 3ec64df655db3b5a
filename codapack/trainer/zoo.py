"""What `codapack models` reports: the network registry and where ImageNet weights are offline."""

import glob
import os


def keras_cache_dir():
    return os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")


def offline_weights(config, weights_dir=None):
    """Paths of ImageNet weights for a `NetworkConfig` found without network access (Keras cache, weights_dir)."""
    found = []
    for folder in filter(None, (keras_cache_dir(), weights_dir)):
        for pattern in config.weight_files:
            found += sorted(glob.glob(os.path.join(folder, pattern)))
    return found


def list_models(weights_dir=None, input_size=96):
    """One dict per registered network, in registry order.

    Args:
        weights_dir: a folder of local weights files to search as well as the Keras cache.
        input_size: the competition's image side, to say at which size each network runs.

    Returns:
        A list of {name, family, min_input, runs_at, preprocessing, imagenet, offline_weights}.
    """
    from codapack.submission.networks import ARCHITECTURES

    rows = []
    for name, config in ARCHITECTURES.items():
        rows.append({"name": name, "family": config.family, "min_input": config.min_size,
                     "runs_at": max(config.min_size, input_size), "preprocessing": config.preprocessing,
                     "imagenet": config.pretrained, "offline_weights": offline_weights(config, weights_dir)})
    return rows


def format_models(rows):
    """The rows as an aligned text table."""
    header = ("name", "family", "min input", "preprocessing", "ImageNet weights offline")
    lines = [header]
    for row in rows:
        offline = ("-" if not row["imagenet"] else
                   row["offline_weights"][0] if row["offline_weights"] else "no (downloaded on first use)")
        lines.append((row["name"], row["family"], str(row["min_input"]), row["preprocessing"], offline))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths)) + "  " + line[-1]
                     for line in lines)
