"""What the optics, the sensor and the file format do: blur, noise, compression.

Written with NumPy and SciPy, apart from the training layers that imitate the
same families, so the suite does not grade the augmentation by its own code.
Each function maps a uint8 batch (n, H, W, 3), a severity 1..5 and a NumPy
generator to a float batch; the catalogue rounds and clips it.
"""

import numpy as np
from scipy import ndimage


def gaussian_noise(x, severity, rng):
    sigma = (4, 8, 16, 24, 36)[severity - 1]
    return x + rng.normal(0, sigma, x.shape)


def shot_noise(x, severity, rng):
    photons = (60, 25, 12, 5, 3)[severity - 1]  # photons at full white: fewer, noisier
    return rng.poisson(x / 255.0 * photons) / photons * 255.0


def speckle_noise(x, severity, rng):
    sigma = (0.06, 0.1, 0.15, 0.22, 0.32)[severity - 1]
    return x * (1 + rng.normal(0, sigma, x.shape))


def impulse_noise(x, severity, rng):
    amount = (0.005, 0.01, 0.025, 0.05, 0.09)[severity - 1]
    out = x.astype(np.float64)
    hit = rng.random(x.shape[:3]) < amount
    out[hit] = np.where(rng.random(int(hit.sum())) < 0.5, 0.0, 255.0)[:, None]
    return out


def _convolve_each(x, kernels):
    """Image i convolved with kernels[i] (the same for every channel), reflected at the border."""
    out = np.empty(x.shape, dtype=np.float64)
    for i, kernel in enumerate(kernels):
        out[i] = ndimage.convolve(x[i].astype(np.float64), kernel[:, :, None], mode="reflect")
    return out


def gaussian_blur(x, severity, rng):
    sigma = (0.6, 1.0, 1.5, 2.0, 3.0)[severity - 1]
    return ndimage.gaussian_filter(x.astype(np.float64), sigma=(0, sigma, sigma, 0), mode="reflect")


def defocus_blur(x, severity, rng):
    radius = (1.0, 1.5, 2.5, 3.5, 5.0)[severity - 1]
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disk = np.clip(radius + 0.5 - np.hypot(yy, xx), 0, 1)
    return _convolve_each(x, [disk / disk.sum()] * len(x))


def motion_blur(x, severity, rng):
    length = (3, 5, 8, 11, 15)[severity - 1]
    r = length // 2 + 1
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    kernels = []
    for angle in rng.uniform(0, np.pi, len(x)):
        along = np.abs(np.cos(angle) * xx + np.sin(angle) * yy)
        across = np.abs(-np.sin(angle) * xx + np.cos(angle) * yy)
        line = np.clip(1 - across, 0, 1) * np.clip(length / 2 + 0.5 - along, 0, 1)
        kernels.append(line / line.sum())
    return _convolve_each(x, kernels)


def jpeg_compression(x, severity, rng):
    from io import BytesIO

    from PIL import Image

    quality = (75, 50, 30, 18, 10)[severity - 1]
    out = []
    for image in x:
        buffer = BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        out.append(np.asarray(Image.open(buffer)))
    return np.stack(out).astype(np.float64)


def pixelate(x, severity, rng):
    from PIL import Image

    scale = (0.75, 0.6, 0.45, 0.33, 0.25)[severity - 1]
    height, width = x.shape[1:3]
    small = (max(1, int(width * scale)), max(1, int(height * scale)))
    return np.stack([np.asarray(Image.fromarray(image).resize(small, Image.BOX).resize((width, height), Image.BOX))
                     for image in x]).astype(np.float64)
