"""Colour changes Keras lacks: per-channel gain and offset (stain, white balance), channel order."""

import keras
import tensorflow as tf

from codapack.data.corruption_layers.base import CorruptionLayer, batch_size, check_range


@keras.saving.register_keras_serializable(package="codapack")
class RandomChannelGain(CorruptionLayer):
    """Multiply each colour channel by its own gain and add its own offset, per image.

    Keras' colour layers move all channels together (brightness, contrast) or
    in HSV (hue, saturation); a stain or a white-balance change scales R, G and
    B independently.

    Args:
        gain: gains are drawn in [1 - gain, 1 + gain]. Defaults to 0.2.
        offset: offsets are drawn in [-offset, offset] pixel values. Defaults to 20.
        seed: integer seed. Defaults to None.
    """

    def __init__(self, gain=0.2, offset=20.0, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.gain = check_range("gain", gain, 0.0, 1.0)
        self.offset = check_range("offset", offset, 0.0, 255.0)

    def corrupt(self, images):
        shape = (batch_size(images), 1, 1, images.shape[-1])
        gains = self.uniform(shape, 1.0 - self.gain, 1.0 + self.gain, draw=0)
        offsets = self.uniform(shape, -self.offset, self.offset, draw=1)
        return images * gains + offsets

    def get_config(self):
        return {**super().get_config(), "gain": self.gain, "offset": self.offset}


@keras.saving.register_keras_serializable(package="codapack")
class ChannelShuffle(CorruptionLayer):
    """Randomly permute the colour channels of each image.

    Args:
        seed: integer seed. Defaults to None.
    """

    def corrupt(self, images):
        order = tf.argsort(self.uniform((batch_size(images), images.shape[-1]), 0.0, 1.0), axis=-1)
        return tf.gather(images, order, batch_dims=1, axis=-1)
