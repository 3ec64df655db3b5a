"""`python tools/leaderboard.py ...` is `codapack leaderboard ...`: the spelling course templates and the README use."""

from codapack.cli import leaderboard

if __name__ == "__main__":
    leaderboard.main(prog_name="python tools/leaderboard.py")
