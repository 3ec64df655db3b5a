"""Augmentation policies by name: the layers each applies (built in `augment.py`), and the shift
families each layer imitates. Plain data, so the command line can list the choices without
importing TensorFlow. Named policies:

    none    nothing
    light   flips, small rotations and translations
    geometry  flips, rotations by any angle, small shifts (cells have no up)
    medium  light + brightness, contrast, saturation, hue
    heavy   medium + RandAugment, Gaussian noise, random erasing, channel shuffle
    robust  every trainable corruption family (codapack/shift_families.py):
            geometry, then two independent draws per image, each giving 40% of
            the images one corruption (a colour change, Gaussian/defocus/motion
            blur, Gaussian/speckle/salt-and-pepper noise, JPEG, pixelation,
            blobs, erased rectangles or grayscale) at a strength drawn per
            image: most images carry one or two corruptions or none, as a
            corrupted test set does. No hue rotation: stain colour tells the
            classes apart.

or a custom list of the layer names in `augment.LAYERS`. `LAYER_FAMILIES` says
which shift families each layer imitates; a run records the union, and the
evaluator holds out the others.
"""

from codapack.shift_families import FAMILIES

LAYER_FAMILIES = {
    "flip": ("geometry",), "rotation": ("geometry",), "rotation_any": ("geometry",), "translation": ("geometry",),
    "shift": ("geometry",), "zoom": ("geometry",),
    "brightness": ("colour",), "contrast": ("colour",), "saturation": ("colour",), "hue": ("colour",),
    "color_degeneration": ("colour",), "grayscale": ("colour",), "channel_gain": ("colour",),
    "channel_shuffle": ("colour",),
    "gaussian_noise": ("noise",), "speckle_noise": ("noise",), "salt_pepper": ("noise",),
    "gaussian_blur": ("blur",), "defocus_blur": ("blur",), "motion_blur": ("blur",),
    "jpeg": ("compression",), "pixelation": ("compression",),
    "blobs": ("occlusion",), "erasing": ("occlusion",),
    # RandAugment and AugMix draw from Keras' geometric and colour operations (and sharpness, posterize).
    "randaugment": ("geometry", "colour"), "augmix": ("geometry", "colour"),
    "any_corruption": ("colour", "blur", "noise", "compression", "occlusion"),
    # Imitates no corruption: it swaps the amplitude spectra of two training images.
    "amplitude_swap": (),
    # A random filter mixes the colour channels (colour) and smooths or sharpens (blur).
    "random_convolution": ("colour", "blur"),
}

_LIGHT = ["flip", "rotation", "translation"]
_MEDIUM = _LIGHT + ["brightness", "contrast", "saturation", "hue"]
POLICY_LAYERS = {"none": [], "light": _LIGHT, "geometry": ["flip", "rotation_any", "shift"], "medium": _MEDIUM,
                 "heavy": _MEDIUM + ["randaugment", "gaussian_noise", "erasing", "channel_shuffle"],
                 "robust": ["flip", "rotation_any", "shift", "any_corruption", "any_corruption"]}
LAYER_NAMES = tuple(LAYER_FAMILIES)  # every layer `augment.LAYERS` builds
POLICIES = tuple(POLICY_LAYERS)
OFFLINE_POLICIES = tuple(policy for policy in POLICIES if policy != "none")  # `codapack augment`


def layer_names(augmentation):
    """The layer names an `Augmentation` config applies, in order."""
    return list(augmentation.layers) or POLICY_LAYERS[augmentation.policy]


def trained_families(names):
    """The shift families the named layers imitate, in the catalogue's order."""
    covered = {family for name in names for family in LAYER_FAMILIES.get(name, ())}
    return [family for family in FAMILIES if family in covered]
