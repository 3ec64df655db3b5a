"""`codapack demo` (the README's `make demo`) runs the whole spine offline."""

from click.testing import CliRunner

from codapack.cli.main import main


def test_demo_runs_every_stage_and_prints_the_leaderboard(chdir_tmp):
    result = CliRunner().invoke(main, ["demo", "--images", "800"])
    assert result.exit_code == 0, result.output
    for stage in ("[1/5] data", "[2/5] train", "[3/5] evaluate", "[4/5] package", "[5/5] harness"):
        assert stage in result.output
    assert "generated images" in result.output and "verdict OK" in result.output
    table = result.output.split("leaderboard:")[1]
    assert "submission.zip" in table and "codapack demo" in table
    assert (chdir_tmp / "demo_output" / "submission.zip").is_file()
