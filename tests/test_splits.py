"""Stratified, seeded splits, saved once and reused by every stage."""

import os

import numpy as np
import pytest

from codapack.dataset import load_dataset
from codapack.errors import CodapackError
from codapack.splits import make_split, split_for


def test_split_is_disjoint_complete_and_stratified():
    labels = np.repeat(np.arange(4), [100, 200, 300, 400])
    split = make_split(labels, "h" * 64, seed=1, val_fraction=0.2, test_fraction=0.1)
    parts = [split[name] for name in ("train", "val", "test")]
    assert sorted(np.concatenate(parts).tolist()) == list(range(1000))
    assert [len(p) for p in parts] == [700, 200, 100]
    for part, fraction in zip(parts, (0.7, 0.2, 0.1)):
        counts = np.bincount(labels[part], minlength=4)
        np.testing.assert_allclose(counts, fraction * np.array([100, 200, 300, 400]), atol=1)


def test_seed_changes_split_and_same_seed_repeats():
    labels = np.arange(400) % 4
    a = make_split(labels, "x", seed=1, val_fraction=0.2, test_fraction=0.2)
    b = make_split(labels, "x", seed=1, val_fraction=0.2, test_fraction=0.2)
    c = make_split(labels, "x", seed=2, val_fraction=0.2, test_fraction=0.2)
    assert np.array_equal(a["test"], b["test"]) and not np.array_equal(a["test"], c["test"])


def test_split_is_saved_and_reused(tiny_data, tiny_profile, tmp_path):
    dataset = load_dataset(tiny_data, tiny_profile)
    first = split_for(dataset, tiny_profile, folder=str(tmp_path))
    saved = os.listdir(tmp_path)
    assert saved == [f"{first.split_id}.json"]
    # A saved split wins over a fresh draw: tamper with it and the tampered indices come back.
    path = tmp_path / saved[0]
    path.write_text(path.read_text().replace('"test": [', '"test": [0, ', 1))
    again = split_for(dataset, tiny_profile, folder=str(tmp_path))
    assert again["test"][0] == 0 and len(again["test"]) == len(first["test"]) + 1


def test_too_few_images_per_class_is_explained():
    with pytest.raises(CodapackError, match="cannot make a stratified split.*Images per class: \\[1, 9\\]"):
        make_split(np.array([0] + [1] * 9), "x", seed=0, val_fraction=0.2, test_fraction=0.2)


def test_unknown_split_name():
    split = make_split(np.arange(40) % 2, "x", seed=0, val_fraction=0.2, test_fraction=0.2)
    with pytest.raises(CodapackError, match="unknown split `dev`"):
        split["dev"]


def test_final_split_is_carved_out_of_test_and_leaves_train_and_val_alone():
    labels = np.repeat(np.arange(4), [100, 200, 300, 400])
    plain = make_split(labels, "h" * 64, seed=3, val_fraction=0.2, test_fraction=0.3)
    phased = make_split(labels, "h" * 64, seed=3, val_fraction=0.2, test_fraction=0.3, final_fraction=0.1)
    assert np.array_equal(plain["train"], phased["train"]) and np.array_equal(plain["val"], phased["val"])
    assert set(phased["test"]).isdisjoint(phased["final"])
    assert sorted(np.concatenate([phased["test"], phased["final"]]).tolist()) == plain["test"].tolist()
    np.testing.assert_allclose(np.bincount(labels[phased["final"]]), [10, 20, 30, 40], atol=1)
    assert phased.split_id.endswith("-f0.1") and plain.split_id.endswith("-t0.3")
    with pytest.raises(CodapackError, match="holds back no final images"):
        plain["final"]


def test_profile_rejects_a_final_fraction_not_below_test(tmp_path):
    from codapack.profile import load_profile
    from tests.conftest import TINY_PROFILE

    path = tmp_path / "p.toml"
    path.write_text(TINY_PROFILE + "final_fraction = 0.2\n")
    with pytest.raises(CodapackError, match="`split.final_fraction` should be at least 0 and below"):
        load_profile(str(path))
    path.write_text(TINY_PROFILE + "final_fraction = 0.05\n")
    assert load_profile(str(path)).final_fraction == 0.05
