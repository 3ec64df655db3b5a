"""A generated stand-in for competition data: cell-like blobs, one look per class.

Used by the offline demo and by tests, so neither needs a download. Class k is
a disk with a darker nucleus whose stain colour is one of four hues (k mod 4)
and whose size is small or large (k div 4), at a random place on a noisy pale
background; colour, size and position jitter so the task is easy but not trivial.
"""

import numpy as np

HUES = np.array([[150, 60, 160], [60, 90, 170], [170, 70, 70], [80, 140, 90]], dtype=np.float32)
BACKGROUND = np.array([232, 205, 212], dtype=np.float32)


def make_images(labels, shape, seed):
    """Draw one image per label.

    Args:
        labels: (n,) class ids; classes beyond 8 reuse the eight looks.
        shape: (H, W, C) of each image, C = 3.
        seed: random seed.

    Returns:
        uint8 array (n, H, W, C).
    """
    rng = np.random.default_rng(seed)
    height, width, _ = shape
    n = len(labels)
    labels = np.asarray(labels) % 8
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    side = min(height, width)
    radius = side * np.where(labels // 4 == 0, 0.17, 0.30) * rng.uniform(0.85, 1.15, n)
    cy = rng.uniform(0.35, 0.65, n) * height
    cx = rng.uniform(0.35, 0.65, n) * width
    distance = np.sqrt((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2)
    cell = (distance < radius[:, None, None])[..., None]
    nucleus = (distance < 0.5 * radius[:, None, None])[..., None]
    colour = HUES[labels % 4] + rng.normal(0, 15, (n, 3))
    images = np.broadcast_to(BACKGROUND, (n, height, width, 3)).copy()
    images = np.where(cell, colour[:, None, None, :], images)
    images = np.where(nucleus, 0.6 * colour[:, None, None, :], images)
    images += rng.normal(0, 10, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8)


def make_dataset(n, shape, num_classes, seed=0):
    """A balanced labelled set of `n` generated images.

    Args:
        n: number of images.
        shape: (H, W, 3) of each image.
        num_classes: number of classes (labels 0..num_classes-1).
        seed: random seed.

    Returns:
        (images uint8 (n, H, W, 3), labels uint8 (n, 1)) as in a competition file.
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % num_classes)
    return make_images(labels, shape, seed + 1), labels.reshape(-1, 1).astype(np.uint8)
