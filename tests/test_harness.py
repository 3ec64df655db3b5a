"""The harness runs zips as the platform does and catches each way a submission fails.

These submissions are hand-written `model.py` files using numpy only, so the
tests exercise the harness itself without training anything.
"""

import os
import time

import numpy as np
import pytest
from click.testing import CliRunner

from codapack.cli.main import main
from codapack.dataset import load_dataset
from codapack.shift_families import FAMILIES
from codapack.splits import split_for
from tests.conftest import last_json_line, make_zip, processes_with
from codapack.tools.harness import HarnessOptions, run_harness

CONSTANT_MODEL = """
import numpy as np
class Model:
    def __init__(self):
        pass
    def predict(self, X):
        return np.full(len(X), {label}, dtype=np.int64)
"""


def constant_zip(tmp_path, label=1, extra=""):
    return make_zip(tmp_path / "constant.zip", {"model.py": CONSTANT_MODEL.format(label=label) + extra})


def test_scores_a_submission_on_the_test_split(tmp_path, tiny_data, tiny_profile):
    result = run_harness(constant_zip(tmp_path, label=2), tiny_data, tiny_profile)
    dataset = load_dataset(tiny_data, tiny_profile)
    test_labels = dataset.labels[split_for(dataset, tiny_profile)["test"]]
    assert result["verdict"] == "OK"
    assert result["n"] == len(test_labels)
    assert result["accuracy"] == pytest.approx(np.mean(test_labels == 2))
    assert result["init_seconds"] >= 0 and result["peak_rss_mb"] > 10


def test_cli_prints_json_last_and_records_leaderboard(tmp_path, tiny_data, tiny_profile_path):
    zip_path = constant_zip(tmp_path)
    runner = CliRunner()
    result = runner.invoke(main, ["harness", zip_path, "--data", tiny_data, "--profile", tiny_profile_path,
                                  "--split", "all", "--note", "constant", "--json"])
    assert result.exit_code == 0, result.output
    line = last_json_line(result.output)
    assert {"accuracy", "precision", "recall", "f1", "n", "seconds", "verdict"} <= set(line)
    assert line["n"] == 400 and line["accuracy"] == pytest.approx(0.25)
    board = runner.invoke(main, ["leaderboard", "--json"])
    entries = last_json_line(board.output)["entries"]
    assert [e["note"] for e in entries] == ["constant"] and entries[0]["accuracy"] == pytest.approx(0.25)


def test_importing_codapack_fails_as_on_the_platform(tmp_path, tiny_data, tiny_profile):
    source = "from codapack.profile import load_profile\n" + CONSTANT_MODEL.format(label=0)
    result = run_harness(make_zip(tmp_path / "leaky.zip", {"model.py": source}), tiny_data, tiny_profile)
    assert result["verdict"] == "MISSING_PACKAGE"
    assert "codapack is not installed on the platform" in result["error"]


RELATIVE_MODEL = """
import numpy as np
class Model:
    def __init__(self):
        self.label = int(open("label.txt").read())
    def predict(self, X):
        return np.full(len(X), self.label)
"""


def test_working_directory_follows_profile_or_option(tmp_path, tiny_data, tiny_profile):
    zip_path = make_zip(tmp_path / "relative.zip", {"model.py": RELATIVE_MODEL, "label.txt": "1"})
    assert run_harness(zip_path, tiny_data, tiny_profile)["verdict"] == "OK"
    elsewhere = run_harness(zip_path, tiny_data, tiny_profile, HarnessOptions(workdir="elsewhere"))
    assert elsewhere["verdict"] == "RELATIVE_PATH" and "opens `label.txt` relative" in elsewhere["error"]


ENVIRONMENT_MODEL = """
import os, sys
import numpy as np
class Model:
    def predict(self, X):
        assert os.environ.get("CUDA_VISIBLE_DEVICES") == "", "GPU visible"
        assert "CODAPACK_SECRET" not in os.environ, "user environment leaked"
        assert X.dtype == np.{dtype}, X.dtype
        assert sys.path[0] == os.path.dirname(os.path.abspath(__file__)), sys.path
        return np.zeros(len(X), dtype=np.int64)
"""


@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_platform_environment(dtype, tmp_path, tiny_data, tiny_profile, monkeypatch):
    monkeypatch.setenv("CODAPACK_SECRET", "1")
    zip_path = make_zip(tmp_path / "env.zip", {"model.py": ENVIRONMENT_MODEL.format(dtype=dtype)})
    result = run_harness(zip_path, tiny_data, tiny_profile, HarnessOptions(dtype=dtype))
    assert result["verdict"] == "OK", result["error"]


