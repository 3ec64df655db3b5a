"""`codapack augment`: an enlarged copy of a file whose copies stay in train."""

import hashlib

import numpy as np
import pytest
from click.testing import CliRunner

from codapack.cli.main import main
from codapack.dataset import load_dataset
from codapack.errors import CodapackError
from codapack.splits import split_for
from tests.conftest import last_json_line, write_npz


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_augment_writes_enlarged_file_whose_copies_stay_in_train(tiny_data, tiny_profile_path, tiny_profile,
                                                                  tmp_path):
    source_hash = _sha(tiny_data)
    source = load_dataset(tiny_data, tiny_profile)
    source_split = split_for(source, tiny_profile)
    before = np.bincount(source.labels[source_split["train"]], minlength=4)
    target = int(before.max()) + 10
    out = tmp_path / "big.npz"
    result = CliRunner().invoke(main, ["augment", tiny_data, "--out", str(out), "--per-class", str(target),
                                       "--policy", "light", "--profile", tiny_profile_path, "--json"])
    assert result.exit_code == 0, result.output
    summary = last_json_line(result.output)
    assert _sha(tiny_data) == source_hash, "the input file must never be modified"

    big = load_dataset(str(out), tiny_profile)
    split = split_for(big, tiny_profile)
    assert split.carried and split.split_id.endswith("-carried")
    n = len(source)
    assert summary["added"] == len(big) - n == int((target - before).sum())
    # The source images come first, unchanged; val and test are exactly the source's held-out images.
    np.testing.assert_array_equal(big.images[:n], source.images)
    for name in ("val", "test"):
        np.testing.assert_array_equal(split[name], source_split[name])
    np.testing.assert_array_equal(np.bincount(big.labels[split["train"]], minlength=4), [target] * 4)
    # Every copy is a changed version of a train image, with that image's label.
    with np.load(out) as arrays:
        origin = arrays["origin"]
    copies = np.arange(n, len(big))
    assert np.isin(origin[copies], source_split["train"]).all()
    np.testing.assert_array_equal(big.labels[copies], source.labels[origin[copies]])
    changed = np.abs(big.images[copies].astype(int) - source.images[origin[copies]].astype(int)).mean(axis=(1, 2, 3))
    assert (changed > 0).mean() > 0.9


def test_augment_refuses_to_overwrite_its_input(tiny_data, tiny_profile_path):
    result = CliRunner().invoke(main, ["augment", tiny_data, "--out", tiny_data, "--per-class", "5",
                                       "--profile", tiny_profile_path])
    assert result.exit_code == 1 and "is the input file" in result.output


@pytest.mark.parametrize("codes, problem", [
    (lambda n: np.full(n, 5, np.int8), "unknown split code"),
    (lambda n: np.zeros(n - 1, np.int8), "one per image"),
    (lambda n: np.where(np.arange(n) % 2, 0, 1).astype(np.int8), "holds no `test` images"),
])
def test_a_bad_carried_split_names_the_file(tiny_profile, tmp_path, codes, problem):
    images = np.zeros((20, 24, 24, 3), np.uint8)
    labels = np.arange(20) % 4
    path = write_npz(tmp_path / "bad.npz", images=images, labels=labels, split=codes(20))
    with pytest.raises(CodapackError, match=problem) as error:
        load_dataset(path, tiny_profile)
    assert str(error.value).startswith(path)
