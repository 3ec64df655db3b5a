"""The keras.applications backbones of the registry, without their ImageNet classifier.

Ships in the submission zip beside `networks.py` (standard library and keras only).
`networks.py` registers one builder per entry of `APPLICATIONS`; this module only
knows how to create the backbone itself.
"""

import collections

import keras

# weight_files: glob patterns of the no-top ImageNet weights Keras caches under $KERAS_HOME/models;
# a local weights folder is searched with the same patterns.
Application = collections.namedtuple("Application", "keras_name family preprocessing min_size kwargs weight_files")

# Keras' ImageNet statistics (0..1 pixels, RGB): the "torch" mode and EfficientNet's Normalization layer.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The "caffe" mode's channel means, BGR, 0..255 pixels (keras.applications.imagenet_utils).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)

# preprocessing: what the weights expect (keras.applications.<module>.preprocess_input's mode);
# "builtin" when the application rescales 0..255 pixels itself. min_size: Keras' own minimum.
APPLICATIONS = {
    "mobilenet": Application("MobileNet", "mobilenet", "tf", 32, {}, ("mobilenet_1_0_*no_top*.h5",)),
    "mobilenet_v2": Application("MobileNetV2", "mobilenet", "tf", 32, {}, ("mobilenet_v2*no_top*.h5",)),
    "mobilenet_v3_small": Application("MobileNetV3Small", "mobilenet", "builtin", 32,
                                      {"include_preprocessing": True}, ("*mobilenet_v3_small*no_top*.h5",)),
    "mobilenet_v3_large": Application("MobileNetV3Large", "mobilenet", "builtin", 32,
                                      {"include_preprocessing": True}, ("*mobilenet_v3_large*no_top*.h5",)),
    "vgg16": Application("VGG16", "vgg", "caffe", 32, {}, ("vgg16*notop*.h5",)),
    "vgg19": Application("VGG19", "vgg", "caffe", 32, {}, ("vgg19*notop*.h5",)),
    "inception_v3": Application("InceptionV3", "inception", "tf", 75, {}, ("inception_v3*notop*.h5",)),
    "resnet50": Application("ResNet50", "resnet", "caffe", 32, {}, ("resnet50*notop*.h5",)),
    **{f"efficientnet_b{i}": Application(f"EfficientNetB{i}", "efficientnet", "builtin", 32, {},
                                         (f"efficientnetb{i}_notop.h5",))
       for i in range(5)},
    **{f"efficientnet_v2_{v.lower()}": Application(f"EfficientNetV2{v}", "efficientnet_v2", "builtin", 32,
                                                   {"include_preprocessing": True},
                                                   (f"efficientnetv2-{v.lower()}_notop.h5",))
       for v in ("B0", "S", "M", "L")},
    "convnext_tiny": Application("ConvNeXtTiny", "convnext", "builtin", 32, {"include_preprocessing": True},
                                 ("convnext_tiny_notop.h5",)),
}


def make_backbone(spec, input_shape, weights=None, backbone_args=None):
    """Create an application without its top, named `backbone`.

    Args:
        spec: an `Application` of `APPLICATIONS`.
        input_shape: the (height, width, channels) it runs at (already resized).
        weights: None, "imagenet" or the path of a weights file.
        backbone_args: extra keyword arguments of the application (e.g. alpha).

    Returns:
        A `keras.Model` from preprocessed images to feature maps.
    """
    factory = getattr(keras.applications, spec.keras_name)
    kwargs = dict(include_top=False, input_shape=tuple(input_shape), **spec.kwargs, **(backbone_args or {}))
    if spec.family != "efficientnet":
        backbone = factory(weights=weights, **kwargs)
    else:
        # EfficientNet B0-B7 adds a layer when weights == "imagenet" (keras issue 49930), so the
        # network rebuilt with weights=None would compute something else. Build without it and copy
        # the weights; `_fix_efficientnet_normalization` then makes the maths what the weights expect.
        backbone = factory(weights=None, **kwargs)
        if weights is not None:
            backbone.set_weights(factory(weights=weights, **kwargs).get_weights())
        _fix_efficientnet_normalization(backbone)
    backbone.name = "backbone"
    return backbone


def _fix_efficientnet_normalization(backbone):
    """Set EfficientNet's input Normalization to the ImageNet mean and variance.

    Its pretrained weights store the standard deviation where the variance belongs; the
    correct statistics give the same result as Keras' imagenet build, with or without weights.
    """
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.Normalization):
            layer.adapt_mean.assign(keras.ops.reshape(keras.ops.array(IMAGENET_MEAN), layer.adapt_mean.shape))
            layer.adapt_variance.assign(keras.ops.reshape(keras.ops.array([s * s for s in IMAGENET_STD]),
                                                          layer.adapt_variance.shape))
            layer.finalize_state()
            return
    raise ValueError(f"{backbone.name}: no Normalization layer found")
