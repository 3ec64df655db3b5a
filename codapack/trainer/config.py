"""Training configs: one TOML file says which network to build and how to train it.

    [model]          architecture, weights, [model.options] (the builder's arguments)
    [training]       seed, data handling, loss, imbalance, strategy (and, for a one-phase
                     run, epochs / batch_size / learning_rate / early_stopping_patience)
    [augmentation]   policy or layers, mixup, cutmix, offline_per_class
    [[phases]]       one table per phase: trainable, epochs, batch_size, optimizer, schedule...

Unknown keys are errors, not silently ignored, so a typo cannot train the wrong
model. `--set key.path=value` edits the raw TOML before validation (see overrides.py).
A value may declare a search space for `codapack tune` (see search_space.py); training uses its default.
"""

import dataclasses
import os
import tomllib

from codapack.data.policies import LAYER_NAMES, POLICIES
from codapack.errors import fail_for
from codapack.trainer import search_space
from codapack.trainer.distribute import STRATEGIES
from codapack.trainer.overrides import apply_overrides

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
DEFAULT_CONFIG = os.path.join(CONFIG_DIR, "baseline.toml")
RECIPES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recipes")

OPTIMIZERS = ("adam", "adamw", "sgd", "lion")
SCHEDULES = ("constant", "cosine", "plateau")


