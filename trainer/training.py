"""One training run: data and split in, a run directory out."""

import datetime
import os
import platform
import shutil
import sys
import time

import numpy as np
from sklearn.model_selection import train_test_split

import codapack
from codapack.files import write_json
from codapack.dataset import load_dataset
from codapack.splits import split_for
from evaluator.metrics import classification_metrics
from trainer import run_dir


def library_versions():
    """Versions that decide whether a run can be reproduced or loaded elsewhere."""
    import keras
    import sklearn
    import tensorflow as tf

    return {"python": platform.python_version(), "codapack": codapack.__version__,
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def train_run(config, data_path, out_dir, profile, *, overwrite=False):
    """Train the network `config` describes and write a run directory.

    Args:
        config: a `TrainConfig`.
        data_path: the competition `.npz`.
        out_dir: the run directory to create.
        profile: the competition `Profile`.
        overwrite: replace an existing run directory.

    Returns:
        The run record, as saved in `out_dir/run.json`.
    """
    import keras

    from submission.networks import ARCHITECTURES, build_network

    dataset = load_dataset(data_path, profile)
    split = split_for(dataset, profile)
    train_idx = _subsample(split["train"], dataset.labels, config.max_train_images, config.seed)
    x_train, y_train = dataset.subset(train_idx)
    x_val, y_val = dataset.subset(split["val"])

    with run_dir.new_run_dir(out_dir, overwrite=overwrite) as scratch:
        keras.utils.set_random_seed(config.seed)
        network = build_network(config.architecture, profile.input_shape, profile.num_classes, config.options)
        network.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                        loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        callbacks = []
        if config.early_stopping_patience:
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True))
        print(f"training {config.architecture} on {len(y_train)} images, validating on {len(y_val)} "
              f"(split {split.split_id})", flush=True)
        started = time.perf_counter()
        history = network.fit(
            _pipeline(x_train, y_train, config.batch_size, shuffle=True, seed=config.seed),
            validation_data=_pipeline(x_val, y_val, config.batch_size),
            epochs=config.epochs, callbacks=callbacks, shuffle=False,  # the pipeline shuffles
            verbose=1 if sys.stdout.isatty() else 2)
        seconds = time.perf_counter() - started
        network.save_weights(os.path.join(scratch, run_dir.WEIGHTS_FILE))

        val_probs = network.predict(_pipeline(x_val, y_val, config.batch_size), verbose=0)
        record = {
            "name": os.path.basename(os.path.abspath(out_dir)),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "config": config.to_dict(),
            "profile": {"name": profile.name, "source": profile.source},
            "network": {"architecture": config.architecture, "options": config.options,
                        "input_shape": list(profile.input_shape), "num_classes": profile.num_classes,
                        "preprocessing": ARCHITECTURES[config.architecture].preprocessing},
            "data": {"path": os.path.abspath(data_path), "sha256": dataset.sha256, "n": len(dataset)},
            "split": {"id": split.split_id, "train": len(y_train), "val": len(y_val), "test": len(split["test"])},
            "training": {"seconds": round(seconds, 2), "epochs_run": len(history.history["loss"]),
                         "images_per_second": round(len(y_train) * len(history.history["loss"]) / seconds, 1)},
            "versions": library_versions(),
            "weights": run_dir.WEIGHTS_FILE,
            "metrics": {"val": classification_metrics(y_val, val_probs.argmax(axis=1), profile.classes)},
        }
        history_record = {key: [float(v) for v in values] for key, values in history.history.items()}
        write_json(os.path.join(scratch, run_dir.HISTORY_FILE), history_record)
        write_json(os.path.join(scratch, run_dir.SPLIT_FILE), split.to_dict())
        write_json(os.path.join(scratch, run_dir.RUN_FILE), record)
        if config.source:
            shutil.copyfile(config.source, os.path.join(scratch, run_dir.CONFIG_FILE))
    record["dir"] = os.path.abspath(out_dir)
    return record


def _subsample(indices, labels, limit, seed):
    """A stratified subset of `indices` of size `limit` (all of them when limit is 0 or larger)."""
    if not limit or limit >= len(indices):
        return indices
    kept, _ = train_test_split(indices, train_size=limit, random_state=seed, stratify=labels[indices])
    return np.sort(kept)


def _pipeline(images, labels, batch_size, *, shuffle=False, seed=0):
    """A tf.data pipeline that keeps uint8 in memory and casts to float32 per batch."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    if shuffle:
        ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32), y),
                                  num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
