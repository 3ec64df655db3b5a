"""`python tools/package.py ...` is `codapack package ...`: the spelling course templates and the README use."""

from codapack.cli import package

if __name__ == "__main__":
    package.main(prog_name="python tools/package.py")
