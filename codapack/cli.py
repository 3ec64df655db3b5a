"""The `codapack` command: one subcommand per stage of the pipeline.

    codapack train CONFIG --data FILE --out runs/NAME [--set phases.0.epochs=1] [--resume]
    codapack models [--json]
    codapack tune CONFIG --data FILE --out DIR --tuner random|grid|bayesian|hyperband --trials N
    codapack cv CONFIG --data FILE --out DIR --folds 3        k-fold cross-validation
    codapack bag CONFIG --data FILE --out DIR --members 3     bagging on bootstrap resamples
    codapack evaluate runs/A [runs/B ...] --data FILE --split test [--tta d4 --ensemble --robustness]
    codapack package runs/NAME --out submission.zip      (also python tools/package.py)
    codapack harness submission.zip --data FILE          (also python tools/harness.py)
    codapack leaderboard                                 (also python tools/leaderboard.py)
    codapack submit submission.zip --competition ID --phase NAME   (also python tools/submit.py)
    codapack demo
    codapack inspect FILE --out DIR                      data inspection (codapack/inspection/)
    codapack clean FILE --report DIR --drop GROUPS --out CLEAN.npz
    codapack augment FILE --per-class 1500 --out BIG.npz    offline augmentation to a file
"""

import os

import click
import numpy as np

from codapack.cli_common import command, emit_json, json_option, profile_option
from codapack.files import atomic_path
from codapack.inspection.commands import clean, inspect
from codapack.profile import load_profile
from evaluator import cli as evaluator_cli
from tools import harness, leaderboard, package, submit
from trainer import commands as trainer_commands


@click.group(context_settings={"show_default": True, "max_content_width": 100})
@click.version_option(package_name="codapack")
def main():
    """codapack: from a competition's training data to a submission zip known to work and score.

    The stages run in this order: inspect and clean (optional), train, evaluate, package, harness,
    leaderboard.
    `codapack demo` runs them all on generated data.
    """


@command()
@click.argument("config_path", metavar="CONFIG", type=click.Path())
@click.option("--data", "data_path", required=True, type=click.Path(), help="Competition training .npz.")
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Run directory to create, e.g. runs/baseline.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run directory.")
@click.option("--set", "overrides", multiple=True, metavar="KEY.PATH=VALUE",
              help="Override a config value, e.g. --set phases.0.epochs=1 (repeatable).")
@click.option("--strategy", type=click.Choice(("default", "mirrored", "multi_worker")), default=None,
              help="tf.distribute strategy; overrides training.strategy of the config.")
@click.option("--resume", is_flag=True, help="Continue a killed run from its last epoch checkpoint.")
@profile_option
@json_option
def train(config_path, data_path, out_dir, overwrite, overrides, strategy, resume, profile_name, as_json):
    """Train the model CONFIG describes and write a run directory.

    CONFIG is a TOML file, or the name of a recipe in recipes/ (e.g. mobilenet_v2_transfer).
    """
    from trainer.config import load_config, resolve_config_path
    from trainer.training import train_run

    overrides = list(overrides) + ([f"training.strategy={strategy}"] if strategy else [])
    config = load_config(resolve_config_path(config_path), overrides)
    record = train_run(config, data_path, out_dir, load_profile(profile_name), overwrite=overwrite, resume=resume)
    val = record["metrics"]["val"]
    click.echo(f"{record['dir']}: validation accuracy {val['accuracy']:.4f}, macro F1 {val['f1_macro']:.4f} "
               f"after {record['training']['epochs_run']} epochs in {record['training']['seconds']:.0f} s")
    if as_json:
        emit_json(record)


@command()
@click.argument("data_path", metavar="DATA", type=click.Path())
@click.option("--out", "out_path", required=True, type=click.Path(), help="The enlarged .npz to write.")
@click.option("--per-class", type=click.IntRange(min=1), required=True,
              help="Bring every class of the train split up to this many images.")
@click.option("--policy", type=click.Choice(("light", "medium", "heavy")), default="medium",
              help="Augmentation policy of the copies (layers listed in trainer/augment.py).")
