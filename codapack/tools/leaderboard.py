"""The local leaderboard: every harness run, in SQLite. `python tools/leaderboard.py` shows the ranking.

Two phases, as on the platform: `development` entries (scored on the test
split) are shown at once; `final` entries (scored on the held-back final split,
`harness --phase final`) keep their scores hidden in every view until
`--reveal` is passed, and each reveal is logged, so a team cannot tune to the
final images by accident.

SQLite in WAL mode with a busy timeout, one transaction per entry: harness runs
that finish at once all land, and a run killed mid-write leaves the database
as it was. Databases of older codapack versions gain the new columns on first
use (`_migrate`), in one transaction as well.
"""

import datetime
import json
import os
import sqlite3
import time

from codapack.errors import CodapackError, fail_for
from codapack.files import file_sha256
from codapack.splits import FINAL, state_dir
from codapack.submission.manifest import ManifestError, read_manifest_in_zip
from codapack.tools.diagnosis import OK

DB_ENV = "CODAPACK_LEADERBOARD"
DEVELOPMENT = "development"
PHASES = (DEVELOPMENT, FINAL)
HIDDEN = "hidden"
COLUMNS = (
    ("created", "TEXT"), ("competition", "TEXT"), ("zip", "TEXT"), ("zip_sha256", "TEXT"),
    ("zip_bytes", "INTEGER"), ("members", "TEXT"), ("data_sha256", "TEXT"), ("split", "TEXT"),
    ("dtype", "TEXT"), ("workdir", "TEXT"), ("n", "INTEGER"), ("verdict", "TEXT"),
    ("accuracy", "REAL"), ("precision", "REAL"), ("recall", "REAL"), ("f1", "REAL"),
    ("seconds", "REAL"), ("init_seconds", "REAL"), ("predict_seconds", "REAL"), ("peak_rss_mb", "REAL"),
    ("error", "TEXT"), ("note", "TEXT"),
    # Added with phases; older databases gain them in `_migrate`.
    ("phase", "TEXT"), ("recipe", "TEXT"), ("metrics", "TEXT"), ("shifted_accuracy", "REAL"),
    # Added with shift families: accuracy on corruption families the zip never trained on, and on the rest.
    ("shifted_held_out_accuracy", "REAL"), ("shifted_trained_accuracy", "REAL"),
)
# Scores a final-phase entry hides until revealed.
SCORE_FIELDS = ("accuracy", "precision", "recall", "f1", "shifted_accuracy", "shifted_held_out_accuracy",
                "shifted_trained_accuracy", "metrics")
RANKED_SHOWN = ("rank", "id", "created", "zip", "verdict", "accuracy", "f1", "shifted_held_out_accuracy",
                "shifted_trained_accuracy", "final_verdict", "final_accuracy", "n", "seconds", "peak_rss_mb", "note")
HISTORY_SHOWN = ("id", "created", "phase", "zip", "verdict", "accuracy", "f1", "shifted_held_out_accuracy",
                 "shifted_trained_accuracy", "n", "split", "seconds", "peak_rss_mb", "note")
HEADERS = {"shifted_accuracy": "shifted", "shifted_held_out_accuracy": "shifted held-out",
           "shifted_trained_accuracy": "shifted trained", "final_verdict": "final verdict",
           "final_accuracy": "final acc", "peak_rss_mb": "peak MB"}
