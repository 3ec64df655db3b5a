"""Search spaces declared in a training config, next to the values they replace.

Any value of a config may be an inline table with a `default` and a range or a list of choices:

    learning_rate = { default = 1e-3, min = 1e-4, max = 1e-2, sampling = "log" }
    dense = { default = [128], choice = [[64], [128], [256, 64]] }     # sizes and count
    batch_norm = { default = false, choice = [true, false] }
    dropout = [{ default = 0.3, choice = [0.1, 0.3, 0.5] }, 0.1]        # one rate per layer
    trainable = { default = "last:20", choice = ["last:20", "last:60"] }

`codapack train` uses each `default` (so a searchable config still trains), `codapack tune`
searches the space with KerasTuner, and the best configuration is written back with plain values.
A search parameter is named by its path in the config (`phases.0.learning_rate`,
`model.options.dropout.0`), the path `--set` takes.
"""

import dataclasses
import json

from codapack.errors import fail_for

TUNERS = ("random", "grid", "bayesian", "hyperband")  # KerasTuner's oracles
OBJECTIVES = ("val_accuracy", "val_f1_macro")  # each maximised; measured on the run's validation split

SPEC_KEYS = {"default", "min", "max", "step", "sampling", "choice"}
SAMPLINGS = ("linear", "log", "reverse_log")


@dataclasses.dataclass(frozen=True)
class Param:
    """One searchable value of a config.

    Args:
        path: where it sits in the config, as `--set` writes it (`phases.0.learning_rate`).
        default: the value `codapack train` uses.
        spec: the declaration: `min`/`max` (with `step`, `sampling`) or `choice`.
    """

    path: str
    default: object
    spec: dict

    def declare(self, hp):
        """Declare this parameter on a `keras_tuner.HyperParameters` and return its value there."""
        if "choice" in self.spec:
            values = [_encode(v) for v in self.spec["choice"]]
            return hp.Choice(self.path, values, default=_encode(self.default))
        low, high = self.spec["min"], self.spec["max"]
        sampling = self.spec.get("sampling", "linear")
        if all(isinstance(v, int) for v in (low, high, self.default)):
            return hp.Int(self.path, low, high, step=self.spec.get("step"), sampling=sampling, default=self.default)
        return hp.Float(self.path, float(low), float(high), step=self.spec.get("step"), sampling=sampling,
                        default=float(self.default))

    def value_of(self, hp_value):
        """The config value for a value KerasTuner chose (choices of lists travel as JSON text)."""
        return json.loads(hp_value) if isinstance(hp_value, str) and _is_encoded(self.spec) else hp_value


def _encode(value):
    # KerasTuner's Choice takes scalars only; a list choice (dense sizes) travels as JSON text.
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _is_encoded(spec):
    return any(isinstance(v, (list, dict)) for v in spec.get("choice", ()))


def is_declaration(value):
    """Whether a config value is a search declaration (an inline table with a `default`)."""
    return isinstance(value, dict) and "default" in value


def find_params(raw, path):
    """Every search declaration in a parsed config, checked.

    Args:
        raw: the parsed TOML.
        path: the config file, for error messages.

    Returns:
        A list of `Param`, in the order they appear.

    Raises:
        CodapackError: a declaration with unknown keys, no range or choices, or a default outside them.
    """
    found = []
    _walk(raw, "", found, path)
    return found


def _walk(node, prefix, found, path):
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        name = f"{prefix}{key}"
        if is_declaration(value):
            found.append(_check(name, value, path))
        else:
            _walk(value, f"{name}.", found, path)


def _check(name, spec, path):
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise fail_for(path, f"search space `{name}`: unknown key(s) {sorted(unknown)}; "
                             f"known: {', '.join(sorted(SPEC_KEYS))}")
    default = spec["default"]
    if "choice" in spec:
        choices = spec["choice"]
        if set(spec) - {"default", "choice"}:
            raise fail_for(path, f"search space `{name}`: give either `choice` or `min`/`max`, not both")
        if not isinstance(choices, list) or not choices or default not in choices:
            raise fail_for(path, f"search space `{name}`: `choice` should be a list holding the default "
                                 f"{default!r}. Received: {choices!r}")
        if len({type(v) for v in choices}) != 1:
            raise fail_for(path, f"search space `{name}`: choices should all have one type. Received: {choices!r}")
    else:
        low, high = spec.get("min"), spec.get("max")
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high, default))
        if not numbers or not low <= default <= high or low == high:
            raise fail_for(path, f"search space `{name}`: needs `choice`, or numbers `min` < `max` with the "
                                 f"default between them. Received: {spec!r}")
        if spec.get("sampling", "linear") not in SAMPLINGS:
            raise fail_for(path, f"search space `{name}`: `sampling` should be one of {', '.join(SAMPLINGS)}")
        if spec.get("sampling", "linear") != "linear" and low <= 0:
            raise fail_for(path, f"search space `{name}`: log sampling needs `min` > 0")
    return Param(name, default, dict(spec))


def with_values(raw, values):
    """A copy of `raw` with each declaration replaced by a plain value.

    Args:
        raw: the parsed TOML.
        values: {path: value}; a declaration not named there takes its default.

    Returns:
        The parsed TOML with no search declarations left.
    """
    def replace(node, prefix):
        if is_declaration(node):
            return values.get(prefix[:-1], node["default"])
        if isinstance(node, dict):
            return {key: replace(value, f"{prefix}{key}.") for key, value in node.items()}
        if isinstance(node, list):
            return [replace(value, f"{prefix}{i}.") for i, value in enumerate(node)]
        return node

    return replace(raw, "")


def hyperparameters(params):
    """A `keras_tuner.HyperParameters` holding the declared space (what the oracle searches)."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    for param in params:
        param.declare(hp)
    return hp
