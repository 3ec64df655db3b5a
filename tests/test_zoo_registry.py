"""Every registry entry builds, trains one step, packages, and the zip predicts what the trainer's network does."""

import importlib.util
import os
import re
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from codapack.cli.main import main
from codapack.submission.networks import ARCHITECTURES, build_network
from tests.conftest import REPO, last_json_line
from codapack.dataset import load_dataset
from codapack.splits import load_split
from codapack.tools import package
from codapack.tools.package import package_runs
from codapack.trainer import run_dir
from codapack.trainer.config import load_config
from codapack.trainer.training import train_run

# Small enough to build and step quickly; the applications keep their own (fixed) widths.
SMALL_OPTIONS = {
    "baseline_cnn": "filters = [8]\ndense = [8]",
    "unet_classifier": "base_filters = 4\ndepth = 2",
    "multibranch_cnn": "filters = [8, 8]\ndense = [8]",
}
APPLICATION_OPTIONS = "dense = [8]\nbatch_norm = true\ndropout = [0.1]"

ONE_STEP = """
[model]
architecture = "{name}"
[model.options]
{options}
[training]
max_train_images = 8
run_eagerly = true
[[phases]]
epochs = 1
batch_size = 8
early_stopping_patience = 0
"""


def _load_zip_model(zip_path, folder):
    zipfile.ZipFile(zip_path).extractall(folder)
    spec = importlib.util.spec_from_file_location(f"zoo_model_{os.path.basename(folder)}", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Model()


# One per builder family and preprocessing mode (tf, caffe, builtin, EfficientNet's normalisation):
# these always run, and their zips are loaded and must predict exactly what the trainer measured.
# Every other entry costs 10 to 135 s on 2 CPU cores, so they run when CODAPACK_FULL_ZOO=1 is set.
RELOADED = {"baseline_cnn", "unet_classifier", "multibranch_cnn", "mobilenet_v2", "vgg16", "efficientnet_b0",
            "mobilenet_v3_small"}
# `make test` runs the entries above; `make test-zoo` (CODAPACK_FULL_ZOO=1) runs only the others.
FULL_ZOO = os.environ.get("CODAPACK_FULL_ZOO") == "1"


def zoo_params(always, what):
    """Every entry, each skipped unless this run is the one that covers it: `always` by default, the rest in full."""
    return [pytest.param(name, marks=pytest.mark.skipif(
        (name in always) == FULL_ZOO,
        reason=f"{what}: run by `make test`" if FULL_ZOO else f"{what}: set CODAPACK_FULL_ZOO=1 (`make test-zoo`)"))
        for name in sorted(ARCHITECTURES)]


@pytest.mark.parametrize("name", zoo_params(RELOADED, "one training step"))
def test_entry_trains_one_step_and_packages(name, tiny_data, roomy_profile, tmp_path):
    options = SMALL_OPTIONS.get(name, APPLICATION_OPTIONS)
    config_path = tmp_path / "one_step.toml"
    config_path.write_text(ONE_STEP.format(name=name, options=options))
    record = train_run(load_config(str(config_path)), tiny_data, str(tmp_path / "run"), roomy_profile)
    assert record["training"]["epochs_run"] == 1 and record["network"]["architecture"] == name

    zip_path = tmp_path / "one.zip"
    package_runs([record["dir"]], str(zip_path))
    assert set(package.RUNTIME_FILES) <= set(zipfile.ZipFile(zip_path).namelist())
    if name in RELOADED:
        model = _load_zip_model(zip_path, tmp_path / "unpacked")
        images, labels = load_dataset(tiny_data, roomy_profile).subset(
            load_split(os.path.join(record["dir"], run_dir.SPLIT_FILE))["val"])
        accuracy = float(np.mean(model.predict(images) == labels))
        assert accuracy == pytest.approx(record["metrics"]["val"]["accuracy"])


def test_preprocessing_and_minimum_size_are_inside_the_network():
    network = build_network("inception_v3", (24, 24, 3), 4)
    names = [layer.name for layer in network.layers]
    assert names[:4] == ["pixels", "pre_resize", "pre_scale", "backbone"]
    assert network.get_layer("backbone").input.shape[1:3] == (75, 75)  # Keras' minimum for InceptionV3
    vgg = build_network("vgg16", (32, 32, 3), 4)
    assert "pre_resize" not in [layer.name for layer in vgg.layers] and "pre_bgr" in [layer.name for layer in vgg.layers]
    # caffe mode: BGR order, ImageNet means subtracted, no scaling.
    pixel = np.array([[[[10.0, 20.0, 30.0]]]], dtype=np.float32)
    caffe = vgg.get_layer("pre_mean")(vgg.get_layer("pre_bgr")(pixel)).numpy().ravel()
    np.testing.assert_allclose(caffe, [30 - 103.939, 20 - 116.779, 10 - 123.68], rtol=1e-5)
    # EfficientNet B rescales inside itself with ImageNet statistics, with or without weights.
    efficient = build_network("efficientnet_b0", (32, 32, 3), 4).get_layer("backbone")
    normalization = next(layer for layer in efficient.layers if layer.__class__.__name__ == "Normalization")
    np.testing.assert_allclose(np.ravel(normalization.variance), [0.229 ** 2, 0.224 ** 2, 0.225 ** 2], rtol=1e-5)


def test_head_options_and_bad_weights():
    network = build_network("mobilenet_v2", (32, 32, 3), 8, {"dense": [16, 8], "batch_norm": True,
                                                              "dropout": [0.3, 0.1]})
    names = [layer.name for layer in network.layers]
    assert names[-9:] == ["head_dense0", "head_bn0", "head_act0", "head_dropout0", "head_dense1", "head_bn1",
                          "head_act1", "head_dropout1", "probabilities"]
    assert network.get_layer("head_dropout0").rate == 0.3 and network.output.shape[-1] == 8
    with pytest.raises(ValueError, match="one rate per dense layer"):
        build_network("mobilenet_v2", (32, 32, 3), 8, {"dense": [16, 8], "dropout": [0.3]})
    with pytest.raises(ValueError, match="has no pretrained backbone"):
        build_network("baseline_cnn", (32, 32, 3), 8, weights="imagenet")


def readme_networks():
    """The network names the README's **Networks** paragraph lists, `a_b|c` and `a_b0`..`b4` spelled out."""
    text = (REPO / "README.md").read_text().split("**Networks**", 1)[1].split("Every network", 1)[0]
    text = re.sub(r"`(\w+?)(\d)`\.\.`\w(\d)`", lambda m: " ".join(
        f"`{m.group(1)}{i}`" for i in range(int(m.group(2)), int(m.group(3)) + 1)), text)
    names = set()
    for token in re.findall(r"`([a-z0-9_|]+)`", text):
        first, *others = token.split("|")
        names |= {first} | {first.rsplit("_", 1)[0] + "_" + other for other in others}
    return names


def test_models_command_lists_the_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "mobilenet_v2_1.0_no_top_from_tfslim_224_ckpt.h5").write_bytes(b"")
    result = CliRunner().invoke(main, ["models", "--weights-dir", str(weights), "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in last_json_line(result.output)["models"]}
    assert set(rows) == readme_networks()
    assert rows["mobilenet_v2"]["offline_weights"] and not rows["mobilenet"]["offline_weights"]
    assert rows["inception_v3"]["min_input"] == 75 and rows["vgg16"]["preprocessing"].endswith("(caffe)")
    assert not rows["baseline_cnn"]["imagenet"]
    assert "no (downloaded on first use)" in result.output


# Converting to TFLite costs 1 to 60 s per entry on 2 cores; these always run, the rest with CODAPACK_FULL_ZOO=1.
CONVERTED = {"baseline_cnn", "unet_classifier", "multibranch_cnn"}


@pytest.mark.parametrize("name", zoo_params(CONVERTED, "TFLite conversion"))
def test_entry_converts_to_tflite_or_falls_back_to_keras(name, tmp_path):
    import tomllib

    from codapack.submission.compiled import CompiledMember
    from codapack.tools.member_formats import member_files

    options = tomllib.loads(SMALL_OPTIONS.get(name, APPLICATION_OPTIONS))
    network = build_network(name, (24, 24, 3), 4, options)
    network.save_weights(str(tmp_path / run_dir.WEIGHTS_FILE))
    record = {"name": name, "dir": str(tmp_path),
              "network": {"architecture": name, "input_shape": [24, 24, 3], "num_classes": 4, "options": options}}
    notes = []
    [member] = member_files([record], "tflite", str(tmp_path), log=notes.append)
    if member.format == "keras":  # the fallback: said once, naming the entry, and the weights ship instead
        assert len(notes) == 1 and f"({name}) cannot be converted to tflite" in notes[0]
        assert member.source == run_dir.weights_path(record) and member.note == notes[0]
        return
    assert member.format == "tflite" and notes == []
    compiled = CompiledMember({"name": name, "format": "tflite", "model": os.path.basename(member.source)},
                              str(tmp_path))
    images = np.random.default_rng(0).uniform(0, 255, (3, 24, 24, 3)).astype(np.float32)
    converted, reference = compiled.predict_batch(images), network(images, training=False).numpy()
    # An untrained deep network (EfficientNetV2-L: about a thousand ops) saturates its softmax, and the
    # converter's fused kernels reorder float sums: a near-saturated probability moved by 6e-4 in CI.
    # A wrong conversion (lost preprocessing, swapped layout) moves them by tenths and changes the class.
    np.testing.assert_array_equal(converted.argmax(axis=1), reference.argmax(axis=1))
    np.testing.assert_allclose(converted, reference, atol=2e-3)
