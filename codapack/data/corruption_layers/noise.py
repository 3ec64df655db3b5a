"""Sensor noise in pixel units: additive Gaussian, multiplicative speckle, salt and pepper."""

import keras
import tensorflow as tf

from codapack.data.corruption_layers.base import CorruptionLayer, batch_size, check_range


@keras.saving.register_keras_serializable(package="codapack")
class RandomPixelNoise(CorruptionLayer):
    """Add Gaussian noise whose standard deviation, in pixel values, is drawn per image.

    Keras' `GaussianNoise` has one fixed deviation for the whole batch and is a
    regulariser on activations, not a sensor model.

    Args:
        max_stddev: deviations are drawn in [0, max_stddev]. Defaults to 25.
        seed: integer seed. Defaults to None.
    """

    def __init__(self, max_stddev=25.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.max_stddev = check_range("max_stddev", max_stddev, 0.0, 255.0)

    def corrupt(self, images):
        sigma = self.uniform((batch_size(images), 1, 1, 1), 0.0, self.max_stddev, draw=0)
        seed = None if self.seed is None else self.seed * 131 + 1
        return images + sigma * tf.random.normal(tf.shape(images), seed=seed)

    def get_config(self):
        return {**super().get_config(), "max_stddev": self.max_stddev}


@keras.saving.register_keras_serializable(package="codapack")
class RandomSpeckleNoise(CorruptionLayer):
    """Multiply each pixel by 1 + noise: brighter pixels get proportionally more noise.

    Args:
        max_stddev: the relative deviation is drawn per image in [0, max_stddev]. Defaults to 0.3.
        seed: integer seed. Defaults to None.
    """

    def __init__(self, max_stddev=0.3, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.max_stddev = check_range("max_stddev", max_stddev, 0.0, 2.0)

    def corrupt(self, images):
        sigma = self.uniform((batch_size(images), 1, 1, 1), 0.0, self.max_stddev, draw=0)
        seed = None if self.seed is None else self.seed * 131 + 1
        return images * (1.0 + sigma * tf.random.normal(tf.shape(images), seed=seed))

    def get_config(self):
        return {**super().get_config(), "max_stddev": self.max_stddev}


@keras.saving.register_keras_serializable(package="codapack")
class RandomSaltPepper(CorruptionLayer):
    """Set a fraction of pixels (all channels) to 0 or 255, the fraction drawn per image.

    Args:
        max_amount: fractions are drawn in [0, max_amount]. Defaults to 0.05.
        seed: integer seed. Defaults to None.
    """

    def __init__(self, max_amount=0.05, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.max_amount = check_range("max_amount", max_amount, 0.0, 1.0)

    def corrupt(self, images):
        n = batch_size(images)
        pixels = tf.concat([tf.shape(images)[:3], [1]], axis=0)
        amount = self.uniform((n, 1, 1, 1), 0.0, self.max_amount, draw=0)
        hit = self.uniform(pixels, 0.0, 1.0, draw=1) < amount
        salt = self.uniform(pixels, 0.0, 1.0, draw=2) < 0.5
        return tf.where(hit, tf.where(salt, 255.0, 0.0), images)

    def get_config(self):
        return {**super().get_config(), "max_amount": self.max_amount}
