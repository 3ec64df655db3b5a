"""A group's signature: the part of its pattern that images outside it never show.

The overlay search (`overlays.py`) scores images along a group's direction in
the leading whitened components, where natural variation lives too. A natural
sub-population of some class (larger cells, say) can lie partly along a
source's direction there and join it: it shares the source's coarse look
(a disc where the source has a round logo) but none of the rest of it.

The principal subspace of the images outside the group holds the ways clean
images vary. What a laid-over picture adds beyond that subspace (text, edges,
the rest of the picture) is its signature: every image carrying the picture
carries it, whatever the cell under it, and an image that only looks like part
of the picture does not, since its look is one the clean images share.
Membership is decided again along the signature: members whose cross-fitted
score there falls short of a share of the group's strongest are natural
look-alikes and leave; images outside the group that carry the signature as strongly as its
members join.
"""

import numpy as np
from sklearn.decomposition import PCA

from codapack.data.inspection.proposals import FIT_SAMPLE, WHITENED, robust_z, t_ratio

# A member's signature score must reach this share of the group's upper quartile: over the groups of
# 70 generated runs, carriers scored 0.19 of it and more, natural look-alikes 0.12 at most. The
# strongest quarter are carriers even where look-alikes outnumber them (the median was not: 75
# look-alikes beside 60 carriers kept them all).
KEEP_SHARE = 0.15
REFERENCE_QUANTILE = 0.75
# Many look-alikes bend the group's mean towards their own shared look; once they are out, they
# count as natural in the next round's fit and the direction is the carriers'. Until nothing changes.
ROUNDS = 3
CHUNK = 4096


def signature_members(residuals, members, threshold, *, claimed=(), suspects=(), seed=0):
    """(the images carrying the group's signature, their scores along it).

    Args:
        residuals: float array (n, d), e.g. from `features.class_residuals`.
        members: indices of one group's members.
        threshold: robust z-score that admits images to a group (`overlays.DEFAULT_THRESHOLD`).
        claimed: images in other groups: neither natural nor free to join this one.
        suspects: images outside the group that may carry its picture (they lean
            along its direction): kept out of the natural subspace's fit, since
            carriers there would bend it towards the signature.
        seed: seed of the fit sample, the decomposition and the cross-fitting halves.

    Returns:
        (sorted indices, their robust z-scores along the signature). A member
        stays when its score reaches `KEEP_SHARE` of the members' upper quartile;
        an unclaimed image outside the group joins when its score reaches that
        and the threshold. Repeated on the new members, up to `ROUNDS` times,
        until they stop changing.
    """
    members = np.sort(np.asarray(members, dtype=int))
    unfit = np.union1d(np.asarray(claimed, dtype=int), np.asarray(suspects, dtype=int))
    free = np.ones(len(residuals), dtype=bool)
    free[members] = False
    free[np.asarray(claimed, dtype=int)] = False
    for _ in range(ROUNDS):
        z = signature_scores(residuals, members, seed, unfit=unfit)
        inside = np.zeros(len(z), dtype=bool)
        inside[members] = True
        cut = KEEP_SHARE * np.quantile(z[members], REFERENCE_QUANTILE)
        chosen = np.flatnonzero((z >= cut) & (inside | (free & (z >= threshold))))
        if np.array_equal(chosen, members):
            break
        members = chosen
    return chosen, z[chosen]


def signature_scores(residuals, members, seed=0, unfit=()):
    """Robust z-score of every image along the members' mean outside the natural subspace, cross-fitted.

    The natural subspace is the leading principal components of a sample of the
    images outside the group. Each half of the members is scored along the
    other half's mean, so that no member scores high for having shaped the
    direction. Rows in `unfit` stay out of the subspace's fit too.
    """
    rng = np.random.default_rng(seed)
    outside = np.setdiff1d(np.arange(len(residuals)), np.union1d(members, np.asarray(unfit, dtype=int)))
    fit_rows = np.sort(rng.choice(outside, min(FIT_SAMPLE, len(outside)), replace=False))
    kept = min(WHITENED, residuals.shape[1], len(fit_rows) - 1)
    pca = PCA(kept, svd_solver="randomized", random_state=seed).fit(residuals[fit_rows])
    basis, centre = pca.components_.astype(np.float32), pca.mean_.astype(np.float32)
    shuffled = rng.permutation(members)
    halves = (shuffled[::2], shuffled[1::2])
    rows = _beyond(residuals[members], basis, centre)
    position = {index: i for i, index in enumerate(members.tolist())}
    directions = np.stack([_unit(rows.mean(axis=0))] +
                          [_unit(rows[[position[i] for i in half.tolist()]].mean(axis=0)) for half in halves])
    t = np.empty((len(residuals), 3), dtype=np.float32)
    for start in range(0, len(residuals), CHUNK):
        part = _beyond(residuals[start:start + CHUNK], basis, centre)
        norms = np.einsum("ij,ij->i", part, part)
        t[start:start + CHUNK] = t_ratio(part @ directions.T, norms[:, None], part.shape[1])
    z = robust_z(t[:, 0])
    for scored, fitted in ((0, 2), (1, 1)):  # half 0 along half 1's direction (column 2), and back
        z[halves[scored]] = robust_z(t[:, fitted])[halves[scored]]
    return z


def _beyond(rows, basis, centre):
    """The rows' part outside the span of `basis` (orthonormal rows), about `centre`."""
    centred = np.asarray(rows, dtype=np.float32) - centre
    return centred - (centred @ basis.T) @ basis


def _unit(vector):
    return vector / max(float(np.linalg.norm(vector)), 1e-12)
