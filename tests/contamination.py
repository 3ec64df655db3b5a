"""Contaminated data sets for testing and benchmarking contaminant detection.

A contaminant is a picture laid over some images of a clean file: blended in
(background weight 0.25..0.6) or pasted opaque over part of the image (20..100 %
of its area). A source is one picture, made here without any download:

    photo    a procedural "photograph": 1/f noise, a sky-to-ground gradient, blobs
    texture  a synthetic texture: oriented gratings, a checkerboard or cells
    sticker  text and a logo drawn with PIL on a coloured card

`contaminate` takes clean images (the procedural cells of `codapack.synthetic`
in unit tests, real cells in the benchmark) and a `Setting`, and returns the
mixed file with its true mask, so a detector can be scored with precision and
recall (`precision_recall`). Contaminated images get random labels, as in the competition, unless
the setting ties the source to one class.
"""

import dataclasses

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy.ndimage import gaussian_filter

from codapack.synthetic import make_images

SOURCE_KINDS = ("photo", "texture", "sticker")
WORDS = ("SALE", "LOL", "meme", "NEW!", "2024", "cat", "OK", "www")


@dataclasses.dataclass(frozen=True)
class Setting:
    """One way to contaminate a file.

    Args:
        name: id used in test names and tables.
        sources: source kinds, one per source (1..5 entries).
        rate: fraction of the file that is contaminated, split evenly among sources.
        mode: "blend" or "paste".
        weight: (low, high) background weight of a blend, drawn per image.
        cover: (low, high) fraction of the image area a paste covers, drawn per source.
        tied_class: when set, every contaminated image is of this class and keeps its label.
        seed: random seed of the sources, the picks and the weights.
    """

    name: str
    sources: tuple = ("photo",)
    rate: float = 0.05
    mode: str = "blend"
    weight: tuple = (0.25, 0.6)
    cover: tuple = (0.2, 1.0)
    tied_class: int = None
    seed: int = 0


