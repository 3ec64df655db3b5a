"""Defocus and motion blur with a kernel drawn per image (Keras has only Gaussian blur)."""

import math

import keras
import tensorflow as tf

from codapack.data.corruption_layers.base import CorruptionLayer, batch_size, check_range


def per_image_convolution(images, kernels):
    """Convolve image i with kernels[i] (k x k, the same for every channel), reflect-padded.

    The batch is folded into the channel axis so that one depthwise convolution
    applies a different kernel to every image.
    """
    k = kernels.shape[-1]
    pad = k // 2
    n, channels = tf.shape(images)[0], images.shape[-1]
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
    folded = tf.reshape(tf.transpose(padded, [1, 2, 0, 3]), [1, height + 2 * pad, width + 2 * pad, n * channels])
    filters = tf.repeat(tf.transpose(kernels, [1, 2, 0]), channels, axis=-1)[..., None]  # (k, k, n*C, 1)
    out = tf.nn.depthwise_conv2d(folded, filters, [1, 1, 1, 1], "VALID")
    return tf.transpose(tf.reshape(out, [height, width, n, channels]), [2, 0, 1, 3])


def _grid(radius):
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    return tf.meshgrid(offsets, offsets, indexing="ij")  # rows (v), columns (u)


def _normalised(weights):
    return weights / tf.reduce_sum(weights, axis=[1, 2], keepdims=True)


@keras.saving.register_keras_serializable(package="codapack")
class RandomDefocusBlur(CorruptionLayer):
    """Blur each image with an anti-aliased disk of random radius, as an out-of-focus lens does.

    Args:
        max_radius: radii are drawn in [0.5, max_radius] pixels (0.5 leaves the image as it is).
            Defaults to 3.
        seed: integer seed. Defaults to None.
    """

    def __init__(self, max_radius=3.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.max_radius = check_range("max_radius", max_radius, 0.5, 16.0)

    def kernels(self, radii):
        rows, cols = _grid(math.ceil(self.max_radius))
        distance = tf.sqrt(rows ** 2 + cols ** 2)[None]
        return _normalised(tf.clip_by_value(radii[:, None, None] + 0.5 - distance, 0.0, 1.0))

    def corrupt(self, images):
        radii = self.uniform((batch_size(images),), 0.5, self.max_radius, draw=0)
        return per_image_convolution(images, self.kernels(radii))

    def get_config(self):
        return {**super().get_config(), "max_radius": self.max_radius}


@keras.saving.register_keras_serializable(package="codapack")
class RandomMotionBlur(CorruptionLayer):
    """Blur each image along a line of random angle and length, as a moving stage or camera does.

    Args:
        max_length: lengths are drawn in [1, max_length] pixels (1 leaves the image as it is).
            Defaults to 9.
        seed: integer seed. Defaults to None.
    """

    def __init__(self, max_length=9.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.max_length = check_range("max_length", max_length, 1.0, 33.0)

    def kernels(self, lengths, angles):
        rows, cols = _grid(math.ceil((self.max_length - 1) / 2))
        cos, sin = tf.cos(angles)[:, None, None], tf.sin(angles)[:, None, None]
        along = tf.abs(cos * cols[None] + sin * rows[None])
        across = tf.abs(-sin * cols[None] + cos * rows[None])
        weights = tf.nn.relu(1.0 - across) * tf.clip_by_value(lengths[:, None, None] / 2 + 0.5 - along, 0.0, 1.0)
        return _normalised(weights)

    def corrupt(self, images):
        n = batch_size(images)
        lengths = self.uniform((n,), 1.0, self.max_length, draw=0)
        angles = self.uniform((n,), 0.0, math.pi, draw=1)
        return per_image_convolution(images, self.kernels(lengths, angles))

    def get_config(self):
        return {**super().get_config(), "max_length": self.max_length}
