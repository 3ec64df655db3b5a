"""The local leaderboard: every harness run, in SQLite. `python tools/leaderboard.py` shows the ranking.

SQLite in WAL mode with a busy timeout, one transaction per entry: harness runs
that finish at once all land, and a run killed mid-write leaves the database
as it was.
"""

import datetime
import json
import os
import sqlite3

import click

from codapack.cli_common import command, emit_json, json_option
from codapack.errors import fail_for
from codapack.splits import state_dir

DB_ENV = "CODAPACK_LEADERBOARD"
COLUMNS = (
    ("created", "TEXT"), ("competition", "TEXT"), ("zip", "TEXT"), ("zip_sha256", "TEXT"),
    ("zip_bytes", "INTEGER"), ("members", "TEXT"), ("data_sha256", "TEXT"), ("split", "TEXT"),
    ("dtype", "TEXT"), ("workdir", "TEXT"), ("n", "INTEGER"), ("verdict", "TEXT"),
    ("accuracy", "REAL"), ("precision", "REAL"), ("recall", "REAL"), ("f1", "REAL"),
    ("seconds", "REAL"), ("init_seconds", "REAL"), ("predict_seconds", "REAL"), ("peak_rss_mb", "REAL"),
    ("error", "TEXT"), ("note", "TEXT"),
)
SHOWN = ("rank", "id", "created", "zip", "verdict", "accuracy", "f1", "n", "split", "seconds", "peak_rss_mb", "note")


def default_db_path():
    """$CODAPACK_LEADERBOARD, else `leaderboard.sqlite` in the state folder (./.codapack)."""
    return os.environ.get(DB_ENV) or os.path.join(state_dir(), "leaderboard.sqlite")


class Leaderboard:
    """Harness runs stored in one SQLite file.

    Args:
        path: the database file; see `default_db_path` when None.
    """

    def __init__(self, path=None):
        self.path = os.path.abspath(path or default_db_path())

    def _connect(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        try:
            connection = sqlite3.connect(self.path, timeout=30)
            connection.execute("PRAGMA journal_mode=WAL")
            columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS)
            connection.execute(f"CREATE TABLE IF NOT EXISTS entries (id INTEGER PRIMARY KEY AUTOINCREMENT, {columns})")
        except sqlite3.DatabaseError as exc:
            raise fail_for(self.path, f"not a usable leaderboard database ({exc})") from None
        connection.row_factory = sqlite3.Row
        return connection

    def record(self, result, competition, *, note=""):
        """Store one harness result and return its id."""
        values = dict(result, competition=competition, note=note,
                      members=json.dumps(result.get("members", [])),
                      created=datetime.datetime.now().isoformat(timespec="seconds"))
        names = [name for name, _ in COLUMNS]
        connection = self._connect()
        try:
            with connection:
                cursor = connection.execute(
                    f"INSERT INTO entries ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                    [values.get(name) for name in names])
            return cursor.lastrowid
        finally:
            connection.close()

    def ranked(self, *, competition=None, history=False):
        """Entries ranked by accuracy then macro F1, failed runs last.

        Args:
            competition: only this competition's entries.
            history: every entry rather than the best one per zip (by content hash).

        Returns:
            A list of dicts, each with a `rank`.
        """
        if not os.path.exists(self.path):
            return []
        connection = self._connect()
        try:
            rows = [dict(row) for row in connection.execute(
                "SELECT * FROM entries WHERE (? IS NULL OR competition = ?) "
                "ORDER BY verdict != 'OK', accuracy DESC, f1 DESC, id ASC", (competition, competition))]
        finally:
            connection.close()
        if not history:
            seen, best = set(), []
            for row in rows:
                if row["zip_sha256"] not in seen:
                    seen.add(row["zip_sha256"])
                    best.append(row)
            rows = best
        return [dict(row, rank=i + 1) for i, row in enumerate(rows)]


def format_table(rows):
    """The ranked entries as a fixed-width text table."""
    if not rows:
        return "the leaderboard is empty: run `python tools/harness.py ZIP --data FILE` first"
    cells = [[_cell(row.get(name), name) for name in SHOWN] for row in rows]
    widths = [max(len(name), *(len(c[i]) for c in cells)) for i, name in enumerate(SHOWN)]
    lines = ["  ".join(name.ljust(w) for name, w in zip(SHOWN, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def _cell(value, name):
    if value is None:
        return "-"
    if name == "zip":
        return os.path.basename(value)
    if isinstance(value, float):
        return f"{value:.4f}" if name in ("accuracy", "f1") else f"{value:.1f}"
    return str(value)


@command(name="leaderboard")
@click.option("--db", default=None, type=click.Path(), help="Database file [default: .codapack/leaderboard.sqlite].")
@click.option("--competition", default=None, help="Only entries of this competition profile.")
@click.option("--history", is_flag=True, help="Every entry, not only the best per submission zip.")
@json_option
def main(db, competition, history, as_json):
    """Show the local leaderboard of harness runs, best first."""
    board = Leaderboard(db)
    rows = board.ranked(competition=competition, history=history)
    click.echo(format_table(rows))
    if as_json:
        emit_json({"db": board.path, "entries": rows})


if __name__ == "__main__":
    main()
