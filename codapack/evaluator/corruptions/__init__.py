"""The robustness suite's corruptions: each in a shift family, at five severities.

Each corruption maps a uint8 batch (n, H, W, 3) and a severity 1..5 to a
corrupted uint8 copy; randomness comes from a seeded generator, so a suite run
is reproducible. Families are those of `codapack.shift_families`; a run is
scored separately on the families its augmentation covered and on the others.
The corruptions are written independently of the training layers (NumPy,
SciPy, PIL; other parameterisations), and the illumination, artifacts and
overlay families have no training counterpart at all.
"""

import numpy as np

from codapack.evaluator.corruptions import camera, debris, sample
from codapack.shift_families import FAMILIES

SEVERITIES = (1, 2, 3, 4, 5)

#: name -> (family, function)
CATALOGUE = {
    "rotation": ("geometry", sample.rotation),
    "brightness_contrast": ("colour", sample.brightness_contrast),
    "stain_shift": ("colour", sample.stain_shift),
    "saturation": ("colour", sample.saturation),
    "gaussian_blur": ("blur", camera.gaussian_blur),
    "defocus_blur": ("blur", camera.defocus_blur),
    "motion_blur": ("blur", camera.motion_blur),
    "gaussian_noise": ("noise", camera.gaussian_noise),
    "shot_noise": ("noise", camera.shot_noise),
    "speckle_noise": ("noise", camera.speckle_noise),
    "impulse_noise": ("noise", camera.impulse_noise),
    "jpeg_compression": ("compression", camera.jpeg_compression),
    "pixelate": ("compression", camera.pixelate),
    "occlusion": ("occlusion", debris.occlusion),
    "vignetting": ("illumination", sample.vignetting),
    "uneven_illumination": ("illumination", sample.uneven_illumination),
    "haze": ("illumination", sample.haze),
    "bubbles": ("artifacts", debris.bubbles),
    "dust": ("artifacts", debris.dust),
    "scratches": ("artifacts", debris.scratches),
    "blended_overlay": ("overlay", debris.blended_overlay),
}
CORRUPTIONS = {name: function for name, (_, function) in CATALOGUE.items()}
FAMILY_OF = {name: family for name, (family, _) in CATALOGUE.items()}
assert set(FAMILY_OF.values()) == set(FAMILIES), "every shift family needs a corruption"


def corruptions_of(families):
    """The corruption names of the given families, in catalogue order."""
    families = set(families)
    return [name for name, family in FAMILY_OF.items() if family in families]


def corrupt(images, name, severity, seed=0):
    """A corrupted uint8 copy of `images` (never modified in place).

    Args:
        images: (n, H, W, 3) pixels 0..255, uint8 or float.
        name: a key of `CORRUPTIONS`.
        severity: 1 (mild) to 5 (severe).
        seed: seed of the random parts.
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"`name` should be one of {', '.join(CORRUPTIONS)}. Received: name={name!r}")
    if severity not in SEVERITIES:
        raise ValueError(f"`severity` should be 1..5. Received: severity={severity}")
    batch = _to_uint8(np.asarray(images))
    rng = np.random.default_rng([seed, severity, list(CORRUPTIONS).index(name)])
    return _to_uint8(CORRUPTIONS[name](batch, severity, rng))


def shifted_assignment(n, offset=0):
    """The (corruption, severity) pair each of n images gets in `shifted_copy`: every pair in turn.

    Image i gets corruption i mod 21 at severity i mod 5 (21 and 5 are co-prime, so
    105 images in a row meet every pair once): any 21 images in a row meet every
    corruption and so every family, however small the split. `offset` starts the
    cycle elsewhere, so that several copies of one split give each image several
    different corruptions.
    """
    names = list(CORRUPTIONS)
    return [(names[(i + offset) % len(names)], SEVERITIES[(i + offset) % len(SEVERITIES)]) for i in range(n)]


def shifted_copy(images, seed=0, offset=0):
    """A corrupted copy of a split where image i gets `shifted_assignment(n, offset)[i]`.

    One pass over this copy estimates the suite's mean accuracy, and per family
    (so held-out against trained), at the cost of a single prediction of the
    split, which is what the harness can afford.
    """
    batch = np.asarray(images)
    out = np.empty(batch.shape, dtype=np.uint8)
    assignment = shifted_assignment(len(batch), offset)
    for pair in dict.fromkeys(assignment):
        picked = np.array([i for i, p in enumerate(assignment) if p == pair])
        out[picked] = corrupt(batch[picked], *pair, seed=seed)
    return out


def _to_uint8(x):
    if x.dtype == np.uint8:
        return x
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)
