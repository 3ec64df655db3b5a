"""Exports of the local leaderboard: CSV, and a static HTML page with a chart of score over time.

The page is one self-contained file (the chart is a matplotlib PNG embedded as
a data URI), so it opens from disk or a CI artifact without a server.
"""

import base64
import csv
import datetime
import html
import io
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates  # noqa: E402  (the backend is chosen first)
import matplotlib.pyplot as plt  # noqa: E402

from codapack.files import atomic_path  # noqa: E402
from codapack.tools.leaderboard import (  # noqa: E402
    DEVELOPMENT,
    FINAL,
    HEADERS,
    HIDDEN,
    OK,
    cell_text,
    table_columns,
)

STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; margin-bottom: 4px; }
p.meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 16px 0; }
th { background: #2b4c7e; color: #fff; padding: 6px 10px; text-align: left; }
td { padding: 5px 10px; border-bottom: 1px solid #ddd; }
tr.first td { background: #fff4c2; }
td.hidden { color: #999; font-style: italic; }
img.chart { border: 1px solid #ddd; max-width: 100%; }
"""


def write_csv(rows, path):
    """Write every field of the rows as CSV to `path` (atomically), or to stdout for "-"."""
    fields = list(dict.fromkeys(name for row in rows for name in row))
    if path == "-":
        _write_rows(sys.stdout, rows, fields)
        return
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            _write_rows(f, rows, fields)


def _write_rows(stream, rows, fields):
    writer = csv.DictWriter(stream, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)


def score_chart_png(timeline):
    """PNG bytes of accuracy over time: every OK development run, the running best, and revealed final runs.

    Args:
        timeline: history rows, oldest first (final scores may read "hidden").
    """
    fig, ax = plt.subplots(figsize=(8, 3.6), dpi=100)
    points = {DEVELOPMENT: [], FINAL: []}
    for row in timeline:
        if row["verdict"] == OK and isinstance(row["accuracy"], float):
            points[row["phase"]].append((datetime.datetime.fromisoformat(row["created"]), row["accuracy"]))
    if points[DEVELOPMENT]:
        when, score = zip(*points[DEVELOPMENT])
        best = [max(score[:i + 1]) for i in range(len(score))]
        ax.plot(when, score, "o", color="#2b4c7e", label="development run")
        ax.step(when, best, where="post", color="#d62728", linewidth=2, label="best so far")
    if points[FINAL]:
        when, score = zip(*points[FINAL])
        ax.plot(when, score, "s", color="#2ca02c", label="final run (revealed)")
    if not any(points.values()):
        ax.text(0.5, 0.5, "no scored runs yet", ha="center", va="center", transform=ax.transAxes)
    else:
        # Runs minutes apart would otherwise sit on an axis of years.
        times = [when for kind in points.values() for when, _ in kind]
        pad = max((max(times) - min(times)) * 0.05, datetime.timedelta(minutes=1))
        ax.set_xlim(min(times) - pad, max(times) + pad)
        locator = matplotlib.dates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(matplotlib.dates.ConciseDateFormatter(locator))
    ax.set_ylabel("accuracy")
    ax.set_title("local leaderboard: accuracy over time")
    ax.grid(alpha=0.3)
    if any(points.values()):
        ax.legend(loc="lower right")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def render_html(rows, timeline, *, db_path):
    """The page as a string: a heading, the table (first row highlighted) and the chart."""
    shown = table_columns(rows)
    head = "".join(f"<th>{html.escape(HEADERS.get(name, name))}</th>" for name in shown)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(
            f"<td{' class=hidden' if row.get(name) == HIDDEN else ''}>{html.escape(cell_text(row.get(name), name))}</td>"
            for name in shown)
        body.append(f"<tr{' class=first' if i == 0 and 'rank' in row else ''}>{cells}</tr>")
    chart = base64.b64encode(score_chart_png(timeline)).decode("ascii")
    created = datetime.datetime.now().isoformat(timespec="seconds")
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>codapack leaderboard</title>"
            f"<style>{STYLE}</style></head><body>\n<h1>codapack local leaderboard</h1>\n"
            f"<p class=meta>{len(rows)} row(s) from {html.escape(os.path.basename(db_path))}, written {created}. "
            f"Final-phase scores read &ldquo;hidden&rdquo; until revealed with <code>--reveal</code>.</p>\n"
            f"<table id=leaderboard><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) +
            f"\n</tbody></table>\n<img class=chart alt='accuracy over time' src='data:image/png;base64,{chart}'>\n"
            f"</body></html>\n")


def write_html(rows, timeline, path, *, db_path):
    """Write the page atomically to `path`."""
    page = render_html(rows, timeline, db_path=db_path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
