"""`python -m codapack ...`: the `codapack` command without the installed script."""

from codapack.cli import main

main(prog_name="codapack")
