"""Network builders shared by training and by the shipped submission.

This file ships inside every submission zip next to `model.py`, with its
siblings `applications.py` and `scratch_networks.py`, so it imports only what
the platform has (numpy, tensorflow, keras) and uses only layers that exist in
the platform's Keras (3.4.1). Weights travel as `.weights.h5` and the network
is rebuilt here from its name and options: a `.keras` file saved by a newer
Keras does not load in an older one, while rebuilt code does.

Each network takes raw pixels (float32, 0..255) and does its own
preprocessing as its first layers (resizing up to its minimum input size,
then the scaling its weights expect), so preprocessing can never differ
between training and the platform.

Layer names are a contract with the trainer: a pretrained backbone is one
nested model named `backbone`; the classification head's layers start with
`head_`; the classifier is `probabilities`.
"""

import dataclasses
import importlib.util
import math
import os
import sys

import keras

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_sibling(filename):
    """Import a module shipped beside this file, whatever name this file was imported under."""
    name = f"codapack_submission_{filename[:-3]}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, filename))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]


applications = _load_sibling("applications.py")
scratch_networks = _load_sibling("scratch_networks.py")

# Preprocessing modes: what the first layers do to 0..255 pixels, in words.
PREPROCESSING = {
    "tf": "pixels / 127.5 - 1 (-1..1)",
    "caffe": "RGB to BGR, ImageNet channel means subtracted (caffe)",
    "torch": "pixels / 255, ImageNet mean and std (torch)",
    "builtin": "inside the backbone (expects 0..255)",
    "unit": "pixels / 255",
}


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Everything known about one registry entry; the trainer, `codapack models`, inspection and
    the runtime all read it here.

    Args:
        name: the architecture name used in configs.
        builder: builds the `keras.Model` from (input_shape, num_classes, **options).
        family: the family of networks it belongs to.
        mode: its preprocessing mode, a key of `PREPROCESSING`.
        min_size: smallest side the network accepts; smaller inputs are resized up inside.
        pretrained: whether Keras publishes ImageNet weights for it.
        weight_files: glob patterns of its no-top ImageNet weight files.
        note: what its preprocessing adds to the mode's, in words.
    """

    name: str
    builder: object
    family: str
    mode: str
    min_size: int = 1
    pretrained: bool = False
    weight_files: tuple = ()
    note: str = ""

    @property
    def preprocessing(self):
        """What the first layers do to the pixels, in words."""
        return PREPROCESSING[self.mode] + (f"; {self.note}" if self.note else "")

    @property
    def mean_std(self):
        """(mean, std) per channel the weights expect, on the scale the mode gives; None for none."""
        if self.mode == "torch":
            return applications.IMAGENET_MEAN, applications.IMAGENET_STD
        if self.mode == "caffe":
            return applications.CAFFE_MEAN_BGR, (1.0, 1.0, 1.0)
        return None


ARCHITECTURES = {}


def register(name, mode, family, **fields):
    """Register the decorated builder as `name`, with the `NetworkConfig` fields given."""

    def wrap(builder):
        ARCHITECTURES[name] = NetworkConfig(name, builder, family, mode, **fields)
        return builder

    return wrap


def build_network(architecture, input_shape, num_classes, options=None, weights=None):
    """Build a network by name, ready for `load_weights`.

    Args:
        architecture: a name registered in `ARCHITECTURES`.
        input_shape: shape of one image, e.g. (96, 96, 3).
        num_classes: number of output probabilities.
        options: keyword arguments of the builder.
        weights: initial backbone weights: None (random), "imagenet" (Keras
            downloads or finds them in its cache) or the path of a weights file.
            The shipped runtime always passes None and loads the trained weights.

    Returns:
        A `keras.Model` mapping float32 pixels 0..255 to class probabilities.

    Raises:
        ValueError: unknown architecture or option, or weights for a network without a backbone.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture `{architecture}`. Known: {sorted(ARCHITECTURES)}")
    config = ARCHITECTURES[architecture]
    if weights is not None and not config.pretrained:
        raise ValueError(f"`{architecture}` has no pretrained backbone; its weights must be None. Received: {weights!r}")
    extra = {"weights": weights} if config.pretrained else {}
    return config.builder(tuple(input_shape), int(num_classes), **(options or {}), **extra)


class ReverseChannels(keras.layers.Layer):
    """RGB to BGR (or back): the channel order caffe-style weights expect."""

    def call(self, inputs):
        return keras.ops.flip(inputs, axis=-1)


