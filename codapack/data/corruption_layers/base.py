"""What every corruption layer shares: argument checks, per-call seeds, the training switch."""

import keras
import tensorflow as tf


class CorruptionLayer(keras.layers.Layer):
    """Base class: subclasses implement `corrupt(images)` on a float32 batch in 0..255.

    Args:
        seed: integer seed of the layer's random draws, or None.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed

    def call(self, images, training=True):
        if not training:
            return images
        return tf.clip_by_value(self.corrupt(tf.cast(images, tf.float32)), 0.0, 255.0)

    def corrupt(self, images):
        raise NotImplementedError

    def uniform(self, shape, low, high, draw=0, dtype=tf.float32):
        """Uniform draws; `draw` separates the ops of one layer (equal op seeds would repeat values)."""
        return tf.random.uniform(shape, low, high, dtype=dtype, seed=self._op_seed(draw))

    def normal(self, shape, draw=0):
        """Standard normal draws, seeded like `uniform`."""
        return tf.random.normal(shape, seed=self._op_seed(draw))

    def _op_seed(self, draw):
        return None if self.seed is None else self.seed * 131 + draw

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


def check_range(name, value, low, high):
    """`value` as a float, or a ValueError worded the Keras way."""
    if not low <= value <= high:
        raise ValueError(f"`{name}` should be in [{low}, {high}]. Received: {name}={value}")
    return float(value)


def batch_size(images):
    return tf.shape(images)[0]
