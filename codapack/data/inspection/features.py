"""Image features for inspection: a weight-free colour layout, or an ImageNet backbone.

`pixels` averages each image over a coarse grid (12x12 cells by default). A
picture blended into many images dominates this low-frequency colour layout,
so blends of one background land close together while clean images vary; it
needs no pretrained weights. `mobilenet_v2` pools the last feature map of
Keras' MobileNetV2 loaded from a weights file (no download), the kind of
pretrained features teams used by hand. `auto` picks `mobilenet_v2` when a
weights file is given and `pixels` otherwise. `class_residuals` (a finer
layout minus each class's median, colour cast taken out, in robust units per pixel) feeds the search
for laid-over pictures in `overlays.py`, whatever the extractor.
"""

import dataclasses
import os

import numpy as np
from tqdm import tqdm

from codapack.errors import CodapackError, fail_for

EXTRACTORS = ("auto", "pixels", "mobilenet_v2")
DEFAULT_GRID = 12
RESIDUAL_GRID = 24
SPREAD_FLOOR = 1e-3  # in 0..1 units: a pixel no image moves still gives finite scores


@dataclasses.dataclass(frozen=True)
class Features:
    """One feature vector per image and how they were made.

    Args:
        values: float32 array (n, d).
        extractor: "pixels" or "mobilenet_v2".
        description: one line for the report (grid, weights file).
    """

    values: np.ndarray
    extractor: str
    description: str


def extract_features(images, extractor="auto", *, weights=None, grid=DEFAULT_GRID, batch_size=256):
    """Compute features for every image, in batches with a progress bar.

    Args:
        images: array (n, H, W, 3), uint8 or float 0..255.
        extractor: one of `EXTRACTORS`.
        weights: path of a MobileNetV2 no-top `.h5` weights file (for
            `mobilenet_v2`; with `auto` its presence selects `mobilenet_v2`).
        grid: cells per side of the `pixels` layout.
        batch_size: images per batch.

    Returns:
        A `Features`.

    Raises:
        CodapackError: unknown extractor, or `mobilenet_v2` without a readable
            weights file.
    """
    if extractor not in EXTRACTORS:
        raise CodapackError(f"`extractor` should be one of {', '.join(EXTRACTORS)}. Received: {extractor!r}")
    if extractor == "auto":
        extractor = "mobilenet_v2" if weights else "pixels"
    if extractor == "pixels":
        values = _batched(images, batch_size, "features (pixels)", lambda b: layout_features(b, grid))
        return Features(values, "pixels", f"pixels: mean colour over a {grid}x{grid} grid, no pretrained weights")
    if not weights:
        raise CodapackError("the `mobilenet_v2` extractor needs a weights file: pass --weights PATH "
                            "(a MobileNetV2 no-top .h5 file)")
    if not os.path.isfile(weights):
        raise fail_for(weights, "no such weights file")
    try:
        model = _mobilenet_v2(images.shape[1:], weights)
    except (ValueError, OSError) as exc:
        raise fail_for(weights, f"cannot be loaded as MobileNetV2 no-top weights ({exc})") from None
    values = _batched(images, batch_size, "features (mobilenet_v2)",
                      lambda b: model.predict_on_batch(np.asarray(b, dtype=np.float32)))
    return Features(values, "mobilenet_v2",
                    f"mobilenet_v2: ImageNet MobileNetV2, global-average-pooled last feature map, "
                    f"weights {os.path.basename(weights)}")


def layout_features(images, grid=DEFAULT_GRID):
    """Mean colour of each cell of a `grid` x `grid` partition, scaled to 0..1.

    Args:
        images: array (n, H, W, C) with H, W >= grid.
        grid: cells per side; cells differ by at most one pixel when H or W is
            not a multiple of `grid`.

    Returns:
        float32 array (n, grid * grid * C).
    """
    images = np.asarray(images, dtype=np.float32)
    n, height, width, _ = images.shape
    grid = min(grid, height, width)
    rows = (np.arange(grid) * height) // grid
    cols = (np.arange(grid) * width) // grid
    sums = np.add.reduceat(np.add.reduceat(images, rows, axis=1), cols, axis=2)
    counts = np.diff(np.append(rows, height))[:, None] * np.diff(np.append(cols, width))[None, :]
    return (sums / counts[None, :, :, None] / 255.0).reshape(n, -1).astype(np.float32)


def class_residuals(images, labels, num_classes, grid=RESIDUAL_GRID):
    """Each image's colour layout minus its class's median layout, cast taken out, per pixel in robust units.

    The class median takes away what tells classes apart. A stain or light
    that differs between slides moves a whole image's colour, more or less in
    proportion to it: per image and channel, the part of the residual that is
    a constant plus a multiple of the class median is taken out, so such a
    natural cast forms no group. A laid-over picture keeps its spatial pattern
    (a blend also dims the cell, which is such a multiple and goes too).
    Dividing each pixel by its robust spread (scaled MAD over the data) lets a
    pattern in a usually quiet place (the pale background around a cell)
    count as much as one where cells always vary. Contaminated images carry
    random labels or are a minority of their class, so the medians stay those
    of clean images.

    Args:
        images: array (n, H, W, 3), 0..255.
        labels: int array (n,).
        num_classes: K.
        grid: cells per side of the layout (capped at the image size).

    Returns:
        float32 array (n, grid * grid * 3).
    """
    layout = layout_features(images, grid)
    medians = np.empty_like(layout)
    for k in range(num_classes):
        members = labels == k
        if members.any():
            medians[members] = np.median(layout[members], axis=0)
    residuals = _without_cast(layout - medians, medians)
    spread = 1.4826 * np.median(np.abs(residuals), axis=0)
    return residuals / (spread + SPREAD_FLOOR)


def _without_cast(residuals, medians):
    """Residuals minus their least-squares fit by a + b * median, per image and channel."""
    n = len(residuals)
    r = residuals.reshape(n, -1, 3).copy()
    m = medians.reshape(n, -1, 3)
    m = m - m.mean(axis=1, keepdims=True)
    slope = (m * r).sum(axis=1) / np.maximum((m * m).sum(axis=1), 1e-9)
    r -= r.mean(axis=1, keepdims=True) + slope[:, None, :] * m
    return r.reshape(n, -1)


def centred_unit(features):
    """Features minus their mean, each row scaled to unit length (for cosine similarity)."""
    centred = features - features.mean(axis=0)
    return centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)


def _batched(images, batch_size, desc, fn):
    parts = [fn(images[start:start + batch_size])
             for start in tqdm(range(0, len(images), batch_size), desc=desc, unit="batch", leave=False)]
    return np.concatenate(parts).astype(np.float32)


def _mobilenet_v2(input_shape, weights):
    """The registry's MobileNetV2 (its own preprocessing inside) up to its pooled features."""
    import keras

    from codapack.submission.networks import build_network

    network = build_network("mobilenet_v2", tuple(input_shape), 1, {"dropout": 0.0}, weights=weights)
    return keras.Model(network.input, network.get_layer("head_pool").output)
