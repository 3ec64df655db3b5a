"""Robustness of the recipes: clean test accuracy, held-out-family and trained-family accuracy, minutes.

    python bench/robustness.py                    # robust_cpu from training_set.npz, on the cleaned kit
    python bench/robustness.py --recipe robust_cpu --recipe mobilenet_v2_fast_cpu
    python bench/robustness.py --recipe robust_cpu --recipe mobilenet_v2_robust_cpu --ensemble

Each recipe goes the README's way: inspect and clean the kit, train, package, score
the zip in the harness on the cleaned file's test split. The shift figures come from
`codapack.evaluator.robustness.shifted_estimate`: five corrupted copies of that test split,
each image carrying one of the suite's 105 corruption/severity pairs per copy,
scored through the same runtime the zip ships. Held-out families are the ones the
recipe's augmentation never imitates; that figure is the one to trust.
"""

import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import click  # noqa: E402

from bench.common import SHARED, Row, format_rows, kit_path  # noqa: E402

MOBILENET_WEIGHTS = os.path.join(SHARED, "weights", "mobilenet_v2_1.0_no_top_from_tfslim_224_ckpt.h5")
ROUNDS = 5


def cleaned_kit(data, folder, profile):
    """`codapack inspect` then `codapack clean --drop background`: (cleaned file, images dropped)."""
    from codapack.dataset import load_dataset
    from codapack.data.cleaning import clean_dataset
    from codapack.data.inspection.report import inspect_dataset

    report_dir = os.path.join(folder, "inspection")
    inspect_dataset(load_dataset(data, profile), profile, report_dir)
    cleaned = os.path.join(folder, "clean.npz")
    return cleaned, clean_dataset(data, report_dir, cleaned, profile, drop=("background",))["removed_count"]


def package_and_score(records, data, profile, *, verify, tta="none"):
    """The README's package (verified in the platform's versions) and harness steps: the harness result.

    `records`: the run records packaged as one zip (several: one averaging ensemble).
    """
    from codapack.tools.harness import run_harness
    from codapack.tools.package import package_runs
    from codapack.tools.verify import sample_images, verify_zip

    zip_path = package_runs([r["dir"] for r in records], records[0]["dir"] + f".{len(records)}.zip", tta=tta)["path"]
    if verify:
        report = verify_zip(zip_path, profile, sample_images(profile, data)[0], log=lambda message: None)
        if not report["verified"]:
            sys.exit(f"{zip_path}: failed verification in the target environment: {report['problem']}")
    return run_harness(zip_path, data, profile)


def shift_rows(records, data, profile, label, scored, rounds=ROUNDS, tta="none"):
    """Rows for the run records scored together (one, or an ensemble): the zip's clean test accuracy,
    held-out and trained family accuracy."""
    from codapack.dataset import load_dataset
    from codapack.evaluator.ensemble import load_ensemble
    from codapack.evaluator.evaluation import split_indices
    from codapack.evaluator.robustness import shifted_estimate, trained_families_of

    dataset = load_dataset(data, profile)
    images, labels = dataset.subset(split_indices(records[0], dataset, "test"))
    model = load_ensemble(records, profile, tta=tta)
    shift = shifted_estimate(model.predict_proba, images, labels, trained_families_of(records), rounds=rounds)
    families = ", ".join(f"{family} {accuracy:.3f}" for family, accuracy in shift["per_family"].items())
    return [Row("robustness", f"{label}: clean test accuracy (harness)", scored["accuracy"], "accuracy",
                note=f"n={scored['n']}"),
            Row("robustness", f"{label}: held-out families", shift["held_out_accuracy"], "accuracy",
                note=f"{', '.join(shift['held_out_families'])}; {rounds} corrupted copies of the test split"),
            Row("robustness", f"{label}: trained families", shift["trained_accuracy"] or 0.0, "accuracy",
                note=", ".join(shift["trained_families"]) or "none trained"),
            Row("robustness", f"{label}: all families", shift["shifted_accuracy"], "accuracy", note=families)]


