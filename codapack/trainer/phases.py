"""What changes from one training phase to the next: trainable layers, optimiser, schedule, loss."""

import math

import keras

from codapack.errors import CodapackError
from codapack.trainer.consistency import ConsistencyLoss

BACKBONE = "backbone"
# The name of the head model trained on cached features (trainer/features.py).
CACHED_HEAD = "head"


def backbone_of(network):
    """The nested pretrained backbone of a network, or None for networks built from scratch."""
    names = [layer.name for layer in network.layers]
    return network.get_layer(BACKBONE) if BACKBONE in names else None


def set_trainable(network, phase):
    """Freeze and unfreeze layers as `phase.trainable` says.

    "head": everything but the backbone trains; "all": everything; "last:N" / "from:LAYER":
    the backbone's last N layers (or from LAYER on) and the head. On a network without a
    backbone, "last:N" and "from:LAYER" count over the whole network. Batch-norm layers of the
    backbone stay frozen, hence in inference mode, when `phase.freeze_batch_norm` is set.

    Returns:
        The number of trainable weights tensors.

    Raises:
        CodapackError: "head" on a network without a backbone, or an unknown layer name.
    """
    kind, _, arg = phase.trainable.partition(":")
    backbone = backbone_of(network)
    _unfreeze_all(network)
    if kind == "head" and backbone is None:
        raise CodapackError(f"phase `{phase.name}`: trainable = \"head\" needs a pretrained backbone; "
                            f"`{network.name}` has none")
    if kind != "all":
        layers = backbone.layers if backbone is not None else network.layers
        first = len(layers) if kind == "head" else _first_unfrozen(layers, kind, arg, phase)
        for layer in layers[:first]:
            layer.trainable = False
    if backbone is not None and phase.freeze_batch_norm and kind != "all":
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False
    return len(network.trainable_weights)


def _unfreeze_all(model):
    # Keras' `trainable` setter does not reach the layers inside a nested functional model.
    model.trainable = True
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _unfreeze_all(layer)
        layer.trainable = True


def _first_unfrozen(layers, kind, arg, phase):
    if kind == "last":
        return max(len(layers) - int(arg), 0)
    names = [layer.name for layer in layers]
    if arg not in names:
        raise CodapackError(f"phase `{phase.name}`: no layer named `{arg}` to unfreeze from; "
                            f"e.g. {', '.join(names[-5:])}")
    return names.index(arg)


def make_optimizer(phase, steps_per_epoch):
    """The phase's optimiser, with cosine decay over the phase's steps when asked.

    Args:
        phase: a `Phase`.
        steps_per_epoch: training steps in one epoch.

    Returns:
        A `keras.optimizers.Optimizer`.
    """
    rate = phase.learning_rate
    if phase.schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(phase.learning_rate, decay_steps=steps_per_epoch * phase.epochs,
                                                      alpha=phase.min_learning_rate / phase.learning_rate)
    # With `ema`, Keras averages the weights as it trains and writes the average into the network
    # when fit ends: a cheap ensemble along the trajectory.
    average = {"use_ema": True, "ema_momentum": phase.ema} if phase.ema else {}
    if phase.optimizer == "adam":
        return keras.optimizers.Adam(rate, **average)
    if phase.optimizer == "adamw":
        return keras.optimizers.AdamW(rate, weight_decay=phase.weight_decay or 1e-4, **average)
    if phase.optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=phase.momentum, nesterov=True, **average)
    return keras.optimizers.Lion(rate, weight_decay=phase.weight_decay or None, **average)


def compile_for(network, phase, steps_per_epoch, label_smoothing, run_eagerly=False):
    """Compile `network` for one phase: its optimiser, soft-label cross-entropy (plus the consistency
    term when the phase asks for it, see `consistency.py`), accuracy.

    A head trained on cached features runs a whole epoch per call: its steps are so small that
    Keras' per-step dispatch took most of the phase's time.
    """
    per_call = steps_per_epoch if network.name == CACHED_HEAD and not run_eagerly else 1
    network.compile(optimizer=make_optimizer(phase, steps_per_epoch),
                    loss=(ConsistencyLoss(phase.consistency, label_smoothing) if phase.consistency else
                          keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing)),
                    metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
                    run_eagerly=run_eagerly, jit_compile=False, steps_per_execution=per_call)


def steps_per_epoch(n_images, batch_size):
    return max(math.ceil(n_images / batch_size), 1)
