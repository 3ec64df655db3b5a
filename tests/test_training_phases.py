"""Training phases, optimisers, overrides, checkpoints and --resume, cached features, augmentation."""

import json
import os
import time
import tomllib

import numpy as np
import pytest

from codapack.errors import CodapackError
from codapack.submission.networks import build_network
from tests.conftest import write_config
from codapack.trainer import checkpoint as checkpoint_module
from codapack.trainer import run_dir, training
from codapack.data.augment import LAYERS, batch_mixer, image_augmenter
from codapack.data.policies import POLICY_LAYERS
from codapack.trainer.config import Phase, load_config
from codapack.trainer.features import split_at_head
from codapack.trainer.inputs import balanced_class_weights, oversample
from codapack.data.offline_augmentation import augment_offline
from codapack.trainer.overrides import apply_overrides, to_toml
from codapack.trainer.phases import backbone_of, compile_for, make_optimizer, set_trainable

TWO_PHASES = """
[model]
architecture = "mobilenet_v3_small"
[model.options]
dense = [8]
batch_norm = true
dropout = [0.1]
[training]
seed = 1
max_train_images = 64
label_smoothing = 0.1
class_weights = "balanced"
[[phases]]
name = "transfer"
trainable = "head"
epochs = 2
batch_size = 32
learning_rate = 1e-3
early_stopping_patience = 0
[[phases]]
name = "fine_tune"
trainable = "last:10"
epochs = 2
batch_size = 32
optimizer = "sgd"
learning_rate = 1e-3
schedule = "plateau"
early_stopping_patience = 5
"""