class FlatField(keras.layers.Layer):
    """Divide an image by a smooth estimate of its illumination, as microscopists' flat-field correction does.

    The estimate is the image's brightness (the mean of its channels) averaged over
    `window` x `window` tiles and interpolated back bilinearly. Light that falls off
    towards the edges or across the field multiplies every channel by a slowly varying
    factor; dividing by the estimate undoes it while keeping the ratios between
    channels (the stain's colour) and all detail finer than the window.

    Args:
        window: tile side in pixels; it should exceed the detail the classes differ by.
        epsilon: added to the estimate (pixels in 0..1), so nearly black tiles are not blown up.
    """

    def __init__(self, window=16, epsilon=0.05, **kwargs):
        super().__init__(**kwargs)
        self.window, self.epsilon = int(window), float(epsilon)

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        brightness = keras.ops.mean(inputs, axis=-1, keepdims=True)
        tiles = keras.ops.average_pool(brightness, self.window, strides=self.window, padding="same")
        field = keras.ops.image.resize(tiles, (height, width), interpolation="bilinear")
        return inputs / (field + self.epsilon)

    def get_config(self):
        return {**super().get_config(), "window": self.window, "epsilon": self.epsilon}


def preprocess(x, mode, size=None):
    """The first layers of a network: resize up to `size`, then scale as its weights expect.

    Args:
        x: the pixel tensor, float32 0..255.
        mode: "tf" (-1..1), "caffe" (BGR, ImageNet means subtracted), "torch"
            (0..1, ImageNet mean and std), "unit" (0..1) or "builtin" (the
            backbone rescales inside itself).
        size: (height, width) to resize to, or None to keep the input size.

    Returns:
        The preprocessed tensor.
    """
    if size is not None and tuple(x.shape[1:3]) != tuple(size):
        x = keras.layers.Resizing(size[0], size[1], interpolation="bilinear", name="pre_resize")(x)
    if mode == "tf":
        return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="pre_scale")(x)
    if mode == "unit":
        return keras.layers.Rescaling(1.0 / 255.0, name="pre_scale")(x)
    if mode == "caffe":
        x = ReverseChannels(name="pre_bgr")(x)
        return keras.layers.Normalization(mean=list(applications.CAFFE_MEAN_BGR), variance=[1.0, 1.0, 1.0],
                                          name="pre_mean")(x)
    if mode == "torch":
        x = keras.layers.Rescaling(1.0 / 255.0, name="pre_scale")(x)
        return keras.layers.Normalization(mean=list(applications.IMAGENET_MEAN),
                                          variance=[s * s for s in applications.IMAGENET_STD], name="pre_norm")(x)
    if mode == "builtin":
        return x
    raise ValueError(f"Unknown preprocessing mode `{mode}`")


def at_least(input_shape, min_size, image_size=0):
    """The (height, width) a network runs at: `image_size` if given, never below `min_size`."""
    height, width = (image_size, image_size) if image_size else input_shape[:2]
    return max(height, min_size), max(width, min_size)


def classification_head(x, num_classes, dense=(), batch_norm=False, dropout=0.0, activation="relu"):
    """Dense layers (each: dense, optional batch norm, activation, dropout), then softmax.

    Args:
        x: the pooled features, shape (batch, channels).
        num_classes: number of classes.
        dense: units of each hidden dense layer, e.g. (832, 320).
        batch_norm: batch normalisation after each hidden dense layer.
        dropout: one rate for every hidden layer, or one rate per hidden layer
            (e.g. (0.3, 0.1)); with no hidden layer, a single rate before the classifier.
        activation: activation of the hidden layers.

    Returns:
        The probabilities tensor.
    """
    dense = list(dense)
    rates = list(dropout) if isinstance(dropout, (list, tuple)) else [dropout] * max(len(dense), 1)
    if len(rates) != max(len(dense), 1):
        raise ValueError(f"dropout should give one rate per dense layer ({len(dense)}). Received: {dropout}")
    for i, units in enumerate(dense):
        x = keras.layers.Dense(units, use_bias=not batch_norm, name=f"head_dense{i}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(name=f"head_bn{i}")(x)
        x = keras.layers.Activation(activation, name=f"head_act{i}")(x)
        if rates[i]:
            x = keras.layers.Dropout(rates[i], name=f"head_dropout{i}")(x)
    if not dense and rates[0]:
        x = keras.layers.Dropout(rates[0], name="head_dropout")(x)
    return keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)


def _application_builder(name, spec):
    """A registered builder for one keras.applications backbone (see applications.py)."""

    def build(input_shape, num_classes, weights=None, image_size=0, pooling="avg", dense=(),
              batch_norm=False, dropout=0.2, activation="relu", backbone_args=None):
        inputs = keras.Input(shape=input_shape, name="pixels")
        size = at_least(input_shape, spec.min_size, image_size)
        x = preprocess(inputs, spec.preprocessing, size)
        backbone = applications.make_backbone(spec, (*size, input_shape[2]), weights, backbone_args)
        x = backbone(x)
        pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
        x = pool(name="head_pool")(x)
        outputs = classification_head(x, num_classes, dense, batch_norm, dropout, activation)
        return keras.Model(inputs, outputs, name=name)

    build.__doc__ = (f"keras.applications.{spec.keras_name} without its top, then a configurable head.\n\n"
                     "Options: image_size (0: the input size), pooling (avg|max), dense, batch_norm, dropout,\n"
                     "activation, backbone_args (extra keyword arguments of the application, e.g. alpha).")
    return build


