"""What differs in the sample and the light: orientation, stain and colour, illumination.

Same contract as `camera.py`: (uint8 batch, severity 1..5, generator) -> float batch.
"""

import numpy as np


def rotation(x, severity, rng):
    from scipy import ndimage

    degrees = (5, 10, 20, 30, 45)[severity - 1]
    angles = degrees * rng.choice((-1, 1), size=len(x))
    return np.stack([ndimage.rotate(image.astype(np.float64), angle, axes=(0, 1), reshape=False, order=1,
                                    mode="reflect") for image, angle in zip(x, angles)])


def brightness_contrast(x, severity, rng):
    delta, factor = ((10, 0.9), (20, 0.8), (30, 0.7), (45, 0.6), (60, 0.5))[severity - 1]
    sign = rng.choice((-1, 1), size=(len(x), 1, 1, 1))
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) * factor + mean + sign * delta


def stain_shift(x, severity, rng):
    strength = (0.05, 0.1, 0.15, 0.2, 0.3)[severity - 1]
    gains = 1 + rng.uniform(-strength, strength, size=(len(x), 1, 1, 3))
    offsets = rng.uniform(-strength, strength, size=(len(x), 1, 1, 3)) * 60
    return x * gains + offsets


def saturation(x, severity, rng):
    """Desaturate or oversaturate: the distance of each pixel from its own grey, scaled."""
    factor = (0.7, 0.5, 0.3, 1.6, 2.0)[severity - 1]
    grey = x @ np.array([0.299, 0.587, 0.114])
    return grey[..., None] + (x - grey[..., None]) * factor


def vignetting(x, severity, rng):
    strength = (0.2, 0.35, 0.5, 0.65, 0.8)[severity - 1]
    height, width = x.shape[1:3]
    yy, xx = np.mgrid[0:height, 0:width]
    distance = np.hypot((yy - (height - 1) / 2) / height, (xx - (width - 1) / 2) / width) / np.sqrt(0.5)
    return x * (1 - strength * distance ** 2)[None, :, :, None]


def uneven_illumination(x, severity, rng):
    """A linear ramp of light across the field, in a random direction per image."""
    strength = (0.15, 0.25, 0.4, 0.55, 0.7)[severity - 1]
    height, width = x.shape[1:3]
    yy, xx = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None] - 0.5
    angles = rng.uniform(0, 2 * np.pi, len(x))
    ramp = np.cos(angles)[:, None, None] * xx + np.sin(angles)[:, None, None] * yy
    return x * (1 + strength * 2 * ramp)[..., None]


def haze(x, severity, rng):
    """Veiling light: the image pulled towards a bright, slightly tinted grey."""
    amount = (0.15, 0.25, 0.35, 0.5, 0.65)[severity - 1]
    tint = 215 + rng.uniform(-20, 20, size=(len(x), 1, 1, 3))
    return (1 - amount) * x + amount * tint
