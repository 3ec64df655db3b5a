"""Options and behaviour shared by every codapack verb.

User errors (`CodapackError`) become click errors: one line on stderr, exit 1,
no traceback. `--json` makes a verb print one JSON object as its last line.
"""

import json

import click

from codapack.errors import CodapackError
from codapack.profile import DEFAULT_PROFILE


class Command(click.Command):
    """A click command that reports `CodapackError` as a plain error message."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CodapackError as exc:
            raise click.ClickException(str(exc)) from None


def command(**kwargs):
    """`click.command` with `Command` as the class and defaults shown in --help."""
    kwargs.setdefault("context_settings", {"show_default": True, "max_content_width": 100})
    return click.command(cls=Command, **kwargs)


profile_option = click.option(
    "--profile", "profile_name", default=DEFAULT_PROFILE, metavar="NAME|PATH",
    help="Competition profile: a bundled name or a TOML file.")

data_option = click.option(
    "--data", "data_path", required=True, type=click.Path(),
    help="The competition's labelled .npz (images and labels), or a cleaned or augmented copy of it.")

db_option = click.option(
    "--db", default=None, type=click.Path(),
    help="The leaderboard database [default: $CODAPACK_LEADERBOARD, else .codapack/leaderboard.sqlite].")

set_option = click.option(
    "--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
    help="Override a config value before anything else, e.g. --set phases.0.epochs=1 (repeatable).")

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object with every figure as the last line.")


def emit_json(obj):
    """Print `obj` as one line of JSON."""
    click.echo(json.dumps(obj, sort_keys=False, default=str))
