"""The real path on the competition-style kit: train briefly, evaluate, package, score through the harness.

Needs ../shared (the kit builder and BloodMNIST); skipped only where it is absent.
Two short runs are trained once for the module.
"""

import json
import os
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from codapack.cli.main import main
from codapack.dataset import load_dataset
from codapack.profile import load_profile
from codapack.shift_families import FAMILIES
from codapack.evaluator.ensemble import load_ensemble
from codapack.evaluator.evaluation import split_indices
from codapack.evaluator.robustness import shifted_estimate, trained_families_of
from tests.conftest import SHARED, last_json_line
from codapack.trainer.run_dir import read_run

pytestmark = [pytest.mark.kit,
              pytest.mark.skipif(not (SHARED / "tools" / "make_kit.py").is_file(), reason="../shared is absent")]

KIT_CONFIG = """
[model]
architecture = "baseline_cnn"
[model.options]
filters = {filters}
dense = [64]
dropout = 0.2
stem_stride = 2
[training]
epochs = 4
batch_size = 64
learning_rate = 2e-3
seed = {seed}
early_stopping_patience = 0
max_train_images = 4000
"""


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kit")
    os.environ["CODAPACK_HOME"] = str(folder / "state")
    built = subprocess.run([sys.executable, str(SHARED / "tools" / "make_kit.py"), str(folder)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    runs = []
    for seed, filters in ((0, [16, 32, 64]), (1, [24, 48, 96])):
        config = folder / f"kit{seed}.toml"
        config.write_text(KIT_CONFIG.format(filters=filters, seed=seed))
        out = folder / "runs" / f"kit{seed}"
        trained = CliRunner().invoke(main, ["train", str(config), "--data", str(folder / "training_set.npz"),
                                            "--out", str(out)])
        assert trained.exit_code == 0, trained.output
        runs.append(str(out))
    return {"folder": folder, "data": str(folder / "training_set.npz"), "runs": runs}


def test_kit_train_package_harness(kit):
    runner = CliRunner()
    zip_path = str(kit["folder"] / "kit.zip")
    assert runner.invoke(main, ["package", kit["runs"][0], "--out", zip_path, "--no-verify"]).exit_code == 0
    scored = runner.invoke(main, ["harness", zip_path, "--data", kit["data"], "--workdir", "elsewhere", "--note", "kit",
                                  "--json"])
    assert scored.exit_code == 0, scored.output
    result = last_json_line(scored.output)
    print("kit harness result:", {k: result[k] for k in ("accuracy", "f1", "n", "seconds", "peak_rss_mb")})
    assert result["verdict"] == "OK" and 1350 < result["n"] < 1400  # the test split less the final phase's part
    assert result["accuracy"] > 0.4  # 8 classes: chance is 0.125


def test_kit_ensemble_with_tta_beats_its_members_and_packages_exactly(kit):
    zip_path = str(kit["folder"] / "ensemble.zip")
    evaluated = CliRunner().invoke(main, ["evaluate", *kit["runs"], "--data", kit["data"], "--tta", "flips",
                                          "--ensemble", "--package", zip_path, "--out",
                                          str(kit["folder"] / "evaluation"), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    report = last_json_line(evaluated.output)
    members = {m["run"]: m["accuracy"] for m in report["runs"]}
    ensemble = report["ensemble"]
    print("kit ensemble:", ensemble["members"], ensemble["weights"], "test accuracy",
          ensemble["metrics"]["accuracy"], "members", members)
    assert ensemble["metrics"]["accuracy"] >= max(members[name] for name in ensemble["members"])
    with zipfile.ZipFile(zip_path) as archive:
        assert json.loads(archive.read("manifest.json"))["tta"] == "flips"
    scored = CliRunner().invoke(main, ["harness", zip_path, "--data", kit["data"], "--json"])
    result = last_json_line(scored.output)
    assert result["verdict"] == "OK"
    assert result["accuracy"] == ensemble["metrics"]["accuracy"]  # model.py gives the evaluator's labels


def test_kit_shift_estimate_held_out_is_below_clean(kit):
    profile = load_profile()
    dataset = load_dataset(kit["data"], profile)
    record = read_run(kit["runs"][0])
    images, labels = dataset.subset(split_indices(record, dataset, "test"))
    model = load_ensemble([record], profile)
    clean = float(np.mean(model.predict_proba(images).argmax(axis=1) == labels))
    started = time.perf_counter()
    result = shifted_estimate(model.predict_proba, images, labels, trained_families_of([record]), rounds=2)
    seconds = time.perf_counter() - started
    print(f"kit shift estimate: {len(labels)} images x 2 corrupted copies in {seconds:.0f} s; clean {clean:.4f}, "
          f"held-out families {result['held_out_accuracy']:.4f}, per family {result['per_family']}")
    assert result["held_out_families"] == list(FAMILIES)  # the kit runs train without augmentation
    assert result["held_out_accuracy"] < clean
