"""k-fold cross-validation of a config: stratified, seeded folds of the saved split's train+val part.

The test (and final) images of the saved split stay out of every fold, so a cross-validated
config is still scored on images it never saw. Each fold is an ordinary run directory,
`OUT/fold1` ... `OUT/foldK`, validated on its held-out fold; `OUT/cv.json` and `OUT/cv.md` hold
the mean and standard deviation of every validation metric over the folds.
"""

import os

import numpy as np
from sklearn.model_selection import StratifiedKFold

from codapack.dataset import load_dataset
from codapack.errors import CodapackError
from codapack.splits import split_for
from codapack.trainer.members import Member, metric_summary, run_members, write_summary


def fold_members(labels, split, folds, seed, out_dir):
    """One `Member` per fold of the train+val indices, stratified by label.

    Raises:
        CodapackError: fewer than 2 folds, or a class with fewer images than folds.
    """
    pool = np.sort(np.concatenate([split["train"], split["val"]]))
    counts = np.bincount(labels[pool])
    if folds < 2 or counts[counts > 0].min() < folds:
        raise CodapackError(f"--folds {folds}: needs at least 2 folds and every class with at least that many "
                            f"images in train+val (smallest class: {counts[counts > 0].min()})")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [Member(f"fold{k + 1}", os.path.join(out_dir, f"fold{k + 1}"), pool[train], pool[val],
                   info={"kind": "cross-validation", "fold": k + 1, "folds": folds, "seed": seed})
            for k, (train, val) in enumerate(splitter.split(pool, labels[pool]))]


def cross_validate(config_path, overrides, data_path, profile, out_dir, folds=5, seed=0, workers=1):
    """Train one run per fold and summarise their validation metrics.

    Returns:
        The summary (also in OUT/cv.json): folds, seed, runs, `metrics` {name: mean, std, values}.
    """
    dataset = load_dataset(data_path, profile)
    members = fold_members(dataset.labels, split_for(dataset, profile), folds, seed, out_dir)
    os.makedirs(os.path.join(out_dir, "logs"), exist_ok=True)
    records = run_members(config_path, overrides, dataset, profile, members, workers,
                          os.path.join(out_dir, "logs"))
    summary = {"config": os.path.abspath(config_path), "overrides": list(overrides), "folds": folds, "seed": seed,
               "runs": [r["dir"] for r in records], "metrics": metric_summary(records)}
    write_summary(out_dir, "cv", f"{folds}-fold cross-validation of {config_path} (seed {seed})", summary)
    return summary