def make_cells(n, size, num_classes, seed=0):
    """Clean cell-like images with soft edges and pale red cells around, like a blood smear.

    `codapack.synthetic` draws hard-edged disks on flat noise; blurring them and
    scattering faint rings behind gives the smooth, continuous variation of real
    micrographs, so a detector is not tested on a pixel-level artefact.

    Returns:
        (images uint8 (n, size, size, 3), labels int (n,)).
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % num_classes)
    images = make_images(labels, (size, size, 3), seed + 1).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for image in images:
        for _ in range(rng.integers(2, 6)):
            cy, cx, radius = rng.uniform(0, size, 2).tolist() + [rng.uniform(0.08, 0.14) * size]
            ring = np.abs(np.hypot(yy - cy, xx - cx) - radius) < 0.06 * size
            cell_free = image.mean(-1) > 180
            image[ring & cell_free] -= rng.uniform(15, 35) * np.array([0.3, 1.0, 0.8])
    images = gaussian_filter(images, sigma=(0, size / 40, size / 40, 0))
    images *= rng.uniform(0.92, 1.05, (n, 1, 1, 3))  # stain and light differ between slides
    return np.clip(images, 0, 255).astype(np.uint8), labels


def make_source(kind, shape, rng):
    """One source picture, float32 (H, W, 3) in 0..255."""
    height, width, _ = shape
    if kind == "photo":
        return _photo(height, width, rng)
    if kind == "texture":
        return _texture(height, width, rng)
    if kind == "sticker":
        return _sticker(height, width, rng)
    raise ValueError(f"`kind` should be one of {SOURCE_KINDS}. Received: {kind!r}")


def contaminate(images, labels, num_classes, setting):
    """Lay the setting's sources over a random subset of `images`.

    Args:
        images: uint8 (n, H, W, 3) clean images (not modified).
        labels: int (n,) or (n, 1) their labels.
        num_classes: K.
        setting: a `Setting`.

    Returns:
        (images uint8 (n, H, W, 3), labels uint8 (n, 1), source int (n,)): source
        is -1 for clean images and the source's number for contaminated ones.
    """
    rng = np.random.default_rng(setting.seed)
    images, labels = images.copy(), np.asarray(labels).reshape(-1).astype(np.uint8).copy()
    source = np.full(len(images), -1)
    pool = np.flatnonzero(labels == setting.tied_class) if setting.tied_class is not None else np.arange(len(images))
    count = int(round(setting.rate * len(images)))
    picks = rng.choice(pool, min(count, len(pool)), replace=False)
    for number, chunk in enumerate(np.array_split(picks, len(setting.sources))):
        picture = make_source(setting.sources[number], images.shape[1:], rng)
        cells = images[chunk].astype(np.float32)
        if setting.mode == "blend":
            weight = rng.uniform(*setting.weight, (len(chunk), 1, 1, 1))
            mixed = (1 - weight) * cells + weight * picture
        else:
            mixed = _paste(cells, picture, rng.uniform(*setting.cover), rng)
        images[chunk] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        source[chunk] = number
        if setting.tied_class is None:
            labels[chunk] = rng.integers(0, num_classes, len(chunk))
    return images, labels.reshape(-1, 1), source


def precision_recall(found, truth):
    """(precision, recall) of the images in `found` (index arrays, one per group) against the mask `truth`."""
    flagged = np.zeros(len(truth), dtype=bool)
    for indices in found:
        flagged[indices] = True
    hits = int((flagged & truth).sum())
    return hits / max(int(flagged.sum()), 1), hits / int(truth.sum())


def _paste(cells, picture, cover, rng):
    # One rectangle per source (the same sticker in the same place), the
    # picture squeezed into it, covering `cover` of the area.
    height, width = cells.shape[1:3]
    aspect = rng.uniform(0.6, 1.6)
    box_h = int(np.clip(round(np.sqrt(cover * height * width * aspect)), 1, height))
    box_w = int(np.clip(round(cover * height * width / box_h), 1, width))
    top, left = rng.integers(0, height - box_h + 1), rng.integers(0, width - box_w + 1)
    patch = np.asarray(Image.fromarray(picture.astype(np.uint8)).resize((box_w, box_h), Image.BILINEAR))
    out = cells.copy()
    out[:, top:top + box_h, left:left + box_w] = patch
    return out


def _photo(height, width, rng):
    # Natural images have a 1/f amplitude spectrum, a light-to-dark layout and objects.
    fy, fx = np.meshgrid(np.fft.fftfreq(height), np.fft.fftfreq(width), indexing="ij")
    amplitude = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / max(height, width)) ** rng.uniform(0.9, 1.4)
    channels = []
    for _ in range(3):
        phase = np.exp(2j * np.pi * rng.random((height, width)))
        field = np.real(np.fft.ifft2(amplitude * phase))
        channels.append((field - field.mean()) / (field.std() + 1e-9))
    mixing = rng.normal(0, 1, (3, 3)) * 0.3 + np.eye(3)
    texture = np.stack(channels, -1) @ mixing.T * rng.uniform(15, 35)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = rng.uniform(0.3, 0.7) * height
    sky, ground = rng.uniform(60, 230, 3), rng.uniform(20, 200, 3)
    base = np.where((yy < horizon)[..., None], sky, ground).astype(np.float32)
    for _ in range(rng.integers(2, 5)):
        cy, cx, radius = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(0.08, 0.3) * min(height, width)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * radius ** 2))[..., None]
        base = base * (1 - blob) + blob * rng.uniform(0, 255, 3)
    return np.clip(base + texture, 0, 255).astype(np.float32)


def _texture(height, width, rng):
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) / max(height, width)
    pattern = rng.choice(["gratings", "checks", "cells"])
    if pattern == "gratings":
        value = sum(np.sin(2 * np.pi * rng.uniform(2, 8) * (np.cos(a) * xx + np.sin(a) * yy) + rng.uniform(0, 6))
                    for a in rng.uniform(0, np.pi, 3)) / 3
    elif pattern == "checks":
        period = rng.uniform(0.08, 0.25)
        value = ((np.floor(xx / period) + np.floor(yy / period)) % 2) * 2 - 1.0
    else:
        seeds = rng.random((12, 2))
        distance = np.hypot(yy[..., None] - seeds[:, 0], xx[..., None] - seeds[:, 1])
        value = np.sort(distance, axis=-1)[..., 0] * 8 - 1
    low, high = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    mix = (np.clip(value, -1, 1)[..., None] + 1) / 2
    return (low * (1 - mix) + high * mix).astype(np.float32)


def _sticker(height, width, rng):
    card = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(card)
    side = min(height, width)
    radius = rng.uniform(0.15, 0.3) * side
    cx, cy = rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)
    draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius],
                 fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    font = ImageFont.load_default(size=max(6, int(side * rng.uniform(0.18, 0.3))))
    for line in range(rng.integers(1, 3)):
        draw.text((rng.uniform(0, 0.3) * width, (0.1 + 0.45 * line) * height), str(rng.choice(WORDS)),
                  fill=tuple(int(v) for v in rng.integers(0, 256, 3)), font=font)
    return np.asarray(card, dtype=np.float32)