for _name, _spec in applications.APPLICATIONS.items():
    register(_name, _spec.preprocessing, _spec.family, min_size=_spec.min_size, pretrained=True,
             weight_files=_spec.weight_files)(_application_builder(_name, _spec))


@register("baseline_cnn", "unit", "scratch")
def baseline_cnn(input_shape, num_classes, filters=(32, 64, 128, 256), dense=(128,), dropout=0.3,
                 stem_stride=1, bn_momentum=0.9, convs=None, standardize=False, flat_field=0):
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
        convs: convolutions per block, one number per block (default one each); a second
            convolution in the low-resolution blocks adds capacity where it costs least.
        standardize: after scaling, bring each image's channels to mean 0 and variance 1
            (LayerNormalization over height and width). A change of brightness, contrast,
            haze or per-channel stain gain, an affine map of a channel's values, is then
            undone before the first convolution (up to the epsilon of 1e-3, which keeps
            nearly flat images from having their noise blown up).
        flat_field: before standardising, divide by the illumination estimated over tiles of
            this many pixels (`FlatField`); 0 is off. Uneven light and vignetting, a smooth
            factor across the field that standardising cannot undo, then cancel out too.

    Returns:
        An uncompiled `keras.Model`.
    """
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = keras.layers.Rescaling(1.0 / 255.0, name="scale_0_1")(inputs)
    if flat_field:
        x = FlatField(flat_field, name="flat_field")(x)
    if standardize:
        x = keras.layers.LayerNormalization(axis=(1, 2), center=False, scale=False, epsilon=1e-3,
                                            name="standardize")(x)
    convs = list(convs or [1] * len(filters))
    if len(convs) != len(filters) or min(convs) < 1:
        raise ValueError(f"`convs` should hold one count >= 1 per block ({len(filters)}). Received: convs={convs}")
    for i, (width, count) in enumerate(zip(filters, convs)):
        for j in range(count):
            suffix = f"{i}" if j == 0 else f"{i}_{j}"  # the first keeps the names older weights files use
            stride = stem_stride if i == 0 and j == 0 else 1
            x = keras.layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False,
                                    name=f"conv{suffix}")(x)
            x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"bn{suffix}")(x)
            x = keras.layers.Activation("relu", name=f"relu{suffix}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    for i, units in enumerate(dense):
        x = keras.layers.Dropout(dropout, name=f"dropout{i}")(x)
        x = keras.layers.Dense(units, activation="relu", name=f"dense{i}")(x)
    x = keras.layers.Dropout(dropout, name="dropout_head")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="baseline_cnn")


@register("unet_classifier", "unit", "scratch", note="resized up to a multiple of 2**depth")
def unet_classifier(input_shape, num_classes, base_filters=64, depth=4, dense=(), batch_norm=False,
                    dropout=0.3, activation="relu"):
    """A U-Net used as a classifier: contracting path, bottleneck, expanding path with skips, pooling.

    Args:
        input_shape: shape of one image.
        num_classes: number of classes.
        base_filters: filters of the first level, doubled per level (64..512, bottleneck 1024).
        depth: number of down-sampling levels.
        dense, batch_norm, dropout, activation: the classification head (see `classification_head`).

    Returns:
        An uncompiled `keras.Model`.
    """
    inputs = keras.Input(shape=input_shape, name="pixels")
    step = 2 ** depth
    size = tuple(int(math.ceil(side / step) * step) for side in input_shape[:2])
    x = preprocess(inputs, "unit", size)
    x = scratch_networks.unet_features(x, base_filters, depth)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    outputs = classification_head(x, num_classes, dense, batch_norm, dropout, activation)
    return keras.Model(inputs, outputs, name="unet_classifier")


@register("multibranch_cnn", "unit", "scratch")
def multibranch_cnn(input_shape, num_classes, filters=(32, 64, 128), pyramid_bins=(1, 2, 4), se_ratio=0.25,
                    dense=(128,), batch_norm=True, dropout=0.3, activation="relu"):
    """A lightweight CNN: inception-style multi-scale blocks, depthwise squeeze-and-excitation
    blocks and a pyramid pooling module.

    Args:
        input_shape: shape of one image.
        num_classes: number of classes.
        filters: output filters of each stage; each stage halves the resolution.
        pyramid_bins: grid sizes of the pyramid pooling module.
        se_ratio: squeeze-and-excitation bottleneck as a fraction of the channels.
        dense, batch_norm, dropout, activation: the classification head (see `classification_head`).

    Returns:
        An uncompiled `keras.Model`.
    """
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = preprocess(inputs, "unit")
    x = scratch_networks.multibranch_features(x, filters, pyramid_bins, se_ratio)
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(x)
    outputs = classification_head(x, num_classes, dense, batch_norm, dropout, activation)
    return keras.Model(inputs, outputs, name="multibranch_cnn")
