"""`codapack evaluate`: runs side by side, test-time augmentation, ensemble selection, robustness, report."""

import os

import click

from codapack.splits import SPLIT_NAMES
from codapack.cli.options import command, data_option, emit_json, json_option
from codapack.dataset import load_dataset
from codapack.errors import CodapackError
from codapack.evaluator.ensemble import greedy_selection, load_ensemble, measure_candidate
from codapack.evaluator.evaluation import evaluate_run, predict_with_progress, split_indices
from codapack.evaluator.plots import save_robustness_png
from codapack.evaluator.report import markdown_report
from codapack.evaluator.robustness import robustness_suite, trained_families_of
from codapack.files import write_json
from codapack.metrics import HEADLINE, classification_metrics, format_metrics
from codapack.profile import load_profile
from codapack.submission.tta import POLICIES as TTA_POLICIES
from codapack.trainer import run_dir


def select_ensemble(records, profile, dataset, *, tta, max_members, time_budget_s):
    """Greedy selection on the validation split within the profile's size and time limits."""
    if len({r["split"]["id"] for r in records}) != 1:
        raise CodapackError("--ensemble needs runs trained on the same data and split; found split ids "
                            + ", ".join(sorted({r["split"]["id"] for r in records})))
    val_images, val_labels = dataset.subset(split_indices(records[0], dataset, "val"))
    candidates = [measure_candidate(record, profile, val_images, tta) for record in records]
    expected = profile.expected_test_images or len(split_indices(records[0], dataset, "test"))
    counts, history = greedy_selection(candidates, val_labels, max_members=max_members,
                                       max_bytes=profile.safe_upload_bytes,
                                       max_seconds_per_image=time_budget_s / expected)
    chosen = [(c.record, n) for c, n in zip(candidates, counts) if n]
    return {"members": [r["name"] for r, _ in chosen], "runs": [r["dir"] for r, _ in chosen],
            "weights": [float(n) for _, n in chosen], "history": history, "tta": tta,
            "predicted_seconds": sum(c.seconds_per_image for c, n in zip(candidates, counts) if n) * expected}


def chosen_members(records, choice):
    """The run records an ensemble choice kept, with their ensemble weights, in `records`' order."""
    chosen = [r for r in records if r["dir"] in choice["runs"]]
    return chosen, [choice["weights"][choice["runs"].index(r["dir"])] for r in chosen]


@command(name="evaluate")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@data_option
@click.option("--split", default="test", type=click.Choice((*SPLIT_NAMES, "all")),
              help="A split of the runs' saved train/val/test split, or all images of --data.")
@click.option("--tta", default="none", type=click.Choice(TTA_POLICIES),
              help="Test-time augmentation: none, flips, d4 (the 8 rotations/flips), shifts.")
@click.option("--ensemble", is_flag=True, help="Choose an ensemble of RUNS by greedy selection on the val split.")
@click.option("--max-members", default=5, help="Most distinct runs in the ensemble.")
@click.option("--time-budget", "time_budget_s", default=None, type=float,
              help="Seconds the ensemble may take on the hidden test set [default: half the profile's limit].")
@click.option("--package", "package_path", default=None, type=click.Path(),
              help="Package the chosen ensemble (or the single run) with the TTA policy into this zip.")
@click.option("--robustness", is_flag=True,
              help="Score corrupted copies of the split (21 corruptions in 9 shift families x 5 severities); reports "
                   "accuracy on the families each run never trained on (held out: the one to trust) and on the rest.")
