"""tf.distribute for training: one device, the GPUs (or logical CPUs) of one machine, or several machines.

    default        tf.distribute's default strategy: one device.
    mirrored       MirroredStrategy over the local GPUs; without GPUs, over the logical CPU devices
                   when the CPU was split into several (tf.config.set_logical_device_configuration),
                   else one replica on the CPU.
    multi_worker   MultiWorkerMirroredStrategy across the machines TF_CONFIG lists. Every worker runs
                   the same `codapack train`; only the chief writes the run directory, the others
                   write into a temporary folder that is removed (Keras' documented pattern).

A multi-worker strategy has to exist before TensorFlow runs its first operation (collective ops are
configured at start-up), so `train_run` creates the strategy before it reads any data.
"""

import contextlib
import json
import os
import shutil
import tempfile

from codapack.errors import CodapackError

STRATEGIES = ("default", "mirrored", "multi_worker")
SEARCH_ROLES = ("single", "chief", "worker")  # a process's part in a distributed search (`tune --role`)
TF_CONFIG = "TF_CONFIG"


def read_tf_config(environ=os.environ):
    """The parsed, checked TF_CONFIG of a multi-worker run.

    Returns:
        A dict with `cluster` (`worker`: "host:port" list, optional `chief`) and `task`
        (`type`, `index`).

    Raises:
        CodapackError: TF_CONFIG missing, not JSON, or not describing this task within its cluster.
    """
    text = environ.get(TF_CONFIG)
    example = ('e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
               '"task": {"type": "worker", "index": 0}}\'')
    if not text:
        raise CodapackError(f"strategy multi_worker needs the {TF_CONFIG} environment variable on every "
                            f"machine; {example}")
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise CodapackError(f"{TF_CONFIG}: not valid JSON ({exc}); {example}") from None
    cluster, task = (config.get("cluster"), config.get("task")) if isinstance(config, dict) else (None, None)
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise CodapackError(f"{TF_CONFIG}: should hold a `cluster` table and a `task` table; {example}")
    for role, addresses in cluster.items():
        if role not in ("chief", "worker") or not isinstance(addresses, list) or not addresses \
                or not all(isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses):
            raise CodapackError(f"{TF_CONFIG}: cluster `{role}` should be chief or worker with a list of "
                                f"host:port addresses. Received: {addresses!r}")
    kind, index = task.get("type"), task.get("index")
    if kind not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise CodapackError(f"{TF_CONFIG}: task {task!r} is not in the cluster {sorted(cluster)} "
                            f"(type should name a role of the cluster and index lie within its list)")
    return config


def is_chief(config):
    """Whether the task of a TF_CONFIG writes the results: the chief, or worker 0 when there is no chief."""
    kind, index = config["task"]["type"], config["task"]["index"]
    return kind == "chief" or (kind == "worker" and index == 0 and "chief" not in config["cluster"])


def make_strategy(name):
    """The tf.distribute strategy a config names.

    Args:
        name: default, mirrored or multi_worker.

    Returns:
        A `tf.distribute.Strategy`.

    Raises:
        CodapackError: an unknown name, or multi_worker with a missing or bad TF_CONFIG.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise CodapackError(f"strategy should be one of {', '.join(STRATEGIES)}. Received: {name!r}")
    if name == "multi_worker":
        read_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=_mirrored_devices(tf))
    return tf.distribute.get_strategy()


def _mirrored_devices(tf):
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return [device.name for device in gpus]
    cpus = tf.config.list_logical_devices("CPU")
    if len(cpus) == 1:
        print("strategy mirrored: no GPU and one CPU device; training with one replica", flush=True)
    return [device.name for device in cpus]


@contextlib.contextmanager
def output_dir(strategy_name, out_dir):
    """Yield where this process writes its run: `out_dir`, or a temporary folder on a non-chief worker.

    On a non-chief worker of a multi-worker run the temporary folder is removed afterwards, so
    only the chief leaves a run directory (and a checkpoint) behind.
    """
    if strategy_name != "multi_worker" or is_chief(read_tf_config()):
        yield out_dir
        return
    scratch = tempfile.mkdtemp(prefix="codapack-worker-")
    print(f"multi-worker run: the chief writes {out_dir}; this worker writes into {scratch}, removed at the end",
          flush=True)
    try:
        yield os.path.join(scratch, os.path.basename(os.path.abspath(out_dir)))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def describe(strategy, strategy_name, network):
    """What run.json records about distribution: strategy, replicas, workers, devices, replica agreement.

    `max_replica_difference` is the largest difference between the copies of any trainable weight
    held by the replicas of this worker after training: 0 when they trained in sync. (Batch-norm
    moving statistics are left out: each replica updates them from its own part of the batch.)
    """
    workers = len(read_tf_config()["cluster"].get("worker", [])) if strategy_name == "multi_worker" else 1
    try:
        devices = list(strategy.extended.worker_devices)
    except RuntimeError:  # the default strategy: one device, chosen by TensorFlow
        devices = []
    return {"strategy": strategy_name, "replicas": int(strategy.num_replicas_in_sync), "workers": workers,
            "devices": devices, "max_replica_difference": _max_replica_difference(network)}


def _max_replica_difference(network):
    import numpy as np

    worst = 0.0
    for variable in network.trainable_weights:
        copies = getattr(getattr(variable, "value", variable), "values", None)
        if copies is None or len(copies) < 2:
            continue
        first = np.asarray(copies[0])
        worst = max(worst, *(float(np.max(np.abs(np.asarray(c) - first), initial=0.0)) for c in copies[1:]))
    return worst


def prepare_fit(model, strategy):
    """Let `model.fit` run under MultiWorkerMirroredStrategy in Keras 3.

    Keras 3's fit cannot run under MultiWorkerMirroredStrategy (keras-team/keras#20585, open since
    Keras 3.0), for two reasons, both worked around here and only for that strategy:
    - it builds the metrics from the first batch after averaging that batch across workers with
      `strategy.reduce`, which cannot reduce a nested (x, y) batch; only the batch's shapes and
      dtypes are used, so the model builds from this worker's own first replica batch instead;
    - it averages each step's scalar logs (loss, accuracy) with `strategy.reduce(..., axis=0)`,
      which fails on 0-d values; scalars are averaged across replicas (axis=None) instead.
    The gradients are all-reduced by the optimizer as usual; nothing else changes.
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    _patch_scalar_reduction()

    def build_from_local_batch(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = next(batches)
                break
        local = tf.nest.map_structure(lambda value: strategy.experimental_local_results(value)[0], data_batch)
        with strategy.scope():
            model._symbolic_build(data_batch=local)

    model._maybe_symbolic_build = build_from_local_batch


def _patch_scalar_reduction():
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica
    if getattr(original, "codapack_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or reduction not in ("auto", "mean"):
            return original(values, strategy, reduction)

        def mean(value):
            rank = strategy.experimental_local_results(value)[0].shape.rank
            return strategy.reduce("MEAN", value, axis=None if rank == 0 else 0)

        return tf.nest.map_structure(mean, values)

    reduce_per_replica.codapack_patched = True
    tf_trainer.reduce_per_replica = reduce_per_replica
