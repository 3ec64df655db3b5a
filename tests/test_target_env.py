"""Submissions in the platform's pinned environment (tensorflow 2.17.0, keras 3.4.1, numpy 1.26.4).

The environment is built once into the cache ($CODAPACK_ENV_CACHE or
~/.cache/codapack/envs) and reused; the first build downloads the pins from
the package index.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from codapack.cli.main import main
from codapack.dataset import load_dataset
from codapack.splits import split_for
from codapack.submission.networks import ARCHITECTURES
from tests.conftest import make_zip
from tests.test_harness_keras import TEMPLATE_MODEL, tiny_keras_model
from tests.test_zoo_registry import APPLICATION_OPTIONS, FULL_ZOO, ONE_STEP, RELOADED, SMALL_OPTIONS

# One network per family and preprocessing mode; every registry entry with CODAPACK_FULL_ZOO=1.
COMPARED = sorted(name for name in ARCHITECTURES if FULL_ZOO or name in RELOADED)
from codapack.tools.harness import HarnessOptions, run_harness
from codapack.tools.package import package_runs
from codapack.tools.target_env import ensure_target_env
from codapack.trainer.config import load_config
from codapack.trainer.training import train_run

# Per-member probabilities through the packaged model.py itself, in whichever Python runs this.
MEMBER_PROBABILITIES = """
import importlib.util, json, sys
import numpy as np
folder, images, out = sys.argv[1:4]
sys.path.insert(0, folder)
spec = importlib.util.spec_from_file_location("model", folder + "/model.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
model = module.Model()
X = np.load(images).astype(np.float32)
np.savez(out, **{m.name: m.probabilities(X).numpy() for m in model.members})
"""


@pytest.fixture(scope="module")
def target_python(tiny_profile):
    return ensure_target_env(tiny_profile, log=lambda message: None)


def test_target_environment_has_the_pinned_versions(target_python, tiny_profile):
    code = "import json, tensorflow, keras, numpy; print(json.dumps([tensorflow.__version__, keras.__version__, numpy.__version__]))"
    found = json.loads(subprocess.run([target_python, "-c", code], capture_output=True, text=True).stdout.splitlines()[-1])
    assert [f"{name}=={version}" for name, version in zip(("tensorflow", "keras", "numpy"), found)] == \
        list(tiny_profile.platform_packages)


@pytest.fixture(scope="module")
def zoo_zip(tmp_path_factory, tiny_data, roomy_profile):
    """One run per compared architecture, one training step each, packaged together as one zip."""
    folder = tmp_path_factory.mktemp("zoo")
    runs = []
    for name in COMPARED:
        config = folder / f"{name}.toml"
        config.write_text(ONE_STEP.format(name=name, options=SMALL_OPTIONS.get(name, APPLICATION_OPTIONS)))
        runs.append(train_run(load_config(str(config)), tiny_data, str(folder / name), roomy_profile)["dir"])
    return {"zip": package_runs(runs, str(folder / "zoo.zip"))["path"], "runs": runs}


def test_every_architecture_predicts_the_same_in_the_target_environment(zoo_zip, target_python, tiny_data,
                                                                        tiny_profile, tmp_path):
    import zipfile

    dataset = load_dataset(tiny_data, tiny_profile)
    images = tmp_path / "test_images.npy"
    np.save(images, dataset.images[split_for(dataset, tiny_profile)["test"]])
    zipfile.ZipFile(zoo_zip["zip"]).extractall(tmp_path / "zoo")
    outputs = {}
    for env, python in (("current", sys.executable), ("target", target_python)):
        out = tmp_path / f"{env}.npz"
        done = subprocess.run([python, "-c", MEMBER_PROBABILITIES, str(tmp_path / "zoo"), str(images), str(out)],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs[env] = np.load(out)
    assert sorted(outputs["target"].files) == COMPARED
    for name in COMPARED:
        current, target = outputs["current"][name], outputs["target"][name]
        assert np.array_equal(current.argmax(axis=1), target.argmax(axis=1)), name
        assert np.max(np.abs(current - target)) <= 1e-4, name


def test_a_zip_scores_the_same_through_the_harness(zoo_zip, target_python, tiny_data, roomy_profile, tmp_path):
    small = [run for run in zoo_zip["runs"] if os.path.basename(run) in ("baseline_cnn", "mobilenet_v2")]
    zip_path = package_runs(small, str(tmp_path / "pair.zip"))["path"]
    scores = {env: run_harness(zip_path, tiny_data, roomy_profile, HarnessOptions(env=env, workdir="elsewhere"))
              for env in ("current", "target")}
    assert scores["target"]["verdict"] == "OK", scores["target"]["error"]
    assert scores["target"]["accuracy"] == scores["current"]["accuracy"]
    assert scores["target"]["env"] == "target"


def test_package_verifies_every_zip_in_the_target_environment(zoo_zip, target_python, tmp_path):
    result = CliRunner().invoke(main, ["package", zoo_zip["runs"][0], "--out", str(tmp_path / "v.zip")])
    assert result.exit_code == 0, result.output
    assert "verified in the target environment (tensorflow==2.17.0 keras==3.4.1 numpy==1.26.4)" in result.output
    assert "same labels, probabilities within" in result.output


def test_course_template_saved_in_the_target_environment_is_scored(target_python, tmp_path, tiny_data, tiny_profile):
    save = ("import keras\n"
            "i = keras.Input((24, 24, 3)); x = keras.layers.Rescaling(1 / 255)(i)\n"
            "x = keras.layers.GlobalAveragePooling2D()(x)\n"
            "keras.Model(i, keras.layers.Dense(4, activation='softmax')(x)).save('weights.keras')\n")
    subprocess.run([target_python, "-c", save], cwd=tmp_path, check=True, capture_output=True)
    zip_path = make_zip(tmp_path / "t.zip", {"model.py": TEMPLATE_MODEL,
                                              "weights.keras": (tmp_path / "weights.keras").read_bytes()})
    result = run_harness(zip_path, tiny_data, tiny_profile, HarnessOptions(env="target"))
    assert result["verdict"] == "OK", result["error"]
    assert result["n"] == 80 and 0 <= result["accuracy"] <= 1


def test_keras_file_saved_by_this_keras_fails_in_the_target_environment(target_python, tmp_path, tiny_data,
                                                                        tiny_profile):
    tiny_keras_model().save(tmp_path / "weights.keras")
    zip_path = make_zip(tmp_path / "t.zip", {"model.py": TEMPLATE_MODEL,
                                              "weights.keras": (tmp_path / "weights.keras").read_bytes()})
    result = run_harness(zip_path, tiny_data, tiny_profile, HarnessOptions(env="target"))
    assert result["verdict"] == "KERAS_VERSION"
    assert f"saved by Keras {keras.__version__}, newer than the Keras 3.4.1" in result["error"]


def test_package_a_missing_target_package_is_caught(target_python, tmp_path, tiny_data, tiny_profile):
    source = "import numpy as np\nimport sklearn\nclass Model:\n    def predict(self, X):\n        return np.zeros(len(X), int)\n"
    zip_path = make_zip(tmp_path / "s.zip", {"model.py": source})
    assert run_harness(zip_path, tiny_data, tiny_profile)["verdict"] == "OK"  # sklearn is here...
    result = run_harness(zip_path, tiny_data, tiny_profile, HarnessOptions(env="target"))
    assert result["verdict"] == "MISSING_PACKAGE" and "imports `sklearn`" in result["error"]  # ...not there


def test_verification_rejects_a_zip_that_behaves_differently_there(target_python, tmp_path, tiny_profile):
    from codapack.tools.verify import sample_images, verify_zip

    # Predicts by the numpy it finds: 2.x here, 1.26 on the platform.
    source = ("import numpy as np\nclass Model:\n    def predict(self, X):\n"
              "        return np.full(len(X), int(np.__version__.startswith('1.')), dtype=np.int64)\n")
    images, where = sample_images(tiny_profile, None, count=8)
    report = verify_zip(make_zip(tmp_path / "s.zip", {"model.py": source}), tiny_profile, images, log=lambda m: None)
    assert where == "8 generated images"
    assert report["verified"] is False and report["labels_equal"] is False
    assert report["problem"] == "the target environment predicts different labels"
