"""Bad competition files: one clear error naming the file and the problem, exit 1, no traceback."""

import numpy as np
import pytest
from click.testing import CliRunner

from codapack.cli.main import main
from codapack.dataset import load_dataset
from codapack.errors import CodapackError
from tests.conftest import write_config, write_npz

GOOD_IMAGES = np.zeros((12, 24, 24, 3), np.uint8)
GOOD_LABELS = np.arange(12).reshape(-1, 1) % 4


def _bad_files(folder):
    def npz(name, **arrays):
        return write_npz(folder / name, **arrays)

    empty = folder / "empty.npz"
    empty.write_bytes(b"")
    corrupt = folder / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    nan_images = GOOD_IMAGES.astype(np.float32)
    nan_images[3, 0, 0, 0] = np.nan
    return {
        "missing file": (str(folder / "nowhere.npz"), "no such file"),
        "empty file": (str(empty), "empty (0 bytes)"),
        "corrupt file": (str(corrupt), "not a readable .npz"),
        "missing key": (npz("nolabels.npz", images=GOOD_IMAGES), "missing key(s) ['labels']"),
        "wrong rank": (npz("rank.npz", images=GOOD_IMAGES[..., 0], labels=GOOD_LABELS),
                       "should have shape (n, 24, 24, 3)"),
        "wrong size": (npz("size.npz", images=np.zeros((12, 32, 32, 3), np.uint8), labels=GOOD_LABELS),
                       "Received: (12, 32, 32, 3)"),
        "wrong dtype": (npz("dtype.npz", images=GOOD_IMAGES.astype(np.int32), labels=GOOD_LABELS),
                        "should have dtype uint8 or float32. Received: int32"),
        "NaN in images": (npz("nan.npz", images=nan_images, labels=GOOD_LABELS), "contains NaN at 1 values"),
        "NaN in labels": (npz("nanlab.npz", images=GOOD_IMAGES, labels=np.where(GOOD_LABELS == 1, np.nan, 0.0)),
                          "`labels`: contains NaN"),
        "out of range pixels": (npz("range.npz", images=GOOD_IMAGES.astype(np.float32) + 300, labels=GOOD_LABELS),
                                "values should lie in 0..255"),
        "labels outside classes": (npz("labels.npz", images=GOOD_IMAGES, labels=GOOD_LABELS + 2),
                                   "class ids should lie in 0..3"),
        "labels of wrong shape": (npz("labshape.npz", images=GOOD_IMAGES, labels=np.zeros((12, 2), int)),
                                  "should have shape (n,) or (n, 1)"),
        "lengths differ": (npz("lengths.npz", images=GOOD_IMAGES, labels=GOOD_LABELS[:10]),
                           "`images` has 12 entries but `labels` has 10"),
        "no images": (npz("zero.npz", images=GOOD_IMAGES[:0], labels=GOOD_LABELS[:0]), "holds no images"),
    }


CASE_NAMES = ["missing file", "empty file", "corrupt file", "missing key", "wrong rank", "wrong size",
              "wrong dtype", "NaN in images", "NaN in labels", "out of range pixels", "labels outside classes",
              "labels of wrong shape", "lengths differ", "no images"]


@pytest.mark.parametrize("case", CASE_NAMES)
def test_load_dataset_names_file_and_problem(case, tmp_path, tiny_profile):
    path, problem = _bad_files(tmp_path)[case]
    with pytest.raises(CodapackError) as info:
        load_dataset(path, tiny_profile)
    message = str(info.value)
    assert message.startswith(path), message
    assert problem in message


@pytest.mark.parametrize("case", ["corrupt file", "labels outside classes", "lengths differ"])
def test_cli_reports_bad_data_without_traceback(case, tmp_path, tiny_profile_path):
    path, problem = _bad_files(tmp_path)[case]
    config = write_config(tmp_path)
    result = CliRunner().invoke(main, ["train", config, "--data", path, "--out", str(tmp_path / "run"),
                                       "--profile", tiny_profile_path])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"Error: {path}" in result.output and problem in result.output
    assert not (tmp_path / "run").exists()


def test_valid_file_is_loaded_unchanged(tmp_path, tiny_profile):
    path = write_npz(tmp_path / "ok.npz", images=GOOD_IMAGES, labels=GOOD_LABELS)
    dataset = load_dataset(path, tiny_profile)
    assert dataset.images.dtype == np.uint8 and dataset.images.shape == (12, 24, 24, 3)
    assert dataset.labels.shape == (12,) and dataset.labels.tolist() == (np.arange(12) % 4).tolist()
    before = open(path, "rb").read()
    load_dataset(path, tiny_profile)
    assert open(path, "rb").read() == before


def test_float32_images_in_range_are_accepted(tmp_path, tiny_profile):
    path = write_npz(tmp_path / "f.npz", images=GOOD_IMAGES.astype(np.float32) + 255, labels=GOOD_LABELS[:, 0])
    assert load_dataset(path, tiny_profile).images.dtype == np.float32


def test_hash_changes_with_one_pixel(tmp_path, tiny_profile):
    changed = GOOD_IMAGES.copy()
    changed[0, 0, 0, 0] = 1
    a = load_dataset(write_npz(tmp_path / "a.npz", images=GOOD_IMAGES, labels=GOOD_LABELS), tiny_profile)
    b = load_dataset(write_npz(tmp_path / "b.npz", images=changed, labels=GOOD_LABELS), tiny_profile)
    assert a.sha256 != b.sha256
