"""Cached-feature training of the head while the backbone is frozen.

With the backbone frozen (its batch-norm layers in inference mode) and no
augmentation that changes per epoch, every epoch pushes the same images through
the same backbone. Computing the pooled features once and training only the
head on them gives the same updates for a fraction of the compute.
"""

import keras

from codapack.trainer.phases import CACHED_HEAD, backbone_of

POOL = "head_pool"


def can_cache(config, phase, network):
    """Whether this phase can train its head on features computed once."""
    return (config.cache_features == "auto" and phase.trainable == "head" and backbone_of(network) is not None
            and not config.augmentation.per_epoch and config.strategy == "default" and not phase.consistency)


def split_at_head(network):
    """Split a network at its pooling layer into two models that share its layers.

    Args:
        network: a network from `submission.networks` with a `head_pool` layer.

    Returns:
        (feature model: pixels -> pooled features, head model: pooled features -> probabilities).
    """
    names = [layer.name for layer in network.layers]
    pool = network.get_layer(POOL)
    features = keras.Model(network.input, pool.output, name="features")
    inputs = keras.Input(shape=pool.output.shape[1:], name="pooled_features")
    x = inputs
    # The head is a chain (dense, batch norm, activation, dropout ... probabilities).
    for layer in network.layers[names.index(POOL) + 1:]:
        x = layer(x)
    return features, keras.Model(inputs, x, name=CACHED_HEAD)
