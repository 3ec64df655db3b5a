"""Feature extractors of the networks trained from scratch (U-Net classifier, multibranch CNN).

Ships in the submission zip beside `networks.py` (keras only). Each function maps a
preprocessed tensor to a feature map; `networks.py` adds the input, preprocessing and head.
"""

import keras

layers = keras.layers


def conv_bn(x, filters, kernel, name, strides=1, dilation=1):
    """Convolution, batch normalisation, ReLU."""
    x = layers.Conv2D(filters, kernel, strides=strides, dilation_rate=dilation, padding="same",
                      use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def unet_features(x, base_filters=64, depth=4):
    """U-Net: `depth` levels of two 3x3 convs and pooling (base_filters doubling per level),
    a bottleneck of base_filters * 2**depth, then transposed convolutions back up, each
    concatenated with the skip of its level and followed by two 3x3 convs.

    Args:
        x: preprocessed images; their sides must be multiples of 2**depth.
        base_filters: filters of the first level.
        depth: number of down-sampling levels.

    Returns:
        The full-resolution feature map of the expanding path.
    """
    skips = []
    for level in range(depth):
        width = base_filters * 2 ** level
        x = conv_bn(x, width, 3, f"down{level}a")
        x = conv_bn(x, width, 3, f"down{level}b")
        skips.append(x)
        x = layers.MaxPooling2D(name=f"down{level}_pool")(x)
    x = conv_bn(x, base_filters * 2 ** depth, 3, "bottleneck_a")
    x = conv_bn(x, base_filters * 2 ** depth, 3, "bottleneck_b")
    for level in reversed(range(depth)):
        width = base_filters * 2 ** level
        x = layers.Conv2DTranspose(width, 2, strides=2, padding="same", name=f"up{level}_transpose")(x)
        x = layers.Concatenate(name=f"up{level}_skip")([x, skips[level]])
        x = conv_bn(x, width, 3, f"up{level}a")
        x = conv_bn(x, width, 3, f"up{level}b")
    return x


def inception_block(x, filters, name):
    """Parallel 1x1, 3x3, dilated 3x3 (a 5x5 field) and pooled 1x1 branches, concatenated."""
    branch = max(filters // 4, 1)
    paths = [conv_bn(x, branch, 1, f"{name}_1x1"),
             conv_bn(conv_bn(x, branch, 1, f"{name}_3x3r"), branch, 3, f"{name}_3x3"),
             conv_bn(conv_bn(x, branch, 1, f"{name}_5x5r"), branch, 3, f"{name}_5x5", dilation=2)]
    pooled = layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    paths.append(conv_bn(pooled, filters - 3 * branch, 1, f"{name}_poolproj"))
    return layers.Concatenate(name=f"{name}_concat")(paths)


def depthwise_se_block(x, filters, se_ratio, name, strides=1):
    """Depthwise 3x3, squeeze-and-excitation re-weighting of channels, pointwise 1x1 projection."""
    x = layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    x = layers.Activation("relu", name=f"{name}_dw_relu")(x)
    channels = x.shape[-1]
    squeezed = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_squeeze")(x)
    squeezed = layers.Conv2D(max(int(channels * se_ratio), 1), 1, activation="relu", name=f"{name}_se_reduce")(squeezed)
    squeezed = layers.Conv2D(channels, 1, activation="sigmoid", name=f"{name}_se_expand")(squeezed)
    x = layers.Multiply(name=f"{name}_se_scale")([x, squeezed])
    return conv_bn(x, filters, 1, f"{name}_project")


def pyramid_pooling(x, bins, name="ppm"):
    """Pyramid pooling module: average-pool to each grid size, 1x1 conv, resize back, concatenate."""
    height, width, channels = x.shape[1:]
    branches = [x]
    for grid in bins:
        pooled = layers.AveragePooling2D(pool_size=(max(height // grid, 1), max(width // grid, 1)),
                                         name=f"{name}_pool{grid}")(x)
        pooled = conv_bn(pooled, max(channels // len(bins), 1), 1, f"{name}_reduce{grid}")
        branches.append(layers.Resizing(height, width, interpolation="bilinear", name=f"{name}_up{grid}")(pooled))
    return layers.Concatenate(name=f"{name}_concat")(branches)


def multibranch_features(x, filters=(32, 64, 128), pyramid_bins=(1, 2, 4), se_ratio=0.25):
    """Stem conv, then per stage an inception block and a strided depthwise SE block; a pyramid
    pooling module on the last feature map.

    Args:
        x: preprocessed images.
        filters: output filters of each stage.
        pyramid_bins: grid sizes of the pyramid pooling module.
        se_ratio: squeeze-and-excitation bottleneck as a fraction of the channels.

    Returns:
        The feature map after pyramid pooling.
    """
    x = conv_bn(x, filters[0], 3, "stem", strides=2)
    for i, width in enumerate(filters):
        x = inception_block(x, width, f"stage{i}_inception")
        x = depthwise_se_block(x, width, se_ratio, f"stage{i}_se", strides=2 if i < len(filters) - 1 else 1)
    return pyramid_pooling(x, pyramid_bins)
