"""Consistency training: the loss against an independent computation, the paired pipelines, the config."""

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from codapack.errors import CodapackError
from codapack.trainer import inputs, training
from codapack.trainer.config import Augmentation, load_config
from codapack.trainer.consistency import ConsistencyLoss
from tests.test_training_phases import TWO_PHASES, _write

RNG = np.random.default_rng(0)


def _probabilities(n, k):
    logits = RNG.normal(size=(n, k)) * 2
    return (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)


def test_loss_is_smoothed_cross_entropy_plus_weighted_divergence_between_the_halves():
    n, k, weight, smoothing = 6, 4, 3.0, 0.1
    clean, corrupted = _probabilities(n, k), _probabilities(n, k)
    labels = np.eye(k, dtype=np.float32)[RNG.integers(0, k, n)]
    y_true, y_pred = np.concatenate([labels, labels]), np.concatenate([clean, corrupted])
    loss = float(ConsistencyLoss(weight, smoothing)(y_true, y_pred))
    smoothed = y_true * (1 - smoothing) + smoothing / k
    cross_entropy = -(smoothed * np.log(y_pred)).sum(axis=1).mean()
    divergence = np.mean([jensenshannon(p, q) ** 2 for p, q in zip(clean, corrupted)])  # SciPy: natural log
    assert loss == pytest.approx(cross_entropy + weight * divergence, rel=1e-4)
    assert divergence > 0.01  # the term is not negligible in this check
    same = float(ConsistencyLoss(weight, smoothing)(y_true, np.concatenate([clean, clean])))
    plain = -(smoothed * np.log(np.concatenate([clean, clean]))).sum(axis=1).mean()
    assert same == pytest.approx(plain, rel=1e-5)  # identical views: the plain cross-entropy


def test_loss_config_round_trips():
    loss = ConsistencyLoss(5.0, 0.2)
    clone = ConsistencyLoss.from_config(loss.get_config())
    assert (clone.weight, clone.label_smoothing) == (5.0, 0.2)


def test_paired_batches_hold_each_image_with_geometry_then_with_the_corruption_on_top():
    n, classes = 10, 5
    images = RNG.integers(30, 220, (n, 8, 8, 3)).astype(np.uint8)
    labels = np.arange(n) % classes
    flips = lambda x: [x, x[::-1], x[:, ::-1], x[::-1, ::-1]]  # noqa: E731
    augmentation = Augmentation(layers=("flip", "gaussian_noise"))
    sizes = []
    for x, y in inputs.train_pipeline(images, labels, classes, 4, augmentation, seed=2, pairs=True):
        x, y = x.numpy(), y.numpy()
        half = len(x) // 2
        sizes.append(half)
        np.testing.assert_array_equal(y[:half], y[half:])
        for moved, corrupted, label in zip(x[:half], x[half:], y[:half]):
            source = int(np.argmax(label))  # a flip of one of the images of this class
            candidates = [i for i in range(n) if labels[i] == source]
            assert any(np.array_equal(moved, f) for i in candidates for f in flips(images[i].astype(np.float32)))
            noise = np.abs(corrupted - moved).mean()
            assert noise < 12.0 and noise < 0.5 * min(np.abs(corrupted - f).mean()
                                                              for f in flips(moved)[1:])
    assert sizes == [4, 4, 2]
    pixels, _ = next(iter(inputs.eval_pipeline(images, labels, classes, 4, pairs=True)))
    np.testing.assert_array_equal(pixels.numpy()[:4], pixels.numpy()[4:])
    np.testing.assert_array_equal(pixels.numpy()[:4], images[:4].astype(np.float32))


def test_consistency_phase_trains_and_bad_combinations_are_refused(tiny_data, tiny_profile, tmp_path):
    path = _write(tmp_path, TWO_PHASES.replace('optimizer = "sgd"', 'optimizer = "sgd"\nconsistency = 4.0'))
    config = load_config(path, ["phases.1.epochs=1", "augmentation.policy=robust"])
    record = training.train_run(config, tiny_data, str(tmp_path / "run"), tiny_profile)
    assert [p["epochs_run"] for p in record["training"]["phases"]] == [2, 1]
    with pytest.raises(CodapackError, match="`consistency` in phase `fine_tune` should not be combined with MixUp"):
        load_config(path, ["augmentation.mixup=0.2"])
    with pytest.raises(CodapackError, match="needs `training.strategy = \"default\"`"):
        load_config(path, ["training.strategy=mirrored"])
    with pytest.raises(CodapackError, match="`phases.1.consistency` should be 0 \\(off\\) or positive"):
        load_config(path, ["phases.1.consistency=-1"])
