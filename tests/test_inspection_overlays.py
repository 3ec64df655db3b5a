"""Recurring laid-over pictures over a range of generated contaminations (no ../shared).

Each setting lays one to five generated sources over soft procedural cells
(tests/contamination.py) and scores the background groups `inspect` would
report against the true mask. Acceptance: precision and recall >= 0.98 each,
and no group at all on the clean file.
"""

import numpy as np
import pytest

from codapack.data.inspection.overlays import Overlay, _admitted, _disjoint, overlay_groups
from codapack.data.inspection.proposals import neighbour_proposals
from tests.contamination import Setting, contaminate, make_cells, precision_recall

N, SIZE, CLASSES = 2000, 32, 8
# strong-blend is the hard one: large cells of two classes look like its sticker's round logo and
# joined it (precision 0.83 on AVX-512 BLAS kernels) until membership was decided by the group's
# signature (`signature.py`). `python bench/inspection_seeds.py` draws all of these again.

SETTINGS = [
    Setting("photo-blend", ("photo",), 0.05, seed=1),
    Setting("faint-blend", ("photo",), 0.05, weight=(0.25, 0.3), seed=2),
    Setting("texture-blend", ("texture",), 0.05, seed=3),
    Setting("sticker-blend", ("sticker",), 0.05, seed=4),
    Setting("two-sources", ("photo", "texture"), 0.08, seed=5),
    Setting("five-sources", ("photo", "texture", "sticker", "photo", "texture"), 0.15, seed=6),
    Setting("rare", ("photo",), 0.01, seed=7),
    Setting("strong-blend", ("sticker", "photo"), 0.06, weight=(0.5, 0.6), seed=8),
    Setting("small-paste", ("sticker",), 0.04, mode="paste", cover=(0.2, 0.3), seed=9),
    Setting("half-paste", ("photo", "texture"), 0.06, mode="paste", cover=(0.4, 0.6), seed=10),
    Setting("full-paste", ("photo", "sticker"), 0.08, mode="paste", cover=(0.9, 1.0), seed=11),
    Setting("mixed-paste", ("sticker", "texture", "photo"), 0.12, mode="paste", cover=(0.2, 1.0), seed=12),
]
TIED = Setting("tied-to-class-3", ("photo",), 0.03, tied_class=3, seed=13)


@pytest.fixture(scope="module")
def cells():
    return make_cells(N, SIZE, CLASSES, seed=0)


def _of_kind(groups, kind):
    return [group.indices for group in groups if group.kind == kind]


