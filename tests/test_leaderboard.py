"""The leaderboard keeps every harness run, ranks them, and survives concurrent writers."""

import multiprocessing

import pytest
from click.testing import CliRunner

from codapack.cli import main
from codapack.errors import CodapackError
from tests.conftest import last_json_line
from tools.leaderboard import Leaderboard, format_table


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
        p.join(60)
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
