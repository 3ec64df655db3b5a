"""Training-step speed of the recipes' networks on whatever device Keras finds, against robust_cpu's network.

    KERAS_BACKEND=jax python bench/network_step_time.py          # on a GPU machine without TensorFlow
    python bench/network_step_time.py --images 1024               # here, on the CPU

What it measures: `model.fit` on random pixels held in memory, one warm-up epoch
then the best of the timed ones, for each network at the size its recipe runs
it. The input pipeline (tf.data augmentation) is not part of it: it needs
TensorFlow, which a lent GPU machine may lack, and it runs on the CPU cores
beside the accelerator. The projection multiplies the time per image by the
images a recipe's phases train on; every layer trains here, so a recipe that
fine-tunes only part of a backbone takes less.
"""

import os
import sys
import time

import click
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TRAIN_IMAGES = 8371  # the cleaned kit's train split
RECIPES = ("robust_cpu", "mobilenet_v2_robust_cpu", "robust_gpu")


def recipe_network(name):
    """(architecture, options, epochs that run the whole network) read from the recipe's TOML.

    Read with tomllib rather than `load_config`, whose checks import TensorFlow (a lent GPU machine may
    have none); the module itself imports without it.
    """
    import tomllib

    from codapack.trainer.config import RECIPES_DIR

    with open(os.path.join(RECIPES_DIR, f"{name}.toml"), "rb") as f:
        raw = tomllib.load(f)
    epochs = sum(phase["epochs"] for phase in raw.get("phases", []) if phase.get("trainable", "all") != "head")
    return raw["model"]["architecture"], raw["model"].get("options", {}), epochs


def seconds_per_image(architecture, options, images, batch_size, epochs):
    """The best epoch's seconds per image of `model.fit` on random pixels, after a warm-up epoch."""
    import keras

    from codapack.submission.networks import build_network

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (images, 96, 96, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 8, images), 8)
    model = build_network(architecture, (96, 96, 3), 8, options)
    model.compile(optimizer=keras.optimizers.AdamW(3e-4), loss="categorical_crossentropy")
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    times = []
    for _ in range(epochs):
        started = time.perf_counter()
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
        times.append(time.perf_counter() - started)
    return min(times) / images


@click.command(context_settings={"show_default": True})
@click.option("--images", default=4096, help="Images per timed epoch.")
@click.option("--batch-size", default=64)
@click.option("--epochs", default=3, help="Timed epochs per network (the best counts).")
def main(images, batch_size, epochs):
    """Print images/s of a training step per network and the minutes its recipe's epochs would take."""
    import keras

    device = ", ".join(str(d) for d in _devices()) or "cpu"
    click.echo(f"keras {keras.__version__}, backend {keras.backend.backend()}, devices: {device}")
    baseline = None
    for name in RECIPES:
        architecture, options, recipe_epochs = recipe_network(name)
        label = f"{name}: {architecture}, {options.get('image_size') or 96} px"
        per_image = seconds_per_image(architecture, options, images, batch_size, epochs)
        baseline = baseline or per_image
        minutes = per_image * TRAIN_IMAGES * recipe_epochs / 60
        click.echo(f"{label:48s} {1 / per_image:10.1f} img/s  {baseline / per_image:6.2f}x the first  "
                   f"{recipe_epochs} epochs of {TRAIN_IMAGES} images: {minutes:6.2f} min")


def _devices():
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.devices()
    if keras.backend.backend() == "torch":
        import torch

        return [torch.cuda.get_device_name(0)] if torch.cuda.is_available() else []
    import tensorflow as tf

    return [d.name for d in tf.config.list_physical_devices("GPU")]


if __name__ == "__main__":
    main()
