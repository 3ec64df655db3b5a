"""The families a test distribution shifts along, shared by training and evaluation.

A run records which families its augmentation covered; the robustness suite
groups its corruptions by the same names. Accuracy on families a run never
trained on (leave-family-out) is the figure that predicts a hidden, differently
corrupted test set: the trained families flatter the model by construction.

The last three families have no augmentation layer on purpose, so every run
keeps held-out families to be measured on.
"""

FAMILIES = {
    "geometry": "rotation, flips, small shifts",
    "colour": "brightness, contrast, saturation, hue, per-channel (stain) gain, grayscale",
    "blur": "Gaussian, defocus and motion blur",
    "noise": "Gaussian, speckle and salt-and-pepper noise",
    "compression": "JPEG artefacts and pixelation (down then up)",
    "occlusion": "patches, blobs, erased rectangles",
    "illumination": "vignetting, uneven illumination, haze",
    "artifacts": "bubbles, dust specks, scratches",
    "overlay": "a foreign picture blended over the image",
}

#: Families no augmentation layer imitates: always held out.
NEVER_TRAINED = ("illumination", "artifacts", "overlay")


def held_out(trained):
    """The families not in `trained`, in catalogue order."""
    trained = set(trained)
    return [family for family in FAMILIES if family not in trained]
