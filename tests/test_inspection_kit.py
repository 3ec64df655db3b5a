"""Automatic contaminant finding on the competition-style kit, scored against its true mask.

Needs ../shared (the kit builder and BloodMNIST); skipped only where it is absent.
"""

import importlib.util
import json

import numpy as np
import pytest
from click.testing import CliRunner

from codapack.cli.main import main
from tests.conftest import SHARED, write_npz

MAKE_KIT = SHARED / "tools" / "make_kit.py"


def _build_kit():
    spec = importlib.util.spec_from_file_location("make_kit", MAKE_KIT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build()


@pytest.mark.kit
@pytest.mark.skipif(not MAKE_KIT.is_file(), reason="../shared is absent")
def test_kit_contaminants_found_automatically(tmp_path):
    images, labels, is_contaminant = _build_kit()
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
