"""The overlay search's paste regions (`pastes.py`) and its proposals along one image's direction."""

import numpy as np

from codapack.data.inspection.pastes import MIN_REGION, paste_members, pasted_region, pixel_spread
from codapack.data.inspection.proposals import direction_proposals


def _cells(n=300, size=24, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 200, (n, 1, 1, 3))
    return np.clip(base + rng.normal(0, 25, (n, size, size, 3)), 0, 255).astype(np.uint8)


def test_a_pasted_region_decides_membership_both_ways():
    images = _cells()
    sticker = np.random.default_rng(1).integers(0, 256, (8, 10, 3)).astype(np.uint8)
    pasted = np.arange(100, 140)
    images[pasted, 4:12, 6:16] = sticker
    # The search found 35 of the 40 and took in 3 clean images.
    found = np.concatenate([pasted[:35], [3, 50, 200]])
    before = images.copy()
    spread = pixel_spread(images)
    region = pasted_region(images, found, spread)
    assert region is not None and region[4:12, 6:16].all()
    assert region.sum() <= 80 + 8  # the sticker's 80 pixels, give or take a few the members agree on by chance
    members, matched_region = paste_members(images, found, spread)
    assert np.array_equal(np.sort(members), pasted) and np.array_equal(matched_region, region)
    assert np.array_equal(np.sort(paste_members(images, found, spread, chunk=7)[0]), pasted)
    assert np.array_equal(images, before)


def test_a_blend_has_no_pasted_region():
    images = _cells()
    picture = np.random.default_rng(2).integers(0, 256, images.shape[1:])
    blended = np.arange(0, 60)
    images[blended] = np.rint(0.5 * images[blended] + 0.5 * picture).astype(np.uint8)
    spread = pixel_spread(images)
    assert pasted_region(images, blended, spread) is None
    assert paste_members(images, blended, spread) is None


def test_a_region_smaller_than_the_minimum_decides_nothing():
    images = _cells(size=32)
    side = int(np.sqrt(MIN_REGION * 32 * 32)) - 1  # just under the minimum share of the image
    images[100:140, :side, :side] = 0
    assert pasted_region(images, np.arange(100, 140), pixel_spread(images)) is None


def test_direction_proposals_find_a_strong_source_whose_images_are_attenuated():
    # A strong blend attenuates the image under it: its members carry the shared offset and
    # little else, so along one member's direction the others stand far above the bulk.
    rng = np.random.default_rng(0)
    whitened = rng.normal(size=(3000, 60))
    members = rng.choice(3000, 90, replace=False)
    offset = np.zeros(60)
    offset[:30] = 1.0
    whitened[members] = 0.4 * whitened[members] + offset
    fit_rows = np.arange(0, 3000, 2)
    proposals = list(direction_proposals(whitened, fit_rows, 6.0, 5, np.zeros(3000, dtype=bool)))
    assert proposals, "the members should seed at least one proposal"
    top = proposals[0]
    assert np.isin(top, members).mean() >= 0.9 and np.isin(top, fit_rows).all()
    assert len(top) >= 0.5 * np.isin(members, fit_rows).sum()
    covered = np.zeros(3000, dtype=bool)
    covered[members] = True
    assert all(np.isin(p, members).mean() < 0.5
               for p in direction_proposals(whitened, fit_rows, 6.0, 5, covered))