@click.option("--out", "out_dir", default="evaluation", type=click.Path(), help="Folder for report.md and its PNGs.")
@json_option
def main(runs, data_path, split, tta, ensemble, max_members, time_budget_s, package_path, robustness, out_dir,
         as_json):
    """Score runs on a split and compare them; optionally choose an ensemble and test robustness.

    Writes OUT/report.md with the PNGs beside it; each run also keeps RUN/evaluation/SPLIT.json.
    """
    records = [run_dir.read_run(path) for path in runs]
    profile = load_profile(records[0]["profile"]["source"])
    dataset = load_dataset(data_path, profile)
    results = {"split": split, "tta": tta, "runs": []}
    for record in records:
        metrics = evaluate_run(record["dir"], data_path, split, profile=profile, tta=tta,
                               out_dir=os.path.join(out_dir, record["name"]), dataset=dataset)
        click.echo(f"== {record['name']} on {split} (TTA {tta})\n{format_metrics(metrics)}\n")
        results["runs"].append(metrics)
    if len(records) > 1:
        click.echo(comparison_table(results["runs"]))

    images, labels = dataset.subset(split_indices(records[0], dataset, split))
    chosen_records, weights = records[:1], [1.0]
    if ensemble:
        budget = time_budget_s if time_budget_s is not None else profile.time_limit_s / 2
        choice = select_ensemble(records, profile, dataset, tta=tta, max_members=max_members, time_budget_s=budget)
        chosen_records, weights = chosen_members(records, choice)
        model = load_ensemble(chosen_records, profile, weights=weights, tta=tta)
        probabilities = predict_with_progress(model, images, f"ensemble {split}")
        choice["metrics"] = classification_metrics(labels, probabilities.argmax(axis=1), profile.classes)
        choice["metrics"]["run"] = "ensemble"
        write_json(os.path.join(out_dir, "ensemble.json"), choice)
        click.echo(f"ensemble: {', '.join(f'{m} x{w:g}' for m, w in zip(choice['members'], choice['weights']))}; "
                   f"{split} accuracy {choice['metrics']['accuracy']:.4f}, predicted "
                   f"{choice['predicted_seconds']:.0f} s on the hidden test set")
        results["ensemble"] = choice
    if robustness:
        results["robustness"] = _robustness(records, results.get("ensemble"), profile, images, labels, tta, out_dir)
    if package_path:
        from codapack.tools.package import describe_size, package_runs

        packaged = package_runs([r["dir"] for r in chosen_records], package_path, weights=weights, tta=tta)
        click.echo(describe_size(packaged) + " (verify it with `python tools/harness.py ZIP --env target`)")
        results["package"] = packaged
    results["report"] = markdown_report(out_dir, split, tta, results["runs"], results.get("ensemble"),
                                        results.get("robustness"))
    click.echo(f"report: {results['report']}")
    if as_json:
        emit_json(results)


def _robustness(records, ensemble, profile, images, labels, tta, out_dir):
    models = [(r["name"], [r], None) for r in records]
    if ensemble:
        chosen, weights = chosen_members(records, ensemble)
        models.append(("ensemble", chosen, weights))
    out = {}
    for name, members, weights in models:
        model = load_ensemble(members, profile, weights=weights, tta=tta)
        result = robustness_suite(model.predict_proba, images, labels, profile.classes,
                                  trained_families=trained_families_of(members))
        result["png"] = os.path.join(out_dir, f"robustness_{name}.png")
        save_robustness_png(result, result["png"], title=f"{name}: clean {result['clean_accuracy']:.3f}, "
                                                         f"held-out families {_figure(result['held_out_accuracy'])}")
        click.echo(f"{name}: held-out families {_figure(result['held_out_accuracy'])} "
                   f"({', '.join(result['held_out_families'])}), trained families "
                   f"{_figure(result['trained_accuracy'])}, clean {result['clean_accuracy']:.4f}")
        out[name] = result
    return out


def _figure(value):
    return "n/a" if value is None else f"{value:.4f}"


def comparison_table(runs):
    """The headline figures of several runs, one row each, best accuracy first."""
    header = f"{'run':<24}" + "".join(f"{name:>20}" for name in HEADLINE)
    rows = sorted(runs, key=lambda m: -m["accuracy"])
    return "\n".join([header] + [f"{m['run']:<24}" + "".join(f"{m[k]:>20.4f}" for k in HEADLINE) for m in rows])