@dataclasses.dataclass(frozen=True)
class Phase:
    """One stage of training with its own trainable layers and optimiser.

    Args:
        name: shown in logs and history.
        trainable: "all"; "head" (backbone frozen); "last:N" (the last N layers of the
            backbone, or of the network without one); "from:LAYER" (that layer onwards).
        epochs, batch_size: as in `keras.Model.fit`.
        optimizer: adam, adamw, sgd (with momentum) or lion.
        learning_rate, weight_decay, momentum: the optimiser's settings.
        schedule: constant; cosine (decay over the phase's steps); plateau (ReduceLROnPlateau).
        plateau_factor, plateau_patience, min_learning_rate: ReduceLROnPlateau's settings.
        early_stopping_patience: epochs without val_loss improvement before stopping and
            restoring the best weights; 0 never stops early.
        ema: momentum of an exponential moving average of the weights (Keras' `use_ema`), which
            replaces the weights at the end of the phase; 0 is off, 0.998 averages over about
            the last 500 steps.
        consistency: weight of the Jensen-Shannon consistency term between each image with
            geometry only and the same image with the phase's other augmentation layers
            (`trainer/consistency.py`, as AugMix); 0 is off. Each step then runs two views of
            its batch, so the phase costs about twice as much per epoch.
        freeze_batch_norm: keep the backbone's batch-norm layers in inference mode when unfrozen.
        augmentation: a policy name for this phase instead of the config's `[augmentation]`
            policy or layers (e.g. "geometry" to converge first, "robust" for the fine-tune);
            "" keeps the config's. MixUp and CutMix stay as configured, except under "none",
            which turns every augmentation off (a frozen head then trains on cached features).
    """

    name: str = "train"
    trainable: str = "all"
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "constant"
    plateau_factor: float = 0.2
    plateau_patience: int = 2
    min_learning_rate: float = 1e-7
    early_stopping_patience: int = 3
    ema: float = 0.0
    consistency: float = 0.0
    freeze_batch_norm: bool = True
    augmentation: str = ""


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Per-epoch augmentation in the input pipeline (never part of the exported network).

    Args:
        policy: none, light, medium, heavy or robust (see codapack/data/policies.py).
        layers: a custom list of layer names instead of the policy.
        mixup, cutmix: Beta(alpha, alpha) of MixUp / CutMix; 0 is off. With both, each
            batch gets one of them at random.
        offline_per_class: before training, write an enlarged copy of the train split with
            augmented images until each class has this many; 0 is off.
    """

    policy: str = "none"
    layers: tuple = ()
    mixup: float = 0.0
    cutmix: float = 0.0
    offline_per_class: int = 0

    @property
    def per_epoch(self):
        """Whether images change from epoch to epoch (then features cannot be cached)."""
        return bool(self.layers) or self.policy != "none" or self.mixup > 0 or self.cutmix > 0


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """What to build and how to train it.

    Args:
        architecture: a network name from `submission.networks.ARCHITECTURES`.
        options: keyword arguments of that network's builder.
        weights: "none", "imagenet" or the path of a backbone weights file.
        seed: seed for weights initialisation, shuffling and augmentation.
        max_train_images: train on a stratified subset of this size; 0 uses the whole split.
        label_smoothing: of the cross-entropy loss.
        class_weights: "none" or "balanced" (inverse class frequency in the loss).
        oversample: "none" or "balanced" (repeat minority-class images up to the largest class).
        cache_features: "auto" (train a frozen-backbone phase on features computed once when
            nothing changes per epoch) or "never".
        strategy: tf.distribute strategy: default, mirrored or multi_worker.
        run_eagerly: train without tracing a graph (slow per step, no tracing cost; for debugging
            and for one-step smoke tests of big networks).
        augmentation: an `Augmentation`.
        phases: the `Phase`s, run in order.
        source: the file the config was read from; overrides: the --set edits applied.
        raw: the effective TOML tables (after overrides), written into the run.
    """

    architecture: str = "baseline_cnn"
    options: dict = dataclasses.field(default_factory=dict)
    weights: str = "none"
    seed: int = 0
    max_train_images: int = 0
    label_smoothing: float = 0.0
    class_weights: str = "none"
    oversample: str = "none"
    cache_features: str = "auto"
    strategy: str = "default"
    run_eagerly: bool = False
    augmentation: Augmentation = Augmentation()
    phases: tuple = (Phase(),)
    source: str = ""
    overrides: tuple = ()
    raw: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def epochs(self):
        """Epochs over all phases."""
        return sum(phase.epochs for phase in self.phases)

    def to_dict(self):
        out = dataclasses.asdict(self)
        out.pop("raw")
        return out


_MODEL_KEYS = {"architecture": str, "options": dict, "weights": str}
_TRAINING_KEYS = {"seed": int, "max_train_images": int, "label_smoothing": float, "class_weights": str,
                  "oversample": str, "cache_features": str, "strategy": str, "run_eagerly": bool}
_ONE_PHASE_KEYS = {"epochs": int, "batch_size": int, "learning_rate": float, "early_stopping_patience": int}
_AUGMENTATION_KEYS = {"policy": str, "layers": list, "mixup": float, "cutmix": float, "offline_per_class": int}
_PHASE_KEYS = {field.name: field.type for field in dataclasses.fields(Phase)}
_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


def resolve_config_path(name):
    """A config file path, or the path of the recipe or bundled config of that name."""
    if os.path.exists(name) or os.sep in name:
        return name
    stem = name[:-5] if name.endswith(".toml") else name
    for folder in (RECIPES_DIR, CONFIG_DIR):
        candidate = os.path.join(folder, f"{stem}.toml")
        if os.path.isfile(candidate):
            return candidate
    return name


def load_config(path=DEFAULT_CONFIG, overrides=()):
    """Read and validate a training config.

    Args:
        path: a TOML file with `[model]`, `[training]`, optional `[augmentation]` and `[[phases]]`.
        overrides: "key.path=value" strings applied to the TOML before validation. Search
            declarations left after them take their defaults.

    Returns:
        A `TrainConfig`.

    Raises:
        CodapackError: missing file, invalid TOML, unknown key, wrong type or value.
    """
    return config_from_raw(apply_overrides(read_raw(path), overrides, path), path, overrides)


def read_raw(path):
    """The parsed TOML of a config file (search declarations and all), unvalidated."""
    if not os.path.isfile(path):
        raise fail_for(path, "no such config file")
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise fail_for(path, f"not a valid TOML file ({exc})") from None


def config_from_raw(raw, path, overrides=()):
    """Validate a parsed config (overrides already applied) into a `TrainConfig`.

    Args:
        raw: the parsed TOML.
        path: the file it came from, for error messages and the run's record.
        overrides: the "key.path=value" edits already applied, to record.

    Raises:
        CodapackError: unknown key, wrong type or value.
    """
    # Search declarations (`{ default = ..., choice = [...] }`) train with their defaults.
    search_space.find_params(raw, path)
    raw = search_space.with_values(raw, {})
    unknown_tables = set(raw) - {"model", "training", "augmentation", "phases"}
    if unknown_tables:
        raise fail_for(path, f"unknown table(s) {sorted(unknown_tables)}; expected [model], [training], "
                             f"[augmentation] and [[phases]]")
    values = _read_table(raw.get("model", {}), _MODEL_KEYS, "model", path)
    training = _read_table(raw.get("training", {}), {**_TRAINING_KEYS, **_ONE_PHASE_KEYS}, "training", path)
    one_phase = {key: training.pop(key) for key in list(training) if key in _ONE_PHASE_KEYS}
    values.update(training)
    augmentation = _read_table(raw.get("augmentation", {}), _AUGMENTATION_KEYS, "augmentation", path)
    augmentation["layers"] = tuple(augmentation.get("layers", ()))
    phases = raw.get("phases")
    if phases is not None and one_phase:
        raise fail_for(path, f"give either [[phases]] or `training.{sorted(one_phase)[0]}`, not both")
    if phases is None:
        phases = [dict(one_phase, name="train", trainable="all")]
    if not isinstance(phases, list) or not phases or not all(isinstance(p, dict) for p in phases):
        raise fail_for(path, "`phases` should be one or more [[phases]] tables")
    typed = {key: _TYPES[kind] if isinstance(kind, str) else kind for key, kind in _PHASE_KEYS.items()}
    values["phases"] = tuple(Phase(**_read_table(p, typed, f"phases.{i}", path)) for i, p in enumerate(phases))
    config = TrainConfig(**values, augmentation=Augmentation(**augmentation), source=os.path.abspath(path),
                         overrides=tuple(overrides), raw=raw)
    _check_values(config, path)
    return config


def _read_table(table, schema, name, path):
    if not isinstance(table, dict):
        raise fail_for(path, f"`{name}` should be a table")
    out = {}
    for key, value in table.items():
        if key not in schema:
            raise fail_for(path, f"unknown key `{name}.{key}`; known keys: {', '.join(sorted(schema))}")
        kind = schema[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise fail_for(path, f"`{name}.{key}` should be {kind.__name__}. Received: {value!r}")
        out[key] = value
    return out


def _one_of(path, key, value, allowed):
    if value not in allowed:
        raise fail_for(path, f"`{key}` should be one of {list(allowed)}. Received: {value!r}")


def _check_values(config, path):
    from codapack.submission.networks import ARCHITECTURES

    _one_of(path, "model.architecture", config.architecture, sorted(ARCHITECTURES))
    if config.weights not in ("none", "imagenet"):
        if not ARCHITECTURES[config.architecture].pretrained:
            raise fail_for(path, f"`model.weights`: `{config.architecture}` has no pretrained backbone")
        if not os.path.isfile(os.path.expanduser(config.weights)):
            raise fail_for(path, f"`model.weights` should be none, imagenet or an existing weights file. "
                                 f"Received: {config.weights!r}")
    for key, allowed in (("class_weights", ("none", "balanced")), ("oversample", ("none", "balanced")),
                         ("cache_features", ("auto", "never")),
                         ("strategy", STRATEGIES)):
        _one_of(path, f"training.{key}", getattr(config, key), allowed)
    if not 0 <= config.label_smoothing < 1:
        raise fail_for(path, f"`training.label_smoothing` should be in [0, 1). Received: {config.label_smoothing}")
    if config.max_train_images < 0:
        raise fail_for(path, f"`training.max_train_images` should be 0 or more. Received: {config.max_train_images}")
    augmentation = config.augmentation
    _one_of(path, "augmentation.policy", augmentation.policy, POLICIES)
    for layer in augmentation.layers:
        _one_of(path, "augmentation.layers", layer, sorted(LAYER_NAMES))
    if augmentation.mixup < 0 or augmentation.cutmix < 0 or augmentation.offline_per_class < 0:
        raise fail_for(path, "`augmentation.mixup`, `cutmix` and `offline_per_class` should be 0 or more")
    for i, phase in enumerate(config.phases):
        _check_phase(phase, "training" if "phases" not in config.raw else f"phases.{i}", path)
        if phase.augmentation:
            _one_of(path, f"phases.{i}.augmentation", phase.augmentation, POLICIES)
        if phase.consistency:
            _check_consistency(config, phase, path)


def _check_consistency(config, phase, path):
    """A consistency phase needs its two views of each image side by side in one batch."""
    augmentation = phase_augmentation(config, phase)
    if augmentation.mixup or augmentation.cutmix:
        raise fail_for(path, f"`consistency` in phase `{phase.name}` should not be combined with MixUp or CutMix "
                             "(they would mix the two views of an image with other images); set one of them to 0")
    if config.strategy != "default":
        raise fail_for(path, f"`consistency` in phase `{phase.name}` needs `training.strategy = \"default\"`: "
                             f"the two views of a batch must stay on one device. Received: {config.strategy!r}")


def phase_augmentation(config, phase):
    """The `Augmentation` a phase trains with: the config's, or its own policy."""
    if not phase.augmentation:
        return config.augmentation
    if phase.augmentation == "none":
        return dataclasses.replace(config.augmentation, policy="none", layers=(), mixup=0.0, cutmix=0.0)
    return dataclasses.replace(config.augmentation, policy=phase.augmentation, layers=())


