"""`python -m codapack ...`: the `codapack` command without the installed script."""

from codapack.cli.main import main

main(prog_name="codapack")