# A write waits BUSY_TIMEOUT_S per attempt for a lock and retries until WRITE_DEADLINE_S have passed.
BUSY_TIMEOUT_S = 10
WRITE_DEADLINE_S = 120


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
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            _migrate(connection)
        except sqlite3.OperationalError as exc:
            connection.close()
            if _is_busy(exc):
                raise
            raise fail_for(self.path, f"not a usable leaderboard database ({exc})") from None
        except sqlite3.DatabaseError as exc:
            connection.close()
            raise fail_for(self.path, f"not a usable leaderboard database ({exc})") from None
        connection.row_factory = sqlite3.Row
        return connection

    def _write(self, sql, values):
        """One transaction, retried while another process holds the database, up to WRITE_DEADLINE_S."""
        deadline = time.monotonic() + WRITE_DEADLINE_S
        while True:
            try:
                return self._write_once(sql, values)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise fail_for(self.path, f"cannot write the leaderboard ({exc})") from None
                if time.monotonic() >= deadline:
                    raise fail_for(self.path, f"still locked by another process after {WRITE_DEADLINE_S:g} s "
                                              f"({exc}); close whatever holds it and rerun") from None
                time.sleep(min(1.0, BUSY_TIMEOUT_S))

    def _write_once(self, sql, values):
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")
            try:
                cursor = connection.execute(sql, values)
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            return cursor
        finally:
            connection.close()

    def record(self, result, competition, *, note="", phase=DEVELOPMENT):
        """Store one harness result and return its id.

        Args:
            result: the harness's result dict.
            competition: the profile name.
            note: free text.
            phase: `development` or `final`.
        """
        if phase not in PHASES:
            raise CodapackError(f"unknown phase `{phase}`; choose one of {', '.join(PHASES)}")
        values = dict(result, competition=competition, note=note, phase=phase,
                      members=json.dumps(result.get("members", [])),
                      recipe=json.dumps(zip_recipe(result.get("zip"))),
                      metrics=json.dumps(result["metrics"]) if result.get("metrics") else None,
                      created=datetime.datetime.now().isoformat(timespec="seconds"))
        names = [name for name, _ in COLUMNS]
        cursor = self._write(f"INSERT INTO entries ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                             [values.get(name) for name in names])
        return cursor.lastrowid

    def set_shifted_accuracy(self, entry_id, accuracy):
        """Fill the shifted (corrupted-images) score of an entry, once the robustness suite has it."""
        if self._write("UPDATE entries SET shifted_accuracy = ? WHERE id = ?", (accuracy, entry_id)).rowcount != 1:
            raise fail_for(self.path, f"no leaderboard entry {entry_id}")

    def record_reveal(self, competition=None):
        """Log that final-phase scores were shown; return the dates of every reveal so far."""
        now = datetime.datetime.now().isoformat(timespec="seconds")
        self._write("INSERT INTO reveals (created, competition) VALUES (?, ?)", (now, competition))
        connection = self._connect()
        try:
            return [row[0] for row in connection.execute("SELECT created FROM reveals ORDER BY id")]
        finally:
            connection.close()

    def entries(self, *, competition=None, submission=None):
        """Every stored entry, oldest first, scores as stored (not hidden).

        Args:
            competition: only this competition's entries.
            submission: only entries of zips whose sha256 starts with this.
        """
        if not os.path.exists(self.path):
            return []
        connection = self._connect()
        try:
            return [dict(row) for row in connection.execute(
                "SELECT * FROM entries WHERE (? IS NULL OR competition = ?) AND (? IS NULL OR zip_sha256 LIKE ?) "
                "ORDER BY id", (competition, competition, submission, f"{submission}%"))]
        finally:
            connection.close()

    def last_verdict(self, zip_sha256):
        """The most recent entry for a zip's content hash, or None."""
        rows = self.entries(submission=zip_sha256)
        return rows[-1] if rows else None

    def ranked(self, *, competition=None, history=False, reveal=False, submission=None, phase=None):
        """The leaderboard as the platform would show it.

        Args:
            competition: only this competition's entries.
            history: every entry, oldest first, rather than one row per zip.
            reveal: show final-phase scores (otherwise they read "hidden").
            submission: only zips whose sha256 starts with this.
            phase: only this phase's entries; with `final` and `reveal`,
                rows are ranked by their final score.

        Returns:
            A list of dicts. One row per zip (by content hash) carries the
            best development entry, the latest final entry as `final_*`
            fields, and a `rank`; failed runs rank last.
        """
        rows = self.entries(competition=competition, submission=submission)
        if history:
            rows = [row for row in rows if phase in (None, row["phase"])]
            return [row if reveal or row["phase"] != FINAL else seal(row) for row in rows]
        summaries = [s for s in _per_submission(rows) if phase is None or s[f"{phase}_entries"]]
        if phase == FINAL and reveal:
            summaries.sort(key=lambda s: _merit(s["final_verdict"], s["final_accuracy"], s["final_f1"], s["id"]))
        else:
            summaries.sort(key=lambda s: _merit(s["verdict"], s["accuracy"], s["f1"], s["id"]))
        if not reveal:
            for summary in summaries:
                for name in ("final_accuracy", "final_f1"):
                    summary[name] = HIDDEN if summary[name] is not None else None
        return [dict(summary, rank=i + 1) for i, summary in enumerate(summaries)]


def _migrate(connection):
    """Create the tables, or add the columns a database of an older codapack lacks, in one transaction."""
    have = {row[1] for row in connection.execute("PRAGMA table_info(entries)")}
    tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "reveals" in tables and all(name in have for name, _ in COLUMNS):
        return
    connection.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then find it done
    try:
        columns = ", ".join(f"{name} {kind}" for name, kind in COLUMNS)
        connection.execute(f"CREATE TABLE IF NOT EXISTS entries (id INTEGER PRIMARY KEY AUTOINCREMENT, {columns})")
        have = {row[1] for row in connection.execute("PRAGMA table_info(entries)")}
        for name, kind in COLUMNS:
            if name not in have:
                connection.execute(f"ALTER TABLE entries ADD COLUMN {name} {kind}")
        # Entries from before phases were all development runs.
        connection.execute("UPDATE entries SET phase = ? WHERE phase IS NULL", (DEVELOPMENT,))
        connection.execute("CREATE TABLE IF NOT EXISTS reveals "
                           "(id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT, competition TEXT)")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _merit(verdict, accuracy, f1, entry_id):
    """Sort key: OK runs first, then higher accuracy, then higher F1, then older."""
    return (verdict != OK, -_number(accuracy), -_number(f1), entry_id)


def _number(value):
    return value if isinstance(value, (int, float)) else float("-inf")


def _per_submission(rows):
    """One summary per zip: its best development entry plus its latest final entry."""
    groups = {}
    for row in rows:
        groups.setdefault(row["zip_sha256"], []).append(row)
    summaries = []
    for group in groups.values():
        development = [row for row in group if row["phase"] == DEVELOPMENT]
        final = [row for row in group if row["phase"] == FINAL]
        if development:
            summary = min(development, key=lambda r: _merit(r["verdict"], r["accuracy"], r["f1"], r["id"]))
            summary = dict(summary)
        else:
            # Only final runs: the row's development fields stay empty.
            summary = dict(final[-1], **{k: None for k in SCORE_FIELDS + ("verdict", "n", "error")})
        last = final[-1] if final else {}
        summary.update(development_entries=len(development), final_entries=len(final),
                       final_id=last.get("id"), final_verdict=last.get("verdict"),
                       final_accuracy=last.get("accuracy"), final_f1=last.get("f1"), final_n=last.get("n"))
        summaries.append(summary)
    return summaries


def _is_busy(error):
    return "locked" in str(error) or "busy" in str(error)


def seal(result):
    """A copy of a final-phase result with its scores replaced by "hidden"."""
    return {k: (HIDDEN if k in SCORE_FIELDS and v is not None else v) for k, v in result.items()}


def final_summary(result):
    """The harness's line for a final-phase run: the verdict and costs, never the score."""
    if result["verdict"] != OK:
        return f"verdict {result['verdict']} on the final split: {result['error']}"
    return (f"verdict OK on {result['n']} final-phase images in {result['seconds']:.1f} s, peak memory "
            f"{result['peak_rss_mb']:.0f} MB; scores hidden until `python tools/leaderboard.py --reveal`")


def zip_recipe(zip_path):
    """What a codapack zip holds, from its manifest.json: each member's run, network, options and weight.

    Returns:
        A dict, or None for a zip without a readable manifest.
    """
    if not zip_path:  # a result the harness recorded without a zip file
        return None
    try:
        manifest = read_manifest_in_zip(zip_path)
    except ManifestError:
        return None
    keys = ("name", "architecture", "options", "weight", "split_id")
    return {"batch_size": manifest["batch_size"],
            "members": [{key: member[key] for key in keys} for member in manifest["members"]]}


def resolve_submission(text):
    """A zip path or a sha256 prefix (at least 6 hex digits) as a sha256 prefix."""
    if os.path.isfile(text):
        return file_sha256(text)
    if len(text) >= 6 and all(c in "0123456789abcdef" for c in text.lower()):
        return text.lower()
    raise CodapackError(f"--submission should be a zip file or a sha256 prefix of 6+ hex digits. Received: {text}")


def format_table(rows):
    """Entries as a fixed-width text table (ranked or history columns, whichever the rows are)."""
    if not rows:
        return "the leaderboard is empty: run `python tools/harness.py ZIP --data FILE` first"
    shown = table_columns(rows)
    cells = [[cell_text(row.get(name), name) for name in shown] for row in rows]
    headers = [HEADERS.get(name, name) for name in shown]
    widths = [max(len(header), *(len(c[i]) for c in cells)) for i, header in enumerate(headers)]
    lines = ["  ".join(header.ljust(w) for header, w in zip(headers, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


def table_columns(rows):
    return RANKED_SHOWN if rows and "rank" in rows[0] else HISTORY_SHOWN


def cell_text(value, name):
    if value is None:
        return "-"
    if name == "zip":
        return os.path.basename(value)
    if isinstance(value, float):
        return f"{value:.4f}" if name in ("accuracy", "f1", "shifted_accuracy", "shifted_held_out_accuracy",
                                          "shifted_trained_accuracy", "final_accuracy") else f"{value:.1f}"
    return str(value)
