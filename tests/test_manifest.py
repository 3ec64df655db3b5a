"""The manifest module: what the packager writes is what the runtime reads, and nothing else passes."""

import json
import zipfile

import pytest

from codapack.submission import manifest
from codapack.submission.manifest import ManifestError


def _member(**changes):
    entry = manifest.member_entry(
        name="run-a", member_format=manifest.KERAS, file="members/00-run-a.weights.h5",
        architecture="baseline_cnn", options={"filters": [8]}, preprocessing="none", weight=1,
        split_id="abc123", data_sha256="f" * 64, trained_with={"tensorflow": "2.16.1", "keras": "3.4.1"},
        trained_families=["geometry"])
    entry.update(changes)
    return entry


def _manifest(members=None):
    return manifest.new_manifest(competition="bloodcells", input_shape=(96, 96, 3), classes=list("abcdefgh"),
                                 batch_size=64, tta="none", members=members or [_member()],
                                 codapack_version="0.1.0", created="2026-11-22T00:00:00+00:00")


def test_written_manifest_reads_back_from_a_folder_and_a_zip(tmp_path):
    written = _manifest()
    (tmp_path / manifest.FILE).write_text(json.dumps(written))
    assert manifest.read_manifest(str(tmp_path)) == written
    with zipfile.ZipFile(tmp_path / "s.zip", "w") as zf:
        zf.writestr(manifest.FILE, json.dumps(written))
    assert manifest.read_manifest_in_zip(str(tmp_path / "s.zip")) == written
    assert written["members"][0]["weights"] == "members/00-run-a.weights.h5"
    compiled = _member(format="tflite")
    compiled["model"] = compiled.pop("weights")
    assert manifest.file_key("tflite") == "model" and _manifest([compiled])["members"][0]["model"]


@pytest.mark.parametrize("key", sorted(manifest.KEYS))
def test_a_missing_top_level_key_is_named(key, tmp_path):
    broken = _manifest()
    del broken[key]
    (tmp_path / manifest.FILE).write_text(json.dumps(broken))
    expected = "should be a codapack-submission manifest" if key in ("format", "format_version") else f"`{key}`"
    with pytest.raises(ManifestError, match=expected):
        manifest.read_manifest(str(tmp_path))


@pytest.mark.parametrize("key", sorted(manifest.MEMBER_KEYS) + ["weights"])
def test_a_missing_member_key_is_named(key):
    member = _member()
    del member[key]
    with pytest.raises(ManifestError, match=rf"members\[0\]: `{key}` is missing"):
        manifest.check_manifest({**_manifest(), "members": [member]}, "m.json")


def test_wrong_types_and_versions_are_refused_with_what_was_received(tmp_path):
    with pytest.raises(ManifestError, match="`batch_size` should be int. Received: '64'"):
        manifest.check_manifest({**_manifest(), "batch_size": "64"}, "m.json")
    with pytest.raises(ManifestError, match="`batch_size` should be int. Received: True"):
        manifest.check_manifest({**_manifest(), "batch_size": True}, "m.json")
    with pytest.raises(ManifestError, match="version 1. Received: format 'codapack-submission', version 2"):
        manifest.check_manifest({**_manifest(), "format_version": 2}, "m.json")
    with pytest.raises(ManifestError, match="at least one member"):
        manifest.check_manifest({**_manifest(), "members": []}, "m.json")
    (tmp_path / manifest.FILE).write_text("{not json")
    with pytest.raises(ManifestError, match="unreadable"):
        manifest.read_manifest(str(tmp_path))
    with pytest.raises(ManifestError, match="missing"):
        manifest.read_manifest(str(tmp_path / "absent"))


def test_version_warnings_name_each_member_and_package_that_differ():
    a = _member()
    b = _member(name="run-b", trained_with={"tensorflow": "2.18.0", "keras": "3.15.0"})
    lines = manifest.version_warnings(_manifest([a, b]), {"tensorflow": "2.16.1", "keras": "3.4.1"})
    assert lines == ["member `run-b` was trained with keras 3.15.0 (here 3.4.1), tensorflow 2.18.0 (here 2.16.1)"]
    assert manifest.version_warnings(_manifest([a]), {"tensorflow": None, "keras": "3.4.1"}) == []
