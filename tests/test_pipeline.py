"""The spine on tiny generated data: train, evaluate, package, harness, leaderboard.

Two tiny runs are trained once per session; the tests check that each stage
agrees with the others on the same images.
"""

import json
import os
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from codapack.cli.main import main
from codapack.dataset import load_dataset
from codapack.errors import CodapackError
from codapack.splits import load_split
from codapack.evaluator.corruptions import CORRUPTIONS
from tests.conftest import last_json_line, recomputed_val_accuracy, write_config
from codapack.tools.harness import HarnessOptions, run_harness
from codapack.tools.package import package_runs
from codapack.trainer import run_dir
from codapack.trainer.config import load_config
from codapack.trainer.training import train_run


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory, tiny_data, tiny_profile):
    folder = tmp_path_factory.mktemp("runs")
    os.environ["CODAPACK_HOME"] = str(folder / "state")
    runs = [train_run(load_config(write_config(folder, seed)), tiny_data, str(folder / f"run{seed}"), tiny_profile)
            for seed in (0, 1)]
    return [record["dir"] for record in runs]


def test_run_directory_contents(two_runs, tiny_data, tiny_profile):
    record = run_dir.read_run(two_runs[0])
    assert sorted(os.listdir(two_runs[0])) == sorted(
        ["run.json", "config.toml", "weights.weights.h5", "history.json", "split.json", "curves.png"])
    assert record["network"]["architecture"] == "baseline_cnn" and record["network"]["input_shape"] == [24, 24, 3]
    assert record["versions"]["keras"] and record["data"]["sha256"]
    history = json.load(open(os.path.join(two_runs[0], "history.json")))
    assert len(history["loss"]) == 5 and len(history["val_accuracy"]) == 5
    split = load_split(os.path.join(two_runs[0], "split.json"))
    assert split.split_id == record["split"]["id"] and len(split["val"]) == record["split"]["val"] == 80
    assert record["metrics"]["val"]["accuracy"] == pytest.approx(
        recomputed_val_accuracy(two_runs[0], tiny_data, tiny_profile))
    assert not [name for name in os.listdir(os.path.dirname(two_runs[0])) if name.endswith(".partial")]


def test_trained_runs_learn(two_runs):
    for path in two_runs:
        assert run_dir.read_run(path)["metrics"]["val"]["accuracy"] > 0.5  # chance is 0.25


def test_existing_run_is_not_overwritten(two_runs, tiny_data, tiny_profile, tmp_path):
    with pytest.raises(CodapackError, match="already exists; choose another --out or pass --overwrite"):
        train_run(load_config(write_config(tmp_path)), tiny_data, two_runs[0], tiny_profile)


