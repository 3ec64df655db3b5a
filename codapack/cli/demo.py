"""`codapack demo`: the whole pipeline offline on generated data, then the leaderboard."""

import os

import click
import numpy as np

from codapack.cli.options import command
from codapack.files import atomic_path
from codapack.profile import load_profile
from codapack.tools import harness, leaderboard, package


@command()
@click.option("--out", "out_dir", default="demo_output", type=click.Path(), help="Folder for the demo's files.")
@click.option("--images", default=2400, help="Number of generated images.")
def demo(out_dir, images):
    """Run the whole pipeline offline on generated data, then print the leaderboard."""
    from codapack.synthetic import make_dataset
    from codapack.trainer.config import DEFAULT_CONFIG, load_config
    from codapack.trainer.training import train_run

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
    from codapack.evaluator.evaluation import evaluate_run
    from codapack.metrics import format_metrics

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
