"""`python tools/submit.py ...` is `codapack submit ...`: the spelling course templates and the README use."""

from codapack.cli import submit

if __name__ == "__main__":
    submit.main(prog_name="python tools/submit.py")
