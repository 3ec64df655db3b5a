"""Data inspection and cleaning on tiny generated data (no ../shared)."""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

from codapack.cli.main import main
from codapack.dataset import load_dataset
from codapack.errors import CodapackError
from codapack.files import file_sha256
from codapack.data.cleaning import clean_dataset
from codapack.data.inspection.features import extract_features, layout_features
from codapack.data.inspection.outliers import label_association
from codapack.data.inspection.report import InspectOptions, inspect_dataset
from codapack.synthetic import make_dataset
from tests.conftest import last_json_line, write_npz

N_CLEAN, N_PLANTED = 700, 42  # a 6% contamination, not the kit's 13%


def _planted_background(shape, seed):
    """Diagonal colour stripes: nothing like the kit's photographs or the cells."""
    height, width, _ = shape
    yy, xx = np.mgrid[0:height, 0:width]
    phase = (xx + 2 * yy) / 5.0
    colours = np.stack([120 + 100 * np.sin(phase), 60 + 60 * np.cos(phase / 2), 200 - 80 * np.sin(phase / 3)], -1)
    return np.clip(colours + np.random.default_rng(seed).normal(0, 5, colours.shape), 0, 255)


@pytest.fixture(scope="module")
def planted(tmp_path_factory, tiny_profile):
    """Clean generated cells plus blends over one background, near/exact duplicates and 2 noise images."""
    rng = np.random.default_rng(11)
    images, labels = make_dataset(N_CLEAN, tiny_profile.input_shape, tiny_profile.num_classes, seed=5)
    cells, _ = make_dataset(N_PLANTED, tiny_profile.input_shape, tiny_profile.num_classes, seed=6)
    alpha = rng.uniform(0.5, 0.65, (N_PLANTED, 1, 1, 1))
    blends = (alpha * cells + (1 - alpha) * _planted_background(tiny_profile.input_shape, 1)).astype(np.uint8)
    noise = rng.integers(0, 256, (2, *tiny_profile.input_shape), dtype=np.uint8)
    near = np.clip(images[7].astype(int) + rng.integers(-2, 3, images[7].shape), 0, 255).astype(np.uint8)
    extra = np.concatenate([blends, noise, images[[5]], near[None]])
    extra_labels = np.concatenate([rng.integers(0, 4, N_PLANTED), [0, 1], labels[5, :1], [(labels[7, 0] + 1) % 4]])
    order = rng.permutation(N_CLEAN + len(extra))
    all_images = np.concatenate([images, extra])[order]
    all_labels = np.concatenate([labels[:, 0], extra_labels]).astype(np.uint8)[order, None]
    where = np.argsort(order)  # where[i]: new position of original row i
    path = write_npz(tmp_path_factory.mktemp("planted") / "planted.npz", images=all_images, labels=all_labels)
    return {"path": path, "blends": np.sort(where[N_CLEAN:N_CLEAN + N_PLANTED]),
            "noise": np.sort(where[N_CLEAN + N_PLANTED:N_CLEAN + N_PLANTED + 2]),
            "exact": sorted(where[[5, N_CLEAN + N_PLANTED + 2]].tolist()),
            "near": sorted(where[[7, N_CLEAN + N_PLANTED + 3]].tolist())}


