"""Pictures laid over images: blends and pastes of one source recurring across the data.

A source laid over a share of the images (blended in, or pasted over part of
them) adds the same pattern, at the same place, to each of them. Natural
variation between classes is removed first: each image minus its class's
robust (median) image, per pixel, scaled by that pixel's robust spread
(`codapack.inspection.features.class_residuals`). In those residuals a source
is a direction along which a minority of images sits far out, with most of the
data at zero: a sparse, strongly non-Gaussian direction, which independent
component analysis of the whitened leading components finds without examples,
however faint the blend, as long as enough images carry it.

Along each independent component, every image gets a robust z-score (median
and scaled MAD over the data). An image whose z-score reaches `threshold` is a
member; the group's `score` is the median z-score of its members. A source is
a separated mode, whose members sit far beyond the threshold, while a heavy
natural tail thins out just past it: a group is admitted when its score
reaches `GROUP_MARGIN` times the threshold and the valley below the threshold
(images between half the threshold and the threshold) holds at most
`MAX_VALLEY` images per member. Groups whose labels are more
one-class than `max_association` are kept apart as class-tied: they may be a
source laid over one class only, or a real look of that class, which the data
alone cannot tell.
"""

import dataclasses
import warnings

import numpy as np
from sklearn.decomposition import PCA, FastICA

from codapack.data.inspection.features import class_residuals
from codapack.data.inspection.outliers import Group, label_association

DEFAULT_THRESHOLD = 6.0
GROUP_MARGIN = 1.5
MAX_VALLEY = 0.3  # images just below the threshold per member; a separated mode leaves a near-empty valley
COMPONENTS = 64
FIT_SAMPLE = 5000


@dataclasses.dataclass
class Overlay:
    """A set of images sharing one laid-over picture.

    Args:
        indices: sorted member indices.
        scores: each member's robust z-score along the group's direction.
        score: the group's score, the median of `scores`.
    """

    indices: np.ndarray
    scores: np.ndarray
    score: float


def overlay_groups(images, labels, num_classes, *, threshold=DEFAULT_THRESHOLD, min_size=20,
                   max_association=0.5, exclude=(), seed=0):
    """Recurring laid-over pictures as named groups, for the report.

    Args:
        images: array (n, H, W, 3), 0..255.
        labels: int array (n,).
        num_classes: K.
        threshold: see `find_overlays`.
        min_size: fewest members of a group.
        max_association: a group whose labels are more one-class than this is
            reported as kind "class-tied" (a warning), not "overlay".
        exclude: indices already in a group, left out of the search.
        seed: see `find_overlays`.

    Returns:
        A list of `Group`: "overlay-N" (largest first), then "class-tied-N".
    """
    rows = np.setdiff1d(np.arange(len(labels)), np.asarray(exclude, dtype=int))
    found = find_overlays(class_residuals(images[rows], labels[rows], num_classes), threshold=threshold,
                          min_size=min_size, seed=seed)
    for overlay in found:
        overlay.indices = rows[overlay.indices]
    groups = {"overlay": [], "class-tied": []}
    for overlay in found:
        association = label_association(labels[overlay.indices], num_classes, labels)
        kind = "overlay" if association <= max_association else "class-tied"
        top_class = int(np.bincount(labels[overlay.indices]).argmax())
        why = (f"a picture laid over {len(overlay.indices)} images: robust z-score >= {threshold:g} along one "
               f"independent component of the class residuals, median {overlay.score:.1f} "
               f"(groups need {GROUP_MARGIN * threshold:g})")
        why += (", labels unrelated to content" if kind == "background" else
                f"; labels mostly class {top_class} (association {association:.2f}): either a source laid over "
                "that class only or a real look of it, which the data alone cannot tell; check the gallery")
        groups[kind].append(Group(name="", kind=kind, indices=overlay.indices, why=why, scores=overlay.scores,
                                  score=overlay.score, threshold=threshold))
    for kind, members in groups.items():
        for number, group in enumerate(members, start=1):
            group.name = f"{kind}-{number}"
    return groups["overlay"] + groups["class-tied"]


def find_overlays(residuals, *, threshold=DEFAULT_THRESHOLD, min_size=20, components=COMPONENTS, seed=0):
    """Groups of images that share a laid-over picture, strongest first.

    Args:
        residuals: float array (n, d), e.g. from `class_residuals`.
        threshold: robust z-score an image needs to be a member; a group is
            admitted when its median member score reaches GROUP_MARGIN times it.
        min_size: fewest members of a group.
        components: leading principal components searched.
        seed: seed of the fit sample and of the decompositions.

    Returns:
        A list of `Overlay`, disjoint, by
        decreasing size.
    """
    admitted = []
    for z in _component_scores(residuals, components, seed).T:
        for signed in (z, -z):
            members = np.flatnonzero(signed >= threshold)
            valley = np.count_nonzero((signed >= threshold / 2) & (signed < threshold))
            score = float(np.median(signed[members])) if len(members) else 0.0
            if len(members) >= min_size and score >= GROUP_MARGIN * threshold and valley <= MAX_VALLEY * len(members):
                admitted.append(Overlay(members, signed[members], score))
    return _disjoint(sorted(admitted, key=lambda c: -c.score), min_size)


def robust_z(values):
    """(values - median) / (1.4826 * MAD): a z-score that the outliers themselves do not inflate."""
    median = np.median(values)
    spread = 1.4826 * np.median(np.abs(values - median))
    return (values - median) / max(spread, 1e-12)


def _component_scores(residuals, components, seed):
    """Robust z-scores of every image on every independent component, (n, components)."""
    n, d = residuals.shape
    components = min(components, d, n - 1)
    rng = np.random.default_rng(seed)
    # A sample fits the decompositions as well as the whole file and keeps
    # the time flat; every image is then projected.
    fit_rows = np.sort(rng.choice(n, min(FIT_SAMPLE, n), replace=False))
    pca = PCA(components, svd_solver="randomized", whiten=True, random_state=seed).fit(residuals[fit_rows])
    whitened = pca.transform(residuals)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a component that converges slowly still ranks its tail correctly
        ica = FastICA(whiten=False, max_iter=300, tol=1e-3, random_state=seed).fit(whitened[fit_rows])
    sources = ica.transform(whitened)
    return np.apply_along_axis(robust_z, 0, sources)


def _disjoint(groups, min_size):
    """Merge groups that are mostly the same images; give each image to the strongest group."""
    merged = []
    for group in groups:
        same = next((m for m in merged if _overlap(m, group) > 0.5), None)
        if same is None:
            merged.append(group)
        else:
            keep = np.union1d(same.indices, group.indices)
            scores = np.maximum(_scores_at(same, keep), _scores_at(group, keep))
            same.indices, same.scores = keep, scores
            same.score = float(np.median(scores))
    taken = np.zeros(0, dtype=int)
    result = []
    for group in merged:
        fresh = ~np.isin(group.indices, taken)
        if fresh.sum() >= min_size:
            result.append(Overlay(group.indices[fresh], group.scores[fresh], float(np.median(group.scores[fresh]))))
            taken = np.union1d(taken, group.indices[fresh])
    return sorted(result, key=lambda g: -len(g.indices))


def _overlap(a, b):
    """Share of the smaller group that is also in the other."""
    return len(np.intersect1d(a.indices, b.indices)) / min(len(a.indices), len(b.indices))


def _scores_at(group, indices):
    scores = np.full(len(indices), -np.inf)
    scores[np.isin(indices, group.indices)] = group.scores
    return scores
