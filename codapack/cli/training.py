"""The training verbs: `codapack train` (one run), `models` (the registry), and `tune`, `cv` and `bag`
(many trainings of one config)."""

import click

from codapack.cli.options import command, data_option, emit_json, json_option, profile_option, set_option
from codapack.profile import load_profile
from codapack.trainer.distribute import SEARCH_ROLES, STRATEGIES
from codapack.trainer.search_space import OBJECTIVES, TUNERS

workers_option = click.option("--workers", type=click.IntRange(min=1), default=None,
                              help="Trainings at once, each in its own process with its share of the CPU "
                                   "threads (or its own GPU). Default: one per GPU, else one per 4 CPU cores.")


@command()
@click.argument("config_path", metavar="CONFIG", type=click.Path())
@data_option
@click.option("--out", "out_dir", required=True, type=click.Path(),
              help="Search folder: trial runs, trials.csv, trials.png, best.toml. Run again to continue.")
@click.option("--tuner", type=click.Choice(TUNERS), default="random",
              help="KerasTuner oracle.")
@click.option("--trials", type=click.IntRange(min=1), default=10,
              help="Most trials in all, counting those of earlier runs.")
@click.option("--objective", type=click.Choice(OBJECTIVES), default="val_accuracy",
              help="Validation metric to maximise.")
@click.option("--max-epochs", type=int, default=0, help="Hyperband's largest budget; 0: the config's epochs.")
@click.option("--seed", type=int, default=0, help="The oracle's seed.")
@click.option("--role", type=click.Choice(SEARCH_ROLES), default="single",
              help="Distributed search: the chief serves the oracle, workers run the trials.")
@click.option("--oracle", "oracle_address", default=None, metavar="HOST:PORT",
              help="With --role: the address the chief listens on and workers connect to.")
@click.option("--worker-id", default=None,
              help="A worker's name (KERASTUNER_TUNER_ID); keep it across restarts. Default: worker-HOST-PID.")
@set_option
@profile_option
@json_option
def tune(config_path, data_path, out_dir, tuner, trials, objective, max_epochs, seed, role, oracle_address,
         worker_id, overrides, profile_name, as_json):
    """Search the hyperparameters CONFIG declares with KerasTuner; each trial is a training run.

    A value of CONFIG becomes searchable as an inline table next to it, e.g.
    learning_rate = { default = 1e-3, min = 1e-4, max = 1e-2, sampling = "log" } or
    dense = { default = [128], choice = [[64], [128], [256, 64]] }; `codapack train` uses the defaults.
    """
    from codapack.trainer.config import resolve_config_path
    from codapack.trainer.tune_report import format_rows, write_report
    from codapack.trainer.tuning import Search, run_search

    search = Search(resolve_config_path(config_path), data_path, out_dir, tuner, trials, tuple(overrides),
                    objective, seed, max_epochs)
    found, params = run_search(search, load_profile(profile_name), role, oracle_address, worker_id)
    if role == "worker":
        click.echo(f"worker ran {len(found.trials_run)} trial(s): {', '.join(found.trials_run) or 'none'}")
        if as_json:
            emit_json({"role": role, "trials_run": found.trials_run})
        return
    summary = write_report(search, found.oracle, params)
    summary["trials_run"] = found.trials_run
    click.echo(format_rows(summary["rows"]))
    click.echo(f"{len(found.trials_run)} trial(s) run now, {summary['trials']} in all, {summary['completed']} "
               f"completed")
    if "best_trial" in summary:
        click.echo(f"best: trial {summary['best_trial']}, {objective} {summary['best_score']:.4f}; "
                   f"train it with: codapack train {summary['files']['best_config']} --data {data_path} --out RUN")
    if as_json:
        emit_json(summary)


def _workers(workers, runs):
    from codapack.trainer.members import default_workers

    return workers or default_workers(runs)


@command()
@click.argument("config_path", metavar="CONFIG", type=click.Path())
@data_option
@click.option("--out", "out_dir", required=True, type=click.Path(),
              help="Folder for fold1..foldK run directories, cv.json and cv.md. Run again to continue.")
