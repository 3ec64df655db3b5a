"""Run every benchmark on the kit and print one table of figures and ratios.

    python bench/run.py                 # the full run (under 20 minutes on 2 cores)
    python bench/run.py --quick         # a smaller run (under 3 minutes)
    python bench/run.py --write bench/results.md   # also record the table with date, machine, versions

Each ratio compares codapack with the baseline a user would otherwise run, in
the same process and on the same data; >1 means codapack is better.
"""

import datetime
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import click  # noqa: E402

from bench.common import SHARED, Row, format_rows, kit_path, machine_description  # noqa: E402

MOBILENET_WEIGHTS = os.path.join(SHARED, "weights", "mobilenet_v2_1.0_no_top_from_tfslim_224_ckpt.h5")

FAST_CONFIG = """
[model]
architecture = "baseline_cnn"
[model.options]
filters = [24, 48, 96]
dense = [64]
dropout = 0.2
stem_stride = 2
[training]
epochs = {epochs}
batch_size = 64
learning_rate = 2e-3
early_stopping_patience = 0
max_train_images = {images}
"""


def time_to_accuracy(data, folder, quick):
    """From training_set.npz to a packaged zip scored by the harness: minutes and accuracy.

    The full run is the README's path: inspect and drop the recurring backgrounds, then train the
    fast CPU recipe (codapack/trainer/recipes/mobilenet_v2_fast_cpu.toml) with the local ImageNet weights
    from ../shared/weights, package, and score on the cleaned file's test split. --quick trains a
    small baseline CNN briefly on the raw file.
    """
    from codapack.profile import load_profile
    from codapack.tools.harness import run_harness
    from codapack.tools.package import package_runs
    from codapack.trainer.config import load_config, resolve_config_path
    from codapack.trainer.run_dir import read_run
    from codapack.trainer.training import train_run

    profile = load_profile()
    if quick:
        config_path = os.path.join(folder, "fast.toml")
        with open(config_path, "w") as f:
            f.write(FAST_CONFIG.format(epochs=2, images=2000))
        config = load_config(config_path)
    else:
        if not os.path.isfile(MOBILENET_WEIGHTS):
            sys.exit(f"the full benchmark trains the fast recipe with local ImageNet weights: {MOBILENET_WEIGHTS} is missing")
        config = load_config(resolve_config_path("mobilenet_v2_fast_cpu"), [f"model.weights={MOBILENET_WEIGHTS}"])
    started = time.perf_counter()
    cleaning_note = "raw file: includes the kit's randomly labelled contaminants"
    if not quick:
        data, removed = _cleaned(data, folder, profile)
        cleaning_note = f"cleaned file: {removed} background images dropped by inspect + clean"
    record = train_run(config, data, os.path.join(folder, "fast"), profile, overwrite=True)
    zip_path = package_runs([record["dir"]], os.path.join(folder, "fast.zip"))["path"]
    scored = run_harness(zip_path, data, profile)
    minutes = (time.perf_counter() - started) / 60
    rows = [Row("time-to-accuracy", f"minutes to a scored zip ({record['network']['architecture']})", minutes, "min",
                note=f"{record['training']['epochs_run']} epochs on {record['split']['train']} images"),
            Row("time-to-accuracy", "harness accuracy on the local test split", scored["accuracy"], "accuracy",
                note=f"n={scored['n']}, {cleaning_note}")]
    return rows, read_run(record["dir"])


def _cleaned(data, folder, profile):
    """`codapack inspect` then `codapack clean --drop background`: the cleaned file and how many went."""
    from codapack.dataset import load_dataset
    from codapack.data.cleaning import clean_dataset
    from codapack.data.inspection.report import inspect_dataset

    report_dir = os.path.join(folder, "inspection")
    inspect_dataset(load_dataset(data, profile), profile, report_dir)
    cleaned = os.path.join(folder, "clean.npz")
    return cleaned, clean_dataset(data, report_dir, cleaned, profile, drop=("background",))["removed_count"]


