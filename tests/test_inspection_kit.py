"""Automatic contaminant finding on the competition-style kit, scored against its true mask.

Needs ../shared (the kit builder and BloodMNIST); skipped only where it is absent.
"""

import importlib.util
import json

import numpy as np
import pytest
from click.testing import CliRunner

from codapack.cli.main import main
from codapack.data.inspection.overlays import overlay_groups
from tests.conftest import SHARED, write_npz
from tests.contamination import Setting, contaminate, precision_recall

MAKE_KIT = SHARED / "tools" / "make_kit.py"


# Generated sources over real cells, in settings the independent components alone missed
# (a faint or spread-out texture among other sources); not the unit tests' settings.
REAL_CELL_SETTINGS = [
    Setting("four-sources", ("photo", "texture", "sticker", "photo"), 0.10, seed=24),
    Setting("two-textures", ("texture", "texture"), 0.12, weight=(0.3, 0.6), seed=30),
    Setting("three-faint", ("photo", "texture", "sticker"), 0.08, weight=(0.25, 0.45), seed=28),
]


@pytest.fixture(scope="module")
def kit():
    if not MAKE_KIT.is_file():
        pytest.skip("../shared is absent")
    spec = importlib.util.spec_from_file_location("make_kit", MAKE_KIT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build()


@pytest.mark.kit
def test_kit_contaminants_found_automatically(tmp_path, kit):
    images, labels, is_contaminant = kit
    data = write_npz(tmp_path / "training_set.npz", images=images, labels=labels)
    result = CliRunner().invoke(main, ["inspect", data, "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["features"]["extractor"] == "pixels"
    backgrounds = [g for g in report["groups"] if g["kind"] == "background"]
    # The overlay search runs by default: on the kit it must add no group of clean cells.
    assert [g["name"] for g in report["groups"] if g["kind"] in ("overlay", "class-tied")] == []
    flagged = np.zeros(len(labels), dtype=bool)
    for group in backgrounds:
        flagged[group["indices"]] = True
    true_positives = int((flagged & is_contaminant).sum())
    precision = true_positives / max(int(flagged.sum()), 1)
    recall = true_positives / int(is_contaminant.sum())
    print(f"\nkit: {len(backgrounds)} background groups {[g['size'] for g in backgrounds]}, "
          f"{int(flagged.sum())} flagged of {int(is_contaminant.sum())} contaminants: "
          f"precision {precision:.4f}, recall {recall:.4f}, inspection {report['seconds']} s")
    assert precision >= 0.99 and recall >= 0.99
    # Each blended photograph is its own group, and every group has its gallery.
    assert len(backgrounds) == 2
    for group in report["groups"]:
        assert (tmp_path / "report" / group["gallery"]).stat().st_size > 10_000


@pytest.mark.kit
@pytest.mark.parametrize("setting", REAL_CELL_SETTINGS, ids=[s.name for s in REAL_CELL_SETTINGS])
def test_generated_sources_over_real_cells(kit, setting):
    images, labels, is_contaminant = kit
    clean = np.flatnonzero(~is_contaminant)[::3]  # 3,986 real cells
    mixed, mixed_labels, source = contaminate(images[clean], labels[clean], 8, setting)
    groups = overlay_groups(mixed, mixed_labels.ravel().astype(int), 8)
    precision, recall = precision_recall([group.indices for group in groups], source >= 0)
    print(f"\n{setting.name} over real cells: groups {[len(g.indices) for g in groups]}, "
          f"precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.98 and recall >= 0.98
    assert len(groups) == len(setting.sources)  # one group per source, none merged


@pytest.mark.kit
def test_real_clean_cells_give_no_group(kit):
    images, labels, is_contaminant = kit
    clean = np.flatnonzero(~is_contaminant)
    assert overlay_groups(images[clean], labels[clean].ravel().astype(int), 8) == []
