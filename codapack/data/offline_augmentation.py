"""Offline augmentation: augmented copies drawn once, before training, up to a count per class.

Used two ways: in memory by a config's `augmentation.offline_per_class`, and on disk by
`codapack augment`, which writes an enlarged copy of a competition file. The file keeps
every source image and carries the source's split, with the new copies in train only, so
no copy of a training image can reach validation or test.
"""

import os
import time

import numpy as np
from tqdm import tqdm

from codapack.data.augment import image_augmenter
from codapack.data.policies import POLICY_LAYERS
from codapack.dataset import IMAGES_KEY, LABELS_KEY, SPLIT_KEY, load_dataset
from codapack.errors import CodapackError
from codapack.files import atomic_path, write_json
from codapack.splits import SPLIT_CODES, split_for

ORIGIN_KEY = "origin"


def augmented_copies(images, labels, per_class, seed, policy="medium", batch_size=256):
    """Augmented copies of each class's images until it has `per_class` images.

    Args:
        images: (n, H, W, C) pixels 0..255.
        labels: (n,) class ids.
        per_class: the count each class is brought up to; larger classes get no copies.
        seed: picks the images to copy and seeds the augmentation layers.
        policy: a named policy of codapack/data/policies.py whose layers make the copies.
        batch_size: images augmented per call.

    Returns:
        (copies uint8 (m, H, W, C), picks (m,)): the copies and the index of each one's source.
    """
    import tensorflow as tf

    if policy not in POLICY_LAYERS or policy == "none":
        raise CodapackError(f"offline augmentation needs a policy among "
                            f"{[p for p in POLICY_LAYERS if p != 'none']}. Received: {policy!r}")
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels)
    picks = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class - n)
                            for c, n in enumerate(counts) if 0 < n < per_class] or [np.zeros(0, np.int64)])
    augment = image_augmenter(POLICY_LAYERS[policy], seed)
    copies = np.empty((len(picks), *images.shape[1:]), dtype=np.uint8)
    for start in tqdm(range(0, len(picks), batch_size), desc="offline augmentation", unit="batch",
                      disable=not len(picks)):
        batch = tf.cast(images[picks[start:start + batch_size]], tf.float32)
        copies[start:start + batch_size] = np.round(augment(batch).numpy()).astype(np.uint8)
    return copies, picks


def augment_offline(images, labels, per_class, seed, policy="medium"):
    """The images and labels with augmented copies appended (see `augmented_copies`).

    Returns:
        (images, labels) with the originals first, in their order.
    """
    copies, picks = augmented_copies(images, labels, per_class, seed, policy)
    return np.concatenate([images, copies.astype(images.dtype)]), np.concatenate([labels, labels[picks]])


def write_augmented_dataset(data_path, out_path, profile, *, per_class, policy="medium", seed=0):
    """Write DATA's images plus augmented copies of its train split, with the split carried.

    Args:
        data_path: the competition `.npz` (never modified).
        out_path: the enlarged `.npz` to write (atomically).
        profile: the competition `Profile`.
        per_class: bring every class of the train split up to this many images.
        policy: the augmentation policy of the copies.
        seed: seed of the picks and the augmentation.

    Returns:
        A summary: counts per class before and after, images written, seconds.
    """
    if os.path.abspath(out_path) == os.path.abspath(data_path):
        raise CodapackError(f"{out_path}: is the input file; choose another --out (inputs are never overwritten)")
    if per_class < 1:
        raise CodapackError(f"--per-class should be at least 1. Received: {per_class}")
    started = time.perf_counter()
    dataset = load_dataset(data_path, profile)
    split = split_for(dataset, profile)
    train = split["train"]
    copies, picks = augmented_copies(dataset.images[train], dataset.labels[train], per_class, seed, policy)
    codes = split.codes(len(dataset))
    arrays = {
        IMAGES_KEY: np.concatenate([dataset.images, copies.astype(dataset.images.dtype)]),
        LABELS_KEY: np.concatenate([dataset.labels, dataset.labels[train][picks]]),
        SPLIT_KEY: np.concatenate([codes, np.full(len(picks), SPLIT_CODES["train"], np.int8)]),
        ORIGIN_KEY: np.concatenate([np.arange(len(dataset)), train[picks]]).astype(np.int64),
    }
    with atomic_path(out_path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
    classes = range(profile.num_classes)
    before = np.bincount(dataset.labels[train], minlength=profile.num_classes)
    after = before + np.bincount(dataset.labels[train][picks], minlength=profile.num_classes)
    summary = {"source": os.path.abspath(data_path), "source_sha256": dataset.sha256,
               "output": os.path.abspath(out_path), "split": split.split_id, "policy": policy,
               "per_class": per_class, "seed": seed, "images": len(arrays[LABELS_KEY]), "added": len(picks),
               "train_before": {profile.classes[c]: int(before[c]) for c in classes},
               "train_after": {profile.classes[c]: int(after[c]) for c in classes},
               "seconds": round(time.perf_counter() - started, 2)}
    write_json(f"{out_path}.augmented.json", summary)
    return summary
