"""A group's signature (`signature.py`): what its members share beyond the ways clean images vary."""

import numpy as np

from codapack.data.inspection.signature import KEEP_SHARE, REFERENCE_QUANTILE, signature_members, signature_scores

D = 1000


def _residuals(seed=0, n=3000):
    """Residuals with one strong natural direction (axis 0) that 10 % of the images lean along.

    A source adds 4 along axis 0 (the look natural images share) plus a pattern
    spread thinly over axes 500..999 (its signature, seen in no natural image),
    strong enough that its carriers score about 40 along it, the low end of what
    generated sources score on procedural cells (median 35 to 250).
    """
    rng = np.random.default_rng(seed)
    residuals = rng.normal(size=(n, D)).astype(np.float32)
    residuals[:, :20] *= 3.0  # the leading natural variation
    look_alikes = np.arange(300)  # a natural sub-population: bigger cells, say
    residuals[look_alikes, 0] += 12.0
    source = np.zeros(D, dtype=np.float32)
    source[0] = 4.0
    source[500:] = 2.0  # 45 in all, in directions clean images never take
    carrying = np.arange(1000, 1060)
    residuals[carrying] += source
    return residuals, carrying, look_alikes


def _leaning(residuals, group):
    """Images outside the group whose projection on its mean has a robust z-score of 3 or more."""
    along = residuals @ residuals[group].mean(axis=0)
    z = (along - np.median(along)) / (1.4826 * np.median(np.abs(along - np.median(along))))
    return np.setdiff1d(np.flatnonzero(z >= 3), group)


def test_natural_look_alikes_leave_and_missed_members_join():
    residuals, carrying, look_alikes = _residuals()
    before = residuals.copy()
    # The search's group: 50 of the 60 images carrying the source, and 25 look-alikes
    # that share its coarse look along the natural direction.
    group = np.concatenate([carrying[:50], look_alikes[:25]])
    members, scores = signature_members(residuals, group, threshold=6.0, suspects=_leaning(residuals, group))
    assert np.array_equal(members, carrying)
    assert len(scores) == len(members) and scores.min() >= 6.0
    assert np.array_equal(residuals, before)


def test_images_claimed_by_another_group_do_not_join():
    residuals, carrying, _ = _residuals(seed=3)
    members, _ = signature_members(residuals, carrying[:40], threshold=6.0, claimed=carrying[40:])
    assert np.array_equal(members, carrying[:40])
    members, _ = signature_members(residuals, carrying[:40], threshold=6.0, suspects=carrying[40:])
    assert np.array_equal(members, carrying)


def test_look_alikes_score_like_the_bulk_along_the_signature():
    residuals, carrying, look_alikes = _residuals(seed=1)
    group = np.concatenate([carrying, look_alikes[:30]])
    z = signature_scores(residuals, group)
    # Cross-fitted along the signature, the carriers stand far out and the look-alikes do not:
    # an independent check with the true signature direction gives the same split.
    true_direction = np.zeros(D)
    true_direction[500:] = 1.0
    along = residuals @ true_direction / np.linalg.norm(true_direction)
    assert np.median(along[carrying]) > 10 * np.median(np.abs(along[look_alikes[:30]]))
    assert z[carrying].min() > KEEP_SHARE * np.quantile(z[group], REFERENCE_QUANTILE) > z[look_alikes[:30]].max()


def test_a_pure_group_keeps_all_its_members():
    residuals, carrying, _ = _residuals(seed=2)
    members, _ = signature_members(residuals, carrying, threshold=6.0)
    assert np.array_equal(members, carrying)


def test_look_alikes_leave_even_when_they_outnumber_the_carriers():
    residuals, carrying, look_alikes = _residuals(seed=4)
    group = np.concatenate([carrying, look_alikes[:90]])
    members, _ = signature_members(residuals, group, threshold=6.0, suspects=_leaning(residuals, group))
    assert np.array_equal(members, carrying)
