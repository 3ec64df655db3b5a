"""Shared fixtures: a tiny competition profile, generated data and isolated state.

Unit tests never read ../shared; they generate 24x24 images of 4 classes.
"""

import json
import os
import pathlib
import subprocess
import zipfile

import numpy as np
import pytest

from codapack.profile import load_profile
from codapack.synthetic import make_dataset

REPO = pathlib.Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

TINY_PROFILE = """
name = "tiny"
title = "Tiny test competition"
[input]
shape = [24, 24, 3]
dtypes = ["uint8", "float32"]
min_value = 0
max_value = 255
[output]
classes = ["a", "b", "c", "d"]
[limits]
time_limit_s = 120
safe_upload_mb = 5
failing_upload_mb = 10
[platform]
python = "3.11"
packages = ["tensorflow==2.17.0", "keras==3.4.1", "numpy==1.26.4"]
device = "cpu"
workdir = "submission"
[split]
seed = 7
val_fraction = 0.2
test_fraction = 0.2
"""

TINY_CONFIG = """
[model]
architecture = "baseline_cnn"
[model.options]
filters = [8, 16]
dense = [16]
dropout = 0.1
[training]
epochs = 5
batch_size = 16
learning_rate = 3e-3
seed = {seed}
early_stopping_patience = 0
"""


def _repo_status():
    """`git status` of the checkout (None outside one): what a test wrote into the repo shows here."""
    try:
        done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


@pytest.fixture(scope="session", autouse=True)
def repo_left_as_found():
    """No test writes into the repository: its `git status` is the same after the suite as before."""
    before = _repo_status()
    yield
    after = _repo_status()
    if before is not None and after is not None:
        new = sorted(set(after.splitlines()) - set(before.splitlines()))
        assert not new, f"the tests changed the repository: {new}"


@pytest.fixture(autouse=True)
def isolated_state(tmp_path, monkeypatch):
    """Every test gets its own split cache and leaderboard."""
    monkeypatch.setenv("CODAPACK_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("CODAPACK_LEADERBOARD", raising=False)


@pytest.fixture(scope="session")
def tiny_profile_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("profile") / "tiny.toml"
    path.write_text(TINY_PROFILE)
    return str(path)


@pytest.fixture(scope="session")
def tiny_profile(tiny_profile_path):
    return load_profile(tiny_profile_path)


@pytest.fixture(scope="session")
def roomy_profile(tmp_path_factory):
    """The tiny profile with upload limits above EfficientNetV2-L's 470 MB of weights."""
    path = tmp_path_factory.mktemp("roomy") / "roomy.toml"
    path.write_text(TINY_PROFILE.replace("failing_upload_mb = 10", "failing_upload_mb = 4000")
                    .replace("safe_upload_mb = 5", "safe_upload_mb = 50"))
    return load_profile(str(path))


def write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory, tiny_profile):
    """A labelled .npz of 400 generated 24x24 images, 4 classes."""
    images, labels = make_dataset(400, tiny_profile.input_shape, tiny_profile.num_classes, seed=3)
    return write_npz(tmp_path_factory.mktemp("data") / "tiny.npz", images=images, labels=labels)


def write_config(folder, seed=0):
    path = pathlib.Path(folder) / f"tiny_seed{seed}.toml"
    path.write_text(TINY_CONFIG.format(seed=seed))
    return str(path)


def make_zip(path, files):
    """A zip from {name: text or bytes}."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return str(path)


def processes_with(marker):
    """Pids of living processes whose command line holds `marker` (zombies are dead and do not count)."""
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read()
            with open(f"/proc/{name}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker.encode() in cmdline and state != b"Z":
            found.append(int(name))
    return found


def last_json_line(output):
    return json.loads(output.strip().splitlines()[-1])


@pytest.fixture
def chdir_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def pytest_report_header(config):
    return f"../shared present: {SHARED.is_dir()} ({SHARED})"


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def recomputed_val_accuracy(run_path, data_path, profile):
    """A run's validation accuracy computed afresh: its saved network on its saved split's val images."""
    import numpy as np

    from codapack.dataset import load_dataset
    from codapack.splits import load_split
    from codapack.trainer import run_dir

    record = run_dir.read_run(run_path)
    images, labels = load_dataset(data_path, profile).subset(
        load_split(os.path.join(run_path, run_dir.SPLIT_FILE))["val"])
    probabilities = run_dir.load_run_network(record).predict(images.astype("float32"), verbose=0)
    return float(np.mean(probabilities.argmax(axis=1) == labels))