@click.option("--folds", type=int, default=5, help="Number of stratified folds of the train+val images.")
@click.option("--seed", type=int, default=0, help="Seed of the fold assignment.")
@workers_option
@set_option
@profile_option
@json_option
def cv(config_path, data_path, out_dir, folds, seed, workers, overrides, profile_name, as_json):
    """k-fold cross-validation of CONFIG: mean and spread of every validation metric over the folds.

    The folds split the saved split's train and val images; its test images stay out of every fold.
    """
    from codapack.trainer.config import resolve_config_path
    from codapack.trainer.crossval import cross_validate
    from codapack.trainer.members import format_summary

    summary = cross_validate(resolve_config_path(config_path), tuple(overrides), data_path, load_profile(profile_name),
                             out_dir, folds, seed, _workers(workers, folds))
    click.echo(format_summary(summary["metrics"]))
    click.echo(f"{folds}-fold cross-validation: accuracy {summary['metrics']['accuracy']['mean']:.4f} ± "
               f"{summary['metrics']['accuracy']['std']:.4f}; table in {out_dir}/cv.md")
    if as_json:
        emit_json(summary)


@command()
@click.argument("config_path", metavar="CONFIG", type=click.Path())
@data_option
@click.option("--out", "out_dir", required=True, type=click.Path(),
              help="Folder for member1..memberN run directories, bag.json and bag.md. Run again to continue.")
@click.option("--members", type=click.IntRange(min=1), default=5,
              help="Number of members, each on its own bootstrap resample.")
@click.option("--seed", type=int, default=0, help="Seed of the first member's resample (member i: seed + i).")
@workers_option
@set_option
@profile_option
@json_option
def bag(config_path, data_path, out_dir, members, seed, workers, overrides, profile_name, as_json):
    """Bagging: train CONFIG on MEMBERS bootstrap resamples of the train split, ready to package together."""
    from codapack.trainer.bagging import bag as run_bagging
    from codapack.trainer.config import resolve_config_path
    from codapack.trainer.members import format_summary

    summary = run_bagging(resolve_config_path(config_path), tuple(overrides), data_path, load_profile(profile_name),
                          out_dir, members, seed, _workers(workers, members))
    click.echo(format_summary(summary["metrics"]))
    click.echo(f"package the ensemble with: {summary['package']}")
    if as_json:
        emit_json(summary)


@command()
@click.argument("config_path", metavar="CONFIG", type=click.Path())
@data_option
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Run directory to create, e.g. runs/baseline.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run directory.")
@set_option
@click.option("--strategy", type=click.Choice(STRATEGIES), default=None,
              help="tf.distribute strategy; overrides training.strategy of the config.")
@click.option("--resume", is_flag=True, help="Continue a killed run from its last epoch checkpoint.")
@profile_option
@json_option
def train(config_path, data_path, out_dir, overwrite, overrides, strategy, resume, profile_name, as_json):
    """Train the model CONFIG describes and write a run directory.

    CONFIG is a TOML file, or the name of a recipe in codapack/trainer/recipes/ (e.g. robust_cpu).
    """
    from codapack.trainer.config import load_config, resolve_config_path
    from codapack.trainer.training import train_run

    overrides = list(overrides) + ([f"training.strategy={strategy}"] if strategy else [])
    config = load_config(resolve_config_path(config_path), overrides)
    record = train_run(config, data_path, out_dir, load_profile(profile_name), overwrite=overwrite, resume=resume)
    val = record["metrics"]["val"]
    click.echo(f"{record['dir']}: validation accuracy {val['accuracy']:.4f}, macro F1 {val['f1_macro']:.4f} "
               f"after {record['training']['epochs_run']} epochs in {record['training']['seconds']:.0f} s")
    if as_json:
        emit_json(record)


@command()
@click.option("--weights-dir", type=click.Path(), default=None, envvar="CODAPACK_WEIGHTS_DIR",
              help="A folder of local backbone weights files to look in (env CODAPACK_WEIGHTS_DIR).")
@json_option
def models(weights_dir, as_json):
    """List the network registry: name, family, input size, preprocessing, offline ImageNet weights."""
    from codapack.trainer.zoo import format_models, list_models

    rows = list_models(weights_dir)
    click.echo(format_models(rows))
    if as_json:
        emit_json({"models": rows})