@pytest.mark.parametrize("setting", SETTINGS, ids=[s.name for s in SETTINGS])
def test_contamination_found_with_precision_and_recall(cells, setting):
    images, labels, source = contaminate(*cells, CLASSES, setting)
    labels = labels.ravel()
    groups = overlay_groups(images, labels, CLASSES, min_size=10)
    for group in groups:  # members that joined by a paste's pixels carry scores too
        assert len(group.scores) == len(group.indices) and group.score == np.median(group.scores)
    precision, recall = precision_recall(_of_kind(groups, "overlay"), source >= 0)
    print(f"\n{setting.name}: {len(groups)} groups {[len(g.indices) for g in groups]}, "
          f"precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.98 and recall >= 0.98


def test_source_tied_to_one_class_is_a_warning_not_a_background(cells):
    images, labels, source = contaminate(*cells, CLASSES, TIED)
    groups = overlay_groups(images, labels.ravel(), CLASSES, min_size=10)
    assert [g.kind for g in groups] == ["class-tied"]
    precision, recall = precision_recall(_of_kind(groups, "class-tied"), source >= 0)
    print(f"\ntied: precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.98 and recall >= 0.98 and "class 3" in groups[0].why


def test_clean_file_gives_no_group(cells):
    images, labels = cells
    assert overlay_groups(images, labels, CLASSES, min_size=10) == []


def test_neighbour_proposals_find_a_pattern_spread_over_every_component():
    # A source whose pattern is spread evenly over all whitened components has no sparse,
    # non-Gaussian direction for the independent components to find; its members still point
    # the same way, and their nearest neighbours are one another.
    rng = np.random.default_rng(0)
    whitened = rng.normal(size=(3000, 60))
    pattern = rng.choice((-1.0, 1.0), 60)  # as strong as the noise, but spread over all 60 directions
    members = rng.choice(3000, 40, replace=False)
    whitened[members] += pattern
    fit_rows = np.arange(0, 3000, 2)  # half the rows fit, as a sample would
    proposals = list(neighbour_proposals(whitened, fit_rows, 10, np.zeros(3000, dtype=bool)))
    assert proposals, "the members should seed at least one proposal"
    top = proposals[0]
    assert np.isin(top, members).mean() >= 0.9 and np.isin(top, fit_rows).all()
    # Rows already in an admitted group seed nothing.
    covered = np.zeros(3000, dtype=bool)
    covered[members] = True
    assert all(np.isin(p, members).mean() < 0.5
               for p in neighbour_proposals(whitened, fit_rows, 10, covered))


def _group_with_bands(members_z, lower, upper, threshold=6.0, n=4000, seed=0):
    """z-scores of n images: `members_z` for the group, `lower` and `upper` images in the two
    bands below the threshold and as many at minus those values (a bulk's tail is symmetric), the
    rest normal; and the group as `_refined` returns it."""
    rng = np.random.default_rng(seed)
    z = np.clip(rng.normal(size=n), -2.5, 2.5)
    z[:lower] = rng.uniform(threshold / 2, 0.75 * threshold, lower)
    z[lower:lower + upper] = rng.uniform(0.75 * threshold, threshold - 1e-6, upper)
    z[lower + upper:2 * (lower + upper)] = -z[:lower + upper]
    indices = np.arange(n - len(members_z), n)
    z[indices] = members_z
    return Overlay(indices, z[indices], float(np.median(members_z))), z


def test_a_faint_source_is_admitted_by_its_valley_and_a_natural_group_is_not():
    faint = np.linspace(6.2, 13.0, 100)  # median 9.6: short of GROUP_MARGIN * 6 = 12
    overlay, z = _group_with_bands(faint, lower=9, upper=9)  # 100 members against 18 just below: a valley
    admitted = _admitted(overlay, z, 6.0, 20)
    assert admitted is not None and len(admitted.indices) == 100 and admitted.cut == 6.0
    overlay, z = _group_with_bands(faint, lower=35, upper=25)  # a tail running on into the group
    assert _admitted(overlay, z, 6.0, 20) is None
    overlay, z = _group_with_bands(np.linspace(6.2, 8.4, 100), lower=9, upper=9)  # median 7.3 < 1.25 * 6
    assert _admitted(overlay, z, 6.0, 20) is None


def test_a_faint_sources_weakest_members_come_back_down_to_where_the_bulk_reaches():
    weakest = np.linspace(4.7, 5.9, 10)  # the source's members just below the threshold of 6
    members = np.concatenate([weakest, np.linspace(6.2, 13.0, 100)])
    z = np.clip(np.random.default_rng(1).normal(size=4000), -2.5, 2.5)
    z[-110:] = members
    above = np.arange(3890, 4000)[members >= 6.0]
    admitted = _admitted(Overlay(above, z[above], float(np.median(z[above]))), z, 6.0, 20)
    assert admitted.cut == 3.0 and np.array_equal(admitted.indices, np.arange(3890, 4000))
    z[:3] = -5.0  # the bulk reaches 5 on its mirror side, so it may reach +5 as well: the cut stops above 5
    admitted = _admitted(Overlay(above, z[above], float(np.median(z[above]))), z, 6.0, 20)
    assert admitted.cut == 5.25 and len(admitted.indices) == 100 + np.count_nonzero(weakest >= 5.25)


def test_a_group_spanning_two_sources_does_not_absorb_them():
    first, second = np.arange(0, 100), np.arange(100, 200)
    spanning = np.concatenate([first, second[:80]])
    groups = [Overlay(first, np.full(100, 30.0), 30.0), Overlay(second, np.full(100, 25.0), 25.0),
              Overlay(spanning, np.full(180, 15.0), 15.0)]
    result = _disjoint(groups, 20)
    assert sorted(len(g.indices) for g in result) == [100, 100]
    assert {tuple(g.indices) for g in result} == {tuple(first), tuple(second)}
    # Two refinements of one source, differing by marginal members, are one group.
    result = _disjoint([Overlay(first[:95], np.full(95, 30.0), 30.0), Overlay(first[3:], np.full(97, 29.0), 29.0)],
                       20)
    assert [len(g.indices) for g in result] == [100]


@pytest.mark.parametrize("n", [3, 19])
def test_a_file_smaller_than_a_group_gives_no_group(n):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 16, 16, 3)).astype(np.uint8)
    assert overlay_groups(images, np.arange(n) % 4, 4, min_size=20) == []