@pytest.fixture(scope="module")
def report(planted, tiny_profile, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    dataset = load_dataset(planted["path"], tiny_profile)
    return inspect_dataset(dataset, tiny_profile, str(out), InspectOptions(exemplars=(int(planted["blends"][0]),))), out


def _groups(report, kind):
    return [g for g in report["groups"] if g["kind"] == kind]


def test_planted_background_is_found_and_classes_are_not(report, planted):
    report, _ = report
    backgrounds = _groups(report, "background")
    assert len(backgrounds) == 1, [(g["name"], g["size"], g["labels"]) for g in backgrounds]
    found = set(backgrounds[0]["indices"])
    truth = set(planted["blends"].tolist())
    precision, recall = len(found & truth) / len(found), len(found & truth) / len(truth)
    print(f"planted background: {len(found)} flagged, precision {precision:.3f}, recall {recall:.3f}")
    assert precision >= 0.95 and recall >= 0.95
    assert backgrounds[0]["label_association"] < 0.5


def test_isolated_images_include_the_noise(report, planted):
    report, _ = report
    isolated = _groups(report, "isolated")
    assert isolated and set(planted["noise"].tolist()) <= set(isolated[0]["indices"])


def test_exact_and_near_duplicates_with_label_agreement(report, planted):
    report, _ = report
    exact = [(p["a"], p["b"], p["same_label"]) for p in report["exact_duplicates"]["pairs"]]
    assert exact == [(*planted["exact"], True)]
    near = [(p["a"], p["b"], p["same_label"]) for p in report["near_duplicates"]["pairs"]]
    assert (*planted["near"], False) in near
    assert len(near) <= 3  # generated cells differ from one another by far more than 4 levels


def test_exemplar_mode_finds_the_rest_of_its_group(report, planted):
    report, _ = report
    exemplar = set(_groups(report, "exemplar")[0]["indices"])
    assert len(exemplar & set(planted["blends"].tolist())) >= 0.8 * N_PLANTED


def test_report_files_and_galleries(report):
    report, out = report
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["features"]["extractor"] == "pixels"
    assert on_disk["class_counts_png"] == "class_counts.png" and (out / "class_counts.png").exists()
    for group in on_disk["groups"]:
        assert group["size"] == len(group["indices"]) == sum(group["labels"].values())
        assert (out / group["gallery"]).read_bytes()[:4] == b"\x89PNG"


def test_clean_writes_new_file_and_removed_list(report, planted, tiny_profile, tmp_path):
    _, out = report
    before = file_sha256(planted["path"])
    cleaned = tmp_path / "cleaned.npz"
    record = clean_dataset(planted["path"], str(out), str(cleaned), tiny_profile,
                           drop=("background",), duplicates="dedupe")
    assert file_sha256(planted["path"]) == before
    removed = json.loads((tmp_path / "cleaned.removed.json").read_text())
    assert removed["removed_indices"] == record["removed_indices"]
    assert planted["exact"][1] in removed["removed_indices"] and planted["exact"][0] not in removed["removed_indices"]
    with np.load(cleaned) as npz, np.load(planted["path"]) as source:
        keep = np.setdiff1d(np.arange(len(source["labels"])), removed["removed_indices"])
        assert npz["labels"].shape == (len(keep), 1) and npz["labels"].dtype == source["labels"].dtype
        np.testing.assert_array_equal(npz["images"], source["images"][keep])


def test_clean_refuses_its_input_unknown_groups_and_other_data(report, planted, tiny_profile, tiny_data, tmp_path):
    _, out = report
    with pytest.raises(CodapackError, match="never overwrites its input"):
        clean_dataset(planted["path"], str(out), planted["path"], tiny_profile, drop=("background",))
    with pytest.raises(CodapackError, match="no group named or of kind 'nope'"):
        clean_dataset(planted["path"], str(out), str(tmp_path / "c.npz"), tiny_profile, drop=("nope",))
    with pytest.raises(CodapackError, match="written for other data"):
        clean_dataset(tiny_data, str(out), str(tmp_path / "c.npz"), tiny_profile, drop=("background",))


def test_cli_inspect_then_clean(planted, tiny_profile_path, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["inspect", planted["path"], "--out", str(tmp_path / "r"),
                                  "--profile", tiny_profile_path, "--json"])
    assert result.exit_code == 0, result.output
    assert last_json_line(result.output)["groups"][0]["name"] == "background-1"
    result = runner.invoke(main, ["clean", planted["path"], "--report", str(tmp_path / "r"), "--drop", "background-1",
                                  "--out", str(tmp_path / "c.npz"), "--profile", tiny_profile_path, "--json"])
    assert result.exit_code == 0, result.output
    assert last_json_line(result.output)["removed_by_reason"].keys() == {"background-1"}
    result = runner.invoke(main, ["inspect", planted["path"], "--out", str(tmp_path / "r2"), "--features",
                                  "mobilenet_v2", "--profile", tiny_profile_path])
    assert result.exit_code == 1 and "needs a weights file" in result.output
    assert not os.path.exists(tmp_path / "r2" / "report.json")


def test_layout_features_average_uneven_cells():
    images = np.zeros((2, 25, 23, 3), dtype=np.uint8)
    images[1] = 255
    images[0, 22:, 21:] = 255  # exactly the last cell of a 12x12 grid of a 25x23 image (3x2 pixels)
    images[0, 0, 0] = 51  # the first cell is 2x1 pixels: its mean is 51 / 2 / 255 = 0.1
    features = layout_features(images, grid=12).reshape(2, 12, 12, 3)
    assert features[0, -1, -1, 0] == pytest.approx(1.0) and features[0, 0, 0, 0] == pytest.approx(0.1)
    assert features[0].sum() == pytest.approx(3 * 1.1)
    assert np.allclose(features[1], 1.0)


def test_label_association_spans_zero_to_one():
    reference = np.repeat(np.arange(4), 25)
    assert label_association(np.arange(4).repeat(5), 4, reference) == pytest.approx(0.0)
    assert label_association(np.full(20, 2), 4, reference) == pytest.approx(1.0)


def test_unknown_extractor_is_one_clear_error():
    with pytest.raises(CodapackError, match="`extractor` should be one of"):
        extract_features(np.zeros((2, 24, 24, 3), np.uint8), "vgg16")


def test_groups_carry_scores_and_clean_drops_by_score(report, planted, tiny_profile, tmp_path):
    report, out = report
    background = _groups(report, "background")[0]
    assert len(background["scores"]) == background["size"]
    for group in report["groups"]:
        if group["threshold"] is not None:  # admitted by a cut on the score
            assert min(group["scores"]) >= group["threshold"]
    assert background["score"] == pytest.approx(np.median(background["scores"]), abs=1e-3)
    cut = float(np.median(background["scores"]))
    expected = sorted(i for i, s in zip(background["indices"], background["scores"]) if s >= cut)
    record = clean_dataset(planted["path"], str(out), str(tmp_path / "c.npz"), tiny_profile,
                           drop=(background["name"],), min_score=cut)
    assert record["removed_indices"] == expected and 0 < len(expected) < background["size"]
