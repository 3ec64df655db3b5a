"""Training throughput: codapack's input pipeline against a plain `model.fit` on numpy arrays.

The baseline is what a notebook does: convert the images to float32 arrays and
call `model.fit(x, y, batch_size)`. codapack keeps uint8 in a tf.data
pipeline, casts per batch in parallel, and prefetches; optionally with XLA
(`jit_compile=True`). Same network, batch size and images; each variant gets
one warm-up epoch (tracing), then the variants' timed epochs alternate and the
best of each is kept.
"""

import numpy as np

from bench.common import Row, timed


def _network(architecture, shape, classes, options):
    from submission.networks import build_network

    return build_network(architecture, shape, classes, options)


def _compiled(architecture, shape, classes, options, jit):
    import keras

    keras.utils.set_random_seed(0)
    network = _network(architecture, shape, classes, options)
    network.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                    metrics=["accuracy"], jit_compile=jit)
    return network


def _pipeline(images, labels, batch_size):
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images, labels)).shuffle(len(labels), seed=0)
    ds = ds.batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def throughput(architecture, images, labels, classes, *, batch_size=64, options=None, label=None, xla=True,
               rounds=2):
    """Rows of images/s for the plain fit, the pipeline, and (with `xla`) the pipeline with XLA.

    Every variant is built and warmed up first; then each round times one epoch of each variant in
    turn and the best epoch of each is kept, so a stall of the machine cannot land on one side only.
    """
    shape = images.shape[1:]
    floats = images.astype(np.float32)
    variants = {"plain": (_compiled(architecture, shape, classes, options, jit=False),
                          lambda net: net.fit(floats, labels, batch_size=batch_size, epochs=1, verbose=0))}
    for name, jit in (("pipeline", False), ("pipeline+XLA", True))[:2 if xla else 1]:
        data = _pipeline(images, labels, batch_size)
        variants[name] = (_compiled(architecture, shape, classes, options, jit=jit),
                          lambda net, data=data: net.fit(data, epochs=1, verbose=0))
    for network, epoch in variants.values():
        epoch(network)
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, (network, epoch) in variants.items():
            best[name] = min(best[name], timed(epoch, network)[0])
    n = len(labels)
    label = label or architecture
    return [Row("training", f"{label}: {name} images/s", n / seconds, "img/s", n / best["plain"],
                "plain model.fit on float32 numpy", note=f"best epoch of {rounds}, {n} images, {seconds:.1f} s")
            for name, seconds in best.items() if name != "plain"]
