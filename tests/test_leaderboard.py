"""The leaderboard keeps every harness run, ranks them, and survives concurrent writers."""

import csv
import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from codapack.cli.main import main
from codapack.errors import CodapackError
from tests.conftest import REPO, TINY_PROFILE, last_json_line, make_zip
from codapack.tools.leaderboard import Leaderboard, format_table


def _result(sha, accuracy, verdict="OK"):
    return {"zip": f"/x/{sha}.zip", "zip_sha256": sha, "verdict": verdict, "accuracy": accuracy, "f1": accuracy,
            "n": 10, "split": "test", "seconds": 1.0, "members": ["a"]}


def test_ranking_best_per_zip_and_history(tmp_path):
    board = Leaderboard(str(tmp_path / "lb.sqlite"))
    board.record(_result("aaa", 0.5), "tiny")
    board.record(_result("bbb", 0.9), "tiny")
    board.record(_result("aaa", 0.7), "tiny", note="retry")
    board.record(_result("ccc", None, verdict="ERROR"), "tiny")
    board.record(_result("ddd", 0.99), "other")
    best = board.ranked(competition="tiny")
    assert [(r["zip_sha256"], r["accuracy"]) for r in best] == [("bbb", 0.9), ("aaa", 0.7), ("ccc", None)]
    assert [r["rank"] for r in best] == [1, 2, 3]
    assert len(board.ranked(competition="tiny", history=True)) == 4
    assert "bbb.zip" in format_table(best) and "0.9000" in format_table(best)


def _write_many(path, start):
    board = Leaderboard(path)
    for i in range(25):
        board.record(_result(f"p{start}-{i}", i / 100), "tiny")


def test_concurrent_writers_all_land(tmp_path):
    path = str(tmp_path / "lb.sqlite")
    processes = [multiprocessing.get_context("spawn").Process(target=_write_many, args=(path, k)) for k in range(3)]
    for p in processes:
        p.start()
    for p in processes:
        p.join(300)  # spawned interpreters import slowly on a loaded 2-core machine
        assert p.exitcode == 0
    assert len(Leaderboard(path).ranked(history=True)) == 75


def test_corrupt_database_is_a_clear_error(tmp_path):
    path = tmp_path / "lb.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CodapackError, match="not a usable leaderboard database"):
        Leaderboard(str(path)).record(_result("a", 0.1), "tiny")


def test_cli_empty_and_json(tmp_path):
    db = str(tmp_path / "lb.sqlite")
    result = CliRunner().invoke(main, ["leaderboard", "--db", db])
    assert "the leaderboard is empty" in result.output
    Leaderboard(db).record(_result("a", 0.3), "tiny")
    result = CliRunner().invoke(main, ["leaderboard", "--db", db, "--json"])
    assert last_json_line(result.output)["entries"][0]["accuracy"] == 0.3


# --- phases, migration, recipe, exports -------------------------------------------------------------

def test_final_scores_stay_hidden_until_revealed(tmp_path):
    db = str(tmp_path / "lb.sqlite")
    board = Leaderboard(db)
    board.record(_result("aaa", 0.5), "tiny")
    board.record(_result("aaa", 0.6123), "tiny", phase="final")
    board.record(_result("bbb", 0.9), "tiny")
    best = board.ranked()
    assert [(r["zip_sha256"], r["accuracy"], r["final_accuracy"]) for r in best] == [
        ("bbb", 0.9, None), ("aaa", 0.5, "hidden")]
    history = board.ranked(history=True)
    assert [(r["phase"], r["accuracy"]) for r in history] == [
        ("development", 0.5), ("final", "hidden"), ("development", 0.9)]
    assert board.ranked(reveal=True)[1]["final_accuracy"] == 0.6123
    # Ranking by the final phase without a reveal must not order by the hidden score.
    assert [r["final_accuracy"] for r in board.ranked(phase="final")] == ["hidden"]

    runner = CliRunner()
    for args in ([], ["--history"], ["--json"], ["--csv", "-"], ["--phase", "final"]):
        shown = runner.invoke(main, ["leaderboard", "--db", db, *args])
        assert shown.exit_code == 0, shown.output
        assert "0.6123" not in shown.output and "hidden" in shown.output
    revealed = runner.invoke(main, ["leaderboard", "--db", db, "--reveal"])
    assert "0.6123" in revealed.output and "reveal #1" in revealed.output
    again = runner.invoke(main, ["leaderboard", "--db", db, "--reveal", "--history"])
    assert "reveal #2" in again.output


OLD_COLUMNS = ("created TEXT, competition TEXT, zip TEXT, zip_sha256 TEXT, zip_bytes INTEGER, members TEXT, "
               "data_sha256 TEXT, split TEXT, dtype TEXT, workdir TEXT, n INTEGER, verdict TEXT, accuracy REAL, "
               "precision REAL, recall REAL, f1 REAL, seconds REAL, init_seconds REAL, predict_seconds REAL, "
               "peak_rss_mb REAL, error TEXT, note TEXT")


def test_database_of_the_previous_schema_is_migrated(tmp_path):
    path = tmp_path / "lb.sqlite"
    connection = sqlite3.connect(path)
    connection.execute(f"CREATE TABLE entries (id INTEGER PRIMARY KEY AUTOINCREMENT, {OLD_COLUMNS})")
    connection.execute("INSERT INTO entries (zip, zip_sha256, verdict, accuracy, competition) "
                       "VALUES ('/x/old.zip', 'old', 'OK', 0.4, 'tiny')")
    connection.commit()
    connection.close()
    board = Leaderboard(str(path))
    board.record(_result("new", 0.8), "tiny", phase="final")
    rows = board.entries()
    assert [(r["zip_sha256"], r["phase"], r["shifted_accuracy"]) for r in rows] == [
        ("old", "development", None), ("new", "final", None)]
    board.set_shifted_accuracy(rows[0]["id"], 0.31)
    assert board.ranked()[0]["shifted_accuracy"] == 0.31


