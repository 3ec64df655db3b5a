"""Groups of suspicious images: strong recurring backgrounds, isolated images, exemplar matches.

`inspect` runs `background_groups` first (strong blends), then
`overlays.overlay_groups` on the rest (fainter pictures, pastes). Recurring background (mutual k-NN). Images blended with one picture share an
additive component, so in the feature embedding they are each other's nearest
neighbours and form a tight component of the mutual k-nearest-neighbour graph,
apart from the clean data. A component is reported when it is not the main
body of the data and its labels say nothing about its content: their
distribution is close to the whole set's (low `label_association`), as labels
put on blended pictures are. A separate component of one class is a class,
not contamination. A discriminant fitted on the components' members then
assigns every image, which recovers members the graph left unconnected.

Isolated images are those whose distance to their k-th neighbour is extreme
(a robust z-score over the data): far from every class.

Exemplar mode, the reference approach: given a few indices, every image whose
centred features have cosine similarity at or above a threshold with one of
them.
"""

import dataclasses

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from sklearn.neighbors import NearestNeighbors

from codapack.data.inspection.features import centred_unit


@dataclasses.dataclass
class Group:
    """A named set of images to show a person and possibly to drop.

    Args:
        name: unique id used by `codapack clean --drop`, e.g. "background-1".
        kind: "background", "isolated" or "exemplar".
        indices: sorted int array of the members.
        why: one line saying how the group was found.
        scores: each member's score (robust z-score or similarity), or None.
        score: the group's score (median of `scores`), or None.
        threshold: the score that admitted members, or None.
    """

    name: str
    kind: str
    indices: np.ndarray
    why: str
    scores: np.ndarray = None
    score: float = None
    threshold: float = None


def embed(features, n_components=20, seed=0):
    """Project features onto their leading principal components (not whitened)."""
    n_components = min(n_components, features.shape[1], len(features) - 1)
    return PCA(n_components, random_state=seed).fit_transform(features).astype(np.float32)


def label_association(labels, num_classes, reference):
    """How much the labels of a group depart from the reference distribution.

    Cramér's-V-like effect size: sqrt(chi2 / (n * (K - 1))) of the group's
    label counts against the reference proportions. 0 for labels drawn like
    the reference, 1 for a group of one class in a balanced set.

    Args:
        labels: the group's labels.
        num_classes: K.
        reference: all labels of the data set.

    Returns:
        A float >= 0.
    """
    expected = np.bincount(reference, minlength=num_classes) / len(reference)
    observed = np.bincount(labels, minlength=num_classes) / len(labels)
    present = expected > 0
    chi2 = (((observed - expected) ** 2)[present] / expected[present]).sum()
    return float(np.sqrt(chi2 / max(num_classes - 1, 1)))


def background_groups(embedding, labels, num_classes, *, neighbors=10, min_size=20, max_association=0.5):
    """Find groups of images that share a recurring background.

    Args:
        embedding: float array (n, k) from `embed`.
        labels: int array (n,).
        num_classes: number of classes.
        neighbors: k of the mutual k-nearest-neighbour graph.
        min_size: smallest component considered a group.
        max_association: components whose `label_association` exceeds this
            are treated as classes, not contamination.

    Returns:
        A list of `Group` of kind "background", largest first.
    """
    n = len(embedding)
    k = min(neighbors, n - 1)
    _, nearest = NearestNeighbors(n_neighbors=k + 1).fit(embedding).kneighbors(embedding)
    graph = csr_matrix((np.ones(n * k), (np.repeat(np.arange(n), k), nearest[:, 1:].ravel())), shape=(n, n))
    _, component = connected_components(graph.multiply(graph.T), directed=False)
    sizes = np.bincount(component)
    main = int(sizes.argmax())
    candidates, others = [], []
    for c in np.flatnonzero(sizes >= min_size):
        members = component == c
        association = label_association(labels[members], num_classes, labels)
        if c != main and sizes[c] <= n // 2 and association <= max_association:
            candidates.append(c)
        else:
            others.append(c)
    if not candidates:
        return []
    assigned = _assign(embedding, component, candidates, others)
    groups = []
    for j, c in enumerate(candidates, start=1):
        members = np.flatnonzero(assigned == j)
        scores = _separation(embedding, members)
        groups.append(Group(
            name="", kind="background", indices=members,
            why=f"tight cluster apart from the data ({sizes[c]} images in one mutual {k}-NN component, "
                f"{len(members)} after assigning every image), labels unrelated to content",
            scores=scores, score=float(np.median(scores)), threshold=None))
    groups.sort(key=lambda g: -len(g.indices))
    for j, group in enumerate(groups, start=1):
        group.name = f"background-{j}"
    return groups


