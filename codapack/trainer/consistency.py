"""Consistency training: a network asked to give a corrupted view the answer it gives the clean one.

AugMix (Hendrycks et al., ICLR 2020) adds to the cross-entropy a Jensen-Shannon
divergence between the predictions for an image and for corrupted copies of it;
most of its gain on corruptions never trained on came from that term, not from
the augmentations. Here each batch of B images arrives as 2B rows: the images
with geometry only, then the same images with the phase's other layers on top
(`inputs.train_pipeline(pairs=True)`). The loss is the cross-entropy of all 2B
rows plus `weight` times the divergence between row i and row B + i.
Validation batches pair each image with itself, so their divergence is 0 and
`val_loss` stays the plain cross-entropy.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="codapack")
class ConsistencyLoss(keras.losses.Loss):
    """Cross-entropy on both views plus `weight` times their Jensen-Shannon divergence.

    Args:
        weight: the divergence's weight (AugMix used 12 with three views).
        label_smoothing: as in `keras.losses.CategoricalCrossentropy`.
    """

    def __init__(self, weight=12.0, label_smoothing=0.0, name="consistency", **kwargs):
        super().__init__(name=name, **kwargs)
        self.weight = float(weight)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        cross_entropy = keras.losses.categorical_crossentropy(y_true, y_pred, label_smoothing=self.label_smoothing)
        half = ops.shape(y_pred)[0] // 2
        divergence = jensen_shannon(y_pred[:half], y_pred[half:])
        return cross_entropy + self.weight * ops.concatenate([divergence, divergence])

    def get_config(self):
        return {**super().get_config(), "weight": self.weight, "label_smoothing": self.label_smoothing}


def jensen_shannon(p, q, epsilon=1e-7):
    """Per-row Jensen-Shannon divergence (natural log) between two batches of probability rows."""
    p, q = ops.clip(p, epsilon, 1.0), ops.clip(q, epsilon, 1.0)
    middle = (p + q) / 2
    return 0.5 * ops.sum(p * ops.log(p / middle), axis=-1) + 0.5 * ops.sum(q * ops.log(q / middle), axis=-1)
