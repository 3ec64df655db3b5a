"""Faults that must give one clear line or a recorded verdict, never a traceback or a lost result.

Zip bombs and duplicate names refused from the central directory, a locked
leaderboard, package outputs and checks, float images rescaled to 0..1,
unwritable training outputs.
"""

import errno
import json
import os
import sqlite3
import threading
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from codapack.cli.main import main
from codapack.dataset import load_dataset
from codapack.errors import CodapackError
from tests.conftest import last_json_line, make_zip, write_config, write_npz
from codapack.tools import leaderboard, zip_safety
from codapack.tools.package import package_runs
from codapack.tools.zip_safety import check_zip

GOOD = "import numpy as np\nclass Model:\n    def predict(self, X):\n        return np.zeros(len(X), dtype=np.int64)\n"


@pytest.fixture
def no_inflating(monkeypatch):
    """Call it once the zip is written: from then on, opening a zip entry (inflating it) fails the test."""
    def refuse(self, *args, **kwargs):
        raise AssertionError("a zip entry was inflated before the central directory was checked")

    return lambda: monkeypatch.setattr(zipfile.ZipFile, "open", refuse)


def test_a_bomb_behind_many_entries_is_refused_before_inflating(tmp_path, no_inflating):
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(300):
            zf.writestr(f"pad/{i}.txt", "x")
        zf.writestr("last.bin", bytes(64 * 2 ** 20))  # 64 MB of zeros: about 64 KB packed
    no_inflating()
    with pytest.raises(CodapackError, match=r"entry 'last.bin' inflates \d+x; refusing a likely zip bomb"):
        check_zip(str(path))


def test_too_many_entries_are_refused_before_inflating(tmp_path, no_inflating):
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(zip_safety.MAX_ENTRIES + 1):
            zf.writestr(f"{i}.txt", "")
    no_inflating()
    with pytest.raises(CodapackError, match=f"holds {zip_safety.MAX_ENTRIES + 1} entries"):
        check_zip(str(path))


def test_many_small_entries_that_inflate_far_beyond_the_zip_are_refused(tmp_path, no_inflating):
    path = tmp_path / "spread.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(40):  # each 1 MB entry stays at the per-entry floor; together 40 MB from ~40 KB
            zf.writestr(f"part{i}.bin", bytes(2 ** 20))
    no_inflating()
    with pytest.raises(CodapackError, match=r"unpacks to \d+x its \d+ bytes"):
        check_zip(str(path))


@pytest.mark.parametrize("second", ["model.py", "./model.py"])
def test_duplicate_entry_names_are_refused(second, tmp_path, no_inflating):
    path = tmp_path / "twice.zip"
    with pytest.warns(UserWarning) if second == "model.py" else _nothing():
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("model.py", GOOD)
            zf.writestr(second, GOOD.replace("zeros", "ones"))
    no_inflating()
    with pytest.raises(CodapackError, match=f"holds entry '{second}' twice"):
        check_zip(str(path))


def test_a_duplicate_is_refused_by_submit_dry_run(tmp_path, tiny_profile_path):
    path = tmp_path / "dup.zip"
    with pytest.warns(UserWarning):
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("model.py", GOOD)
            zf.writestr("model.py", GOOD)
    result = CliRunner().invoke(main, ["submit", str(path), "--competition", "1", "--phase", "Development", "--dry-run", "--force",
                                       "--profile", tiny_profile_path])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "holds entry 'model.py' twice" in result.output


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_safe_zip_still_unpacks(tmp_path):
    zip_path = make_zip(tmp_path / "ok.zip", {"model.py": GOOD, "members/a.bin": "1" * 5000})
    folder = zip_safety.unpack_zip(zip_path, str(tmp_path / "out"))
    assert open(os.path.join(folder, "members", "a.bin")).read() == "1" * 5000


# ---- float images rescaled to 0..1 -------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_images_rescaled_to_0_1_are_refused_with_multiply_by_255(dtype, tmp_path, tiny_profile, tiny_data):
    images = load_dataset(tiny_data, tiny_profile).images
    labels = np.load(tiny_data)["labels"]
    path = write_npz(tmp_path / "scaled.npz", images=(images / 255.0).astype(dtype), labels=labels)
    with pytest.raises(CodapackError) as info:
        load_dataset(path, tiny_profile)
    message = str(info.value)
    assert message.startswith(f"{path}: `images`") and "multiply by 255" in message
    assert "astype('uint8') if" not in message  # that hint alone would make every pixel 0 or 1


