"""What `codapack models` reports: the network registry and where ImageNet weights are offline."""

import glob
import os

# Files Keras caches under $KERAS_HOME/models (default ~/.keras/models) for each backbone's
# no-top ImageNet weights; a local weights folder is searched with the same patterns.
KERAS_WEIGHT_FILES = {
    "mobilenet": ["mobilenet_1_0_*no_top*.h5"],
    "mobilenet_v2": ["mobilenet_v2*no_top*.h5"],
    "mobilenet_v3_small": ["*mobilenet_v3_small*no_top*.h5"],
    "mobilenet_v3_large": ["*mobilenet_v3_large*no_top*.h5"],
    "vgg16": ["vgg16*notop*.h5"],
    "vgg19": ["vgg19*notop*.h5"],
    "inception_v3": ["inception_v3*notop*.h5"],
    "resnet50": ["resnet50*notop*.h5"],
    **{f"efficientnet_b{i}": [f"efficientnetb{i}_notop.h5"] for i in range(5)},
    **{f"efficientnet_v2_{v}": [f"efficientnetv2-{v}_notop.h5"] for v in ("b0", "s", "m", "l")},
    "convnext_tiny": ["convnext_tiny_notop.h5"],
}


def keras_cache_dir():
    return os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")


def offline_weights(name, weights_dir=None):
    """Paths of ImageNet weights for `name` found without network access (Keras cache, weights_dir)."""
    found = []
    for folder in filter(None, (keras_cache_dir(), weights_dir)):
        for pattern in KERAS_WEIGHT_FILES.get(name, []):
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
    from submission.networks import ARCHITECTURES

    rows = []
    for name, builder in ARCHITECTURES.items():
        found = offline_weights(name, weights_dir) if builder.pretrained else []
        rows.append({"name": name, "family": builder.family, "min_input": builder.min_size,
                     "runs_at": max(builder.min_size, input_size), "preprocessing": builder.preprocessing,
                     "imagenet": builder.pretrained, "offline_weights": found})
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