def _separation(embedding, members):
    """Robust z-scores of the members along the line from the rest's mean to the group's mean.

    The discriminant, not a cut on this score, admitted them, so such groups carry no threshold.
    """
    rest = np.setdiff1d(np.arange(len(embedding)), members)
    direction = embedding[members].mean(axis=0) - embedding[rest].mean(axis=0)
    projection = embedding @ direction
    median = np.median(projection[rest])
    spread = 1.4826 * np.median(np.abs(projection[rest] - median))
    return (projection[members] - median) / max(spread, 1e-12)


def _assign(embedding, component, candidates, others):
    """Label every image 0 (normal) or j (candidate j) with a discriminant fitted on the components."""
    target = np.full(len(embedding), -1)
    target[np.isin(component, others)] = 0
    for j, c in enumerate(candidates, start=1):
        target[component == c] = j
    known = target >= 0
    # Shrinkage keeps the covariance of a small group well conditioned.
    model = QuadraticDiscriminantAnalysis(solver="eigen", shrinkage="auto")
    return model.fit(embedding[known], target[known]).predict(embedding)


def isolated_images(embedding, *, exclude=(), neighbors=10, threshold=8.0):
    """Images far from every other image: robust z-score of the k-th neighbour distance.

    Args:
        embedding: float array (n, k).
        exclude: indices already in a group (not flagged again, not in the statistics).
        neighbors: k.
        threshold: robust z-score (median and scaled MAD) above which an image is isolated.

    Returns:
        A `Group` of kind "isolated", or None when nothing is flagged.
    """
    keep = np.setdiff1d(np.arange(len(embedding)), np.asarray(exclude, dtype=int))
    points = embedding[keep]
    k = min(neighbors, len(points) - 1)
    distance = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)[0][:, -1]
    median = np.median(distance)
    spread = 1.4826 * np.median(np.abs(distance - median))
    score = (distance - median) / max(spread, 1e-12)
    chosen = score > threshold  # keep is sorted, so the members are too
    if not chosen.any():
        return None
    return Group(name="isolated", kind="isolated", indices=keep[chosen],
                 why=f"distance to the {k}th nearest image more than {threshold:g} robust "
                     "standard deviations above the median: far from every class",
                 scores=score[chosen], score=float(np.median(score[chosen])), threshold=threshold)


def exemplar_group(features, exemplars, *, threshold=0.8):
    """Every image similar to one of the given examples (the reference approach).

    Args:
        features: float array (n, d).
        exemplars: indices of example images.
        threshold: minimum cosine similarity of the centred features.

    Returns:
        A `Group` of kind "exemplar" (it includes the exemplars).
    """
    centred = centred_unit(features)
    similarity = (centred @ centred[list(exemplars)].T).max(axis=1)
    members = np.union1d(np.flatnonzero(similarity >= threshold), exemplars)
    return Group(name="exemplar", kind="exemplar", indices=members,
                 why=f"cosine similarity >= {threshold:g} with one of the exemplars {list(exemplars)}",
                 scores=similarity[members], score=float(np.median(similarity[members])), threshold=threshold)