def test_entry_keeps_the_recipe_from_the_zip_manifest(tmp_path):
    from codapack.submission import manifest as manifest_module

    member = manifest_module.member_entry(
        name="cnn-a", member_format="keras", file="members/00.weights.h5", architecture="baseline_cnn",
        options={"dense": [16]}, preprocessing="unit", weight=2, split_id="s", data_sha256="d", trained_with={},
        trained_families=[])
    manifest = manifest_module.new_manifest(competition="tiny", input_shape=(24, 24, 3), classes="abcd",
                                            batch_size=32, tta="none", members=[member], codapack_version="0",
                                            created="2026-11-22T00:00:00+00:00")
    zip_path = make_zip(tmp_path / "sub.zip", {"model.py": "", "manifest.json": json.dumps(manifest)})
    board = Leaderboard(str(tmp_path / "lb.sqlite"))
    board.record(dict(_result("r", 0.5), zip=zip_path, metrics={"accuracy": 0.5, "per_class": {}}), "tiny")
    entry = board.entries()[0]
    assert json.loads(entry["recipe"]) == {"batch_size": 32, "members": [
        {"name": "cnn-a", "architecture": "baseline_cnn", "options": {"dense": [16]}, "weight": 2.0, "split_id": "s"}]}
    assert json.loads(entry["metrics"])["accuracy"] == 0.5
    assert board.entries(submission="r")[0]["id"] == entry["id"]


def test_csv_export(tmp_path):
    db = str(tmp_path / "lb.sqlite")
    Leaderboard(db).record(_result("aaa", 0.25), "tiny", note="a, b")
    out = tmp_path / "board.csv"
    assert CliRunner().invoke(main, ["leaderboard", "--db", db, "--csv", str(out)]).exit_code == 0
    rows = list(csv.DictReader(out.open()))
    assert rows[0]["zip_sha256"] == "aaa" and rows[0]["note"] == "a, b" and float(rows[0]["accuracy"]) == 0.25


# --- acceptance: parallel harness runs, and the HTML page in a real browser --------------------------

MODEL = """
import numpy as np
class Model:
    def predict(self, X):
        return np.full(len(X), 1, dtype=np.int64)
"""


def test_two_harness_runs_in_parallel_processes_both_appear(tmp_path, tiny_data):
    db = str(tmp_path / "lb.sqlite")
    profile = tmp_path / "tiny_final.toml"
    profile.write_text(TINY_PROFILE + "final_fraction = 0.1\n")  # [split] is the profile's last table
    env = dict(os.environ, PYTHONPATH=str(REPO))
    runs = []
    for phase in ("development", "final"):
        zip_path = make_zip(tmp_path / f"{phase}.zip", {"model.py": MODEL + f"# {phase}\n"})
        runs.append(subprocess.Popen(
            [sys.executable, str(REPO / "tools" / "harness.py"), zip_path, "--data", tiny_data, "--profile",
             str(profile), "--db", db, "--phase", phase, "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    final_line = json.loads(outputs[1][0].strip().splitlines()[-1])
    assert final_line["accuracy"] == "hidden" and final_line["split"] == "final"
    entries = Leaderboard(db).entries()
    assert sorted(e["phase"] for e in entries) == ["development", "final"]
    assert all(isinstance(e["accuracy"], float) for e in entries)  # stored, only hidden when shown


def _colour_rows(image, colour, tolerance=12):
    """How many rows of the screenshot hold a run of at least 200 pixels of `colour`."""
    close = (np.abs(image[..., :3].astype(int) - colour) <= tolerance).all(axis=-1)
    return int((close.sum(axis=1) >= 200).sum())


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_html_page_renders_in_headless_chromium(tmp_path):
    db = str(tmp_path / "lb.sqlite")
    board = Leaderboard(db)
    for i, accuracy in enumerate((0.41, 0.55, 0.5, 0.72)):
        board.record(_result(f"z{i}", accuracy), "tiny", note=f"try {i}")
    page = tmp_path / "board.html"
    assert CliRunner().invoke(main, ["leaderboard", "--db", db, "--html", str(page)]).exit_code == 0
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--no-first-run",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,800",
                    page.as_uri()], capture_output=True, timeout=120, check=True)
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape == (800, 1200, 3)
    assert _colour_rows(image, (43, 76, 126)) >= 15       # the table's header row, drawn in its colour
    assert _colour_rows(image, (255, 244, 194)) >= 15     # the highlighted first row
    red = (np.abs(image.astype(int) - (214, 39, 40)) <= 30).all(axis=-1).sum()
    assert red > 200                                      # the chart's best-so-far line: the PNG decoded


def test_a_zip_whose_manifest_lacks_a_key_keeps_no_recipe(tmp_path):
    manifest = {"format": "codapack-submission", "format_version": 1, "batch_size": 32, "members": []}
    zip_path = make_zip(tmp_path / "sub.zip", {"model.py": "", "manifest.json": json.dumps(manifest)})
    board = Leaderboard(str(tmp_path / "lb.sqlite"))
    board.record(dict(_result("r", 0.5), zip=zip_path, metrics={"accuracy": 0.5, "per_class": {}}), "tiny")
    assert json.loads(board.entries()[0]["recipe"]) is None
