"""The evaluation report: one Markdown file with its PNGs beside it."""

import os

from codapack.files import atomic_path
from codapack.metrics import HEADLINE


def _relative(path, folder):
    return os.path.relpath(path, folder)


def _figure(value):
    return "n/a" if value is None else f"{value:.4f}"


def markdown_report(folder, split, tta, runs, ensemble=None, robustness=None):
    """Write `folder/report.md` and return its path.

    Args:
        folder: where the report goes (its PNGs are referenced relative to it).
        split: the split scored.
        tta: the TTA policy used.
        runs: per-run metrics from `evaluate_run`.
        ensemble: the ensemble section (`members`, `weights`, `metrics`, `history`) or None.
        robustness: {name: robustness_suite result with `png`} or None.
    """
    lines = [f"# Evaluation on the `{split}` split (TTA: {tta})", "", "## Runs side by side", "",
             "| run | n | " + " | ".join(HEADLINE) + " |", "|---" * (len(HEADLINE) + 2) + "|"]
    rows = list(runs) + ([dict(ensemble["metrics"], run="ensemble")] if ensemble else [])
    for metrics in rows:
        lines.append(f"| {metrics['run']} | {metrics['n']} | " + " | ".join(f"{metrics[k]:.4f}" for k in HEADLINE) + " |")
    if robustness:
        lines += ["", "## Robustness: accuracy on corruption families the model never trained on", "",
                  "Held-out families are the figure to trust: augmentation makes the trained families easy by "
                  "construction, and a hidden test set brings corruptions nobody trained for.", "",
                  "| model | held-out families | trained families | clean | all corruptions | worst family |",
                  "|---|---|---|---|---|---|"]
        for name, result in robustness.items():
            worst = min(result["per_family"], key=result["per_family"].get)
            lines.append(f"| {name} | {_figure(result['held_out_accuracy'])} ({', '.join(result['held_out_families'])}) "
                         f"| {_figure(result['trained_accuracy'])} | {result['clean_accuracy']:.4f} | "
                         f"{result['shifted_accuracy']:.4f} | {worst} ({result['per_family'][worst]:.4f}) |")
        for name, result in robustness.items():
            lines += ["", f"![robustness of {name}]({_relative(result['png'], folder)})"]
    if ensemble:
        lines += ["", "## Ensemble chosen by greedy selection on the validation split", "",
                  "| member | weight |", "|---|---|"]
        lines += [f"| {member} | {weight} |" for member, weight in zip(ensemble["members"], ensemble["weights"])]
        lines += ["", "Validation accuracy after each step: "
                  + ", ".join(f"+{step['added']} {step['accuracy']:.4f}" for step in ensemble["history"])]
    for metrics in runs:
        lines += ["", f"## {metrics['run']}", "", "| class | precision | recall | f1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {name} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | {row['support']} |"
                  for name, row in metrics["per_class"].items()]
        lines += ["", f"![confusion matrix of {metrics['run']}]({_relative(metrics['confusion_png'], folder)})"]
        if metrics.get("curves_png"):
            lines += ["", f"![training curves of {metrics['run']}]({_relative(metrics['curves_png'], folder)})"]
    path = os.path.join(folder, "report.md")
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    return path
