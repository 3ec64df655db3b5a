"""The real path on the competition-style kit: train briefly, package, score through the harness.

Needs ../shared (the kit builder and BloodMNIST); skipped only where it is absent.
"""

import subprocess
import sys

import pytest
from click.testing import CliRunner

from codapack.cli import main
from tests.conftest import SHARED, last_json_line

KIT_CONFIG = """
[model]
architecture = "baseline_cnn"
[model.options]
filters = [16, 32, 64]
dense = [64]
dropout = 0.2
stem_stride = 2
[training]
epochs = 4
batch_size = 64
learning_rate = 2e-3
early_stopping_patience = 0
max_train_images = 4000
"""


@pytest.mark.kit
@pytest.mark.skipif(not (SHARED / "tools" / "make_kit.py").is_file(), reason="../shared is absent")
def test_kit_train_package_harness(tmp_path):
    built = subprocess.run([sys.executable, str(SHARED / "tools" / "make_kit.py"), str(tmp_path)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    data = str(tmp_path / "training_set.npz")
    config = tmp_path / "kit.toml"
    config.write_text(KIT_CONFIG)
    runner = CliRunner()
    trained = runner.invoke(main, ["train", str(config), "--data", data, "--out", str(tmp_path / "runs" / "kit")])
    assert trained.exit_code == 0, trained.output
    zip_path = str(tmp_path / "kit.zip")
    assert runner.invoke(main, ["package", str(tmp_path / "runs" / "kit"), "--out", zip_path, "--no-verify"]).exit_code == 0
    scored = runner.invoke(main, ["harness", zip_path, "--data", data, "--workdir", "elsewhere", "--note", "kit"])
    assert scored.exit_code == 0, scored.output
    result = last_json_line(scored.output)
    print("kit harness result:", {k: result[k] for k in ("accuracy", "f1", "n", "seconds", "peak_rss_mb")})
    # 15% of 13,759 images is held out (2,064); about a third of it is the final phase's, the rest is `test`.
    assert result["verdict"] == "OK" and 1350 < result["n"] < 1400
    assert result["accuracy"] > 0.4  # 8 classes: chance is 0.125
