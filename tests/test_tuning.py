"""codapack tune: search declarations in configs, each KerasTuner oracle, best.toml, resuming a search."""

import csv
import os

import pytest
from click.testing import CliRunner

from codapack.cli.main import main
from codapack.errors import CodapackError
from tests.conftest import last_json_line, recomputed_val_accuracy
from codapack.trainer import search_space
from codapack.trainer.config import load_config, read_raw
from codapack.trainer.training import train_run
from codapack.trainer.tuning import Search, epoch_budget, run_search

SEARCHABLE = """
[model]
architecture = "baseline_cnn"
[model.options]
filters = [4, 8]
dense = { default = [8], choice = [[8], [16, 8]] }
dropout = { default = 0.1, choice = [0.1, 0.3] }
[training]
epochs = 1
batch_size = 32
learning_rate = { default = 3e-3, min = 1e-3, max = 1e-2, sampling = "log" }
max_train_images = 60
seed = 0
early_stopping_patience = 0
run_eagerly = true    # two steps per trial: tracing would cost more than training
"""


@pytest.fixture
def searchable(tmp_path):
    path = tmp_path / "search.toml"
    path.write_text(SEARCHABLE)
    return str(path)


def test_a_searchable_config_trains_with_its_defaults(searchable):
    config = load_config(searchable)
    assert config.options == {"filters": [4, 8], "dense": [8], "dropout": 0.1}
    assert config.phases[0].learning_rate == 3e-3
    params = search_space.find_params(read_raw(searchable), searchable)
    assert [p.path for p in params] == ["model.options.dense", "model.options.dropout", "training.learning_rate"]
    edited = load_config(searchable, ["training.learning_rate=5e-3"])  # --set replaces a declaration
    assert edited.phases[0].learning_rate == 5e-3


def test_search_values_replace_declarations_inside_lists(tmp_path):
    raw = {"model": {"options": {"dropout": [{"default": 0.3, "choice": [0.1, 0.3]}, 0.2]}}}
    params = search_space.find_params(raw, "x.toml")
    assert params[0].path == "model.options.dropout.0"
    assert search_space.with_values(raw, {"model.options.dropout.0": 0.1}) == {"model": {"options": {"dropout": [0.1, 0.2]}}}
    assert search_space.with_values(raw, {}) == {"model": {"options": {"dropout": [0.3, 0.2]}}}


@pytest.mark.parametrize("declaration, problem", [
    ("{ default = 0.1, choice = [0.3, 0.5] }", "should be a list holding the default"),
    ("{ default = 0.1, min = 0.2, max = 0.5 }", "default between them"),
    ("{ default = 0.1, mn = 0.0, max = 0.5 }", "unknown key(s) ['mn']"),
    ("{ default = 0.1, min = 0.0, max = 0.5, sampling = \"log\" }", "log sampling needs `min` > 0"),
])
def test_bad_declarations_name_the_value(tmp_path, declaration, problem):
    path = tmp_path / "bad.toml"
    path.write_text(SEARCHABLE.replace('dropout = { default = 0.1, choice = [0.1, 0.3] }', f"dropout = {declaration}"))
    with pytest.raises(CodapackError, match="search space `model.options.dropout`") as error:
        load_config(str(path))
    assert problem in str(error.value)


def test_hyperband_budgets_map_onto_the_phases():
    raw = {"phases": [{"name": "head", "epochs": 2}, {"name": "fine", "epochs": 4}]}
    assert [p["epochs"] for p in epoch_budget(raw, 3)["phases"]] == [2, 1]
    continued = epoch_budget(raw, 6, start=3)["phases"]
    assert [(p["name"], p["epochs"]) for p in continued] == [("fine", 3)]
    assert epoch_budget({"training": {"epochs": 10}}, 4)["training"]["epochs"] == 4


@pytest.mark.parametrize("tuner", ["random", "grid", "bayesian", "hyperband"])
def test_each_tuner_runs_two_trials_and_writes_a_best_config_that_trains(tuner, searchable, tiny_data,
                                                                         tiny_profile_path, tiny_profile, tmp_path):
    out = tmp_path / "search"
    args = ["tune", searchable, "--data", tiny_data, "--out", str(out), "--tuner", tuner, "--trials", "2",
            "--profile", tiny_profile_path]
    result = CliRunner().invoke(main, args + (["--max-epochs", "2"] if tuner == "hyperband" else []) + ["--json"])
    assert result.exit_code == 0, result.output
    summary = last_json_line(result.output)
    assert summary["trials"] == summary["completed"] == 2 and len(summary["trials_run"]) == 2
    with open(out / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["status"] for row in rows] == ["COMPLETED", "COMPLETED"]
    for row in rows:  # every trial is an ordinary run directory, with the trial's values in run.json
        record = os.path.join(out, row["run"], "run.json")
        assert float(row["val_accuracy"]) == pytest.approx(
            recomputed_val_accuracy(os.path.dirname(record), tiny_data, tiny_profile), abs=1e-6)
    assert (out / "trials.png").stat().st_size > 1000
    best_text = (out / "best.toml").read_text()
    assert "{ default" not in best_text and "default =" not in best_text
    best = load_config(str(out / "best.toml"))
    assert best.options["dense"] == summary["best_values"]["model.options.dense"]
    assert best.phases[0].learning_rate == pytest.approx(summary["best_values"]["training.learning_rate"])
    trained = train_run(best, tiny_data, str(tmp_path / "best_run"), tiny_profile)
    assert trained["metrics"]["val"]["accuracy"] == pytest.approx(
        recomputed_val_accuracy(str(tmp_path / "best_run"), tiny_data, tiny_profile))


def test_a_search_run_again_does_not_repeat_finished_trials(searchable, tiny_data, tiny_profile, tmp_path):
    search = Search(searchable, tiny_data, str(tmp_path / "search"), "random", trials=2)
    first, _ = run_search(search, tiny_profile)
    assert first.trials_run == ["0", "1"]
    weights = tmp_path / "search" / "runs" / "trial_0" / "weights.weights.h5"
    stamp = weights.stat().st_mtime_ns
    again, _ = run_search(search, tiny_profile)
    assert again.trials_run == [] and len(again.oracle.trials) == 2
    assert weights.stat().st_mtime_ns == stamp
    more, _ = run_search(Search(searchable, tiny_data, str(tmp_path / "search"), "random", trials=3), tiny_profile)
    assert more.trials_run == ["2"]


def test_a_config_without_declarations_is_refused(tiny_data, tiny_profile, tmp_path):
    plain = tmp_path / "plain.toml"
    plain.write_text(SEARCHABLE.replace("{ default = [8], choice = [[8], [16, 8]] }", "[8]")
                     .replace("{ default = 0.1, choice = [0.1, 0.3] }", "0.1")
                     .replace('{ default = 3e-3, min = 1e-3, max = 1e-2, sampling = "log" }', "3e-3"))
    with pytest.raises(CodapackError, match="declares nothing to search"):
        run_search(Search(str(plain), tiny_data, str(tmp_path / "s")), tiny_profile)
