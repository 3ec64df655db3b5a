"""Recurring-background search: the laid-over-picture detector against the former mutual k-NN method.

Both run in the same process on the same data, scored against the true mask:
the kit (its 1,800 blends of two photographs) and a 30,000-image file made of
the kit's clean cells (mirrored copies to reach 30,000) with three generated
sources (tests/contamination.py) laid over 8 % of it, fainter than the kit's.

    python bench/inspection.py [--images 30000]
"""

import argparse
import importlib.util
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import MAKE_KIT, Row  # noqa: E402
from codapack.data.inspection import outliers, overlays  # noqa: E402
from codapack.data.inspection.features import layout_features  # noqa: E402
from tests.contamination import Setting, contaminate, precision_recall  # noqa: E402

CLASSES = 8
LARGE_SETTING = Setting("three-sources", ("photo", "texture", "sticker"), 0.08, weight=(0.25, 0.45), seed=3)


def current_method(images, labels):
    """`codapack inspect`'s groups now: mutual k-NN backgrounds, then laid-over pictures in the rest."""
    former = outliers.background_groups(outliers.embed(layout_features(images, 12)), labels, CLASSES)
    taken = np.concatenate([g.indices for g in former]) if former else np.zeros(0, dtype=int)
    found = overlays.overlay_groups(images, labels, CLASSES, exclude=taken)
    return [g.indices for g in former] + [g.indices for g in found if g.kind == "overlay"]


def former_method(images, labels):
    """The method before issue 16: mutual k-NN components of a 12x12 colour layout."""
    embedding = outliers.embed(layout_features(images, 12))
    return [g.indices for g in outliers.background_groups(embedding, labels, CLASSES)]


def compare(name, images, labels, truth):
    """Rows for one data set: seconds, precision and recall of both methods."""
    measured = {}
    for method in (current_method, former_method):
        started = time.perf_counter()
        found = method(images, labels)
        measured[method] = (time.perf_counter() - started, *precision_recall(found, truth))
    (new_s, new_p, new_r), (old_s, old_p, old_r) = measured[current_method], measured[former_method]
    note = f"{len(labels)} images, {int(truth.sum())} contaminated"
    return [Row("inspection", f"{name}: seconds", new_s, "s", old_s, "mutual k-NN (before)", False, note),
            Row("inspection", f"{name}: precision", new_p, "", old_p, "mutual k-NN (before)"),
            Row("inspection", f"{name}: recall", new_r, "", old_r, "mutual k-NN (before)")]


def load_kit():
    spec = importlib.util.spec_from_file_location("make_kit", MAKE_KIT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    images, labels, truth = module.build()
    return images, labels.reshape(-1).astype(int), truth


def large_file(images, labels, truth, count):
    clean, clean_labels = images[~truth], labels[~truth]
    copies = -(-count // len(clean))
    tiled = np.concatenate([clean if k % 2 == 0 else clean[:, :, ::-1] for k in range(copies)])[:count]
    tiled_labels = np.tile(clean_labels, copies)[:count]
    mixed, mixed_labels, source = contaminate(tiled, tiled_labels, CLASSES, LARGE_SETTING)
    return mixed, mixed_labels.reshape(-1).astype(int), source >= 0


def markdown(rows):
    lines = ["| figure | now | before | ratio | note |", "|---|---:|---:|---:|---|"]
    for row in rows:
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}x"
        lines.append(f"| {row.figure} | {row.value:.3f} | {row.baseline:.3f} | {ratio} | {row.note} |")
    return "\n".join(lines)


def rows(count=30000):
    if not os.path.isfile(MAKE_KIT):
        sys.exit(f"the inspection benchmark needs the kit builder: {MAKE_KIT} is missing")
    images, labels, truth = load_kit()
    result = compare("kit", images, labels, truth)
    result += compare(f"{count} images, 3 generated sources", *large_file(images, labels, truth, count))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=30000)
    args = parser.parse_args(argv)
    print(markdown(rows(args.images)))


if __name__ == "__main__":
    main()
