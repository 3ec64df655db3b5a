"""Accuracy of a run on its test split of the kit, on all images and on the clean ones only.

The kit (`../shared/tools/make_kit.py`) mixes ~13% contaminated images with random labels
into the data; no model can score on those, so accuracy on the raw test split is capped
near 87%. make_kit's `build()` returns the contamination mask, which this script uses to
report the accuracy on the clean part of the test split as well.

    python bench/kit_clean_accuracy.py runs/mnv2 --kit-tools ../shared/tools
"""

import argparse
import importlib.util
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from codapack.splits import load_split  # noqa: E402
from codapack.trainer import run_dir  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--kit-tools", default=os.path.join("..", "shared", "tools"))
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    args = parser.parse_args(argv)
    spec = importlib.util.spec_from_file_location("make_kit", os.path.join(args.kit_tools, "make_kit.py"))
    make_kit = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_kit)
    images, labels, contaminated = make_kit.build()
    labels = labels.reshape(-1).astype(np.int64)
    record = run_dir.read_run(args.run)
    indices = load_split(os.path.join(record["dir"], run_dir.SPLIT_FILE))[args.split]
    network = run_dir.load_run_network(record)
    predicted = network.predict(images[indices].astype(np.float32), batch_size=128, verbose=0).argmax(axis=1)
    correct = predicted == labels[indices]
    clean = ~contaminated[indices]
    print(f"{args.run} on the {args.split} split: accuracy {correct.mean():.4f} on all {len(indices)} images; "
          f"{correct[clean].mean():.4f} on the {clean.sum()} clean ones "
          f"({(~clean).sum()} contaminated, accuracy on those {correct[~clean].mean():.4f})")


if __name__ == "__main__":
    main()
