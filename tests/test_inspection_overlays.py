"""Recurring laid-over pictures over a range of generated contaminations (no ../shared).

Each setting lays one to five generated sources over soft procedural cells
(tests/contamination.py) and scores the background groups `inspect` would
report against the true mask. Acceptance: precision and recall >= 0.98 each,
and no group at all on the clean file.
"""

import numpy as np
import pytest

from codapack.data.inspection.overlays import overlay_groups
from tests.contamination import Setting, contaminate, make_cells

N, SIZE, CLASSES = 2000, 32, 8
# Settings still short of the acceptance with the current detector, marked as expected
# failures (not strict, so a better detector turns them into passes). None with the search's
# default seed; with seeds 1 and 2 strong-blend (precision 0.93-0.98) and small-paste (recall
# 0.91-0.975) fall short, so those two are borderline.
SHORT = set()

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


def _flagged(groups, kind, n):
    flagged = np.zeros(n, dtype=bool)
    for group in groups:
        if group.kind == kind:
            flagged[group.indices] = True
    return flagged


def _precision_recall(flagged, truth):
    hits = int((flagged & truth).sum())
    return hits / max(int(flagged.sum()), 1), hits / int(truth.sum())


@pytest.mark.parametrize("setting", [
    pytest.param(s, marks=pytest.mark.xfail(reason="below 0.98 with the current detector", strict=False))
    if s.name in SHORT else s for s in SETTINGS], ids=[s.name for s in SETTINGS])
def test_contamination_found_with_precision_and_recall(cells, setting):
    images, labels, source = contaminate(*cells, CLASSES, setting)
    labels = labels.ravel()
    groups = overlay_groups(images, labels, CLASSES, min_size=10)
    precision, recall = _precision_recall(_flagged(groups, "overlay", len(labels)), source >= 0)
    print(f"\n{setting.name}: {len(groups)} groups {[len(g.indices) for g in groups]}, "
          f"precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.98 and recall >= 0.98


def test_source_tied_to_one_class_is_a_warning_not_a_background(cells):
    images, labels, source = contaminate(*cells, CLASSES, TIED)
    groups = overlay_groups(images, labels.ravel(), CLASSES, min_size=10)
    assert [g.kind for g in groups] == ["class-tied"]
    precision, recall = _precision_recall(_flagged(groups, "class-tied", len(source)), source >= 0)
    print(f"\ntied: precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.98 and recall >= 0.98 and "class 3" in groups[0].why


def test_clean_file_gives_no_group(cells):
    images, labels = cells
    assert overlay_groups(images, labels, CLASSES, min_size=10) == []
