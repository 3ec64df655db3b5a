"""Speed-up of training the head on cached features against the per-step frozen backbone.

Both train the same head of the same network (backbone frozen, batch norm in inference mode)
for the same epochs on the same generated images; the cached path pays one forward pass of
the backbone over the images, then trains the head alone (one call per epoch: see
`trainer.phases.compile_for`). The full run uses the frozen phase of the fast CPU recipe
(codapack/trainer/recipes/mobilenet_v2_fast_cpu.toml): 10 epochs, batch 64, without early stopping
so both sides do the same epochs.

    python bench/cached_features.py [--architecture mobilenet_v2] [--images 1024] [--epochs 10]
"""

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from codapack.synthetic import make_dataset  # noqa: E402
from codapack.submission.networks import build_network  # noqa: E402
from codapack.trainer import inputs  # noqa: E402
from codapack.trainer.config import Augmentation, Phase  # noqa: E402
from codapack.trainer.features import split_at_head  # noqa: E402
from codapack.trainer.phases import compile_for, set_trainable, steps_per_epoch  # noqa: E402


# How cached features and augmentation combine; bench/run.py writes it under the table in results.md.
RESULTS_NOTE = """\
**Cached features and augmentation.** The frozen-phase row caches features because nothing changes
between epochs: the backbone is frozen with its batch norm in inference mode, and no augmentation
runs per epoch. `codapack/trainer/features.py` caches only then (`augmentation.per_epoch` false: policy
`none`, no custom layers, no MixUp or CutMix); any per-epoch augmentation makes every epoch's
images new, so the phase runs the backbone every step and this speed-up is gone. The robust recipes
combine the two in either of two ways: (1) offline augmentation (`augmentation.offline_per_class`
or `codapack augment`) draws a fixed set of augmented copies before training; they are cached like
the originals, so K copies cost K forward passes once, and the phase stays cached; (2) the frozen
phase trains the head on clean cached features and the augmentation runs in the fine-tune phase,
where the backbone runs every step anyway. Per-epoch augmentation in the frozen phase itself is
what the cached speed-up is traded for.
"""

RECIPE_EPOCHS = 10  # the `transfer` phase of codapack/trainer/recipes/mobilenet_v2_fast_cpu.toml


def compare(architecture="mobilenet_v2", count=1024, size=96, epochs=RECIPE_EPOCHS, batch_size=64):
    """Seconds of the frozen phase run per step, and on cached features (and of the extraction alone)."""
    images, labels = make_dataset(count, (size, size, 3), 8, seed=0)
    labels = labels.reshape(-1).astype(np.int64)
    phase = Phase(trainable="head", epochs=epochs, batch_size=batch_size)
    steps = steps_per_epoch(len(labels), batch_size)
    options = {"dense": [256], "batch_norm": True, "dropout": [0.3]}

    network = build_network(architecture, images.shape[1:], 8, options)
    set_trainable(network, phase)
    compile_for(network, phase, steps, 0.0)
    data = inputs.train_pipeline(images, labels, 8, batch_size, Augmentation(), seed=0)
    started = time.perf_counter()
    network.fit(data, epochs=epochs, verbose=0, shuffle=False)
    per_step = time.perf_counter() - started

    network = build_network(architecture, images.shape[1:], 8, options)
    set_trainable(network, phase)
    extractor, head = split_at_head(network)
    compile_for(head, phase, steps, 0.0)
    started = time.perf_counter()
    features = extractor.predict(inputs.eval_pipeline(images, labels, 8, 128), verbose=0)
    extracted = time.perf_counter() - started
    head.fit(inputs.array_pipeline(features, labels, 8, batch_size, shuffle=True), epochs=epochs,
             verbose=0, shuffle=False)
    return per_step, time.perf_counter() - started, extracted


def rows(data, quick):
    """The comparison as rows of `bench/run.py` (generated images: the speed does not depend on content)."""
    from bench.common import Row

    count, epochs = (256, 3) if quick else (1024, RECIPE_EPOCHS)
    per_step, cached, extracted = compare(count=count, epochs=epochs)
    return [Row("frozen phase", f"MobileNetV2 head, {epochs} epochs of {count} images", cached, "s", per_step,
                "frozen backbone run every step", higher_is_better=False,
                note=f"{extracted:.1f} s of it computing the features once, {cached - extracted:.1f} s the head")]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="mobilenet_v2")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=RECIPE_EPOCHS)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    per_step, cached, extracted = compare(args.architecture, args.images, args.size, args.epochs, args.batch_size)
    print(f"{args.architecture}, {args.images} images {args.size}x{args.size}, {args.epochs} frozen-backbone epochs:")
    print(f"  per-step frozen backbone: {per_step:.1f} s")
    print(f"  cached features:          {cached:.1f} s ({extracted:.1f} s computing the features once, "
          f"{cached - extracted:.1f} s training the head)")
    print(f"  speed-up: {per_step / cached:.1f}x")


if __name__ == "__main__":
    main()
