"""Mixing two images of a batch where Keras has no layer: one image's structure, another's spectrum."""

import keras
import tensorflow as tf

from codapack.data.corruption_layers.base import CorruptionLayer, batch_size, check_range


@keras.saving.register_keras_serializable(package="codapack")
class RandomAmplitudeSwap(CorruptionLayer):
    """Give an image the Fourier amplitude of the next image in the batch, keeping its own phase.

    Amplitude-phase recombination (APR-P, Chen et al., ICCV 2021): the phase
    carries the shapes, the amplitude the textures and the energy per
    frequency, which is what blur, noise, compression and anything laid over a
    picture change. The label stays the phase image's, so the network learns to
    read shapes and stops trusting a frequency band's energy. Per channel, over
    height and width; the batch is shuffled, so the next image is a random one.

    Args:
        rate: probability that an image gets another's amplitude. Defaults to 0.5.
        seed: integer seed. Defaults to None.
    """

    def __init__(self, rate=0.5, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.rate = check_range("rate", rate, 0.0, 1.0)

    def corrupt(self, images):
        channels_first = tf.transpose(images, [0, 3, 1, 2])  # fft2d works on the two innermost axes
        spectrum = tf.signal.fft2d(tf.complex(channels_first, tf.zeros_like(channels_first)))
        amplitude = tf.abs(tf.roll(spectrum, shift=1, axis=0))
        phase = tf.math.angle(spectrum)
        recombined = tf.complex(amplitude * tf.cos(phase), amplitude * tf.sin(phase))
        swapped = tf.transpose(tf.math.real(tf.signal.ifft2d(recombined)), [0, 2, 3, 1])
        chosen = self.uniform((batch_size(images), 1, 1, 1), 0.0, 1.0) < self.rate
        return tf.where(chosen, swapped, images)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}