@click.option("--seed", default=0, help="Seed of which images are copied and of the augmentation.")
@profile_option
@json_option
def augment(data_path, out_path, per_class, policy, seed, profile_name, as_json):
    """Write DATA plus augmented copies of its train split, up to --per-class images per class.

    The output keeps every image of DATA and carries DATA's saved train/val/test split, with the
    copies in train only: training on it validates and tests on exactly DATA's held-out images,
    and no copy of a training image can leak into them. OUT.augmented.json records the counts.
    """
    from trainer.offline_augmentation import write_augmented_dataset

    summary = write_augmented_dataset(data_path, out_path, load_profile(profile_name), per_class=per_class,
                                      policy=policy, seed=seed)
    click.echo(f"{summary['output']}: {summary['images']} images, {summary['added']} augmented copies added "
               f"to the train split ({policy}) in {summary['seconds']:.1f} s")
    for name, before in summary["train_before"].items():
        click.echo(f"  {name:<24} {before:>6} -> {summary['train_after'][name]:>6}")
    if as_json:
        emit_json(summary)


@command()
@click.option("--weights-dir", type=click.Path(), default=None, envvar="CODAPACK_WEIGHTS_DIR",
              help="A folder of local backbone weights files to look in (env CODAPACK_WEIGHTS_DIR).")
@json_option
def models(weights_dir, as_json):
    """List the network registry: name, family, input size, preprocessing, offline ImageNet weights."""
    from trainer.zoo import format_models, list_models

    rows = list_models(weights_dir)
    click.echo(format_models(rows))
    if as_json:
        emit_json({"models": rows})


@command()
@click.option("--out", "out_dir", default="demo_output", type=click.Path(), help="Folder for the demo's files.")
@click.option("--images", default=2400, help="Number of generated images.")
def demo(out_dir, images):
    """Run the whole pipeline offline on generated data, then print the leaderboard."""
    from codapack.synthetic import make_dataset
    from trainer.config import DEFAULT_CONFIG, load_config
    from trainer.training import train_run

    profile = load_profile()
    data_path = os.path.join(out_dir, "demo_set.npz")
    x, y = make_dataset(images, profile.input_shape, profile.num_classes, seed=0)
    with atomic_path(data_path) as tmp:
        np.savez(tmp, images=x, labels=y)
    click.echo(f"[1/5] data: {data_path}: {images} generated images {x.shape[1:]} of {profile.num_classes} "
               f"classes (codapack.synthetic: cell-like blobs, one colour and size per class)")
    config = load_config(os.path.join(os.path.dirname(DEFAULT_CONFIG), "demo.toml"))
    run = os.path.join(out_dir, "runs", "demo-baseline")
    click.echo(f"[2/5] train: {config.source} -> {run}")
    train_run(config, data_path, run, profile, overwrite=True)
    click.echo("[3/5] evaluate on the test split")
    from evaluator.evaluation import evaluate_run
    from evaluator.metrics import format_metrics

    click.echo(format_metrics(evaluate_run(run, data_path, "test")))
    zip_path = os.path.join(out_dir, "submission.zip")
    click.echo("[4/5] package")
    click.echo(package.describe_size(package.package_runs([run], zip_path)))
    click.echo("[5/5] harness: run the zip as the platform does, then record it")
    result = harness.run_harness(zip_path, data_path, profile)
    leaderboard.Leaderboard().record(result, profile.name, note="codapack demo")
    click.echo(harness.summary_line(result))
    click.echo("\nleaderboard:")
    click.echo(leaderboard.format_table(leaderboard.Leaderboard().ranked(competition=profile.name)))
    if result["verdict"] != harness.OK:
        raise click.ClickException("the demo's submission did not pass the harness")


main.add_command(train)
main.add_command(trainer_commands.tune)
main.add_command(trainer_commands.cv)
main.add_command(trainer_commands.bag)
main.add_command(evaluator_cli.main, "evaluate")
main.add_command(models)
main.add_command(package.main, "package")
main.add_command(harness.main, "harness")
main.add_command(leaderboard.main, "leaderboard")
main.add_command(submit.main, "submit")
main.add_command(demo)
main.add_command(inspect)
main.add_command(clean)
main.add_command(augment)
