"""Competition profiles and training configs: read from TOML, validated, errors name the file."""

import pytest

from codapack.errors import CodapackError
from codapack.profile import load_profile
from tests.conftest import TINY_PROFILE, write_config
from codapack.trainer.config import load_config


def test_bundled_bloodcells_profile():
    profile = load_profile()
    assert profile.name == "bloodcells"
    assert profile.input_shape == (96, 96, 3)
    assert profile.classes[0] == "basophil" and profile.classes[-1] == "platelet" and profile.num_classes == 8
    assert profile.input_dtypes == ("uint8", "float32")
    assert profile.time_limit_s == 600 and profile.safe_upload_mb == 50
    assert "keras==3.4.1" in profile.platform_packages and profile.platform_python == "3.11"
    assert profile.platform_workdir == "submission"
    assert profile.platform_image == ""  # not on record: harness --sandbox docker asks for --docker-image


def test_unknown_profile_lists_bundled_ones():
    with pytest.raises(CodapackError, match="no such competition profile. Bundled profiles: bloodcells"):
        load_profile("no-such-competition")


@pytest.mark.parametrize("edit, problem", [
    (("shape = [24, 24, 3]", "shape = [24, 24]"), "`input.shape` should be three positive integers"),
    (("workdir = \"submission\"", "workdir = \"cwd\""), "`platform.workdir` should be one of"),
    (("time_limit_s = 120", "time_limit_s = \"soon\""), "`limits.time_limit_s` should be float"),
    (("classes = [\"a\", \"b\", \"c\", \"d\"]", "classes = [\"a\", \"a\"]"), "two distinct class names"),
    (("test_fraction = 0.2", "test_fraction = 0.9"), "sum below 1"),
    (("[split]", "[split]\nbroken = ="), "not a valid TOML file"),
    (("workdir = \"submission\"", "workdir = \"submission\"\nimage = 3"), "`platform.image` should be str"),
    (("workdir = \"submission\"", "workdir = \"submission\"\nimage = \"python 3.11\""),
     "`platform.image` should be a Docker image name such as codalab/codalab-legacy:py3, or empty when unknown"),
])
def test_bad_profile_errors(edit, problem, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(TINY_PROFILE.replace(*edit))
    with pytest.raises(CodapackError) as info:
        load_profile(str(path))
    assert str(info.value).startswith(str(path)) and problem in str(info.value)


def test_bundled_configs_load():
    config = load_config()
    assert config.architecture == "baseline_cnn" and config.epochs >= 1


@pytest.mark.parametrize("edit, problem", [
    (("epochs = 5", "epochs = 5\nepoch = 4"), "unknown key `training.epoch`"),
    (("epochs = 5", "epochs = \"5\""), "`training.epochs` should be int"),
    (("epochs = 5", "epochs = 0"), "`training.epochs` should be at least 1"),
    (("architecture = \"baseline_cnn\"", "architecture = \"resnet9000\""), "`model.architecture` should be one of"),
    (("[training]", "[trainig]"), "unknown table(s) ['trainig']"),
])
def test_bad_config_errors(edit, problem, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(open(write_config(tmp_path)).read().replace(*edit))
    with pytest.raises(CodapackError) as info:
        load_config(str(path))
    assert str(info.value).startswith(str(path)) and problem in str(info.value)
