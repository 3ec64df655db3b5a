"""What lies on or over the sample: occluders, bubbles, dust, scratches, a foreign picture.

Same contract as `camera.py`: (uint8 batch, severity 1..5, generator) -> float batch.
"""

import numpy as np


def occlusion(x, severity, rng):
    count, fraction = ((1, 0.12), (1, 0.2), (2, 0.2), (3, 0.25), (4, 0.3))[severity - 1]
    out = x.astype(np.float64)
    height, width = x.shape[1:3]
    side_y, side_x = max(1, int(fraction * height)), max(1, int(fraction * width))
    for i in range(len(x)):
        for _ in range(count):
            top, left = rng.integers(0, height - side_y + 1), rng.integers(0, width - side_x + 1)
            out[i, top:top + side_y, left:left + side_x] = rng.integers(0, 256, size=3)
    return out


def _grid(shape):
    height, width = shape
    return np.mgrid[0:height, 0:width] / max(height, width)


def bubbles(x, severity, rng):
    """Air bubbles under the cover slip: bright discs with a dark refracting rim."""
    count, largest = ((1, 0.08), (2, 0.1), (3, 0.13), (4, 0.16), (6, 0.2))[severity - 1]
    yy, xx = _grid(x.shape[1:3])
    out = x.astype(np.float64)
    for i in range(len(x)):
        for _ in range(count):
            cy, cx = rng.uniform(0, 1, 2)
            radius = rng.uniform(largest / 3, largest)
            distance = np.hypot(yy - cy, xx - cx) / radius
            rim = np.exp(-((distance - 1) / 0.12) ** 2)[..., None]
            inside = (distance < 1)[..., None]
            out[i] = np.where(inside, 0.6 * out[i] + 0.4 * 245, out[i])
            out[i] = out[i] * (1 - 0.7 * rim) + 40 * 0.7 * rim
    return out


def dust(x, severity, rng):
    """Dark specks of two sizes, slightly blurred, as dirt on the slide or the lens."""
    from scipy import ndimage

    count = (5, 12, 25, 45, 80)[severity - 1]
    n, height, width = x.shape[:3]
    optical_depth = np.zeros((n, height, width))
    for size in (0.6, 1.4):  # blur radius in pixels: fine and coarse specks
        impulses = np.zeros((n, height, width))
        for i in range(n):
            ys, xs = rng.integers(0, height, count // 2 + 1), rng.integers(0, width, count // 2 + 1)
            np.add.at(impulses[i], (ys, xs), rng.uniform(1.0, 3.0, len(ys)) * 2 * np.pi * size ** 2)
        optical_depth += ndimage.gaussian_filter(impulses, sigma=(0, size, size))
    return x * np.exp(-optical_depth)[..., None]


def scratches(x, severity, rng):
    """Thin bright or dark lines across the field."""
    count = (1, 2, 3, 5, 8)[severity - 1]
    yy, xx = _grid(x.shape[1:3])
    out = x.astype(np.float64)
    for i in range(len(x)):
        for _ in range(count):
            angle, offset = rng.uniform(0, np.pi), rng.uniform(-0.4, 0.4)
            distance = np.abs(np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5) - offset)
            line = np.exp(-(distance / 0.006) ** 2)[..., None]
            value = 250.0 if rng.random() < 0.5 else 20.0
            out[i] = out[i] * (1 - 0.8 * line) + value * 0.8 * line
    return out


def blended_overlay(x, severity, rng):
    alpha = (0.1, 0.2, 0.3, 0.4, 0.5)[severity - 1]
    overlay = _foreign_picture(x.shape[1:], np.random.default_rng(1234))
    return (1 - alpha) * x + alpha * overlay[None]


def _foreign_picture(shape, rng):
    """A smooth, colourful picture with nothing of a cell in it, fixed for every run."""
    height, width, channels = shape
    yy, xx = np.mgrid[0:height, 0:width] / max(height, width)
    picture = np.zeros(shape)
    for c in range(channels):
        fy, fx, phase = rng.uniform(1, 6), rng.uniform(1, 6), rng.uniform(0, 2 * np.pi)
        picture[..., c] = 127.5 + 127.5 * np.sin(2 * np.pi * (fy * yy + fx * xx) + phase)
    return picture
