"""Network builders shared by training and by the shipped submission.

This file ships inside every submission zip next to `model.py`, so it imports
only what the platform has (numpy, tensorflow, keras) and uses only layers
that exist in the platform's Keras (3.4.1). Weights travel as `.weights.h5`
and the network is rebuilt here from its name and options: a `.keras` file
saved by a newer Keras does not load in an older one, while rebuilt code does.

Each network takes raw pixels (float32, 0..255) and does its own
preprocessing as its first layers, so preprocessing can never differ between
training and the platform.
"""

import keras

ARCHITECTURES = {}


def register(name, preprocessing):
    """Register a builder under `name`, recording the preprocessing it applies."""

    def wrap(builder):
        builder.preprocessing = preprocessing
        ARCHITECTURES[name] = builder
        return builder

    return wrap


def build_network(architecture, input_shape, num_classes, options=None):
    """Build a network by name, ready for `load_weights`.

    Args:
        architecture: a name registered in `ARCHITECTURES`.
        input_shape: shape of one image, e.g. (96, 96, 3).
        num_classes: number of output probabilities.
        options: keyword arguments of the builder.

    Returns:
        A `keras.Model` mapping float32 pixels 0..255 to class probabilities.

    Raises:
        ValueError: unknown architecture or option.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture `{architecture}`. Known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[architecture](tuple(input_shape), int(num_classes), **(options or {}))


@register("baseline_cnn", preprocessing="pixels / 255")
def baseline_cnn(input_shape, num_classes, filters=(32, 64, 128, 256), dense=(128,), dropout=0.3,
                 stem_stride=1, bn_momentum=0.9):
    """A plain VGG-style CNN: blocks of conv, batch norm, ReLU and max pooling.

    Args:
        input_shape: shape of one image.
        num_classes: number of classes.
        filters: filters of each block; each block halves the resolution.
        dense: units of the dense layers before the classifier.
        dropout: dropout rate before each dense layer and the classifier.
        stem_stride: stride of the first convolution (2 quarters the cost).
        bn_momentum: momentum of the batch-norm moving statistics; Keras'
            0.99 leaves them unsettled after the few hundred steps of a short run.

    Returns:
        An uncompiled `keras.Model`.
    """
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = keras.layers.Rescaling(1.0 / 255.0, name="scale_0_1")(inputs)
    for i, width in enumerate(filters):
        stride = stem_stride if i == 0 else 1
        x = keras.layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"relu{i}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    for i, units in enumerate(dense):
        x = keras.layers.Dropout(dropout, name=f"dropout{i}")(x)
        x = keras.layers.Dense(units, activation="relu", name=f"dense{i}")(x)
    x = keras.layers.Dropout(dropout, name="dropout_head")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="baseline_cnn")