def recipe_rows(recipe, data, folder, profile, tta="d4", runs=None):
    """Clean, train `recipe`, package (with `tta`) and verify, score: `shift_rows` plus the minutes all that took.

    The run's (record, minutes) is appended to `runs` (a list) when one is given, for `ensemble_rows`.
    """
    from codapack.trainer.config import load_config, resolve_config_path
    from codapack.trainer.run_dir import read_run
    from codapack.trainer.training import train_run

    path = resolve_config_path(recipe)
    name = os.path.splitext(os.path.basename(path))[0]  # a recipe given as a path names its run, never overwrites it
    overrides = [f"model.weights={MOBILENET_WEIGHTS}"] if load_config(path).weights == "imagenet" else []
    started = time.perf_counter()
    cleaned, removed = cleaned_kit(data, folder, profile)
    record = read_run(train_run(load_config(path, overrides), cleaned, os.path.join(folder, name), profile,
                                overwrite=True)["dir"])
    scored = package_and_score([record], cleaned, profile, verify=True, tta=tta)
    minutes = (time.perf_counter() - started) / 60  # the shift estimate below is the benchmark's, not the user's
    if runs is not None:
        runs.append((record, minutes))
    return shift_rows([record], cleaned, profile, f"{name} (TTA {tta})", scored, tta=tta) + [
        Row("robustness", f"{name}: minutes from training_set.npz to a scored zip", minutes, "min",
            note=f"inspect + clean ({removed} dropped), {record['training']['epochs_run']} epochs "
                 f"({record['training']['seconds'] / 60:.1f} min of training), package + verify, harness"),
        *augmentation_cost_rows(record, name)]


def ensemble_rows(runs, profile, tta="d4"):
    """The recipes' runs packaged as one averaging ensemble: `shift_rows`, and the minutes of its members."""
    records = [record for record, _ in runs]
    cleaned = records[0]["data"]["path"]  # the file every member trained on
    label = " + ".join(record["name"] for record in records)
    scored = package_and_score(records, cleaned, profile, verify=True, tta=tta)
    minutes = sum(member_minutes for _, member_minutes in runs)
    return shift_rows(records, cleaned, profile, f"ensemble {label} (TTA {tta})", scored, tta=tta) + [
        Row("robustness", f"ensemble {label}: minutes, the members' sum", minutes, "min",
            note="each member's own clean, train, package and harness")]


def augmentation_cost_rows(record, recipe):
    """Seconds per epoch of each phase against the first: what a phase's augmentation costs in training speed.

    Only phases that run the whole network count: a head on cached features is another kind of step.
    """
    policies = record["training"]["augmentation"]["per_phase"]
    phases = [(phase, policy) for phase, policy in zip(record["training"]["phases"], policies)
              if phase.get("epochs_run") and not phase.get("cached_features")]
    if len(phases) < 2:
        return []
    first, first_policy = phases[0]
    per_epoch = first["seconds"] / first["epochs_run"]
    return [Row("robustness", f"{recipe}: seconds per epoch, phase `{phase['name']}`",
                phase["seconds"] / phase["epochs_run"], "s/epoch", per_epoch,
                f"phase `{first['name']}` (augmentation {first_policy})", higher_is_better=False,
                note=f"augmentation {policy}")
            for phase, policy in phases[1:]]


@click.command(context_settings={"show_default": True})
@click.option("--recipe", "recipes", multiple=True, default=("robust_cpu",), help="Recipes to measure, in order.")
@click.option("--tta", default="d4", help="Test-time augmentation the zips are packaged with.")
@click.option("--ensemble", is_flag=True, help="Also score the recipes' runs packaged together as one ensemble.")
@click.option("--write", "results_path", default=None, type=click.Path(), help="Also write the table as Markdown here.")
@click.option("--kit", "kit_folder", default=os.path.join(tempfile.gettempdir(), "codapack-bench-kit"),
              type=click.Path(), help="Folder holding (or to receive) the kit's training_set.npz.")
def main(recipes, kit_folder, tta, ensemble, results_path):
    """Train each recipe on the cleaned kit and print its clean and shifted accuracy and minutes."""
    from codapack.profile import load_profile

    os.environ.setdefault("CODAPACK_HOME", os.path.join(kit_folder, "state"))
    data, profile = kit_path(kit_folder), load_profile()
    rows, runs = [], []
    with tempfile.TemporaryDirectory(prefix="codapack-bench-") as folder:
        for recipe in recipes:
            rows += recipe_rows(recipe, data, folder, profile, tta=tta, runs=runs)
            click.echo(format_rows(rows), err=True)  # progress: the whole table goes to stdout once, at the end
        if ensemble and len(runs) > 1:
            rows += ensemble_rows(runs, profile, tta=tta)
    click.echo(format_rows(rows))
    if results_path:
        with open(results_path, "w", encoding="utf-8") as f:
            f.write("# Robustness benchmark\n\n```\n" + format_rows(rows) + "\n```\n")


if __name__ == "__main__":
    main()
