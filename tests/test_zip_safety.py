"""Hostile or malformed zips are refused before anything is unpacked."""

import os
import stat
import zipfile

import pytest

from codapack.errors import CodapackError
from tests.conftest import make_zip
from codapack.tools.zip_safety import check_zip, unpack_zip

MODEL = "class Model:\n    pass\n"


def _symlink_zip(path):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.py", MODEL)
        info = zipfile.ZipInfo("weights.h5")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    return str(path)


def _bomb_zip(path):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.py", MODEL)
        zf.writestr("padding.bin", b"\0" * (20 * 2 ** 20))
    return str(path)


@pytest.mark.parametrize("build, problem", [
    (lambda p: make_zip(p, {"model.py": MODEL, "../evil.py": "x"}), "climbs out of the submission folder"),
    (lambda p: make_zip(p, {"model.py": MODEL, "/etc/evil": "x"}), "has an absolute path"),
    (_symlink_zip, "is a symbolic link"),
    (_bomb_zip, "likely zip bomb"),
])
def test_hostile_zips_are_refused(build, problem, tmp_path):
    path = build(tmp_path / "hostile.zip")
    with pytest.raises(CodapackError) as info:
        unpack_zip(path, str(tmp_path / "out"))
    assert str(info.value).startswith(path) and problem in str(info.value)
    assert not (tmp_path / "evil.py").exists()


def test_not_a_zip(tmp_path):
    path = tmp_path / "model.zip"
    path.write_text("hello")
    with pytest.raises(CodapackError, match="not a zip file"):
        check_zip(str(path))


def test_good_zip_unpacks(tmp_path):
    path = make_zip(tmp_path / "ok.zip", {"model.py": MODEL, "members/a.weights.h5": "w"})
    os.makedirs(tmp_path / "out")
    unpack_zip(path, str(tmp_path / "out"))
    assert (tmp_path / "out" / "members" / "a.weights.h5").read_text() == "w"
