"""`--set key.path=value` overrides of a config's TOML, and writing the effective TOML back.

A path walks tables by key and arrays of tables by index (`phases.0.epochs=1`);
the value is read as a TOML value (`1`, `1e-4`, `true`, `[832, 320]`, `"adamw"`),
or taken as a plain string when it is not one (`optimizer=adamw`).
"""

import copy
import json
import tomllib

from codapack.errors import fail_for


def parse_value(text):
    """A TOML value, or the text itself when it is not valid TOML."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw, overrides, path):
    """Return a copy of the TOML dict `raw` with each "a.b.c=value" override applied.

    Args:
        raw: the parsed TOML.
        overrides: "key.path=value" strings.
        path: the config file, for error messages.

    Raises:
        CodapackError: an override without `=`, or a path through something that is not a table or array.
    """
    raw = copy.deepcopy(raw)
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key:
            raise fail_for(path, f"--set {override!r} should look like key.path=value")
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = _child(node, part, override, path)
        if isinstance(node, list):
            node[_index(node, leaf, override, path)] = parse_value(text)
        elif isinstance(node, dict):
            node[leaf] = parse_value(text)
        else:
            raise fail_for(path, f"--set {override!r}: `{key}` is not inside a table")
    return raw


def _index(node, part, override, path):
    if not part.isdigit() or int(part) >= len(node):
        raise fail_for(path, f"--set {override!r}: `{part}` should be an index below {len(node)}")
    return int(part)


def _child(node, part, override, path):
    if isinstance(node, list):
        return node[_index(node, part, override, path)]
    if not isinstance(node, dict):
        raise fail_for(path, f"--set {override!r}: `{part}` is not inside a table")
    return node.setdefault(part, {})


def to_toml(raw):
    """Write a parsed config (tables, arrays of tables, scalars, arrays) back as TOML text."""
    lines = []
    scalars = {k: v for k, v in raw.items() if not isinstance(v, dict) and not _is_table_array(v)}
    _write_values(lines, scalars)
    _write_tables(lines, raw, "")
    return "\n".join(lines).strip() + "\n"


def _write_tables(lines, table, prefix):
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            lines.append(f"\n[{name}]")
            _write_values(lines, {k: v for k, v in value.items() if not isinstance(v, dict)})
            _write_tables(lines, {k: v for k, v in value.items() if isinstance(v, dict)}, f"{name}.")
        elif _is_table_array(value):
            for item in value:
                lines.append(f"\n[[{name}]]")
                _write_values(lines, item)


def _write_values(lines, values):
    for key, value in values.items():
        lines.append(f"{key} = {toml_value(value)}")


def toml_value(value):
    """A Python value (bool, number, string, list, dict) as TOML text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def _is_table_array(value):
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
