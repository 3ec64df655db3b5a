"""A checkpoint after every epoch, so `codapack train ... --resume` continues a killed run.

The checkpoint lives beside the run directory, in `.NAME.checkpoint/`:

    state.json      the effective config, the phase and epochs done, the history so far,
                    and the early-stopping / plateau counters
    weights.npz     the network's weights (`get_weights` order)
    optimizer.npz   the optimiser's variables (iterations, moments, learning rate) mid-phase
    best.npz        early stopping's best weights so far

It is removed once the run directory is complete.
"""

import os
import shutil

import keras
import numpy as np

from codapack.errors import fail_for
from codapack.files import atomic_path, read_json, write_json

STATE_FILE = "state.json"


def checkpoint_dir(out_dir):
    out_dir = os.path.abspath(out_dir)
    return os.path.join(os.path.dirname(out_dir), f".{os.path.basename(out_dir)}.checkpoint")


def _save_arrays(path, arrays):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, *arrays)


def _load_arrays(path):
    with np.load(path) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


class Checkpoint:
    """The checkpoint folder of one run.

    Args:
        out_dir: the run directory the checkpoint belongs to.
    """

    def __init__(self, out_dir):
        self.path = checkpoint_dir(out_dir)

    def file(self, name):
        return os.path.join(self.path, name)

    def exists(self):
        return os.path.isfile(self.file(STATE_FILE))

    def start(self, config_toml):
        """Start an empty checkpoint for a new run (an old one is discarded)."""
        self.remove()
        os.makedirs(self.path)
        self.write_state({"config": config_toml, "phase": 0, "epoch": 0, "history": [], "callbacks": {}})

    def resume(self, config_toml):
        """The saved state of a killed run, checked against the config it is resumed with.

        Raises:
            CodapackError: no checkpoint, or it was written with another config.
        """
        if not self.exists():
            raise fail_for(self.path, "no checkpoint to resume from; train without --resume")
        state = read_json(self.file(STATE_FILE))
        if state["config"] != config_toml:
            raise fail_for(self.path, "was written with a different config; resume with the same config "
                                      "and --set options, or train without --resume")
        return state

    def write_state(self, state):
        write_json(self.file(STATE_FILE), state)

    def save_arrays(self, name, arrays):
        _save_arrays(self.file(name), arrays)

    def load_arrays(self, name):
        return _load_arrays(self.file(name))

    def has(self, name):
        return os.path.isfile(self.file(name))

    def remove(self):
        shutil.rmtree(self.path, ignore_errors=True)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping whose counters and best weights survive a restart."""

    def __init__(self, checkpoint, saved=None, **kwargs):
        super().__init__(**kwargs)
        self.checkpoint, self.saved = checkpoint, saved

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.saved:
            self.wait, self.best, self.best_epoch = self.saved["wait"], self.saved["best"], self.saved["best_epoch"]
            if self.checkpoint.has("best.npz"):
                self.best_weights = self.checkpoint.load_arrays("best.npz")

    def state(self):
        if self.best_weights is not None:
            self.checkpoint.save_arrays("best.npz", self.best_weights)
        best = None if self.best is None else float(self.best)
        return {"wait": self.wait, "best": best, "best_epoch": self.best_epoch}


class ResumablePlateau(keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau whose counters survive a restart (the rate itself is an optimiser variable)."""

    def __init__(self, saved=None, **kwargs):
        super().__init__(**kwargs)
        self.saved = saved

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.saved:
            self.wait, self.best, self.cooldown_counter = (self.saved["wait"], self.saved["best"],
                                                           self.saved["cooldown_counter"])

    def state(self):
        return {"wait": self.wait, "best": float(self.best), "cooldown_counter": self.cooldown_counter}


class EpochCheckpoint(keras.callbacks.Callback):
    """Save weights, optimiser variables, history and callback counters after every epoch.

    Must come last among the callbacks so it sees the epoch's final state.

    Args:
        checkpoint: the `Checkpoint`.
        state: the state dict (phase, epoch, history...) to update and save.
        network: the network whose weights are saved (the model being fitted may be its head).
        stateful: callbacks with a `state()` method, by name.
        clocks: {state key: object with `seconds()`}, saved so a resumed run counts the time before it.
    """

    def __init__(self, checkpoint, state, network, stateful, clocks=None):
        super().__init__()
        self.checkpoint, self.state, self.network, self.stateful = checkpoint, state, network, stateful
        self.clocks = clocks or {}

    def on_epoch_end(self, epoch, logs=None):
        self.state["history"].append({key: float(value) for key, value in (logs or {}).items()}
                                     | {"phase": self.state["phase"]})
        self.state["epoch"] = epoch + 1
        self.state["callbacks"] = {name: callback.state() for name, callback in self.stateful.items()}
        self.state.update({key: clock.seconds() for key, clock in self.clocks.items()})
        self.checkpoint.save_arrays("weights.npz", self.network.get_weights())
        self.checkpoint.save_arrays("optimizer.npz", [v.numpy() for v in self.model.optimizer.variables])
        self.checkpoint.write_state(self.state)
