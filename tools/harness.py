"""`python tools/harness.py ...` is `codapack harness ...`: the spelling course templates and the README use."""

from codapack.cli import harness

if __name__ == "__main__":
    harness.main(prog_name="python tools/harness.py")