def test_float_pixels_in_0_255_still_load(tmp_path, tiny_profile, tiny_data):
    images = load_dataset(tiny_data, tiny_profile).images.astype("float32")
    path = write_npz(tmp_path / "float.npz", images=images, labels=np.load(tiny_data)["labels"])
    assert np.array_equal(load_dataset(path, tiny_profile).images, images)


def test_the_harness_refuses_0_1_images_instead_of_casting_them(tmp_path, tiny_profile_path, tiny_data,
                                                                 tiny_profile):
    images = load_dataset(tiny_data, tiny_profile).images
    path = write_npz(tmp_path / "scaled.npz", images=(images / 255.0).astype("float32"),
                     labels=np.load(tiny_data)["labels"])
    zip_path = make_zip(tmp_path / "s.zip", {"model.py": GOOD})
    result = CliRunner().invoke(main, ["harness", zip_path, "--data", path, "--profile", tiny_profile_path])
    assert result.exit_code == 1 and "multiply by 255" in result.output and "Traceback" not in result.output


def test_inspect_refuses_0_1_images_before_any_linear_algebra(tmp_path, tiny_profile_path, tiny_data, tiny_profile):
    images = load_dataset(tiny_data, tiny_profile).images
    path = write_npz(tmp_path / "scaled.npz", images=(images / 255.0).astype("float32"),
                     labels=np.load(tiny_data)["labels"])
    result = CliRunner().invoke(main, ["inspect", path, "--out", str(tmp_path / "report"),
                                       "--profile", tiny_profile_path])
    assert result.exit_code == 1 and "multiply by 255" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "report").exists()


# ---- leaderboard ---------------------------------------------------------------------------------


def _hold_lock(db):
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_a_locked_leaderboard_still_prints_the_verdict_and_json(tmp_path, tiny_profile_path, tiny_data,
                                                                monkeypatch):
    monkeypatch.setattr(leaderboard, "BUSY_TIMEOUT_S", 0.1)
    monkeypatch.setattr(leaderboard, "WRITE_DEADLINE_S", 0.5)
    db = str(tmp_path / "board.sqlite")
    leaderboard.Leaderboard(db).entries()  # create it
    holder = _hold_lock(db)
    zip_path = make_zip(tmp_path / "s.zip", {"model.py": GOOD})
    result = CliRunner().invoke(main, ["harness", zip_path, "--data", tiny_data, "--profile", tiny_profile_path,
                                       "--db", db, "--json"])
    holder.close()
    assert result.exit_code == 1 and "Traceback" not in result.output
    line = last_json_line(result.output)
    assert line["verdict"] == "OK" and line["accuracy"] is not None
    assert "still locked by another process after 0.5 s" in line["leaderboard_error"]
    assert "verdict OK" in result.output


def test_a_leaderboard_locked_for_a_moment_records_after_a_retry(tmp_path, monkeypatch):
    monkeypatch.setattr(leaderboard, "BUSY_TIMEOUT_S", 0.1)
    monkeypatch.setattr(leaderboard, "WRITE_DEADLINE_S", 30)
    db = str(tmp_path / "board.sqlite")
    board = leaderboard.Leaderboard(db)
    board.entries()
    holder = _hold_lock(db)
    threading.Timer(1.0, holder.close).start()
    entry = board.record({"verdict": "OK", "accuracy": 0.5, "zip": None}, "tiny", note="late")
    assert [row["note"] for row in board.entries() if row["id"] == entry] == ["late"]


# ---- package ----------------------------------------------------------------------------------


