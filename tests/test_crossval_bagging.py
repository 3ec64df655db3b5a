"""codapack cv and codapack bag: folds and bootstrap members on tiny data; the bagged members package and score."""

import json
import os

import numpy as np
from click.testing import CliRunner

from codapack.cli.main import main
from codapack.dataset import load_dataset
from codapack.splits import split_for
from tests.conftest import last_json_line
from tests.test_tuning import SEARCHABLE
from codapack.trainer import run_dir
from codapack.trainer.bagging import bootstrap_members
from codapack.trainer.crossval import fold_members

PLAIN = SEARCHABLE.replace("{ default = [8], choice = [[8], [16, 8]] }", "[8]") \
    .replace("{ default = 0.1, choice = [0.1, 0.3] }", "0.1") \
    .replace('{ default = 3e-3, min = 1e-3, max = 1e-2, sampling = "log" }', "3e-3") \
    .replace("max_train_images = 60", "max_train_images = 0")


def test_folds_partition_train_and_val_and_never_touch_test(tiny_data, tiny_profile, tmp_path):
    dataset = load_dataset(tiny_data, tiny_profile)
    split = split_for(dataset, tiny_profile)
    folds = fold_members(dataset.labels, split, 3, 0, str(tmp_path))
    pool = np.sort(np.concatenate([split["train"], split["val"]]))
    assert np.array_equal(np.sort(np.concatenate([f.val for f in folds])), pool)
    for fold in folds:
        assert not set(fold.train) & set(fold.val) and not set(fold.train) & set(split["test"])
        assert np.array_equal(np.bincount(dataset.labels[fold.val], minlength=4) // 10,
                              np.bincount(dataset.labels[pool], minlength=4) // 30)  # stratified
    again = fold_members(dataset.labels, split, 3, 0, str(tmp_path))
    assert all(np.array_equal(a.val, b.val) for a, b in zip(folds, again))  # seeded


def test_bootstrap_members_resample_the_train_split(tiny_data, tiny_profile, tmp_path):
    dataset = load_dataset(tiny_data, tiny_profile)
    split = split_for(dataset, tiny_profile)
    members = bootstrap_members(dataset.labels, split, 3, 0, 0, str(tmp_path))
    for member in members:
        assert len(member.train) == len(split["train"]) and set(member.train) <= set(split["train"])
        assert len(set(member.train)) < len(member.train)  # drawn with replacement
        assert np.array_equal(np.bincount(dataset.labels[member.train]), np.bincount(dataset.labels[split["train"]]))
    assert [m.overrides for m in members] == [("training.seed=0",), ("training.seed=1",), ("training.seed=2",)]


def test_three_fold_cross_validation_in_parallel_workers(tiny_data, tiny_profile_path, tmp_path):
    config = tmp_path / "plain.toml"
    config.write_text(PLAIN)
    out = tmp_path / "cv"
    result = CliRunner().invoke(main, ["cv", str(config), "--data", tiny_data, "--out", str(out), "--folds", "3",
                                       "--workers", "2", "--profile", tiny_profile_path, "--json"])
    assert result.exit_code == 0, result.output
    summary = last_json_line(result.output)
    accuracy = summary["metrics"]["accuracy"]
    assert len(accuracy["values"]) == 3 and accuracy["mean"] == np.mean(accuracy["values"])
    assert accuracy["std"] == np.std(accuracy["values"], ddof=1)
    assert {"f1_macro", "precision_weighted", "per_class.a.recall"} <= set(summary["metrics"])
    records = [run_dir.read_run(path) for path in summary["runs"]]
    assert [r["member"]["fold"] for r in records] == [1, 2, 3] and len({r["split"]["val"] for r in records}) <= 2
    assert sum(r["split"]["val"] for r in records) == 320  # the folds' val parts cover train+val once
    assert json.load(open(out / "cv.json"))["folds"] == 3 and "| accuracy |" in (out / "cv.md").read_text()
    assert sorted(os.listdir(out / "logs")) == [f"fold{k}.{ext}" for k in (1, 2, 3) for ext in ("json", "log")]


def test_bagged_members_package_as_an_ensemble_and_score(tiny_data, tiny_profile_path, tmp_path):
    config = tmp_path / "plain.toml"
    config.write_text(PLAIN)
    out = tmp_path / "bag"
    runner = CliRunner()
    result = runner.invoke(main, ["bag", str(config), "--data", tiny_data, "--out", str(out), "--members", "3",
                                  "--workers", "1", "--profile", tiny_profile_path, "--json"])
    assert result.exit_code == 0, result.output
    summary = last_json_line(result.output)
    assert [os.path.basename(r) for r in summary["runs"]] == ["member1", "member2", "member3"]
    assert [run_dir.read_run(r)["config"]["seed"] for r in summary["runs"]] == [0, 1, 2]
    again = runner.invoke(main, ["bag", str(config), "--data", tiny_data, "--out", str(out), "--members", "3",
                                 "--workers", "1", "--profile", tiny_profile_path])
    assert again.exit_code == 0 and "3 member(s) already trained; 0 to go" in again.output
    zip_path = str(tmp_path / "bagged.zip")
    packaged = runner.invoke(main, ["package", *summary["runs"], "--out", zip_path, "--no-verify", "--json"])
    assert packaged.exit_code == 0, packaged.output
    assert last_json_line(packaged.output)["members"] == ["member1", "member2", "member3"]
    scored = runner.invoke(main, ["harness", zip_path, "--data", tiny_data, "--profile", tiny_profile_path, "--json"])
    assert scored.exit_code == 0, scored.output
    assert last_json_line(scored.output)["verdict"] == "OK"
