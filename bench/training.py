"""Training throughput: codapack's input pipeline against a plain `model.fit` on numpy arrays.

The baseline is what a notebook does: convert the images to float32 arrays and
call `model.fit(x, y, batch_size)`. codapack trains from `trainer.inputs.train_pipeline`
(no augmentation here): uint8 images held once, indices shuffled, whole batches
gathered and cast to float32, prefetched; optionally with XLA (`jit_compile=True`).
Same network, loss, batch size and images; each variant gets one warm-up epoch
(tracing), then the variants' timed epochs alternate and the best of each is kept.

    python bench/training.py [--architecture baseline_cnn] [--images 2048] [--rounds 3]
"""

import argparse
import os
import sys


import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import Row, timed  # noqa: E402


def _network(architecture, shape, classes, options):
    from codapack.submission.networks import build_network

    return build_network(architecture, shape, classes, options)


def _compiled(architecture, shape, classes, options, jit):
    import keras

    keras.utils.set_random_seed(0)
    network = _network(architecture, shape, classes, options)
    network.compile(optimizer=keras.optimizers.Adam(1e-3), loss="categorical_crossentropy",
                    metrics=["accuracy"], jit_compile=jit)
    return network


def _pipeline(images, labels, classes, batch_size):
    from codapack.trainer.config import Augmentation
    from codapack.trainer.inputs import train_pipeline

    return train_pipeline(images, labels, classes, batch_size, Augmentation(), seed=0)


def throughput(architecture, images, labels, classes, *, batch_size=64, options=None, label=None, xla=True,
               rounds=3):
    """Rows of images/s for the plain fit, the pipeline, and (with `xla`) the pipeline with XLA.

    Every variant is built and warmed up first; then each round times one epoch of each variant in
    turn and the best epoch of each is kept, so a stall of the machine cannot land on one side only.
    """
    shape = images.shape[1:]
    floats, one_hot = images.astype(np.float32), np.eye(classes, dtype=np.float32)[labels]
    variants = {"plain": (_compiled(architecture, shape, classes, options, jit=False),
                          lambda net: net.fit(floats, one_hot, batch_size=batch_size, epochs=1, verbose=0))}
    for name, jit in (("pipeline", False), ("pipeline+XLA", True))[:2 if xla else 1]:
        data = _pipeline(images, labels, classes, batch_size)
        variants[name] = (_compiled(architecture, shape, classes, options, jit=jit),
                          lambda net, data=data: net.fit(data, epochs=1, verbose=0))
    for network, epoch in variants.values():
        epoch(network)
    times = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (network, epoch) in variants.items():
            times[name].append(timed(epoch, network)[0])
    best = {name: min(seconds) for name, seconds in times.items()}
    n = len(labels)
    label = label or architecture
    return [Row("training", f"{label}: {name} images/s", n / seconds, "img/s", n / best["plain"],
                "plain model.fit on float32 numpy", note=f"best epoch of {rounds}, {n} images, {seconds:.1f} s; "
                f"epochs {'/'.join(f'{s:.1f}' for s in times[name])} s vs plain "
                f"{'/'.join(f'{s:.1f}' for s in times['plain'])} s")
            for name, seconds in best.items() if name != "plain"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="baseline_cnn")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--kit", default=None, help="a training_set.npz; generated images when omitted")
    args = parser.parse_args(argv)
    from bench.common import format_rows
    from codapack.synthetic import make_dataset

    if args.kit:
        data = np.load(args.kit)
        images, labels = data["images"][:args.images], data["labels"][:args.images].reshape(-1).astype(np.int64)
    else:
        images, labels = make_dataset(args.images, (96, 96, 3), 8, seed=0)
        labels = labels.reshape(-1).astype(np.int64)
    options = {"filters": [32, 64, 128, 256], "stem_stride": 2} if args.architecture == "baseline_cnn" else {}
    print(format_rows(throughput(args.architecture, images, labels, 8, options=options, xla=False,
                                 rounds=args.rounds)))


if __name__ == "__main__":
    main()