def _fake_run(folder, profile_path, num_classes=4, truncate=False):
    """A run directory as `codapack train` leaves it, with a small real HDF5 weights file."""
    import h5py

    os.makedirs(folder)
    weights = os.path.join(folder, "weights.weights.h5")
    with h5py.File(weights, "w") as h5:
        h5.create_dataset("layers/dense/vars/0", data=np.arange(200_000, dtype=np.float32))
    if truncate:
        with open(weights, "r+b") as f:
            f.truncate(os.path.getsize(weights) // 2)
    record = {"name": os.path.basename(folder), "profile": {"name": "tiny", "source": profile_path},
              "network": {"architecture": "baseline_cnn", "options": {}, "preprocessing": "scale",
                          "num_classes": num_classes},
              "data": {"path": "x.npz", "sha256": "0"}, "split": {"id": "s"}, "versions": {}}
    with open(os.path.join(folder, "run.json"), "w") as f:
        json.dump(record, f)
    return str(folder)


def test_package_refuses_truncated_weights_without_verifying(tmp_path, tiny_profile_path):
    run = _fake_run(tmp_path / "run", tiny_profile_path, truncate=True)
    with pytest.raises(CodapackError, match=r"weights\.weights\.h5: unreadable weights \(.*truncated"):
        package_runs([run], str(tmp_path / "s.zip"))
    assert not (tmp_path / "s.zip").exists()


def test_package_refuses_members_with_different_class_counts(tmp_path, tiny_profile_path):
    runs = [_fake_run(tmp_path / "a", tiny_profile_path, 4), _fake_run(tmp_path / "b", tiny_profile_path, 8)]
    result = CliRunner().invoke(main, ["package", *runs, "--out", str(tmp_path / "s.zip"), "--no-verify"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{runs[1]}: predicts 8 classes" in result.output and "has 4" in result.output


def test_package_out_an_existing_directory_is_one_line(tmp_path, tiny_profile_path):
    run = _fake_run(tmp_path / "run", tiny_profile_path)
    result = CliRunner().invoke(main, ["package", run, "--out", str(tmp_path), "--no-verify"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"--out should be the path of a .zip file. Received: {tmp_path}, an existing directory" in result.output


def test_package_fails_when_verification_could_not_run(tmp_path, tiny_profile_path, monkeypatch):
    from codapack.tools import verify

    def cannot_build(*args, **kwargs):
        raise CodapackError("target environment: the package index is unreachable")

    monkeypatch.setattr(verify, "verify_zip", cannot_build)
    monkeypatch.setattr(verify, "sample_images", lambda profile, path: (None, "no images"))
    run = _fake_run(tmp_path / "run", tiny_profile_path)
    out = str(tmp_path / "s.zip")
    result = CliRunner().invoke(main, ["package", run, "--out", out])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "written but not verified: target environment: the package index is unreachable" in result.output
    assert "--no-verify" in result.output
    assert CliRunner().invoke(main, ["package", run, "--out", out, "--no-verify"]).exit_code == 0


# ---- training outputs ---------------------------------------------------------------------------


def _read_only(path):
    return PermissionError(errno.EROFS, os.strerror(errno.EROFS), str(path))


def test_train_into_a_read_only_folder_is_one_line(tmp_path, tiny_profile_path, tiny_data, monkeypatch):
    import tempfile

    out = tmp_path / "ro" / "run"

    def refuse(*args, dir=None, **kwargs):
        raise _read_only(dir)

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    result = CliRunner().invoke(main, ["train", write_config(tmp_path), "--data", tiny_data, "--out", str(out),
                                       "--profile", tiny_profile_path])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "cannot write the run (Read-only file system)" in result.output
    assert "Choose a writable --out" in result.output


def test_a_folder_made_read_only_mid_training_is_one_line_and_resumable(tmp_path, tiny_profile_path, tiny_data,
                                                                         monkeypatch):
    from codapack.trainer import checkpoint

    saved = checkpoint.Checkpoint.save_arrays
    calls = []

    def fail_on_the_third_epoch(self, name, arrays):
        calls.append(name)
        if calls.count("weights.npz") == 3:
            raise _read_only(self.file(name))
        saved(self, name, arrays)

    monkeypatch.setattr(checkpoint.Checkpoint, "save_arrays", fail_on_the_third_epoch)
    config, out = write_config(tmp_path), str(tmp_path / "run")
    args = ["train", config, "--data", tiny_data, "--out", out, "--profile", tiny_profile_path]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "weights.npz: cannot write the run (Read-only file system)" in result.output
    assert "rerun with --resume" in result.output
    monkeypatch.setattr(checkpoint.Checkpoint, "save_arrays", saved)
    resumed = CliRunner().invoke(main, args + ["--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert json.load(open(os.path.join(out, "run.json")))["training"]["epochs_run"] == 5
