"""Loading a competition `.npz` and validating it at the boundary.

Every check names the file and says what was found against what the profile
requires, so a user never meets a shape error deep inside Keras.
"""

import dataclasses
import hashlib
import os
import zipfile

import numpy as np

from codapack.errors import fail_for

IMAGES_KEY = "images"
LABELS_KEY = "labels"
# Optional: a file written by `codapack augment` carries its split, so that augmented copies of
# training images can never land in validation or test (see codapack/splits.py).
SPLIT_KEY = "split"


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Validated images and labels from one file.

    Args:
        images: array (n, H, W, C), uint8 or float32 in the profile's range.
        labels: int64 array (n,) of class ids.
        path: the file they came from.
        sha256: hash of images and labels, so later stages can tell the same data.
        split_codes: the split the file carries, one code per image (see `splits.SPLIT_CODES`),
            or None for a plain competition file.
    """

    images: np.ndarray
    labels: np.ndarray
    path: str
    sha256: str
    split_codes: np.ndarray = None

    def __len__(self):
        return len(self.labels)

    def subset(self, indices):
        """Return (images, labels) at `indices`, copies that leave the dataset untouched."""
        return self.images[indices], self.labels[indices]


def as_dataset(data, profile):
    """`data` itself when it is a `Dataset` already, else the `Dataset` loaded from the path `data`.

    Stages take either, so a file is read once per process and handed on as a `Dataset`.
    """
    return data if isinstance(data, Dataset) else load_dataset(data, profile)


def load_dataset(path, profile):
    """Load and validate a competition `.npz` with keys `images` and `labels`.

    Args:
        path: the `.npz` file.
        profile: the competition `Profile` it must match.

    Returns:
        A `Dataset`.

    Raises:
        CodapackError: the file is missing, empty, corrupt, or its arrays do not
            match the profile.
    """
    path = os.fspath(path)
    arrays = _read_npz(path)
    images = check_images(arrays[IMAGES_KEY], profile, where=f"{path}: `{IMAGES_KEY}`")
    labels = _check_labels(arrays[LABELS_KEY], profile, path)
    if len(images) != len(labels):
        raise fail_for(path, f"`{IMAGES_KEY}` has {len(images)} entries but `{LABELS_KEY}` has "
                             f"{len(labels)}; they must be the same length")
    split_codes = arrays.get(SPLIT_KEY)
    if split_codes is not None:
        split_codes = _check_split_codes(split_codes, len(labels), path)
    return Dataset(images=images, labels=labels, path=path, sha256=data_hash(images, labels),
                   split_codes=split_codes)


def data_hash(images, labels):
    """sha256 over shapes, dtypes and bytes of images and labels."""
    digest = hashlib.sha256()
    for array in (images, labels):
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def _read_npz(path):
    if not os.path.exists(path):
        raise fail_for(path, "no such file")
    if os.path.isdir(path):
        raise fail_for(path, "is a folder; expected a .npz file")
    if os.path.getsize(path) == 0:
        raise fail_for(path, "the file is empty (0 bytes)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in (IMAGES_KEY, LABELS_KEY) if k not in npz.files]
            if missing:
                raise fail_for(path, f"missing key(s) {missing}; found {sorted(npz.files)}. "
                                     f"A competition file holds `{IMAGES_KEY}` and `{LABELS_KEY}`")
            return {key: npz[key] for key in (IMAGES_KEY, LABELS_KEY, SPLIT_KEY) if key in npz.files}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise fail_for(path, f"not a readable .npz file; it may be truncated or corrupt ({exc})") from None
    except ValueError as exc:
        raise fail_for(path, f"cannot be read as a .npz of plain arrays ({exc})") from None


def check_images(images, profile, *, where="images"):
    """Validate an image batch against the profile and return it unchanged.

    Args:
        images: the array to check.
        profile: the competition `Profile`.
        where: how to name the array in errors (file and key).

    Returns:
        `images`, not copied and not converted.

    Raises:
        CodapackError: wrong type, rank, image shape, dtype, NaN or out-of-range values.
    """
    if not isinstance(images, np.ndarray):
        raise fail_for(where, f"should be a numpy array. Received: {type(images).__name__}")
    expected = tuple(profile.input_shape)
    if images.ndim != 4 or images.shape[1:] != expected:
        raise fail_for(where, f"should have shape (n, {', '.join(map(str, expected))}). "
                              f"Received: {images.shape}")
    if len(images) == 0:
        raise fail_for(where, "holds no images (n = 0)")
    if images.dtype.kind == "f":
        _check_float_values(images, profile, where)
    if images.dtype.name not in profile.input_dtypes:
        raise fail_for(where, f"should have dtype {' or '.join(profile.input_dtypes)}. "
                              f"Received: {images.dtype}. Convert with images.astype('uint8') "
                              "if the values are whole pixels 0..255")
    return images


def _check_float_values(images, profile, where):
    """No NaN, the profile's range, and not rescaled to 0..1 (which a cast to uint8 turns into 0s and 1s)."""
    if np.isnan(images).any():
        raise fail_for(where, f"contains NaN at {int(np.isnan(images).sum())} values")
    low, high = float(images.min()), float(images.max())
    if low < profile.min_value or high > profile.max_value:
        raise fail_for(where, f"values should lie in {profile.min_value:g}..{profile.max_value:g}. "
                              f"Received: {low:g}..{high:g}")
    if profile.max_value > 1 and high <= 1 and not np.array_equal(images, np.round(images)):
        raise fail_for(where, f"values should be pixels in {profile.min_value:g}..{profile.max_value:g}. "
                              f"Received: {low:g}..{high:g}, images rescaled to 0..1; multiply by "
                              f"{profile.max_value:g} first (images * {profile.max_value:g}); a cast "
                              "alone would turn every pixel into 0 or 1")


def _check_labels(labels, profile, path):
    where = f"{path}: `{LABELS_KEY}`"
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise fail_for(where, f"should have shape (n,) or (n, 1). Received: {labels.shape}")
    if labels.dtype.kind == "f":
        if np.isnan(labels).any():
            raise fail_for(where, f"contains NaN at {int(np.isnan(labels).sum())} entries")
        if not np.all(labels == np.round(labels)):
            raise fail_for(where, "should hold whole class ids; found fractional values")
    elif labels.dtype.kind not in "iu":
        raise fail_for(where, f"should hold integer class ids. Received dtype: {labels.dtype}")
    labels = labels.astype(np.int64)
    bad = (labels < 0) | (labels >= profile.num_classes)
    if bad.any():
        found = sorted(set(labels[bad].tolist()))[:10]
        raise fail_for(where, f"class ids should lie in 0..{profile.num_classes - 1} "
                              f"({profile.num_classes} classes in profile `{profile.name}`). "
                              f"Found {int(bad.sum())} outside, e.g. {found}")
    return labels


def _check_split_codes(codes, n, path):
    from codapack.splits import SPLIT_CODES

    where = f"{path}: `{SPLIT_KEY}`"
    if codes.shape != (n,) or codes.dtype.kind not in "iu":
        raise fail_for(where, f"should be {n} integer split codes, one per image. Received shape "
                              f"{codes.shape}, dtype {codes.dtype}")
    unknown = np.setdiff1d(codes, list(SPLIT_CODES.values()))
    if len(unknown):
        raise fail_for(where, f"unknown split code(s) {unknown.tolist()[:5]}; known: {SPLIT_CODES}")
    for name in ("train", "val", "test"):
        if not np.any(codes == SPLIT_CODES[name]):
            raise fail_for(where, f"holds no `{name}` images; every carried split needs train, val and test")
    return codes.astype(np.int8)
