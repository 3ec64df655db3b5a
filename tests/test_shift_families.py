"""Shift families: what a run records, the suite's per-family scores, held-out apart from trained."""

import numpy as np
import pytest

from codapack.shift_families import FAMILIES, NEVER_TRAINED, held_out
from codapack.evaluator.corruptions import CORRUPTIONS, FAMILY_OF, corruptions_of, shifted_assignment, shifted_copy
from codapack.evaluator.robustness import family_split, robustness_suite, shifted_scores, trained_families_of
from codapack.data.augment import LAYERS
from codapack.data.policies import LAYER_FAMILIES, POLICY_LAYERS, trained_families
from codapack.trainer.config import Augmentation, Phase, TrainConfig, phase_augmentation
from codapack.trainer.training import augmentation_record

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(30, 220, (12, 24, 24, 3), dtype=np.uint8)


def test_every_layer_declares_families_and_no_layer_imitates_the_never_trained_ones():
    assert set(LAYER_FAMILIES) == set(LAYERS)
    imitated = {family for families in LAYER_FAMILIES.values() for family in families}
    assert imitated <= set(FAMILIES) and not imitated & set(NEVER_TRAINED)
    assert set(FAMILY_OF.values()) == set(FAMILIES)


def test_robust_policy_covers_every_trainable_family_and_light_only_geometry():
    assert trained_families(POLICY_LAYERS["robust"]) == [f for f in FAMILIES if f not in NEVER_TRAINED]
    assert trained_families(POLICY_LAYERS["light"]) == ["geometry"]
    assert held_out(["geometry"]) == [f for f in FAMILIES if f != "geometry"]


def test_run_record_unions_the_phases_own_policies():
    config = TrainConfig(augmentation=Augmentation(policy="light", cutmix=1.0),
                         phases=(Phase(name="a", augmentation="none"), Phase(name="b", augmentation="robust"),
                                 Phase(name="c")))
    assert phase_augmentation(config, config.phases[0]).policy == "none"
    assert not phase_augmentation(config, config.phases[0]).per_epoch  # "none" turns CutMix off too
    assert phase_augmentation(config, config.phases[1]).cutmix == 1.0
    assert phase_augmentation(config, config.phases[2]).policy == "light"
    record = augmentation_record(config)
    assert record["per_phase"] == ["none", "robust", "light"]
    assert record["families"] == trained_families(POLICY_LAYERS["robust"])
    assert record["held_out_families"] == list(NEVER_TRAINED)


def test_older_runs_get_their_families_from_their_config():
    old = {"config": {"augmentation": {"policy": "medium", "layers": []}}, "training": {}}
    new = {"training": {"augmentation": {"families": ["noise"]}}}
    assert trained_families_of([old]) == ["geometry", "colour"]
    assert trained_families_of([old, new]) == ["geometry", "colour", "noise"]


def test_family_split_averages_families_not_images():
    per_family = {"geometry": 1.0, "noise": 0.8, "artifacts": 0.5, "overlay": 0.3}
    split = family_split(per_family, ["geometry", "noise", "blur"])
    assert split["trained_accuracy"] == pytest.approx(0.9) and split["held_out_accuracy"] == pytest.approx(0.4)
    assert split["held_out_families"] == ["artifacts", "overlay"] and split["trained_families"] == ["geometry", "noise"]
    assert family_split({"noise": 0.7}, [])["trained_accuracy"] is None


def test_shifted_scores_match_a_count_by_hand():
    n = 210  # two full cycles of the 105 corruption/severity pairs
    labels = RNG.integers(0, 4, n)
    predicted = labels.copy()
    families = np.array([FAMILY_OF[name] for name, _ in shifted_assignment(n)])
    predicted[families == "overlay"] = (labels[families == "overlay"] + 1) % 4  # wrong on every overlay image
    scores = shifted_scores(labels, predicted, trained_families=["geometry"])
    assert scores["per_family"]["overlay"] == 0.0 and scores["per_family"]["noise"] == 1.0
    assert scores["trained_accuracy"] == 1.0
    assert scores["held_out_accuracy"] == pytest.approx(7 / 8)  # eight held-out families, one wrong
    assert scores["shifted_accuracy"] == pytest.approx(1 - np.mean(families == "overlay"))


def test_shifted_copy_gives_image_i_its_assigned_corruption():
    from codapack.evaluator.corruptions import corrupt

    assignment = shifted_assignment(len(IMAGES), 40)
    out = shifted_copy(IMAGES, seed=2, offset=40)
    for i in (0, 5, 11):
        # The images sharing a pair are corrupted together, as one batch with one generator.
        rows = [j for j, pair in enumerate(assignment) if pair == assignment[i]]
        assert np.array_equal(out[i], corrupt(IMAGES[rows], *assignment[i], seed=2)[rows.index(i)])
    assert len(set(assignment)) == len(IMAGES) and assignment[0] == shifted_assignment(1, 40)[0]


def test_suite_reports_held_out_figure_for_a_model_that_fails_only_on_unseen_families():
    labels = np.arange(len(IMAGES)) % 4
    overlay_copies = {corrupt_bytes for corrupt_bytes in _overlay_copies()}

    def predict_proba(x):  # right everywhere except on the blended overlay's images
        wrong = np.array([image.tobytes() in overlay_copies for image in x])
        return np.eye(4)[np.where(wrong, (labels + 1) % 4, labels)]

    result = robustness_suite(predict_proba, IMAGES, labels, ["a", "b", "c", "d"], trained_families=["noise"],
                              corruptions=corruptions_of(["noise", "overlay"]), severities=(1, 3))
    assert result["trained_accuracy"] == 1.0 and result["held_out_accuracy"] == 0.0
    assert result["held_out_families"] == ["overlay"] and set(result["table"]) == set(corruptions_of(["noise",
                                                                                                     "overlay"]))


def _overlay_copies():
    from codapack.evaluator.corruptions import corrupt

    for severity in (1, 3):
        for image in corrupt(IMAGES, "blended_overlay", severity):
            yield image.tobytes()


def test_unknown_corruption_and_severity_are_refused():
    from codapack.evaluator.corruptions import corrupt

    with pytest.raises(ValueError, match="`name` should be one of"):
        corrupt(IMAGES, "fog", 1)
    with pytest.raises(ValueError, match="`severity` should be 1..5"):
        corrupt(IMAGES, "haze", 6)
    assert len(CORRUPTIONS) == 21


def test_every_small_split_meets_every_family_and_105_images_every_pair():
    assert {FAMILY_OF[name] for name, _ in shifted_assignment(21, offset=8)} == set(FAMILIES)
    assert len(set(shifted_assignment(105))) == 105
    assert {severity for _, severity in shifted_assignment(5)} == {1, 2, 3, 4, 5}