SLOW_MODEL = """
import subprocess, sys, time
import numpy as np
class Model:
    def __init__(self):
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)  # {marker}"])
    def predict(self, X):
        time.sleep(600)
"""


def test_time_limit_kills_the_submission_and_its_children(tmp_path, tiny_data, tiny_profile):
    marker = f"codapack-test-{os.getpid()}-slow"
    zip_path = make_zip(tmp_path / "slow.zip", {"model.py": SLOW_MODEL.format(marker=marker)})
    started = time.monotonic()
    result = run_harness(zip_path, tiny_data, tiny_profile, HarnessOptions(time_limit_s=3))
    assert time.monotonic() - started < 30
    assert result["verdict"] == "TIMEOUT" and "stage `predict`" in result["error"]
    assert not processes_with(marker)


def test_cli_exit_code_is_1_when_verdict_is_not_ok(tmp_path, tiny_data, tiny_profile_path):
    zip_path = make_zip(tmp_path / "crash.zip", {"model.py": "raise ImportError('no tensorflow here')"})
    result = CliRunner().invoke(main, ["harness", zip_path, "--data", tiny_data, "--profile", tiny_profile_path,
                                       "--json"])
    assert result.exit_code == 1
    assert last_json_line(result.output)["verdict"] == "CRASH"
    assert "no tensorflow here" in result.output


def test_input_data_is_not_modified(tmp_path, tiny_data, tiny_profile):
    before = open(tiny_data, "rb").read()
    run_harness(constant_zip(tmp_path), tiny_data, tiny_profile)
    assert open(tiny_data, "rb").read() == before


def test_peak_memory_is_the_submissions_not_the_harness(tmp_path, tiny_data, tiny_profile):
    # The harness process holds a large array; a tiny submission must not be charged for it.
    ballast = np.ones(400 * 2 ** 20, dtype=np.uint8)
    small = run_harness(constant_zip(tmp_path), tiny_data, tiny_profile)
    hungry = run_harness(make_zip(tmp_path / "hungry.zip", {"model.py": CONSTANT_MODEL.format(label=0) +
                                                             "\n_ballast = __import__('numpy').ones(300 * 2 ** 20, 'uint8')\n"}),
                         tiny_data, tiny_profile)
    assert ballast.sum() > 0
    assert small["peak_rss_mb"] < 200
    assert hungry["peak_rss_mb"] - small["peak_rss_mb"] > 250


def test_shifted_accuracy_is_scored_and_recorded(tmp_path, tiny_data, tiny_profile_path):
    # Remembers the clean images by content: perfect on them, class 0 on anything altered. It reads the
    # labelled file, which only an unsandboxed run can (test_harness_sandbox.py checks that).
    source = ("import numpy as np\nclass Model:\n    def __init__(self):\n        d = np.load(%r)\n"
              "        self.known = {x.tobytes(): int(y) for x, y in zip(d['images'], d['labels'].reshape(-1))}\n"
              "    def predict(self, X):\n        return np.array([self.known.get(np.asarray(x, np.uint8).tobytes(), 0)"
              " for x in X], dtype=np.int64)\n") % tiny_data
    zip_path = make_zip(tmp_path / "memory.zip", {"model.py": source})
    runner = CliRunner()
    result = runner.invoke(main, ["harness", zip_path, "--data", tiny_data, "--profile", tiny_profile_path,
                                  "--shifted", "--no-sandbox", "--json"])
    line = last_json_line(result.output)
    assert line["accuracy"] == 1.0 and line["shifted_accuracy"] < 0.5
    # A zip codapack did not make declares no trained family: all nine are held out.
    assert line["held_out_families"] == list(FAMILIES) and line["shifted_trained_accuracy"] is None
    # Every image is altered, so the memoriser's held-out score is the share of class 0 among them.
    labels = np.load(tiny_data)["labels"].reshape(-1)
    assert line["shifted_held_out_accuracy"] <= np.mean(labels == 0) + 0.2
    assert "held-out families" in runner.invoke(main, ["harness", zip_path, "--data", tiny_data, "--profile",
                                                       tiny_profile_path, "--shifted", "--no-sandbox",
                                                       "--no-record"]).output
    board = last_json_line(runner.invoke(main, ["leaderboard", "--json"]).output)["entries"]
    assert board[0]["shifted_held_out_accuracy"] == pytest.approx(line["shifted_held_out_accuracy"])
