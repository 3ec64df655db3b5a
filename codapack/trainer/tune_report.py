"""What a search leaves besides its trial runs: trials.csv, trials.png and best.toml."""

import csv
import os

from codapack.files import atomic_path, write_json
from codapack.trainer import search_space
from codapack.trainer.overrides import to_toml
from codapack.trainer.search_space import OBJECTIVES
from codapack.trainer.tuning import RUNS, trial_values

TRIALS_CSV = "trials.csv"
TRIALS_PNG = "trials.png"
BEST_TOML = "best.toml"
SUMMARY_JSON = "search.json"


def trial_rows(oracle, params, objective):
    """One dict per trial, in the order they started: id, status, objective, metrics, values."""
    rows = []
    for trial_id in sorted(oracle.trials):
        trial = oracle.trials[trial_id]
        metrics = {name: trial.metrics.get_last_value(name) for name in OBJECTIVES
                   if trial.metrics.exists(name)}
        budget = trial.hyperparameters.values.get("tuner/epochs")
        rows.append({"trial": trial_id, "status": trial.status, "objective": metrics.get(objective),
                     **metrics, "epochs": budget if budget is not None else "",
                     **trial_values(params, trial.hyperparameters.values),
                     "run": os.path.join(RUNS, f"trial_{trial_id}")})
    return rows


def write_report(search, oracle, params):
    """Write trials.csv, trials.png, best.toml and search.json into the search folder.

    Returns:
        The summary dict (also in search.json): trials, best trial, its values and score, files.
    """
    out = os.path.abspath(search.out_dir)
    rows = trial_rows(oracle, params, search.objective)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_path(os.path.join(out, TRIALS_CSV)) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(rows)
    plot_trials(rows, search.objective, os.path.join(out, TRIALS_PNG), f"{search.tuner} search")
    best = [trial for trial in oracle.get_best_trials(1) if trial.score is not None]
    summary = {"dir": out, "tuner": search.tuner, "objective": search.objective, "trials": len(rows),
               "completed": sum(row["status"] == "COMPLETED" for row in rows),
               "files": {name: os.path.join(out, name) for name in (TRIALS_CSV, TRIALS_PNG)}}
    if best:
        values = trial_values(params, best[0].hyperparameters.values)
        score = best[0].score
        raw = search_space.with_values(search.base_raw(), values)
        header = (f"# Best of {len(rows)} trials of `codapack tune {search.config_path} --tuner {search.tuner}`:\n"
                  f"# trial {best[0].trial_id}, {search.objective} {score:.4f}\n"
                  + "".join(f"# {path} = {value!r}\n" for path, value in values.items()))
        with atomic_path(os.path.join(out, BEST_TOML)) as tmp:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(header + "\n" + to_toml(raw))
        summary.update(best_trial=best[0].trial_id, best_score=score, best_values=values)
        summary["files"]["best_config"] = os.path.join(out, BEST_TOML)
    summary["rows"] = rows
    write_json(os.path.join(out, SUMMARY_JSON), summary)
    return summary


def plot_trials(rows, objective, path, title):
    """The objective of each trial in order, the best so far as a line, the best trial marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [(i, row["objective"]) for i, row in enumerate(rows) if row["objective"] is not None]
    fig, ax = plt.subplots(figsize=(max(5, 0.4 * len(rows) + 3), 3.5))
    if scored:
        xs, ys = zip(*scored)
        running = [max(ys[:k + 1]) for k in range(len(ys))]
        ax.bar(xs, ys, color="#9ecae1", label=objective)
        ax.step(xs, running, where="post", color="#08519c", label="best so far")
        best = max(range(len(ys)), key=ys.__getitem__)
        ax.bar([xs[best]], [ys[best]], color="#e6550d", label=f"best: trial {rows[xs[best]]['trial']}")
    failed = [i for i, row in enumerate(rows) if row["objective"] is None]
    if failed:
        ax.scatter(failed, [0] * len(failed), marker="x", color="k", label="failed")
    ax.set_xticks(range(len(rows)), [row["trial"] for row in rows], rotation=90 if len(rows) > 12 else 0)
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    ax.set_ylim(0, 1)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def format_rows(rows):
    """A plain-text table of the trials (one line each)."""
    if not rows:
        return "no trials"
    columns = [c for c in rows[0] if c != "run"]
    text = [[str(row.get(c, "")) if not isinstance(row.get(c), float) else f"{row[c]:.4g}" for c in columns]
            for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in text)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in text]
    return "\n".join(lines)