def _check_phase(phase, name, path):
    for key in ("epochs", "batch_size"):
        if getattr(phase, key) < 1:
            raise fail_for(path, f"`{name}.{key}` should be at least 1. Received: {getattr(phase, key)}")
    if not phase.learning_rate > 0:
        raise fail_for(path, f"`{name}.learning_rate` should be positive. Received: {phase.learning_rate}")
    if phase.early_stopping_patience < 0:
        raise fail_for(path, f"`{name}.early_stopping_patience` should be 0 or more. "
                             f"Received: {phase.early_stopping_patience}")
    if not 0 <= phase.ema < 1:
        raise fail_for(path, f"`{name}.ema` should be in [0, 1) (0 is off). Received: {phase.ema}")
    if phase.consistency < 0:
        raise fail_for(path, f"`{name}.consistency` should be 0 (off) or positive. Received: {phase.consistency}")
    _one_of(path, f"{name}.optimizer", phase.optimizer, OPTIMIZERS)
    _one_of(path, f"{name}.schedule", phase.schedule, SCHEDULES)
    kind, _, arg = phase.trainable.partition(":")
    valid = (kind in ("all", "head") and not arg) or (kind == "from" and arg) or (kind == "last" and arg.isdigit())
    if not valid:
        raise fail_for(path, f"`{name}.trainable` should be all, head, last:N or from:LAYER. "
                             f"Received: {phase.trainable!r}")
