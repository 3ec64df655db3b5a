"""Augmentation layers by name: Keras' preprocessing layers and codapack's corruption layers.

The layers run in the tf.data input pipeline and never become part of the
trained network, so nothing here ships in a submission. Images stay float32 in
0..255 throughout (every colour layer gets `value_range=(0, 255)`). Which layers
a named policy applies, and which shift families each imitates, is in
`codapack/data/policies.py`. MixUp and CutMix work on whole batches and turn the
one-hot labels into soft labels.
"""

import keras
import tensorflow as tf

from codapack.data.corruption_layers import (ChannelShuffle, RandomAmplitudeSwap, RandomBlobs, RandomChannelGain,
                                             RandomConvolution, RandomDefocusBlur, RandomJPEG, RandomMotionBlur,
                                             RandomOneOf, RandomPixelation, RandomPixelNoise, RandomSaltPepper,
                                             RandomSpeckleNoise)

RANGE = (0, 255)


def _gaussian_blur(seed):
    return keras.layers.RandomGaussianBlur(factor=1.0, kernel_size=9, sigma=(0.3, 2.5), value_range=RANGE, seed=seed)


def _erasing(seed):
    return keras.layers.RandomErasing(factor=1.0, scale=(0.02, 0.15), value_range=RANGE, seed=seed)


def _any_colour(seed):
    return keras.Sequential([keras.layers.RandomBrightness(0.3, value_range=RANGE, seed=seed),
                             keras.layers.RandomContrast(0.4, value_range=RANGE, seed=seed + 1),
                             keras.layers.RandomSaturation((0.25, 0.75), value_range=RANGE, seed=seed + 2),
                             RandomChannelGain(gain=0.25, offset=25.0, seed=seed + 3)], name="any_colour")


def _any_corruption(seed):
    """One corruption family per image, for 40% of the images: what one hit of a shifted test set does."""
    return RandomOneOf([_any_colour(seed + 10), _gaussian_blur(seed + 20), RandomDefocusBlur(3.0, seed=seed + 21),
                        RandomMotionBlur(9.0, seed=seed + 22), RandomPixelNoise(20.0, seed=seed + 30),
                        RandomSpeckleNoise(0.3, seed=seed + 31), RandomSaltPepper(0.03, seed=seed + 32),
                        RandomJPEG(10, 90, seed=seed + 40), RandomPixelation(4, seed=seed + 41),
                        RandomBlobs(3, 0.25, seed=seed + 50), _erasing(seed + 51),
                        keras.layers.RandomGrayscale(factor=1.0, seed=seed + 60)], rate=0.4, seed=seed)


LAYERS = {
    "flip": lambda seed: keras.layers.RandomFlip("horizontal_and_vertical", seed=seed),
    "rotation": lambda seed: keras.layers.RandomRotation(0.1, fill_mode="reflect", seed=seed),
    "rotation_any": lambda seed: keras.layers.RandomRotation(0.5, fill_mode="reflect", seed=seed),
    "translation": lambda seed: keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed),
    "shift": lambda seed: keras.layers.RandomTranslation(0.05, 0.05, fill_mode="reflect", seed=seed),
    "zoom": lambda seed: keras.layers.RandomZoom(0.1, fill_mode="reflect", seed=seed),
    "brightness": lambda seed: keras.layers.RandomBrightness(0.15, value_range=RANGE, seed=seed),
    "contrast": lambda seed: keras.layers.RandomContrast(0.2, value_range=RANGE, seed=seed),
    "saturation": lambda seed: keras.layers.RandomSaturation((0.35, 0.65), value_range=RANGE, seed=seed),
    "hue": lambda seed: keras.layers.RandomHue(0.05, value_range=RANGE, seed=seed),
    "color_degeneration": lambda seed: keras.layers.RandomColorDegeneration(0.3, value_range=RANGE, seed=seed),
    "grayscale": lambda seed: keras.layers.RandomGrayscale(factor=0.05, seed=seed),
    "channel_gain": lambda seed: RandomChannelGain(gain=0.15, offset=15.0, seed=seed),
    "gaussian_noise": lambda seed: RandomPixelNoise(max_stddev=10.0, seed=seed),
    "speckle_noise": lambda seed: RandomSpeckleNoise(max_stddev=0.3, seed=seed),
    "salt_pepper": lambda seed: RandomSaltPepper(max_amount=0.03, seed=seed),
    "gaussian_blur": _gaussian_blur,
    "defocus_blur": lambda seed: RandomDefocusBlur(max_radius=3.0, seed=seed),
    "motion_blur": lambda seed: RandomMotionBlur(max_length=9.0, seed=seed),
    "jpeg": lambda seed: RandomJPEG(min_quality=10, max_quality=90, seed=seed),
    "pixelation": lambda seed: RandomPixelation(max_factor=4, seed=seed),
    "blobs": lambda seed: RandomBlobs(max_count=3, max_radius=0.25, seed=seed),
    "erasing": lambda seed: keras.layers.RandomErasing(factor=0.5, scale=(0.02, 0.15), value_range=RANGE,
                                                       seed=seed),
    "channel_shuffle": lambda seed: ChannelShuffle(seed=seed),
    "randaugment": lambda seed: keras.layers.RandAugment(value_range=RANGE, num_ops=2, factor=0.3, seed=seed),
    "augmix": lambda seed: keras.layers.AugMix(value_range=RANGE, seed=seed),
    "any_corruption": _any_corruption,
    "amplitude_swap": lambda seed: RandomAmplitudeSwap(rate=0.5, seed=seed),
    "random_convolution": lambda seed: RandomConvolution(rate=0.5, seed=seed),
}

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
