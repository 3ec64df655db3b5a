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
    codapack inspect FILE --out DIR                      data inspection (codapack/data/inspection/)
    codapack clean FILE --report DIR --drop GROUPS --out CLEAN.npz
    codapack augment FILE --per-class 1500 --out BIG.npz    offline augmentation to a file
"""

import click

from codapack.cli import curation, demo, evaluation, harness, leaderboard, package, submit, training


@click.group(context_settings={"show_default": True, "max_content_width": 100})
@click.version_option(package_name="codapack")
def main():
    """codapack: from a competition's training data to a submission zip known to work and score.

    The stages run in this order: inspect and clean (optional), train, evaluate, package, harness,
    leaderboard.
    `codapack demo` runs them all on generated data.
    """


main.add_command(training.train)
main.add_command(training.tune)
main.add_command(training.cv)
main.add_command(training.bag)
main.add_command(evaluation.main, "evaluate")
main.add_command(training.models)
main.add_command(package.main, "package")
main.add_command(harness.main, "harness")
main.add_command(leaderboard.main, "leaderboard")
main.add_command(submit.main, "submit")
main.add_command(demo.demo)
main.add_command(curation.inspect)
main.add_command(curation.clean)
main.add_command(curation.augment)