def training_rows(data, quick):
    from bench.training import throughput
    from codapack.dataset import load_dataset
    from codapack.profile import load_profile

    profile = load_profile()
    dataset = load_dataset(data, profile)
    count = 1024 if quick else 2048
    images, labels = dataset.images[:count], dataset.labels[:count]
    # Best of 6 epochs: on these 2 cores the same epoch takes 5.6 s or 10.5 s by turns, on either side.
    rounds = 3 if quick else 6
    rows = throughput("baseline_cnn", images, labels, profile.num_classes,
                      options={"filters": [32, 64, 128, 256], "stem_stride": 2}, label="baseline CNN", rounds=rounds)
    if not quick:
        from codapack.submission.networks import ARCHITECTURES

        if "mobilenet_v2" in ARCHITECTURES:
            # No XLA row: compiling MobileNetV2 with XLA takes minutes on a CPU and brought nothing
            # for the baseline CNN (see its row).
            rows += throughput("mobilenet_v2", images[:1024], labels[:1024], profile.num_classes,
                               options={}, label="MobileNetV2 (random weights)", xla=False, rounds=rounds)
    return rows


@click.command(context_settings={"show_default": True})
@click.option("--quick", is_flag=True, help="Smaller sizes: under 3 minutes on 2 cores.")
@click.option("--kit", "kit_folder", default=os.path.join(tempfile.gettempdir(), "codapack-bench-kit"),
              type=click.Path(), help="Folder holding (or to receive) the kit's training_set.npz.")
@click.option("--write", "results_path", default=None, type=click.Path(), help="Also write the table as Markdown here.")
@click.option("--json", "as_json", is_flag=True, help="Print every row as one JSON object last.")
def main(quick, kit_folder, results_path, as_json):
    """Benchmark training, inference, size and the harness against their baselines."""
    os.environ.setdefault("CODAPACK_HOME", os.path.join(kit_folder, "state"))
    data = kit_path(kit_folder)
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="codapack-bench-") as folder:
        def add(new_rows):  # shown as soon as measured, so a later failure loses nothing
            click.echo(format_rows(new_rows), err=True)
            rows.extend(new_rows)

        accuracy_rows, run = time_to_accuracy(data, folder, quick)
        add(accuracy_rows)
        add(_robustness_rows(data, folder, run, quick))
        from bench.inference import benchmark
        from codapack.dataset import load_dataset
        from codapack.profile import load_profile

        dataset = load_dataset(data, load_profile())
        count = 512 if quick else 3421
        add(benchmark(run, dataset.images[:count], quick=quick, labels=dataset.labels[:count]))
        add(training_rows(data, quick))
        add(_frozen_rows(data, quick))
    seconds = time.perf_counter() - started
    table = format_rows(rows)
    click.echo(table)
    click.echo(f"\n{'quick' if quick else 'full'} run in {seconds / 60:.1f} min")
    if results_path:
        _write_markdown(results_path, table, seconds, quick)
    if as_json:
        click.echo(json.dumps([dict(vars(r), ratio=r.ratio) for r in rows]))


def _robustness_rows(data, folder, fast_run, quick):
    """Clean, held-out-family and trained-family accuracy: the fast recipe's run, then robust_cpu and
    mobilenet_v2_robust_cpu end to end, and the two packaged as one ensemble."""
    from bench.robustness import ensemble_rows, package_and_score, recipe_rows, shift_rows
    from codapack.profile import load_profile

    profile = load_profile()
    label = "quick CNN (raw file)" if quick else "mobilenet_v2_fast_cpu"
    data_path = fast_run["data"]["path"]
    scored = package_and_score([fast_run], data_path, profile, verify=False)
    rows = shift_rows([fast_run], data_path, profile, label, scored, rounds=1 if quick else 5)
    if not quick:
        runs = []
        for recipe in ("robust_cpu", "mobilenet_v2_robust_cpu"):
            rows += recipe_rows(recipe, data, folder, profile, runs=runs)
        rows += ensemble_rows(runs, profile)
    return rows


def _frozen_rows(data, quick):
    """The frozen-backbone phase: cached features against the backbone run every step."""
    from bench.cached_features import rows as frozen

    return frozen(data, quick)


def _write_markdown(path, table, seconds, quick):
    machine = machine_description()
    lines = [f"# Benchmark results ({'quick' if quick else 'full'} run)", "",
             f"- date: {datetime.datetime.now().isoformat(timespec='minutes')}",
             f"- machine: {machine['cpu']}, {machine['cores']} cores, GPU: {machine['gpu']}",
             f"- versions: Python {machine['python']}, TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, "
             f"numpy {machine['numpy']}",
             f"- wall time of the whole run: {seconds / 60:.1f} min", "",
             "Ratios are codapack against the baseline named on the row, measured in the same process on the "
             "same data; above 1 means codapack is better (faster, smaller, less memory).", "", "```", table, "```", ""]
    from bench.cached_features import RESULTS_NOTE

    lines += [RESULTS_NOTE]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