def test_harness_agrees_with_evaluator_on_the_test_split(two_runs, tiny_data, tmp_path):
    runner = CliRunner()
    evaluated = runner.invoke(main, ["evaluate", two_runs[0], "--data", tiny_data, "--split", "test",
                                     "--out", str(tmp_path / "eval"), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = last_json_line(evaluated.output)["runs"][0]
    assert (tmp_path / "eval" / "run0" / "test_confusion.png").is_file()
    assert (tmp_path / "eval" / "run0" / "training_curves.png").is_file()
    zip_path = str(tmp_path / "one.zip")
    packaged = runner.invoke(main, ["package", two_runs[0], "--out", zip_path, "--no-verify", "--json"])
    assert packaged.exit_code == 0, packaged.output
    assert "safe to upload" in packaged.output
    harness = runner.invoke(main, ["harness", zip_path, "--data", tiny_data, "--split", "test",
                                   "--profile", run_dir.read_run(two_runs[0])["profile"]["source"], "--json"])
    assert harness.exit_code == 0, harness.output
    scored = last_json_line(harness.output)
    assert scored["verdict"] == "OK" and scored["n"] == metrics["n"] == 80
    assert scored["accuracy"] == pytest.approx(metrics["accuracy"])
    assert scored["f1"] == pytest.approx(metrics["f1_macro"])


def test_evaluate_refuses_a_named_split_of_other_data(two_runs, tmp_path, tiny_profile):
    from codapack.synthetic import make_dataset

    images, labels = make_dataset(40, tiny_profile.input_shape, 4, seed=99)
    other = str(tmp_path / "other.npz")
    np.savez(other, images=images, labels=labels)
    result = CliRunner().invoke(main, ["evaluate", two_runs[0], "--data", other, "--split", "test"])
    assert result.exit_code == 1 and "not the data run `run0` was trained on" in result.output
    assert CliRunner().invoke(main, ["evaluate", two_runs[0], "--data", other, "--split", "all",
                                     "--out", str(tmp_path / "eval")]).exit_code == 0


def test_ensemble_zip_predicts_the_mean_of_member_probabilities(two_runs, tiny_data, tiny_profile, tmp_path):
    zip_path = str(tmp_path / "ensemble.zip")
    result = package_runs(two_runs, zip_path, weights=[1.0, 3.0], batch_size=7)
    names = zipfile.ZipFile(zip_path).namelist()
    assert {"model.py", "networks.py", "manifest.json"} <= set(names) and len(result["members"]) == 2

    dataset = load_dataset(tiny_data, tiny_profile)
    probabilities = [run_dir.load_run_network(run_dir.read_run(p)).predict(
        dataset.images.astype(np.float32), verbose=0) for p in two_runs]
    expected = (probabilities[0] + 3 * probabilities[1]).argmax(axis=1)

    unpacked = tmp_path / "unpacked"
    zipfile.ZipFile(zip_path).extractall(unpacked)
    import importlib.util

    spec = importlib.util.spec_from_file_location("packaged_model", unpacked / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.Model()
    predicted = model.predict(dataset.images)
    assert predicted.dtype == np.int64 and predicted.shape == (len(dataset),)
    assert np.array_equal(predicted, expected)
    assert np.array_equal(model.predict(dataset.images.astype(np.float32)), expected)
    assert model.predict(dataset.images[:0]).shape == (0,)
    with pytest.raises(ValueError, match="predict expects an array of shape"):
        model.predict(dataset.images[:, :12])


def test_ensemble_zip_runs_in_harness_from_a_foreign_workdir(two_runs, tiny_data, tiny_profile, tmp_path):
    zip_path = str(tmp_path / "ensemble.zip")
    package_runs(two_runs, zip_path)
    result = run_harness(zip_path, tiny_data, tiny_profile, HarnessOptions(workdir="elsewhere", dtype="float32"))
    assert result["verdict"] == "OK", result.get("traceback")
    assert result["members"] == ["run0", "run1"] and result["accuracy"] > 0.5


def test_package_refuses_bad_runs_and_weights(two_runs, tmp_path):
    with pytest.raises(CodapackError, match="not a run directory"):
        package_runs([str(tmp_path)], str(tmp_path / "x.zip"))
    with pytest.raises(CodapackError, match="--weights should give 2 positive numbers"):
        package_runs(two_runs, str(tmp_path / "x.zip"), weights=[1.0])
    assert not (tmp_path / "x.zip").exists()


def test_train_cli_json_is_the_last_line(tiny_data, tiny_profile_path, tmp_path):
    result = CliRunner().invoke(main, ["train", write_config(tmp_path), "--data", tiny_data, "--out",
                                       str(tmp_path / "cli_run"), "--profile", tiny_profile_path, "--json"])
    assert result.exit_code == 0, result.output
    record = last_json_line(result.output)
    assert record["name"] == "cli_run" and "val" in record["metrics"]


def test_evaluate_ensemble_tta_robustness_and_package(two_runs, tiny_data, tiny_profile, tmp_path):
    out = tmp_path / "eval"
    zip_path = str(tmp_path / "ensemble.zip")
    result = CliRunner().invoke(main, ["evaluate", *two_runs, "--data", tiny_data, "--tta", "flips", "--ensemble",
                                       "--robustness", "--package", zip_path, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = last_json_line(result.output)
    ensemble = report["ensemble"]
    assert ensemble["members"] and set(ensemble["members"]) <= {"run0", "run1"}
    accuracies = [step["accuracy"] for step in ensemble["history"]]
    assert ensemble["tta"] == "flips" and accuracies == sorted(accuracies)  # greedy: a step never loses
    robustness = report["robustness"]
    assert set(robustness) == {"run0", "run1", "ensemble"}
    assert all(len(r["table"]) == len(CORRUPTIONS) for r in robustness.values())
    # The tiny runs train without augmentation: every family is held out, and the held-out figure is
    # the mean of the per-family figures.
    for r in robustness.values():
        assert r["trained_families"] == [] and r["trained_accuracy"] is None
        assert r["held_out_accuracy"] == pytest.approx(np.mean(list(r["per_family"].values())))
    text = (out / "report.md").read_text()
    for section in ("## Runs side by side", "## Robustness", "## Ensemble chosen by greedy selection",
                    "![confusion matrix of run0]", "![robustness of ensemble]"):
        assert section in text
    assert (out / "robustness_ensemble.png").is_file() and (out / "ensemble.json").is_file()

    with zipfile.ZipFile(zip_path) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["tta"] == "flips" and [m["name"] for m in manifest["members"]] == ensemble["members"]
    scored = run_harness(zip_path, tiny_data, tiny_profile)
    assert scored["verdict"] == "OK"
    assert scored["accuracy"] == ensemble["metrics"]["accuracy"]
    assert scored["metrics"]["confusion_matrix"] == ensemble["metrics"]["confusion_matrix"]
