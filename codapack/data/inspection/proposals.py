"""Candidate groups for the overlay search (`overlays.py`), and the whitened space they live in.

Class residuals are whitened on their leading principal components, so that
natural variation has unit spread in every direction. Two kinds of proposal
come from that space: the tails of independent components (a source is a
sparse, non-Gaussian direction), and neighbourhoods of rows that are
unusually alike their nearest neighbours (a source spread over many
components still points its images the same way). A proposal is only a
starting point: `overlays.py` refines and admits, or rejects, each one.
"""

import warnings

import numpy as np
from sklearn.decomposition import PCA, FastICA

WHITENED = 160  # leading principal components kept, whitened, for refinement
COMPONENTS = 64  # of those, the ones the independent component analysis searches
FIT_SAMPLE = 5000
SEED_Z = 4.0  # robust z of a row's closeness to its nearest neighbours for it to seed a proposal
MAX_SEEDS = 400
NEIGHBOUR_CHUNK = 1024


def proposals(whitened, fit_rows, components, threshold, min_size, seed, covered):
    """Candidate member sets: the tails of independent components, then neighbourhoods of mutually similar rows."""
    smallest = max(min_size // 2, 4)  # a proposal may hold half a group: refinement adds the rest
    for z in component_scores(whitened, fit_rows, components, seed).T:
        for signed in (z, -z):
            proposal = np.flatnonzero(signed >= threshold)
            if len(proposal) >= smallest:
                yield proposal
    yield from neighbour_proposals(whitened, fit_rows, smallest, covered)
    yield from direction_proposals(whitened, fit_rows, threshold, smallest, covered)


def direction_proposals(whitened, fit_rows, threshold, smallest, covered):
    """Each row's own direction, with the rows whose t-like score along it reaches `threshold`.

    A strong blend attenuates the image under it, so its members' residuals are
    small and the shared offset, capped by whitening, is not enough to make them
    each other's nearest neighbours. Along one member's own direction the others
    still stand out, since they carry the offset and little else.
    """
    rows = whitened[fit_rows] - whitened[fit_rows].mean(axis=0)
    norms = np.einsum("ij,ij->i", rows, rows)
    units = rows / np.sqrt(np.maximum(norms, 1e-12))[:, None]
    counts = np.zeros(len(rows), dtype=int)
    for start in range(0, len(rows), NEIGHBOUR_CHUNK):
        counts[start:start + NEIGHBOUR_CHUNK] = (_row_z(units[start:start + NEIGHBOUR_CHUNK], rows, norms)
                                                 >= threshold).sum(axis=1)
    yield from _strongest_first(counts, smallest, fit_rows, covered,
                                lambda row: np.flatnonzero(_row_z(units[row:row + 1], rows, norms)[0] >= threshold))


def _row_z(units, rows, norms):
    """Robust z-scores over the rows of their t-like scores along each unit direction, one line per direction."""
    return robust_z(t_ratio(units @ rows.T, norms, rows.shape[1]), axis=1)


def t_ratio(projection, norms, dims):
    """A row's projection on a unit direction over the root mean square of the rest of the row.

    Args:
        projection: projections of the rows (last axis) on unit directions.
        norms: the rows' squared norms.
        dims: the rows' dimension.
    """
    return projection / np.sqrt(np.maximum(norms - projection ** 2, 1e-6) / max(dims - 1, 1))


def neighbour_proposals(whitened, fit_rows, k, covered):
    """Each seed with its k most similar rows: seeds are the rows most alike their k nearest neighbours.

    Independent components miss a source whose pattern is spread over many
    whitened components (a fine texture). Its images still point the same way:
    their cosine similarity to one another is far above that of clean images,
    whose whitened residuals are nearly independent. Seeds are taken strongest
    first, skipping rows already in a proposal or in an admitted group (`covered`,
    a mask over all rows that the caller updates between proposals).
    """
    rows = whitened[fit_rows] - whitened[fit_rows].mean(axis=0)
    rows /= np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    neighbours = np.empty((len(rows), k), dtype=int)
    closeness = np.empty(len(rows))
    for start in range(0, len(rows), NEIGHBOUR_CHUNK):
        similarity = rows[start:start + NEIGHBOUR_CHUNK] @ rows.T
        similarity[np.arange(len(similarity)), start + np.arange(len(similarity))] = -np.inf
        top = np.argpartition(-similarity, k, axis=1)[:, :k]
        neighbours[start:start + len(top)] = top
        closeness[start:start + len(top)] = np.take_along_axis(similarity, top, axis=1).mean(axis=1)
    yield from _strongest_first(robust_z(closeness), SEED_Z, fit_rows, covered,
                                lambda row: np.append(neighbours[row], row))


def _strongest_first(strength, weakest, fit_rows, covered, members_of):
    """Proposals `members_of(row)` from seed rows, strongest first down to `weakest`.

    A row already in a proposal, or in an admitted group (`covered`, over all
    rows, updated by the caller between proposals), seeds none.
    """
    proposed = np.zeros(len(strength), dtype=bool)
    for row in np.argsort(-strength)[:MAX_SEEDS]:
        if strength[row] < weakest:
            break
        if proposed[row] or covered[fit_rows[row]]:
            continue
        members = members_of(row)
        proposed[members] = True
        yield fit_rows[np.sort(members)]


def robust_z(values, axis=None):
    """(values - median) / (1.4826 * MAD): a z-score that the outliers themselves do not inflate.

    With `axis`, each line along it gets its own median and MAD.
    """
    keep = axis is not None
    median = np.median(values, axis=axis, keepdims=keep)
    spread = 1.4826 * np.median(np.abs(values - median), axis=axis, keepdims=keep)
    return (values - median) / np.maximum(spread, 1e-12)


def whiten(residuals, seed):
    """The leading principal components, each scaled to unit variance, and the rows that fitted them."""
    n, d = residuals.shape
    rng = np.random.default_rng(seed)
    # A sample fits the decomposition as well as the whole file and keeps the time flat.
    fit_rows = np.sort(rng.choice(n, min(FIT_SAMPLE, n), replace=False))
    kept = min(WHITENED, d, len(fit_rows) - 1)
    pca = PCA(kept, svd_solver="randomized", whiten=True, random_state=seed).fit(residuals[fit_rows])
    return pca.transform(residuals).astype(np.float32), fit_rows


def component_scores(whitened, fit_rows, components, seed):
    """Robust z-scores of every image on every independent component of the leading columns."""
    leading = whitened[:, :min(components, whitened.shape[1])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a component that converges slowly still ranks its tail correctly
        ica = FastICA(whiten=False, max_iter=300, tol=1e-3, random_state=seed).fit(leading[fit_rows])
    return np.apply_along_axis(robust_z, 0, ica.transform(leading))
