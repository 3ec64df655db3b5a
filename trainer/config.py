"""Training configs: one TOML file says which network to build and how to train it.

Unknown keys are errors, not silently ignored, so a typo cannot train the
wrong model.
"""

import dataclasses
import os
import tomllib

from codapack.errors import fail_for

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", "baseline.toml")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """What to build and how to train it.

    Args:
        architecture: a network name from `submission.networks.ARCHITECTURES`.
        options: keyword arguments of that network's builder.
        epochs: maximum number of epochs.
        batch_size: images per training step.
        learning_rate: Adam's learning rate.
        seed: seed for weights initialisation and shuffling.
        early_stopping_patience: epochs without validation-loss improvement
            before stopping; 0 never stops early.
        max_train_images: train on at most this many images of the train split
            (stratified subsample); 0 uses them all.
        source: the file the config was read from.
    """

    architecture: str = "baseline_cnn"
    options: dict = dataclasses.field(default_factory=dict)
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    seed: int = 0
    early_stopping_patience: int = 3
    max_train_images: int = 0
    source: str = ""

    def to_dict(self):
        return dataclasses.asdict(self)


_MODEL_KEYS = {"architecture": str, "options": dict}
_TRAINING_KEYS = {"epochs": int, "batch_size": int, "learning_rate": float, "seed": int,
                  "early_stopping_patience": int, "max_train_images": int}


def load_config(path=DEFAULT_CONFIG):
    """Read and validate a training config.

    Args:
        path: a TOML file with a `[model]` and a `[training]` table.

    Returns:
        A `TrainConfig`.

    Raises:
        CodapackError: missing file, invalid TOML, unknown key, wrong type or value.
    """
    if not os.path.isfile(path):
        raise fail_for(path, "no such config file")
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise fail_for(path, f"not a valid TOML file ({exc})") from None
    unknown_tables = set(raw) - {"model", "training"}
    if unknown_tables:
        raise fail_for(path, f"unknown table(s) {sorted(unknown_tables)}; expected [model] and [training]")
    values = {}
    values.update(_read_table(raw.get("model", {}), _MODEL_KEYS, "model", path))
    values.update(_read_table(raw.get("training", {}), _TRAINING_KEYS, "training", path))
    config = TrainConfig(**values, source=os.path.abspath(path))
    _check_values(config, path)
    return config


def _read_table(table, schema, name, path):
    out = {}
    for key, value in table.items():
        if key not in schema:
            raise fail_for(path, f"unknown key `{name}.{key}`; known keys: {', '.join(sorted(schema))}")
        kind = schema[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise fail_for(path, f"`{name}.{key}` should be {kind.__name__}. Received: {value!r}")
        out[key] = value
    return out


def _check_values(config, path):
    from submission.networks import ARCHITECTURES

    if config.architecture not in ARCHITECTURES:
        raise fail_for(path, f"`model.architecture` should be one of {sorted(ARCHITECTURES)}. "
                             f"Received: {config.architecture!r}")
    for key in ("epochs", "batch_size"):
        if getattr(config, key) < 1:
            raise fail_for(path, f"`training.{key}` should be at least 1. Received: {getattr(config, key)}")
    if not config.learning_rate > 0:
        raise fail_for(path, f"`training.learning_rate` should be positive. Received: {config.learning_rate}")
    for key in ("early_stopping_patience", "max_train_images"):
        if getattr(config, key) < 0:
            raise fail_for(path, f"`training.{key}` should be 0 or more. Received: {getattr(config, key)}")
