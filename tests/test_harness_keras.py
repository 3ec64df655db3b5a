"""Keras-specific failures: models that do not deserialize, files saved by a newer Keras, the course template.

Each zip holds a `.keras` file made here with tiny models; the harness runs it
in this environment, `--env current` (the target environment's versions are in
test_target_env.py and test_harness_platform_truth.py).
"""

import json
import zipfile

import keras

from tests.conftest import make_zip
from codapack.tools.course_template import COURSE_TEMPLATE_MODEL
from codapack.tools.harness import HarnessOptions, run_harness

TEMPLATE_MODEL = COURSE_TEMPLATE_MODEL
CURRENT = HarnessOptions(env="current")


def tiny_keras_model(lambda_layer=False):
    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Lambda(lambda t: t / 255.0)(inputs) if lambda_layer else keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))


def keras_zip(tmp_path, model, rewrite=None):
    path = tmp_path / "weights.keras"
    model.save(path)
    data = path.read_bytes()
    if rewrite:
        data = rewrite(path)
    return make_zip(tmp_path / "template.zip", {"model.py": TEMPLATE_MODEL, "weights.keras": data})


def forge_future_keras(path):
    """The same archive, as if saved by a future Keras whose layer classes this one cannot find."""
    out = path.with_name("future.keras")
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            content = src.read(item.filename)
            if item.filename == "metadata.json":
                content = json.dumps(dict(json.loads(content), keras_version="99.0.0")).encode()
            if item.filename == "config.json":
                content = content.replace(b'"Dense"', b'"DenseFromTheFuture"')
            dst.writestr(item, content)
    return out.read_bytes()


def test_course_template_runs_and_warns_about_its_relative_path(tmp_path, tiny_data, tiny_profile):
    result = run_harness(keras_zip(tmp_path, tiny_keras_model()), tiny_data, tiny_profile, CURRENT)
    assert result["verdict"] == "OK", result["error"]
    assert result["n"] == 80 and 0 <= result["accuracy"] <= 1
    assert any("opens weights.keras relative to the working directory" in w for w in result["warnings"])


def test_course_template_fails_from_another_folder(tmp_path, tiny_data, tiny_profile):
    zip_path = keras_zip(tmp_path, tiny_keras_model())
    result = run_harness(zip_path, tiny_data, tiny_profile, HarnessOptions(workdir="elsewhere", env="current"))
    assert result["verdict"] == "RELATIVE_PATH" and "`weights.keras`" in result["error"]


def test_lambda_layer_does_not_deserialize(tmp_path, tiny_data, tiny_profile):
    result = run_harness(keras_zip(tmp_path, tiny_keras_model(lambda_layer=True)), tiny_data, tiny_profile, CURRENT)
    assert result["verdict"] == "DESERIALIZATION"
    assert "Lambda layers and custom objects need their code at load time" in result["error"]


def test_keras_file_from_a_newer_keras(tmp_path, tiny_data, tiny_profile):
    result = run_harness(keras_zip(tmp_path, tiny_keras_model(), rewrite=forge_future_keras), tiny_data, tiny_profile,
                         CURRENT)
    assert result["verdict"] == "KERAS_VERSION"
    assert f"weights.keras was saved by Keras 99.0.0, newer than the Keras {keras.__version__}" in result["error"]
