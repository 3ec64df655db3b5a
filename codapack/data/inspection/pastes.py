"""Opaque pastes: a group whose members share a region pixel for pixel.

The overlay search (`overlays.py`) finds a paste as a direction of the class
residuals, like a blend, and admits members by their score along it. A clean
image that happens to look a little like the pasted region can score close to
the weakest members there. A paste is sharper than a direction: every member
carries the same pixels in the same place, while under a blend the cell still
shows through and differs from image to image. Where a group's members agree on
a region far more closely than images agree in general, that region decides:
a member whose pixels there do not match the others' is not one, and an image
outside the group whose pixels there match is one.
"""

import numpy as np

AGREEMENT = 0.1  # a pasted pixel: the members' spread there is at most this share of the images'
MIN_REGION = 0.02  # share of the image a pasted region needs, so that a few agreeing pixels decide nothing
MATCH = 0.5  # a member's median deviation from the others over the region, in the images' spread there
SPREAD_SAMPLE = 2000
QUANTUM = 1.0  # one grey level: identical pixels may still differ by rounding


def pixel_spread(images, seed=0):
    """Robust spread of each pixel over the images (a sample of them), channels averaged, (H, W)."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(images), min(SPREAD_SAMPLE, len(images)), replace=False))
    return np.maximum(_median_and_deviation(np.asarray(images[rows], dtype=np.float32))[1], QUANTUM)


def pasted_region(images, members, spread):
    """The pixels on which the members agree far more than images do, or None when too few.

    Args:
        images: array (n, H, W, 3).
        members: indices of one group's members.
        spread: `pixel_spread` of the images.
    """
    return _region_and_reference(images, members, spread)[0]


def paste_members(images, members, spread, chunk=1024):
    """(every image whose pixels match the group's pasted region, the region), or None when it has none.

    An image matches when its median absolute deviation from the members' median
    image over the region is within `MATCH` of the images' spread there. Members
    that do not match leave the group; images outside it that match join it.

    Args:
        images: array (n, H, W, 3).
        members: indices of one group's members.
        spread: `pixel_spread` of the images.
        chunk: images compared at a time.
    """
    region, median = _region_and_reference(images, members, spread)
    if region is None:
        return None
    reference = median[region]
    limit = MATCH * np.median(spread[region])
    matched = []
    for start in range(0, len(images), chunk):
        pixels = np.asarray(images[start:start + chunk], dtype=np.float32)[:, region]
        deviation = np.median(np.abs(pixels - reference).mean(axis=-1), axis=1)
        matched.append(start + np.flatnonzero(deviation <= limit))
    return np.concatenate(matched), region


def _region_and_reference(images, members, spread):
    """(the pasted region or None, the members' median image), from one pass over the members."""
    median, deviation = _median_and_deviation(np.asarray(images[members], dtype=np.float32))
    region = np.maximum(deviation, QUANTUM) <= AGREEMENT * spread + QUANTUM
    return (region if region.mean() >= MIN_REGION else None), median


def _median_and_deviation(stack):
    """Per pixel, the median over the first axis, and 1.4826 times the median absolute deviation, channels averaged."""
    median = np.median(stack, axis=0)
    return median, 1.4826 * np.median(np.abs(stack - median), axis=0).mean(axis=-1)
