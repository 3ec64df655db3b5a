"""Image corruptions at five severities, for estimating the score on a shifted hidden test set.

Each corruption maps a uint8 batch (n, H, W, 3) and a severity 1..5 to a
corrupted uint8 copy; randomness comes from the given generator, so a suite
run is reproducible. The kinds follow what teams met on the platform: sensor
noise, focus blur, compression, exposure, stain colour, debris, orientation
and foreign overlays.
"""

import numpy as np

SEVERITIES = (1, 2, 3, 4, 5)


def gaussian_noise(x, severity, rng):
    sigma = (4, 8, 16, 24, 36)[severity - 1]
    return _to_uint8(x + rng.normal(0, sigma, x.shape))


def gaussian_blur(x, severity, rng):
    import tensorflow as tf

    sigma = (0.6, 1.0, 1.5, 2.0, 3.0)[severity - 1]
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    channels = x.shape[-1]
    rows = np.tile(taps[:, None, None, None], (1, 1, channels, 1))
    cols = np.tile(taps[None, :, None, None], (1, 1, channels, 1))
    padded = np.pad(x.astype(np.float32), ((0, 0), (radius, radius), (radius, radius), (0, 0)), mode="reflect")
    out = tf.nn.depthwise_conv2d(padded, rows, [1, 1, 1, 1], "VALID")
    out = tf.nn.depthwise_conv2d(out, cols, [1, 1, 1, 1], "VALID")
    return _to_uint8(out.numpy())


def jpeg_compression(x, severity, rng):
    import tensorflow as tf

    quality = (75, 50, 30, 18, 10)[severity - 1]
    return np.stack([tf.io.decode_jpeg(tf.io.encode_jpeg(image, quality=quality)).numpy() for image in x])


def brightness_contrast(x, severity, rng):
    delta, factor = ((10, 0.9), (20, 0.8), (30, 0.7), (45, 0.6), (60, 0.5))[severity - 1]
    sign = rng.choice((-1, 1), size=(len(x), 1, 1, 1))
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return _to_uint8((x - mean) * factor + mean + sign * delta)


def stain_shift(x, severity, rng):
    strength = (0.05, 0.1, 0.15, 0.2, 0.3)[severity - 1]
    gains = 1 + rng.uniform(-strength, strength, size=(len(x), 1, 1, 3))
    offsets = rng.uniform(-strength, strength, size=(len(x), 1, 1, 3)) * 60
    return _to_uint8(x * gains + offsets)


def occlusion(x, severity, rng):
    count, fraction = ((1, 0.12), (1, 0.2), (2, 0.2), (3, 0.25), (4, 0.3))[severity - 1]
    out = x.copy()
    height, width = x.shape[1:3]
    side_y, side_x = max(1, int(fraction * height)), max(1, int(fraction * width))
    for i in range(len(x)):
        for _ in range(count):
            top, left = rng.integers(0, height - side_y + 1), rng.integers(0, width - side_x + 1)
            out[i, top:top + side_y, left:left + side_x] = rng.integers(0, 256, size=3)
    return out


def rotation(x, severity, rng):
    import tensorflow as tf

    degrees = (5, 10, 20, 30, 45)[severity - 1]
    angles = np.deg2rad(degrees) * rng.choice((-1, 1), size=len(x))
    height, width = x.shape[1:3]
    cy, cx = (height - 1) / 2, (width - 1) / 2
    cos, sin = np.cos(angles), np.sin(angles)
    # Output-to-input projective maps (a0 a1 a2 b0 b1 b2 c0 c1) rotating about the centre.
    transforms = np.stack([cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy,
                           np.zeros_like(cos), np.zeros_like(cos)], axis=1).astype(np.float32)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=x.astype(np.float32), transforms=transforms, output_shape=[height, width],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")
    return _to_uint8(out.numpy())


def blended_overlay(x, severity, rng):
    alpha = (0.1, 0.2, 0.3, 0.4, 0.5)[severity - 1]
    overlay = _foreign_picture(x.shape[1:], np.random.default_rng(1234))
    return _to_uint8((1 - alpha) * x + alpha * overlay[None])


def _foreign_picture(shape, rng):
    """A smooth, colourful picture with nothing of a cell in it, fixed for every run."""
    height, width, channels = shape
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    picture = np.zeros(shape)
    for c in range(channels):
        fy, fx, phase = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 2 * np.pi)
        picture[..., c] = 127.5 + 127.5 * np.sin(2 * np.pi * (fy * yy + fx * xx) + phase)
    return picture


def _to_uint8(x):
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


CORRUPTIONS = {
    "gaussian_noise": gaussian_noise,
    "gaussian_blur": gaussian_blur,
    "jpeg_compression": jpeg_compression,
    "brightness_contrast": brightness_contrast,
    "stain_shift": stain_shift,
    "occlusion": occlusion,
    "rotation": rotation,
    "blended_overlay": blended_overlay,
}


def corrupt(images, name, severity, seed=0):
    """A corrupted uint8 copy of `images` (never modified in place).

    Args:
        images: (n, H, W, 3) pixels 0..255, uint8 or float.
        name: a key of `CORRUPTIONS`.
        severity: 1 (mild) to 5 (severe).
        seed: seed of the random parts.
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"Unknown corruption `{name}`. Known: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"`severity` should be 1..5. Received: {severity}")
    batch = np.asarray(images)
    batch = batch if batch.dtype == np.uint8 else _to_uint8(batch)
    return CORRUPTIONS[name](batch, severity, np.random.default_rng([seed, severity, list(CORRUPTIONS).index(name)]))


def shifted_copy(images, seed=0):
    """A corrupted copy of a split where image i gets one corruption at one severity, cycling through all 40.

    One pass over this copy estimates the suite's mean ("shifted") accuracy at the
    cost of a single prediction of the split, which is what the harness can afford.
    """
    batch = np.asarray(images)
    out = np.empty(batch.shape, dtype=np.uint8)
    pairs = [(name, severity) for name in CORRUPTIONS for severity in SEVERITIES]
    for k, (name, severity) in enumerate(pairs):
        picked = np.arange(k, len(batch), len(pairs))
        if len(picked):
            out[picked] = corrupt(batch[picked], name, severity, seed=seed)
    return out
