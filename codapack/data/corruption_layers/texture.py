"""A random convolution: new local textures and colour mixes that no named corruption describes."""

import keras
import tensorflow as tf

from codapack.data.corruption_layers.base import CorruptionLayer, batch_size, check_range


@keras.saving.register_keras_serializable(package="codapack")
class RandomConvolution(CorruptionLayer):
    """Filter the images with a random convolution and blend the result with them (RandConv).

    Xu et al. (ICLR 2021): a convolution with random weights keeps shapes and
    scrambles local texture and colour, so a network trained on its output
    learns shapes. One kernel per batch, as in the paper; its size is drawn
    from `kernel_sizes`, its weights are He-normal across the colour channels.
    Each image is centred on its own channel means before filtering, rescaled
    to its own spread after, and blended back with a weight drawn per image,
    so brightness and contrast stay those of the image.

    Args:
        rate: probability that an image is filtered. Defaults to 0.5.
        kernel_sizes: odd kernel sizes to draw from. Defaults to (1, 3, 5, 7).
        seed: integer seed. Defaults to None.
    """

    def __init__(self, rate=0.5, kernel_sizes=(1, 3, 5, 7), seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = check_range("rate", rate, 0.0, 1.0)
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        if not self.kernel_sizes or any(k < 1 or k % 2 == 0 for k in self.kernel_sizes):
            raise ValueError(f"`kernel_sizes` should be odd sizes of at least 1. Received: kernel_sizes={kernel_sizes}")

    def kernel(self, channels):
        largest = max(self.kernel_sizes)
        sizes = tf.constant(self.kernel_sizes, tf.float32)
        size = tf.gather(sizes, self.uniform((), 0, len(self.kernel_sizes), draw=0, dtype=tf.int32))
        offsets = tf.abs(tf.range(largest, dtype=tf.float32) - largest // 2)
        inside = tf.cast(offsets <= (size - 1) / 2, tf.float32)  # the drawn size, centred in the largest
        weights = self.normal((largest, largest, channels, channels), draw=1) / tf.sqrt(size * size * channels)
        return weights * (inside[:, None] * inside[None])[..., None, None]

    def corrupt(self, images):
        n, channels = batch_size(images), images.shape[-1]
        pad = max(self.kernel_sizes) // 2
        mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)
        centred = images - mean
        padded = tf.pad(centred, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="REFLECT")
        filtered = tf.nn.conv2d(padded, self.kernel(channels), 1, "VALID")
        spread = tf.math.reduce_std(centred, axis=[1, 2, 3], keepdims=True)
        filtered = filtered * spread / (tf.math.reduce_std(filtered, axis=[1, 2, 3], keepdims=True) + 1e-6) + mean
        weight = self.uniform((n, 1, 1, 1), 0.0, 1.0, draw=2)
        chosen = self.uniform((n, 1, 1, 1), 0.0, 1.0, draw=3) < self.rate
        return tf.where(chosen, weight * images + (1.0 - weight) * filtered, images)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "kernel_sizes": list(self.kernel_sizes)}
