"""Blobs of colour over the image: debris, stain deposits, bubbles, fingerprints on the lens."""

import keras
import tensorflow as tf

from codapack.data.corruption_layers.base import CorruptionLayer, check_range


@keras.saving.register_keras_serializable(package="codapack")
class RandomBlobs(CorruptionLayer):
    """Composite up to `max_count` soft-edged ellipses of random colour and opacity over each image.

    Keras' `RandomErasing` covers opaque rectangles; real occluders are round,
    often translucent, and coloured like anything but the sample.

    Args:
        max_count: ellipses per image are drawn in 1..max_count. Defaults to 3.
        max_radius: the largest semi-axis as a fraction of the image side. Defaults to 0.25.
        min_opacity: opacities are drawn in [min_opacity, 1]. Defaults to 0.3.
        seed: integer seed. Defaults to None.
    """

    def __init__(self, max_count=3, max_radius=0.25, min_opacity=0.3, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.max_count = int(check_range("max_count", max_count, 1, 32))
        self.max_radius = check_range("max_radius", max_radius, 0.01, 1.0)
        self.min_opacity = check_range("min_opacity", min_opacity, 0.0, 1.0)

    def corrupt(self, images):
        n, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
        rows = tf.cast(tf.range(height), tf.float32)[None, :, None] / tf.cast(height, tf.float32)
        cols = tf.cast(tf.range(width), tf.float32)[None, None, :] / tf.cast(width, tf.float32)
        count = self.uniform((n, 1, 1), 1, self.max_count + 1, draw=0, dtype=tf.int32)
        for k in range(self.max_count):
            draw = 1 + 6 * k
            centre_y, centre_x = (self.uniform((n, 1, 1), 0.0, 1.0, draw=draw + i) for i in range(2))
            radius_y, radius_x = (self.uniform((n, 1, 1), 0.03, self.max_radius, draw=draw + 2 + i)
                                  for i in range(2))
            inside = 1.0 - ((rows - centre_y) / radius_y) ** 2 - ((cols - centre_x) / radius_x) ** 2
            mask = tf.sigmoid(8.0 * inside)
            opacity = self.uniform((n, 1, 1), self.min_opacity, 1.0, draw=draw + 4)
            alpha = (mask * opacity * tf.cast(k < count, tf.float32))[..., None]
            colour = self.uniform((n, 1, 1, images.shape[-1]), 0.0, 255.0, draw=draw + 5)
            images = images * (1.0 - alpha) + colour * alpha
        return images

    def get_config(self):
        return {**super().get_config(), "max_count": self.max_count, "max_radius": self.max_radius,
                "min_opacity": self.min_opacity}
