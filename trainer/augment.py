"""Augmentation with Keras' own preprocessing layers, run in the tf.data input pipeline.

The layers never become part of the trained network, so nothing here ships in a
submission. Images stay float32 in 0..255 throughout (every colour layer gets
`value_range=(0, 255)`). Named policies:

    none    nothing
    light   flips, small rotations and translations
    medium  light + brightness, contrast, saturation, hue
    heavy   medium + RandAugment, Gaussian noise, random erasing, channel shuffle

or a custom list of the layer names in `LAYERS`. MixUp and CutMix work on whole
batches and turn the one-hot labels into soft labels.
"""

import keras
import tensorflow as tf

RANGE = (0, 255)


class ChannelShuffle(keras.layers.Layer):
    """Randomly permute the colour channels of each image (Keras has no such layer)."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed

    def call(self, images, training=True):
        if not training:
            return images
        order = tf.argsort(tf.random.uniform((tf.shape(images)[0], images.shape[-1]), seed=self.seed), axis=-1)
        return tf.gather(images, order, batch_dims=1, axis=-1)


class PixelNoise(keras.layers.Layer):
    """Additive Gaussian noise in pixel units (keras' GaussianNoise only takes stddev <= 1)."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.stddev, self.seed = stddev, seed

    def call(self, images, training=True):
        if not training:
            return images
        return images + tf.random.normal(tf.shape(images), stddev=self.stddev, seed=self.seed)


LAYERS = {
    "flip": lambda seed: keras.layers.RandomFlip("horizontal_and_vertical", seed=seed),
    "rotation": lambda seed: keras.layers.RandomRotation(0.1, fill_mode="reflect", seed=seed),
    "rotation_any": lambda seed: keras.layers.RandomRotation(0.5, fill_mode="reflect", seed=seed),
    "translation": lambda seed: keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed),
    "zoom": lambda seed: keras.layers.RandomZoom(0.1, fill_mode="reflect", seed=seed),
    "brightness": lambda seed: keras.layers.RandomBrightness(0.15, value_range=RANGE, seed=seed),
    "contrast": lambda seed: keras.layers.RandomContrast(0.2, value_range=RANGE, seed=seed),
    "saturation": lambda seed: keras.layers.RandomSaturation((0.35, 0.65), value_range=RANGE, seed=seed),
    "hue": lambda seed: keras.layers.RandomHue(0.05, value_range=RANGE, seed=seed),
    "color_degeneration": lambda seed: keras.layers.RandomColorDegeneration(0.3, value_range=RANGE, seed=seed),
    "gaussian_noise": lambda seed: PixelNoise(5.0, seed=seed),
    "erasing": lambda seed: keras.layers.RandomErasing(factor=0.5, scale=(0.02, 0.15), value_range=RANGE, seed=seed),
    "channel_shuffle": lambda seed: ChannelShuffle(seed=seed),
    "randaugment": lambda seed: keras.layers.RandAugment(value_range=RANGE, num_ops=2, factor=0.3, seed=seed),
    "augmix": lambda seed: keras.layers.AugMix(value_range=RANGE, seed=seed),
}

_LIGHT = ["flip", "rotation", "translation"]
_MEDIUM = _LIGHT + ["brightness", "contrast", "saturation", "hue"]
POLICY_LAYERS = {"none": [], "light": _LIGHT, "medium": _MEDIUM,
                 "heavy": _MEDIUM + ["randaugment", "gaussian_noise", "erasing", "channel_shuffle"]}


def layer_names(augmentation):
    """The layer names an `Augmentation` config applies, in order."""
    return list(augmentation.layers) or POLICY_LAYERS[augmentation.policy]


def image_augmenter(names, seed=0):
    """A function (images batch) -> augmented batch applying the named layers in order.

    Args:
        names: names from `LAYERS`.
        seed: seed of the first layer (each next layer gets seed + 1, ...).

    Returns:
        A function of a float32 (n, H, W, C) batch in 0..255, or None when `names` is empty.
    """
    if not names:
        return None
    layers = [LAYERS[name](seed + i) for i, name in enumerate(names)]

    def augment(images):
        for layer in layers:
            images = layer(images, training=True)
        return tf.clip_by_value(images, 0.0, 255.0)

    return augment


def batch_mixer(mixup=0.0, cutmix=0.0, seed=0):
    """A function (images, one-hot labels) -> (mixed images, soft labels) using MixUp and/or CutMix.

    Args:
        mixup: Beta alpha of MixUp, 0 for off.
        cutmix: Beta alpha of CutMix, 0 for off.
        seed: random seed.

    Returns:
        The function, or None when both are off. With both, each batch gets one at random.
    """
    mixers = []
    if mixup > 0:
        mixers.append(keras.layers.MixUp(alpha=mixup, seed=seed))
    if cutmix > 0:
        mixers.append(keras.layers.CutMix(factor=cutmix, seed=seed + 1))
    if not mixers:
        return None

    def apply(layer, images, labels):
        out = layer({"images": images, "labels": labels}, training=True)
        return out["images"], tf.cast(out["labels"], tf.float32)

    def mix(images, labels):
        if len(mixers) == 1:
            return apply(mixers[0], images, labels)
        use_first = tf.random.uniform((), seed=seed + 2) < 0.5
        return tf.cond(use_first, lambda: apply(mixers[0], images, labels),
                       lambda: apply(mixers[1], images, labels))

    return mix
