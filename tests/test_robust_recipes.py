"""The robust recipes train one step on CPU, record their shift families, and package."""

import json
import zipfile

import pytest

from codapack.shift_families import NEVER_TRAINED
from codapack.tools.package import package_runs
from codapack.data.policies import POLICY_LAYERS, trained_families
from codapack.trainer.config import load_config, resolve_config_path
from codapack.trainer.training import train_run

ROBUST_FAMILIES = trained_families(POLICY_LAYERS["robust"])
PER_PHASE = {"robust_cpu": ["geometry", "robust", "geometry"], "robust_gpu": ["none", "robust"],
             "mobilenet_v2_robust_cpu": ["none", "robust", "geometry"]}


def one_step(recipe):
    """The recipe with every phase cut to one small step, random weights, eager (no tracing cost)."""
    config = load_config(resolve_config_path(recipe))
    phases = config.phases
    overrides = ["model.weights=none", "training.max_train_images=8", "training.run_eagerly=true"]
    if config.architecture == "baseline_cnn":  # 24 px test images: fewer halvings than 96 px ones
        overrides += ["model.options.filters=[8, 16]", "model.options.convs=[1, 2]"]
    if "image_size" in config.options:  # the recipe's resolution is for the real images, not the smoke test's
        overrides.append("model.options.image_size=32")
    for i in range(len(phases)):
        overrides += [f"phases.{i}.epochs=1", f"phases.{i}.batch_size=8"]
    return load_config(resolve_config_path(recipe), overrides)


@pytest.mark.parametrize("recipe", ["robust_cpu", "robust_gpu", "mobilenet_v2_robust_cpu"])
def test_robust_recipe_trains_one_step_records_families_and_packages(recipe, tiny_data, roomy_profile, tmp_path):
    record = train_run(one_step(recipe), tiny_data, str(tmp_path / recipe), roomy_profile)
    augmentation = record["training"]["augmentation"]
    assert augmentation["families"] == ROBUST_FAMILIES
    assert augmentation["held_out_families"] == list(NEVER_TRAINED)
    # The CPU recipes end with a geometry-only polish; the families recorded are still the robust phase's.
    assert augmentation["per_phase"] == PER_PHASE[recipe]
    if recipe != "robust_cpu":  # the head phase trains on cached features, without augmentation
        assert record["training"]["phases"][0]["cached_features"] is True
    packaged = package_runs([record["dir"]], str(tmp_path / f"{recipe}.zip"))
    with zipfile.ZipFile(packaged["path"]) as archive:
        member = json.loads(archive.read("manifest.json"))["members"][0]
    assert member["trained_families"] == ROBUST_FAMILIES


def test_a_phase_policy_must_be_known(tmp_path):
    from codapack.errors import CodapackError

    with pytest.raises(CodapackError, match=r"`phases.1.augmentation` should be one of .*Received: 'strong'"):
        load_config(resolve_config_path("robust_gpu"), ["phases.1.augmentation=strong"])
