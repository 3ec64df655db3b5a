"""Exact and near duplicates, each pair with whether its labels agree.

Exact duplicates are images with identical bytes (hashed, so any size of data
is one pass). Near duplicates are distinct images whose pixels differ by at
most a few levels on average (over a 24x24 grid); candidates come from a few
nearest neighbours in the low-dimensional embedding, so no n x n matrix is built.
"""

import hashlib

import numpy as np
from sklearn.neighbors import NearestNeighbors

from codapack.data.inspection.features import layout_features

DEFAULT_NEAR_DIFFERENCE = 4.0
NEAR_GRID = 24


def exact_duplicate_sets(images):
    """Sets of indices whose images are byte-for-byte identical.

    Args:
        images: array (n, ...).

    Returns:
        A list of sorted index lists, each with at least two entries, ordered
        by their first index.
    """
    by_hash = {}
    for index, image in enumerate(images):
        by_hash.setdefault(hashlib.sha1(np.ascontiguousarray(image).data).digest(), []).append(index)
    return sorted((ids for ids in by_hash.values() if len(ids) > 1), key=lambda ids: ids[0])


def exact_duplicate_pairs(sets, labels):
    """Pairs (first of a set, each other member) with their labels.

    Args:
        sets: output of `exact_duplicate_sets`.
        labels: int array (n,).

    Returns:
        A list of pair dicts (see `pair_record`).
    """
    return [pair_record(ids[0], other, labels) for ids in sets for other in ids[1:]]


def near_duplicate_pairs(images, embedding, labels, *, max_difference=DEFAULT_NEAR_DIFFERENCE,
                         neighbors=5, exclude_sets=()):
    """Pairs of different images that are almost the same picture.

    Args:
        images: array (n, H, W, 3), 0..255.
        embedding: float array (n, k), a low-dimensional projection used to
            find candidate neighbours quickly.
        labels: int array (n,).
        max_difference: largest mean absolute difference, in pixel levels
            0..255, between the two images averaged over a 24x24 grid.
        neighbors: candidates examined per image.
        exclude_sets: exact duplicate sets; pairs inside one are not repeated.

    Returns:
        A list of pair dicts with a `difference` entry, closest first.
    """
    same_set = {i: k for k, ids in enumerate(exclude_sets) for i in ids}
    count = min(neighbors + 1, len(embedding))
    _, candidates = NearestNeighbors(n_neighbors=count).fit(embedding).kneighbors(embedding)
    keys = {(min(a, b), max(a, b)) for a, row in enumerate(candidates) for b in row
            if a != b and not (a in same_set and same_set[a] == same_set.get(b))}
    if not keys:
        return []
    first, second = np.array(sorted(keys)).T
    # The pixel layout (not the extractor's features) decides: near duplicates are
    # the same picture, while two blends of one background only look alike.
    fine = layout_features(images, NEAR_GRID) * 255.0
    difference = np.abs(fine[first] - fine[second]).mean(axis=1)
    found = [dict(pair_record(a, b, labels), difference=round(float(d), 2))
             for a, b, d in zip(first, second, difference) if d <= max_difference]
    return sorted(found, key=lambda p: p["difference"])


def pair_record(a, b, labels):
    """A JSON-ready description of the pair (a, b)."""
    return {"a": int(a), "b": int(b), "label_a": int(labels[a]), "label_b": int(labels[b]),
            "same_label": bool(labels[a] == labels[b])}


def duplicate_indices(sets, mode):
    """Indices to remove for exact duplicates.

    Args:
        sets: output of `exact_duplicate_sets`.
        mode: "dedupe" keeps the first image of each set, "drop" removes
            every copy (useful when copies carry conflicting labels).

    Returns:
        A sorted list of indices.
    """
    if mode == "dedupe":
        return sorted(i for ids in sets for i in ids[1:])
    if mode == "drop":
        return sorted(i for ids in sets for i in ids)
    raise ValueError(f"`mode` should be 'dedupe' or 'drop'. Received: mode={mode!r}")
