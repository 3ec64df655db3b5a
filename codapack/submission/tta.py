"""Test-time augmentation: fixed transforms of a batch whose probabilities are averaged.

Ships in every zip next to `model.py` (numpy only), and the evaluator imports
the same file, so a policy scores locally exactly as it predicts on the platform.

Policies:
    none    the images as given
    flips   identity, horizontal flip, vertical flip
    d4      the eight rotations and reflections of the square
    shifts  identity and four shifts by 1/16 of the side (edges repeated)
"""

import numpy as np

POLICIES = ("none", "flips", "d4", "shifts")


def _rotation(k, flip):
    def transform(x):
        x = np.rot90(x, k, axes=(1, 2)) if k else x
        return x[:, :, ::-1] if flip else x

    return transform


def _shift(dy, dx):
    def transform(x):
        height, width = x.shape[1:3]
        pad_y, pad_x = abs(dy), abs(dx)
        padded = np.pad(x, ((0, 0), (pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="edge")
        return padded[:, pad_y - dy:pad_y - dy + height, pad_x - dx:pad_x - dx + width]

    return transform


def transforms(policy, image_shape):
    """The transforms of a policy, each mapping a batch (n, H, W, C) to one of the same shape.

    Args:
        policy: a name in `POLICIES`.
        image_shape: (H, W, C) of the images.

    Returns:
        A list of callables; the first is always the identity.

    Raises:
        ValueError: unknown policy, or rotations asked of non-square images.
    """
    height, width = image_shape[:2]
    if policy == "none":
        return [_rotation(0, False)]
    if policy == "flips":
        return [_rotation(0, False), lambda x: x[:, :, ::-1], lambda x: x[:, ::-1]]
    if policy == "d4":
        if height != width:
            raise ValueError(f"TTA policy `d4` rotates by 90 degrees and needs square images; got {height}x{width}")
        return [_rotation(k, flip) for flip in (False, True) for k in range(4)]
    if policy == "shifts":
        step = max(1, round(min(height, width) / 16))
        return [_rotation(0, False)] + [_shift(dy, dx) for dy, dx in ((step, 0), (-step, 0), (0, step), (0, -step))]
    raise ValueError(f"Unknown TTA policy `{policy}`. Known: {', '.join(POLICIES)}")
