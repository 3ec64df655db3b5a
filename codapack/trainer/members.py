"""Many independent trainings of one config on different train/val indices, in parallel processes.

Cross-validation folds and bagging members are each a `Member`: a run directory to write and the
indices to train and validate on (the saved split's test and final indices are never touched).
With one worker they train one after the other in this process; with more, each trains in its own
`python -m codapack.trainer.members SPEC.json` process with its share of the CPU threads, or its own GPU.
A member whose run directory is already complete is not trained again, so a killed `cv` or `bag`
continues where it stopped.
"""

import concurrent.futures
import dataclasses
import os
import subprocess
import sys

import numpy as np
from tqdm import tqdm

from codapack.errors import CodapackError
from codapack.files import atomic_path, read_json, write_json
from codapack.trainer import run_dir

THREADS_ENV = "CODAPACK_MEMBER_THREADS"


@dataclasses.dataclass(frozen=True)
class Member:
    """One training of a cross-validation or a bagging.

    Args:
        name: e.g. fold1, member2.
        out_dir: its run directory.
        train, val: indices into the data (train may repeat images: a bootstrap resample).
        overrides: --set edits of this member (e.g. its seed).
        info: what run.json records about it (fold, resample...).
    """

    name: str
    out_dir: str
    train: np.ndarray
    val: np.ndarray
    overrides: tuple = ()
    info: dict = dataclasses.field(default_factory=dict)


def default_workers(members):
    """One worker per GPU; without GPUs one per 4 CPU cores (at least 1), never more than members."""
    return max(1, min(members, _gpu_count() or (os.cpu_count() or 1) // 4))


def train_member(config_path, overrides, dataset, profile, member):
    """Train one member in this process on `dataset` and return its run record."""
    from codapack.splits import split_for
    from codapack.trainer.checkpoint import Checkpoint
    from codapack.trainer.config import load_config
    from codapack.trainer.training import train_run

    saved = split_for(dataset, profile)
    split = dataclasses.replace(saved, indices={**saved.indices, "train": np.asarray(member.train, np.int64),
                                                "val": np.asarray(member.val, np.int64)})
    config = load_config(config_path, tuple(overrides) + tuple(member.overrides))
    return train_run(config, dataset, member.out_dir, profile, split=split, extra={"member": member.info},
                     resume=Checkpoint(member.out_dir).exists())  # a member killed mid-training


def run_members(config_path, overrides, dataset, profile, members, workers, logs_dir):
    """Train every member not already trained; `workers` at once.

    Returns:
        The run records, in the members' order.

    Raises:
        CodapackError: a member failed (its log is named).
    """
    todo = [m for m in members if not os.path.isfile(os.path.join(m.out_dir, run_dir.RUN_FILE))]
    if len(todo) < len(members):
        print(f"{len(members) - len(todo)} member(s) already trained; {len(todo)} to go", flush=True)
    bar = tqdm(total=len(todo), desc="members", unit="run")
    if workers <= 1:
        for member in todo:
            train_member(config_path, overrides, dataset, profile, member)
            bar.update()
    else:
        gpus = _gpu_count()
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            jobs = [pool.submit(_train_in_process, config_path, overrides, dataset.path, profile, member, logs_dir,
                                i % workers, workers, gpus) for i, member in enumerate(todo)]
            for job in concurrent.futures.as_completed(jobs):
                job.result()
                bar.update()
    bar.close()
    return [run_dir.read_run(m.out_dir) for m in members]


def _gpu_count():
    import tensorflow as tf

    return len(tf.config.list_physical_devices("GPU"))


def _train_in_process(config_path, overrides, data_path, profile, member, logs_dir, slot, workers, gpus):
    spec = os.path.join(logs_dir, f"{member.name}.json")
    log = os.path.join(logs_dir, f"{member.name}.log")
    write_json(spec, {"config": config_path, "overrides": list(overrides), "data": os.path.abspath(data_path),
                      "profile": profile.source, "name": member.name, "out_dir": os.path.abspath(member.out_dir),
                      "train": np.asarray(member.train).tolist(), "val": np.asarray(member.val).tolist(),
                      "member_overrides": list(member.overrides), "info": member.info})
    env = dict(os.environ, **{THREADS_ENV: str(max(1, (os.cpu_count() or 1) // workers))})
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = str(slot % gpus)
    # The folder holding the `codapack` package, so the worker imports this very tree.
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    with open(log, "w", encoding="utf-8") as out:
        code = subprocess.run([sys.executable, "-m", "codapack.trainer.members", spec], stdout=out,
                              stderr=subprocess.STDOUT, env=env, check=False).returncode
    if code:
        with open(log, encoding="utf-8", errors="replace") as f:
            tail = f.read()[-800:]
        raise CodapackError(f"{member.name} failed (exit {code}); its log is {log}:\n{tail}")


def main(spec_path):
    """Train the member a spec file describes (the worker process of `run_members`)."""
    threads = int(os.environ.get(THREADS_ENV, "0"))
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    from codapack.dataset import load_dataset
    from codapack.profile import load_profile

    spec = read_json(spec_path)
    member = Member(spec["name"], spec["out_dir"], np.asarray(spec["train"]), np.asarray(spec["val"]),
                    tuple(spec["member_overrides"]), spec["info"])
    profile = load_profile(spec["profile"])
    train_member(spec["config"], spec["overrides"], load_dataset(spec["data"], profile), profile, member)


def metric_summary(records):
    """Mean and standard deviation (ddof=1) over runs of every scalar validation metric.

    Per-class figures appear as `per_class.CLASS.precision|recall|f1`.

    Returns:
        {metric: {"mean", "std", "values"}}.
    """
    columns = {}
    for record in records:
        for name, value in _flatten(record["metrics"]["val"]).items():
            columns.setdefault(name, []).append(value)
    return {name: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                   "values": [float(x) for x in v]} for name, v in columns.items()}


def _flatten(metrics):
    out = {k: v for k, v in metrics.items() if isinstance(v, float)}
    for cls, scores in metrics.get("per_class", {}).items():
        out.update({f"per_class.{cls}.{k}": float(v) for k, v in scores.items() if k != "support"})
    return out


def format_summary(summary):
    """The metrics as `name  mean ± std  (values...)` lines."""
    width = max(len(name) for name in summary)
    return "\n".join(f"{name:<{width}}  {s['mean']:.4f} ± {s['std']:.4f}  ("
                     + ", ".join(f"{v:.4f}" for v in s["values"]) + ")" for name, s in summary.items())


def summary_markdown(title, metrics):
    """A markdown table: metric, mean, std, one column per run."""
    runs = len(next(iter(metrics.values()))["values"])
    lines = [f"# {title}", "", "| metric | mean | std | " + " | ".join(str(i + 1) for i in range(runs)) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in range(runs)) + " |"]
    lines += [f"| {name} | {m['mean']:.4f} | {m['std']:.4f} | " + " | ".join(f"{v:.4f}" for v in m["values"]) + " |"
              for name, m in metrics.items()]
    return "\n".join(lines) + "\n"


def write_summary(out_dir, name, title, summary):
    """Write `summary` as OUT/NAME.json and its metrics as the table OUT/NAME.md."""
    write_json(os.path.join(out_dir, f"{name}.json"), summary)
    with atomic_path(os.path.join(out_dir, f"{name}.md")) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(summary_markdown(title, summary["metrics"]))


if __name__ == "__main__":
    main(sys.argv[1])
