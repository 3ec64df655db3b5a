"""`codapack leaderboard`: the recorded harness runs, ranked, as a table, CSV, HTML page or JSON."""

import click

from codapack.cli.options import command, db_option, emit_json, json_option
from codapack.tools.leaderboard import PHASES, Leaderboard, format_table, resolve_submission


@command(name="leaderboard")
@db_option
@click.option("--competition", default=None, help="Only entries of this competition profile.")
@click.option("--history", is_flag=True, help="Every entry, oldest first, not only the best per submission zip.")
@click.option("--submission", default=None, metavar="ZIP|SHA", help="Only this zip (a path or a sha256 prefix).")
@click.option("--phase", default=None, type=click.Choice(PHASES), help="Only entries of this phase.")
@click.option("--reveal", is_flag=True, help="Show final-phase scores (the reveal is logged).")
@click.option("--csv", "csv_path", default=None, type=click.Path(), help="Also write the table as CSV ('-': stdout).")
@click.option("--html", "html_path", default=None, type=click.Path(),
              help="Also write a static HTML page: the table and a chart of score over time.")
@json_option
def main(db, competition, history, submission, phase, reveal, csv_path, html_path, as_json):
    """Show the local leaderboard of harness runs, best first; final-phase scores stay hidden unless --reveal."""
    from codapack.tools import leaderboard_page

    board = Leaderboard(db)
    prefix = resolve_submission(submission) if submission else None
    rows = board.ranked(competition=competition, history=history, reveal=reveal, submission=prefix, phase=phase)
    if reveal:
        reveals = board.record_reveal(competition)
        click.echo(f"final-phase scores revealed; reveal #{len(reveals)} of this leaderboard "
                   f"(first {reveals[0]})", err=True)
    if csv_path != "-":
        click.echo(format_table(rows))
    if csv_path:
        leaderboard_page.write_csv(rows, csv_path)
    if html_path:
        timeline = board.ranked(competition=competition, history=True, reveal=reveal, submission=prefix)
        leaderboard_page.write_html(rows, timeline, html_path, db_path=board.path)
        click.echo(f"wrote {html_path}", err=True)
    if as_json:
        emit_json({"db": board.path, "entries": rows})