def _write(tmp_path, text, name="two.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_trainable_settings_freeze_what_they_say():
    network = build_network("mobilenet_v2", (32, 32, 3), 4, {"dense": [8]})
    backbone = backbone_of(network)
    assert set_trainable(network, Phase(trainable="head")) == 4 and not backbone.trainable_weights
    set_trainable(network, Phase(trainable="last:20"))
    trainable = [layer for layer in backbone.layers if layer.trainable_weights]
    assert trainable and all(layer in backbone.layers[-20:] for layer in trainable)
    assert not any(layer.trainable for layer in backbone.layers if "BN" in layer.name or "_bn" in layer.name)
    set_trainable(network, Phase(trainable="from:block_16_expand"))
    names = [layer.name for layer in backbone.layers]
    assert all(names.index(layer.name) >= names.index("block_16_expand") for layer in backbone.layers
               if layer.trainable_weights)
    assert set_trainable(network, Phase(trainable="all")) == len(network.weights) - 2 * 52  # BN moving stats
    with pytest.raises(CodapackError, match="no layer named `nope`"):
        set_trainable(network, Phase(trainable="from:nope"))
    with pytest.raises(CodapackError, match="needs a pretrained backbone"):
        set_trainable(build_network("baseline_cnn", (32, 32, 3), 4), Phase(trainable="head"))


@pytest.mark.parametrize("name, kind", [("adam", "Adam"), ("adamw", "AdamW"), ("sgd", "SGD"), ("lion", "Lion")])
def test_optimizers(name, kind):
    optimizer = make_optimizer(Phase(optimizer=name, learning_rate=0.01, schedule="cosine", epochs=2), 5)
    assert type(optimizer).__name__ == kind
    assert float(optimizer.learning_rate) == pytest.approx(0.01)


@pytest.mark.parametrize("ema", [0.0, 0.6])
def test_ema_leaves_the_moving_average_of_the_weights_in_the_network(ema):
    import keras

    keras.utils.set_random_seed(0)
    network = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    compile_for(network, Phase(optimizer="sgd", learning_rate=0.5, momentum=0.0, ema=ema), 4, 0.0)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 3)).astype("float32"), np.eye(2, dtype="float32")[rng.integers(0, 2, 16)]
    seen = []  # the raw kernel after every step
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda *_, **__: seen.append(network.weights[0].numpy()))
    network.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[record])
    expected = seen[0]
    for kernel in seen[1:]:
        expected = ema * expected + (1 - ema) * kernel
    assert len(seen) == 8 and not np.allclose(seen[0], seen[-1])
    np.testing.assert_allclose(network.weights[0].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_ema_outside_zero_to_one_is_refused(tmp_path):
    path = _write(tmp_path, TWO_PHASES.replace('optimizer = "sgd"', 'optimizer = "sgd"\nema = 1.0'))
    with pytest.raises(CodapackError, match="`phases.1.ema` should be in \\[0, 1\\)"):
        load_config(path)


def test_split_at_head_composes_to_the_network():
    network = build_network("mobilenet_v3_small", (32, 32, 3), 4, {"dense": [8], "batch_norm": True})
    features, head = split_at_head(network)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(head(features(x)).numpy(), network(x).numpy(), rtol=1e-5, atol=1e-6)


def test_overrides_and_toml_round_trip(tmp_path):
    raw = tomllib.loads(TWO_PHASES)
    edited = apply_overrides(raw, ["phases.0.epochs=1", "training.seed=9", "phases.1.optimizer=adamw",
                                   "model.options.dense=[4, 2]"], "x.toml")
    assert edited["phases"][0]["epochs"] == 1 and edited["phases"][1]["optimizer"] == "adamw"
    assert edited["model"]["options"]["dense"] == [4, 2] and raw["training"]["seed"] == 1
    assert tomllib.loads(to_toml(edited)) == edited
    with pytest.raises(CodapackError, match="should be an index below 2"):
        apply_overrides(raw, ["phases.5.epochs=1"], "x.toml")
    path = _write(tmp_path, TWO_PHASES)
    with pytest.raises(CodapackError, match="`phases.1.optimizer` should be one of"):
        load_config(path, ["phases.1.optimizer=rmsprop"])
    with pytest.raises(CodapackError, match="`phases.0.trainable` should be all, head, last:N or from:LAYER"):
        load_config(path, ["phases.0.trainable=half"])
    with pytest.raises(CodapackError, match="give either"):
        load_config(path, ["training.epochs=3"])


def test_two_phase_run_caches_features_and_records_everything(tiny_data, tiny_profile, tmp_path):
    config = load_config(_write(tmp_path, TWO_PHASES), ["phases.1.epochs=1"])
    record = training.train_run(config, tiny_data, str(tmp_path / "run"), tiny_profile)
    phases = record["training"]["phases"]
    assert [p["cached_features"] for p in phases] == [True, False]
    assert [p["epochs_run"] for p in phases] == [2, 1] and record["training"]["epochs_run"] == 3
    history = json.load(open(os.path.join(record["dir"], run_dir.HISTORY_FILE)))
    assert history["phase"] == [0, 0, 1] and len(history["val_accuracy"]) == 3
    assert os.path.getsize(os.path.join(record["dir"], training.CURVES_FILE)) > 1000
    written = tomllib.loads(open(os.path.join(record["dir"], run_dir.CONFIG_FILE)).read())
    assert written["phases"][1]["epochs"] == 1 and record["training"]["overrides"] == ["phases.1.epochs=1"]
    assert record["network"]["input_shape"] == [24, 24, 3] and record["versions"]["keras"]
    assert not os.path.exists(checkpoint_module.checkpoint_dir(record["dir"]))

    augmented = load_config(_write(tmp_path, TWO_PHASES), ["phases.1.epochs=1", "augmentation.policy=light",
                                                          "augmentation.mixup=0.2"])
    phases = training.train_run(augmented, tiny_data, str(tmp_path / "aug"), tiny_profile)["training"]["phases"]
    assert [p["cached_features"] for p in phases] == [False, False]


class _Killed(Exception):
    pass


def test_killed_run_resumes_to_the_same_epochs(tiny_data, tiny_profile, tmp_path, monkeypatch):
    path = write_config(tmp_path)  # the legacy one-phase config: 5 epochs
    config = load_config(path)
    out = str(tmp_path / "run")

    class KillDuringEpoch3(checkpoint_module.EpochCheckpoint):
        def on_epoch_end(self, epoch, logs=None):
            time.sleep(1.5)  # the two epochs before the kill take at least 3 s
            super().on_epoch_end(epoch, logs)

        def on_train_batch_end(self, batch, logs=None):
            if self.state["epoch"] == 2 and batch == 3:
                raise _Killed()

    monkeypatch.setattr(training, "EpochCheckpoint", KillDuringEpoch3)
    with pytest.raises(_Killed):
        training.train_run(config, tiny_data, out, tiny_profile)
    assert not os.path.exists(out)
    with pytest.raises(CodapackError, match="was written with a different config"):
        training.train_run(load_config(path, ["training.seed=3"]), tiny_data, out, tiny_profile, resume=True)

    monkeypatch.setattr(training, "EpochCheckpoint", checkpoint_module.EpochCheckpoint)
    record = training.train_run(config, tiny_data, out, tiny_profile, resume=True)
    assert record["training"]["epochs_run"] == 5 and record["training"]["resumed"]
    training_record = record["training"]
    # Epochs and seconds before the restart count, so the record agrees with itself.
    assert training_record["phases"][0]["epochs_run"] == 5
    assert training_record["seconds"] >= 3.0 and training_record["phases"][0]["seconds"] >= 3.0
    assert training_record["images_per_second"] == pytest.approx(
        record["split"]["train_used"] * 5 / training_record["seconds"], rel=0.01)
    assert len(json.load(open(os.path.join(out, run_dir.HISTORY_FILE)))["loss"]) == 5
    assert run_dir.read_run(out)["metrics"]["val"]["accuracy"] > 0.5
    with pytest.raises(CodapackError, match="no checkpoint to resume from"):
        training.train_run(config, tiny_data, str(tmp_path / "other"), tiny_profile, resume=True)


@pytest.mark.parametrize("policy", sorted(POLICY_LAYERS))
def test_policies_keep_shape_and_range(policy):
    images = np.random.default_rng(0).uniform(0, 255, (4, 24, 24, 3)).astype(np.float32)
    augment = image_augmenter(POLICY_LAYERS[policy], seed=0)
    if policy == "none":
        assert augment is None
        return
    out = augment(images).numpy()
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 255 and not np.allclose(out, images)


def test_every_layer_runs():
    images = np.random.default_rng(1).uniform(0, 255, (2, 24, 24, 3)).astype(np.float32)
    for name in LAYERS:
        assert image_augmenter([name], seed=3)(images).shape == images.shape, name


def test_mixup_and_cutmix_give_soft_labels():
    import tensorflow as tf

    images = np.random.default_rng(2).uniform(0, 255, (8, 24, 24, 3)).astype(np.float32)
    labels = tf.one_hot(np.arange(8) % 4, 4)
    for mixer in (batch_mixer(mixup=0.4, seed=0), batch_mixer(cutmix=1.0, seed=0), batch_mixer(0.4, 1.0, seed=0)):
        mixed, soft = mixer(images, labels)
        soft = soft.numpy()
        assert mixed.shape == images.shape and np.allclose(soft.sum(axis=1), 1, atol=1e-5)
        assert ((soft > 0.01) & (soft < 0.99)).any()
    assert batch_mixer() is None


def test_imbalance_tools():
    images = np.zeros((13, 24, 24, 3), np.uint8) + np.arange(13, dtype=np.uint8)[:, None, None, None]
    labels = np.array([0] * 10 + [1] * 3)
    weights = balanced_class_weights(labels, 2)
    assert weights[1] == pytest.approx(13 / 6) and weights[0] == pytest.approx(13 / 20)
    _, balanced = oversample(images, labels, seed=0)
    assert np.bincount(balanced).tolist() == [10, 10]
    grown_images, grown = augment_offline(images, labels, per_class=8, seed=0, policy="light")
    assert np.bincount(grown).tolist() == [10, 8] and grown_images.dtype == np.uint8
    assert np.array_equal(grown_images[:13], images)


def test_every_recipe_and_bundled_config_loads():
    from codapack.trainer.config import CONFIG_DIR, RECIPES_DIR, resolve_config_path

    names = sorted(name[:-5] for folder in (RECIPES_DIR, CONFIG_DIR) for name in os.listdir(folder))
    assert {"mobilenet_reference", "efficientnet_v2_mix", "mobilenet_v2_fast_cpu", "baseline"} <= set(names)
    for name in names:
        config = load_config(resolve_config_path(name), ["phases.0.epochs=1"] if "phases" in open(
            resolve_config_path(name)).read() else [])
        assert config.phases and config.epochs >= 1
    reference = load_config(resolve_config_path("mobilenet_reference"))
    assert [p.trainable for p in reference.phases] == ["head", "last:40"]
    assert reference.augmentation.offline_per_class == 1500 and reference.options["dense"] == [832, 320]
