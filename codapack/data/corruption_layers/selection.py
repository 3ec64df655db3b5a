"""RandomOneOf: each image gets, with some probability, one layer picked at random from a list."""

import keras
import tensorflow as tf

from codapack.data.corruption_layers.base import CorruptionLayer, batch_size, check_range


@keras.saving.register_keras_serializable(package="codapack")
class RandomOneOf(CorruptionLayer):
    """Apply one of `layers`, chosen per image, to a fraction `rate` of the images.

    Keras 3 has no per-image random choice among layers (KerasCV's `RandomChoice`
    did not move over). The batch is partitioned by the draw and each candidate
    runs only on its own images, so a rarely applied, costly corruption costs
    little per step.

    Args:
        layers: Keras layers mapping a batch to a batch of the same shape.
        rate: probability that an image is changed at all. Defaults to 0.5.
        seed: integer seed. Defaults to None.
    """

    def __init__(self, layers, rate=0.5, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.candidates = [keras.layers.deserialize(layer) if isinstance(layer, dict) else layer
                           for layer in layers]
        if not self.candidates:
            raise ValueError("`layers` should hold at least one layer. Received: layers=[]")
        self.rate = check_range("rate", rate, 0.0, 1.0)

    def corrupt(self, images):
        n = batch_size(images)
        changed = self.uniform((n,), 0.0, 1.0, draw=1) < self.rate
        pick = self.uniform((n,), 0, len(self.candidates), draw=0, dtype=tf.int32)
        group = tf.where(changed, pick + 1, 0)  # 0: left as it is
        parts = tf.dynamic_partition(images, group, len(self.candidates) + 1)
        where = tf.dynamic_partition(tf.range(n), group, len(self.candidates) + 1)
        outputs = [parts[0]]
        for layer, part in zip(self.candidates, parts[1:]):
            outputs.append(tf.cond(tf.shape(part)[0] > 0, lambda l=layer, p=part: l(p, training=True),
                                   lambda p=part: p))
        return tf.ensure_shape(tf.dynamic_stitch(where, outputs), images.shape)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate,
                "layers": [keras.layers.serialize(layer) for layer in self.candidates]}
