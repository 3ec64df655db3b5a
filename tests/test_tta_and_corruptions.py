"""Test-time augmentation transforms and image corruptions."""

import numpy as np
import pytest

from codapack.evaluator.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from codapack.evaluator.robustness import robustness_suite
from codapack.submission.tta import POLICIES, transforms

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 256, (6, 24, 24, 3), dtype=np.uint8)


def test_d4_gives_the_eight_distinct_symmetries_of_the_square():
    views = [t(IMAGES) for t in transforms("d4", IMAGES.shape[1:])]
    assert len(views) == 8 and all(v.shape == IMAGES.shape for v in views)
    assert len({v.tobytes() for v in views}) == 8
    assert np.array_equal(views[0], IMAGES)


@pytest.mark.parametrize("policy, count", [("none", 1), ("flips", 3), ("d4", 8), ("shifts", 5)])
def test_policies_keep_shape_and_start_with_identity(policy, count):
    views = [t(IMAGES) for t in transforms(policy, IMAGES.shape[1:])]
    assert len(views) == count and np.array_equal(views[0], IMAGES)
    assert all(v.shape == IMAGES.shape for v in views)


def test_shift_moves_content_and_repeats_edges():
    image = np.zeros((1, 16, 16, 3), np.uint8)
    image[0, 8, 8] = 255
    shifted = [t(image) for t in transforms("shifts", image.shape[1:])][1]  # down by 1 (16 / 16)
    assert shifted[0, 9, 8, 0] == 255 and shifted[0, 8, 8, 0] == 0


def test_unknown_policy_and_non_square_rotation():
    with pytest.raises(ValueError, match="Unknown TTA policy `mirror`"):
        transforms("mirror", (24, 24, 3))
    with pytest.raises(ValueError, match="needs square images; got 24x32"):
        transforms("d4", (24, 32, 3))
    assert set(POLICIES) == {"none", "flips", "d4", "shifts"}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruptions_are_reproducible_grow_with_severity_and_leave_input_alone(name):
    before = IMAGES.copy()
    outputs = [corrupt(IMAGES, name, severity, seed=3) for severity in SEVERITIES]
    assert np.array_equal(IMAGES, before)
    assert all(o.dtype == np.uint8 and o.shape == IMAGES.shape for o in outputs)
    assert np.array_equal(outputs[2], corrupt(IMAGES, name, 3, seed=3))
    change = [np.abs(o.astype(float) - IMAGES).mean() for o in outputs]
    assert change[0] > 0 and change[-1] > change[0], change


def test_suite_shifted_score_falls_below_clean_for_a_memorising_model():
    labels = np.arange(len(IMAGES)) % 4
    known = {image.tobytes(): label for image, label in zip(IMAGES, labels)}

    def predict_proba(x):  # perfect on the clean images, class 0 on anything else
        return np.eye(4)[[known.get(image.tobytes(), 0) for image in x]]

    result = robustness_suite(predict_proba, IMAGES, labels, ["a", "b", "c", "d"], corruptions=["gaussian_noise", "occlusion"])
    assert result["clean_accuracy"] == 1.0
    assert result["shifted_accuracy"] < 0.5
    assert set(result["table"]) == {"gaussian_noise", "occlusion"} and set(result["table"]["occlusion"]) == set(SEVERITIES)
