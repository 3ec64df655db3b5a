"""One training run: data and split in, a run directory out, phase after phase."""

import dataclasses
import datetime
import glob
import os
import platform
import shutil
import sys
import time

import numpy as np

import codapack
from codapack.data.offline_augmentation import augment_offline
from codapack.data.policies import layer_names, trained_families
from codapack.dataset import as_dataset
from codapack.errors import CodapackError
from codapack.files import write_json
from codapack.metrics import classification_metrics
from codapack.shift_families import held_out
from codapack.splits import split_for
from codapack.trainer import distribute, inputs, run_dir
from codapack.trainer.checkpoint import Checkpoint, EpochCheckpoint, ResumableEarlyStopping, ResumablePlateau
from codapack.trainer.config import phase_augmentation
from codapack.trainer.curves import plot_curves
from codapack.trainer.features import can_cache, split_at_head
from codapack.trainer.overrides import to_toml
from codapack.trainer.phases import compile_for, set_trainable, steps_per_epoch

CURVES_FILE = "curves.png"


def library_versions():
    """Versions that decide whether a run can be reproduced or loaded elsewhere."""
    import keras
    import sklearn
    import tensorflow as tf

    return {"python": platform.python_version(), "codapack": codapack.__version__,
            "tensorflow": tf.__version__, "keras": keras.__version__,
            "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def build_for_training(config, profile):
    """Build the config's network with its initial backbone weights; one clear error when they fail."""
    from codapack.submission.networks import build_network

    weights = {"none": None}.get(config.weights, os.path.expanduser(config.weights))
    try:
        return build_network(config.architecture, profile.input_shape, profile.num_classes, config.options, weights)
    except (ValueError, TypeError, OSError) as exc:
        raise CodapackError(f"{config.source}: cannot build `{config.architecture}` with weights "
                            f"{config.weights!r}: {exc}") from None
    except Exception as exc:  # Keras' download error when "imagenet" is neither cached nor reachable.
        if config.weights != "imagenet":
            raise
        raise CodapackError(f"{config.source}: ImageNet weights for `{config.architecture}` are not in the Keras "
                            f"cache and cannot be downloaded ({exc}); set `model.weights` to a local file") from None


def prepare_train_set(config, dataset, split, profile):
    """The train split after subsampling, offline augmentation and oversampling."""
    indices = inputs.subsample(split["train"], dataset.labels, config.max_train_images, config.seed)
    images, labels = dataset.subset(indices)
    if config.augmentation.offline_per_class:
        images, labels = augment_offline(images, labels, config.augmentation.offline_per_class, config.seed)
    if config.oversample == "balanced":
        images, labels = inputs.oversample(images, labels, config.seed)
    return images, labels


def train_run(config, data, out_dir, profile, *, overwrite=False, resume=False, split=None,
              initial_weights=None, extra=None):
    """Train the network `config` describes, phase by phase, and write a run directory.

    Args:
        config: a `TrainConfig`.
        data: the competition's `Dataset`, or the path of its `.npz`.
        out_dir: the run directory to create. On a non-chief worker of a multi-worker run,
            a temporary folder is written instead and removed (see trainer/distribute.py).
        profile: the competition `Profile`.
        overwrite: replace an existing run directory.
        resume: continue from the checkpoint a killed run left beside `out_dir`.
        split: a `Split` to train and validate on instead of the saved one (cross-validation
            folds, bootstrap resamples); its test and final indices must be the saved ones.
        initial_weights: a `.weights.h5` of the same network to start from (Hyperband's
            continued trials).
        extra: more fields for run.json (what fold or member this run is).

    Returns:
        The run record, as saved in `out_dir/run.json`.
    """
    run_dir.check_new_run_dir(out_dir, overwrite=overwrite)
    dataset = as_dataset(data, profile)
    # Before anything else runs TensorFlow: multi-worker collective ops are configured at start-up.
    strategy = distribute.make_strategy(config.strategy)
    try:
        with distribute.output_dir(config.strategy, out_dir) as target:
            return _train_into(config, dataset, target, profile, strategy, overwrite=overwrite, resume=resume,
                               split=split, initial_weights=initial_weights, extra=extra)
    except OSError as exc:  # a read-only or full output folder, before or during training
        error = run_dir.write_error(exc, out_dir)
        if error is None:
            raise
        raise error from None


def _train_into(config, dataset, out_dir, profile, strategy, *, overwrite, resume, split, initial_weights,
                extra):
    import keras

    from codapack.submission.networks import ARCHITECTURES, build_network

    split = split or split_for(dataset, profile)
    x_train, y_train = prepare_train_set(config, dataset, split, profile)
    x_val, y_val = dataset.subset(split["val"])
    checkpoint = Checkpoint(out_dir)
    config_toml = to_toml(config.raw) if config.raw else ""
    state = checkpoint.resume(config_toml) if resume else None
    if resume:  # a killed run cannot clean its scratch folder; the resumed one does
        name = os.path.basename(os.path.abspath(out_dir))
        for stale in glob.glob(os.path.join(os.path.dirname(os.path.abspath(out_dir)), f".{name}.*.partial")):
            shutil.rmtree(stale, ignore_errors=True)
    if state is None:
        checkpoint.start(config_toml)
        state = checkpoint.resume(config_toml)

    with run_dir.new_run_dir(out_dir, overwrite=overwrite) as scratch:
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            network = build_for_training(config, profile)
            if initial_weights:
                network.load_weights(initial_weights)
        if state["phase"] or state["epoch"]:
            network.set_weights(checkpoint.load_arrays("weights.npz"))
            print(f"resuming at phase {state['phase'] + 1}, {state['epoch']} epoch(s) done", flush=True)
        print(f"training {config.architecture} on {len(y_train)} images, validating on {len(y_val)} "
              f"(split {split.split_id})", flush=True)
        # Phases finished and seconds spent before a restart count in this run's record too.
        clock, phase_log, cache = Clock(state.get("seconds", 0.0)), state.setdefault("phases", []), {}
        for index, phase in enumerate(config.phases):
            if index < state["phase"]:
                continue
            phase_log.append(_run_phase(config, index, phase, network, strategy, checkpoint, state,
                                        (x_train, y_train, x_val, y_val), profile, cache, clock))
            state.update(phase=index + 1, epoch=0, stopped=False, callbacks={}, phase_seconds=0.0,
                         seconds=clock.seconds())
            checkpoint.save_arrays("weights.npz", network.get_weights())
            checkpoint.write_state(state)
        seconds = clock.seconds()

        # Saved from a fresh copy: the trained network's file would also carry optimiser state.
        shipped = build_network(config.architecture, profile.input_shape, profile.num_classes, config.options)
        shipped.set_weights(network.get_weights())
        shipped.save_weights(os.path.join(scratch, run_dir.WEIGHTS_FILE))
        shipped.compile(run_eagerly=config.run_eagerly, jit_compile=False)
        val_probs = shipped.predict(inputs.eval_pipeline(x_val, y_val, profile.num_classes, 64), verbose=0)
        history = _history_columns(state["history"])
        epochs_run = len(state["history"])
        record = {
            "name": os.path.basename(os.path.abspath(out_dir)),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "config": config.to_dict(),
            "profile": {"name": profile.name, "source": profile.source},
            "network": {"architecture": config.architecture, "options": config.options,
                        "input_shape": list(profile.input_shape), "num_classes": profile.num_classes,
                        "preprocessing": ARCHITECTURES[config.architecture].preprocessing,
                        "initial_weights": config.weights},
            "data": {"path": os.path.abspath(dataset.path), "sha256": dataset.sha256, "n": len(dataset)},
            "split": {"id": split.split_id, "train": len(split["train"]), "val": len(y_val),
                      "test": len(split["test"]), "train_used": len(y_train)},
            "training": {"seconds": round(seconds, 2), "epochs_run": epochs_run, "resumed": bool(resume),
                         "images_per_second": round(len(y_train) * epochs_run / max(seconds, 1e-9), 1),
                         "phases": phase_log, "seed": config.seed, "strategy": config.strategy,
                         "overrides": list(config.overrides), "augmentation": augmentation_record(config)},
            "versions": library_versions(),
            "weights": run_dir.WEIGHTS_FILE,
            "metrics": {"val": classification_metrics(y_val, val_probs.argmax(axis=1), profile.classes)},
            "distribution": distribute.describe(strategy, config.strategy, network),
            **(extra or {}),
        }
        write_json(os.path.join(scratch, run_dir.HISTORY_FILE), history)
        plot_curves(history, os.path.join(scratch, CURVES_FILE), title=f"{record['name']} ({config.architecture})")
        write_json(os.path.join(scratch, run_dir.SPLIT_FILE), split.to_dict())
        write_json(os.path.join(scratch, run_dir.RUN_FILE), record)
        _write_config(config, config_toml, os.path.join(scratch, run_dir.CONFIG_FILE))
    checkpoint.remove()
    record["dir"] = os.path.abspath(out_dir)
    return record


def augmentation_record(config):
    """What run.json says about augmentation: the layers over all phases and the shift families they cover.

    The evaluator scores a run separately on the families it trained on and on the
    others (`held_out_families`); only the second is an honest estimate of a shift
    the run has never seen.
    """
    names = []
    for phase in config.phases:
        names += [name for name in layer_names(phase_augmentation(config, phase)) if name not in names]
    families = trained_families(names)
    return {"layers": names, "families": families, "held_out_families": held_out(families),
            "per_phase": [_policy_name(phase_augmentation(config, phase)) for phase in config.phases]}


def _policy_name(augmentation):
    return "layers" if augmentation.layers else augmentation.policy


class Clock:
    """Seconds of one run across restarts: what earlier processes spent plus this one's."""

    def __init__(self, before=0.0):
        self.before, self.started = before, time.perf_counter()

    def seconds(self):
        return self.before + time.perf_counter() - self.started


def _run_phase(config, index, phase, network, strategy, checkpoint, state, data, profile, cache, clock):
    """Fit one phase (on cached features when it can), resuming mid-phase from the checkpoint."""
    x_train, y_train, x_val, y_val = data
    config = dataclasses.replace(config, augmentation=phase_augmentation(config, phase))
    set_trainable(network, phase)
    resuming = index == state["phase"] and state["epoch"] > 0
    if resuming and state.get("stopped"):
        return {"name": phase.name, "skipped": "stopped early before the restart"}
    phase_clock = Clock(state.get("phase_seconds", 0.0) if resuming else 0.0)
    cached = can_cache(config, phase, network)
    model = network
    num_classes = profile.num_classes
    if cached:
        if "train" not in cache:
            extractor, cache["head"] = split_at_head(network)
            started = time.perf_counter()
            cache["train"] = extractor.predict(inputs.eval_pipeline(x_train, y_train, num_classes, 128), verbose=0)
            cache["val"] = extractor.predict(inputs.eval_pipeline(x_val, y_val, num_classes, 128), verbose=0)
            print(f"phase {phase.name}: backbone features computed once in {time.perf_counter() - started:.1f} s; "
                  f"training the head on them", flush=True)
        model = cache["head"]
        train_ds = inputs.array_pipeline(cache["train"], y_train, num_classes, phase.batch_size, shuffle=True,
                                         seed=config.seed + index)
        val_ds = inputs.array_pipeline(cache["val"], y_val, num_classes, phase.batch_size)
    else:
        pairs = phase.consistency > 0
        train_ds = inputs.train_pipeline(x_train, y_train, num_classes, phase.batch_size, config.augmentation,
                                         config.seed + index, pairs=pairs)
        val_ds = inputs.eval_pipeline(x_val, y_val, num_classes, phase.batch_size, pairs=pairs)
    with strategy.scope():
        compile_for(model, phase, steps_per_epoch(len(y_train), phase.batch_size), config.label_smoothing,
                    config.run_eagerly)
        if resuming:
            _restore_optimizer(model, checkpoint)
    saved = state["callbacks"] if resuming else {}
    stateful = {}
    if phase.early_stopping_patience:
        stateful["early_stopping"] = ResumableEarlyStopping(
            checkpoint, saved.get("early_stopping"), monitor="val_loss", patience=phase.early_stopping_patience,
            restore_best_weights=True)
    if phase.schedule == "plateau":
        stateful["plateau"] = ResumablePlateau(saved.get("plateau"), monitor="val_loss", factor=phase.plateau_factor,
                                               patience=phase.plateau_patience, min_lr=phase.min_learning_rate)
    callbacks = [*stateful.values(), EpochCheckpoint(checkpoint, state, network, stateful,
                                                     clocks={"seconds": clock, "phase_seconds": phase_clock})]
    class_weight = inputs.balanced_class_weights(y_train, num_classes) if config.class_weights == "balanced" else None
    print(f"phase {index + 1}/{len(config.phases)} `{phase.name}`: trainable {phase.trainable} "
          f"({len(model.trainable_weights)} weight tensors), {phase.optimizer} lr {phase.learning_rate:g} "
          f"{phase.schedule}, batch {phase.batch_size}, {phase.epochs} epochs", flush=True)
    distribute.prepare_fit(model, strategy)
    model.fit(train_ds, validation_data=val_ds, epochs=phase.epochs, initial_epoch=state["epoch"] if resuming else 0,
              callbacks=callbacks, class_weight=class_weight, shuffle=False,  # the pipeline shuffles
              verbose=1 if sys.stdout.isatty() else 2)
    # From the checkpoint's history, so epochs run before a restart count too.
    epochs_run = sum(1 for epoch in state["history"] if epoch["phase"] == index)
    return {"name": phase.name, "trainable": phase.trainable, "cached_features": cached,
            "epochs_run": epochs_run, "seconds": round(phase_clock.seconds(), 2)}


def _restore_optimizer(model, checkpoint):
    """Rebuild the optimiser's variables and load the values saved after the last epoch."""
    model.optimizer.build(model.trainable_variables)
    saved = checkpoint.load_arrays("optimizer.npz")
    variables = model.optimizer.variables
    if len(saved) != len(variables):
        raise CodapackError(f"{checkpoint.path}: the optimiser state does not match this network; "
                            f"train without --resume")
    for variable, value in zip(variables, saved):
        variable.assign(value)


def _history_columns(epochs):
    """Per-epoch dicts -> {metric: [value per epoch]} (with the phase index of each epoch)."""
    keys = [key for key in (epochs[0] if epochs else {})]
    return {key: [epoch.get(key) for epoch in epochs] for key in keys}


def _write_config(config, config_toml, path):
    if config_toml:
        header = f"# Effective config of this run: {config.source}"
        header += "".join(f"\n# --set {override}" for override in config.overrides)
        with open(path, "w", encoding="utf-8") as f:
            f.write(header + "\n\n" + config_toml)
    elif config.source:
        shutil.copyfile(config.source, path)
