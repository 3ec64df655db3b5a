"""Bagging: N members of one config, each trained on a bootstrap resample of the train split.

Each member draws len(train) images with replacement, within each class (so every member sees
the class balance of the split), and its own initialisation seed (`training.seed` + i). All members
validate on the same val split and keep the saved split's id, so they package together:

    python tools/package.py OUT/member1 OUT/member2 OUT/member3 --out bagged.zip
"""

import os

from sklearn.utils import resample

from codapack.dataset import load_dataset
from codapack.splits import split_for
from codapack.trainer.config import load_config
from codapack.trainer.members import Member, metric_summary, run_members, write_summary


def bootstrap_members(labels, split, count, seed, config_seed, out_dir):
    """`count` members, each with a stratified bootstrap resample of the train indices."""
    train = split["train"]
    return [Member(f"member{i + 1}", os.path.join(out_dir, f"member{i + 1}"),
                   resample(train, replace=True, n_samples=len(train), random_state=seed + i, stratify=labels[train]),
                   split["val"], overrides=(f"training.seed={config_seed + i}",),
                   info={"kind": "bagging", "member": i + 1, "members": count, "bootstrap_seed": seed + i})
            for i in range(count)]


def bag(config_path, overrides, data_path, profile, out_dir, members=5, seed=0, workers=1):
    """Train the members and summarise them.

    Returns:
        The summary (also in OUT/bag.json): runs, the package command, `metrics` over members.
    """
    dataset = load_dataset(data_path, profile)
    config_seed = load_config(config_path, overrides).seed
    todo = bootstrap_members(dataset.labels, split_for(dataset, profile), members, seed, config_seed, out_dir)
    os.makedirs(os.path.join(out_dir, "logs"), exist_ok=True)
    records = run_members(config_path, overrides, dataset, profile, todo, workers, os.path.join(out_dir, "logs"))
    runs = [r["dir"] for r in records]
    summary = {"config": os.path.abspath(config_path), "overrides": list(overrides), "members": members,
               "seed": seed, "runs": runs, "package": "python tools/package.py " + " ".join(runs) + " --out bagged.zip",
               "metrics": metric_summary(records)}
    write_summary(out_dir, "bag", f"Bagging of {members} members of {config_path} (seed {seed})", summary)
    return summary
