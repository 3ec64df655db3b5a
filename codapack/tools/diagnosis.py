"""Turning what happened to a submission into one verdict and one short message that says what to do.

Static checks look at the unpacked folder before anything runs (no `model.py`
at the root, a `metadata` file); a failed run is then classified by its
exception first, and the shipped files only confirm or name a cause the
exception points to (a newer `.keras` file is blamed only when the load failed
the way version differences make it fail). Messages stay short: the full
exception goes to the run's log file.
"""

import dataclasses
import os
import re
import zipfile

import numpy as np

from codapack.errors import CodapackError
from codapack.tools.shipped_files import (broken_file_problem, broken_files, keras_file_versions, saved_models,
                                          shipped_files, version_tuple)

OK = "OK"
NO_MODEL_PY = "NO_MODEL_PY"
METADATA_FILE = "METADATA_FILE"
TOO_LARGE = "TOO_LARGE"
BAD_ZIP = "BAD_ZIP"
SYNTAX_ERROR = "SYNTAX_ERROR"
MISSING_PACKAGE = "MISSING_PACKAGE"
INIT_ARGUMENTS = "INIT_ARGUMENTS"
RELATIVE_PATH = "RELATIVE_PATH"
MISSING_FILE = "MISSING_FILE"
BROKEN_FILE = "BROKEN_FILE"
KERAS_VERSION = "KERAS_VERSION"
DESERIALIZATION = "DESERIALIZATION"
INIT_ERROR = "INIT_ERROR"
PREDICT_ERROR = "PREDICT_ERROR"
BAD_OUTPUT = "BAD_OUTPUT"
TIMEOUT = "TIMEOUT"
CRASH = "CRASH"

# Codabench runs a program folder holding one of these as a command of its own
# (compute_worker/compute_worker.py, Run._run_program_directory), not through the ingestion.
METADATA_NAMES = ("metadata", "metadata.yaml")
# How a saved model that this Keras cannot rebuild fails; Lambda and safe_mode are code, not versions.
# Matched in lower case.
DESERIALIZATION_SIGNS = ("could not be deserialized", "could not deserialize", "unknown layer",
                         "could not locate class", "unrecognized keyword arguments", "unexpected keyword argument",
                         "lambda", "custom_objects", "safe_mode")
CODE_SIGNS = ("Lambda", "safe_mode")
NOT_FOUND_SIGNS = ("No such file", "not found", "does not exist", "Unable to open file", "unable to open file")
ERROR_EXCERPT = 110
STAGE_NAMES = {"import": "importing model.py", "init": "Model()", "predict": "predict"}


@dataclasses.dataclass
class RunContext:
    """What the verdict of a failed run may consult besides the exception.

    Args:
        submission: the unpacked submission folder.
        env: "current", "target" or "docker" (the platform's image), the environment that ran it.
        env_keras: that environment's Keras version, or None.
        platform_keras: the profile's pinned Keras version, or None.
        relative_cause: (how, path) that failed from the run's folder and works
            from the submission folder (confirmed by running from there), or None.
    """

    submission: str
    env: str
    env_keras: str = None
    platform_keras: str = None
    relative_cause: tuple = None


def brief(error, limit=ERROR_EXCERPT):
    """The telling part of an exception's text: Keras' innermost 'Exception encountered', first line, clipped."""
    kind, _, text = error.partition(": ")
    if "Exception encountered:" in text:
        text = text.rsplit("Exception encountered:", 1)[1]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    excerpt = f"{kind}: {lines[0]}" if lines else kind
    return excerpt if len(excerpt) <= limit else excerpt[:limit - 3].rstrip() + "..."


def static_verdict(folder, zip_names):
    """A verdict from the unpacked files alone, or None when they look runnable.

    Args:
        folder: the unpacked submission.
        zip_names: names of the zip's entries.

    Returns:
        (verdict, message) or None.
    """
    if not os.path.isfile(os.path.join(folder, "model.py")):
        nested = sorted(n for n in zip_names if n.endswith("/model.py") and not n.startswith("__MACOSX/"))
        litter = any(n.startswith("__MACOSX/") for n in zip_names)
        message = "no model.py at the zip's root: the platform imports `model` from the zip's top folder"
        if nested:
            message += f"; found {nested[0]}: zip the folder's contents, not the folder"
        if litter:
            message += ("; the zip also holds macOS `__MACOSX/` litter: zip with `zip -r -X` or "
                        "`python tools/package.py`")
        return NO_MODEL_PY, message
    shipped = [name for name in METADATA_NAMES if os.path.exists(os.path.join(folder, name))]
    if shipped:
        return METADATA_FILE, (f"the zip holds a file named `{shipped[0]}` at its root; Codabench then runs the "
                               "submission as a program with its own command instead of through the "
                               "ingestion. Rename or remove it")
    return None


def zip_verdict(zip_path, exc):
    """BAD_ZIP for a zip that cannot be read or unpacked safely, naming the reason."""
    try:
        with zipfile.ZipFile(zip_path) as archive:
            encrypted = [entry.filename for entry in archive.infolist() if entry.flag_bits & 0x1]
    except Exception:  # noqa: BLE001 - any unreadable zip: the reason is in `exc`
        encrypted = []
    if encrypted:
        return BAD_ZIP, (f"entry {encrypted[0]!r} is password-protected (encrypted): the platform cannot unpack it; "
                         "zip without a password")
    text = str(exc) if isinstance(exc, CodapackError) else f"{zip_path}: unreadable zip ({type(exc).__name__}: {exc})"
    return BAD_ZIP, text if len(text) <= 240 else text[:237] + "..."


def new_metadata_files(folders, before):
    """Files named like Codabench's `metadata` that appeared in `folders` during the run."""
    appeared = []
    for folder in folders:
        for name in METADATA_NAMES:
            path = os.path.join(folder, name)
            if os.path.exists(path) and path not in before:
                appeared.append(path)
    return appeared


def existing_metadata_files(folders):
    return {os.path.join(f, n) for f in folders for n in METADATA_NAMES if os.path.exists(os.path.join(f, n))}


def run_verdict(worker, context):
    """Classify a failed run by its stage and exception, then name the file at fault.

    Args:
        worker: the worker's result dict (stage, error_type, error, missing_module).
        context: a `RunContext`.

    Returns:
        (verdict, message), the message under 250 characters.
    """
    stage, kind, error = worker.get("stage"), worker.get("error_type", ""), worker.get("error", "")
    where = STAGE_NAMES.get(stage, stage)
    if kind in ("SyntaxError", "IndentationError", "TabError"):
        return SYNTAX_ERROR, f"model.py does not compile: {brief(error)}"
    if kind == "ModuleNotFoundError":
        module = worker.get("missing_module") or error
        return MISSING_PACKAGE, (f"{where} imports `{module}`, which the {context.env} environment lacks "
                                 f"({brief(error, 150)}); ship the code in the zip or use what the platform has")
    if stage == "init" and kind == "TypeError" and "argument" in error and "__init__" in error:
        return INIT_ARGUMENTS, f"Model() must take no arguments; the platform calls Model() ({brief(error)})"
    if context.relative_cause:
        how, path = context.relative_cause
        return RELATIVE_PATH, (f"{where} {how} `{path}` relative to the working directory, which is not the "
                               f"submission folder here; locate files with os.path.dirname(__file__)")
    found = _file_verdict(where, error, context.submission)
    if found:
        return found
    if stage == "init" and any(sign in error.lower() for sign in DESERIALIZATION_SIGNS):
        return _deserialization_verdict(error, context)
    if stage == "predict":
        return PREDICT_ERROR, f"predict raised {brief(error)}"
    if stage == "init":
        return INIT_ERROR, f"Model() raised {brief(error)}"
    return CRASH, brief(error) if error else "the submission process ended without a result"


def _file_verdict(where, error, submission):
    """BROKEN_FILE or MISSING_FILE when the exception is about a file the zip ships broken, or does not ship."""
    broken = broken_files(submission)
    named = [name for name in broken if os.path.basename(name) in error]
    # A loader's complaint without a name: blame a broken saved model, never an unrelated broken file.
    loading = any(sign in error for sign in NOT_FOUND_SIGNS + ("zip", "HDF5", "signature", "truncated"))
    models = [name for name in saved_models(submission) if name in broken] if loading else []
    if named or models:
        return BROKEN_FILE, f"{broken[(named or models)[0]]}; {where} raised {brief(error, 90)}"
    if not any(sign in error for sign in NOT_FOUND_SIGNS):
        return None
    shipped = shipped_files(submission)
    names = {os.path.basename(f) for f in shipped}
    for name in named_paths(error):
        inside = os.path.relpath(name, submission) if os.path.isabs(name) else name
        if inside.startswith("..") or inside in shipped or os.path.basename(inside) in names:
            continue  # outside the submission folder, or shipped after all
        return MISSING_FILE, f"{where} loads `{inside}`, which the zip does not contain; {_what_it_holds(inside, shipped)}"
    return None


def named_relative_files(error, cwd, submission):
    """Relative file names the exception quotes that ship intact in the submission and are missing from `cwd`."""
    return [name for name in named_paths(error)
            if not os.path.isabs(name) and os.path.isfile(os.path.join(submission, name))
            and not os.path.exists(os.path.join(cwd, name))
            and broken_file_problem(os.path.join(submission, name)) is None]


def named_paths(error):
    """File names an exception quotes: 'x.npy' (Python, h5py) or filepath=x.keras (Keras)."""
    quoted = re.findall(r"['\"]([^'\"\s]+\.[A-Za-z0-9]{1,8})['\"]", error)
    keras = [m.rstrip(".") for m in re.findall(r"filepath=(\S+)", error)]
    return [name for name in keras + quoted if len(name) < 200]


def _what_it_holds(name, shipped):
    extension = os.path.splitext(name)[1]
    alike = [f for f in shipped if f.endswith(extension)] or [f for f in shipped if f != "model.py"]
    if not alike:
        return "it holds only model.py: add the file"
    listed = ", ".join(alike[:3]) + (f" and {len(alike) - 3} more" if len(alike) > 3 else "")
    return f"the zip holds {listed}: ship that file or load one of these"


def _deserialization_verdict(error, context):
    versions = keras_file_versions(context.submission)
    differing = {name: v for name, v in versions.items()
                 if v and context.env_keras and version_tuple(v) != version_tuple(context.env_keras)}
    if differing and not any(sign in error for sign in CODE_SIGNS) and not _custom_class(error):
        name, saved = next(iter(differing.items()))
        if version_tuple(saved) > version_tuple(context.env_keras):
            return KERAS_VERSION, (f"{name} was saved by Keras {saved}, newer than the Keras {context.env_keras} that "
                                   f"loads it ({brief(error, 90)}). Ship .weights.h5 and rebuild the model in code")
        return KERAS_VERSION, (f"{name} (Keras {saved}) does not load in this environment's Keras "
                               f"{context.env_keras} ({brief(error, 80)}); the platform has Keras "
                               f"{context.platform_keras}: judge it there with --env target")
    return DESERIALIZATION, (f"the saved model does not deserialize in Model() ({brief(error, 90)}). Lambda layers and "
                             "custom objects need their code at load time: rebuild the network in code and load "
                             ".weights.h5")


def _custom_class(error):
    """True when Keras could not locate a class of the user's own (its config's module is not Keras')."""
    found = re.search(r"Could not locate class '[^']*'.*?Full object config: \{'module': (None|'[^']*')", error, re.S)
    return bool(found) and not found.group(1).startswith("'keras")


def newer_than_platform(submission, platform_keras, env):
    """Warnings for `.keras` files saved by a Keras newer than the platform's."""
    check = {"target": "it ran in the target environment here",
             "docker": "it ran in the platform's Docker image here"}.get(env, "check with --env target")
    return [f"{name} was saved by Keras {saved}, newer than the platform's Keras {platform_keras}: such files may "
            f"not load there ({check}); shipping .weights.h5 avoids it"
            for name, saved in keras_file_versions(submission).items()
            if saved and platform_keras and version_tuple(saved) > version_tuple(platform_keras)]


def output_check(y, output_type, n, num_classes, strict, unsaveable=None):
    """Check predictions as the platform's scoring would see them.

    Codabench's reference ingestion saves `np.asarray(predictions)` with
    `np.save` and scores that array, so a list or whole-number floats score
    normally there; a profile with `output.strict` says the platform checks
    the type itself.

    Args:
        y: `np.asarray` of what predict returned.
        output_type: the returned object's type, "module.name".
        n: number of images.
        num_classes: number of classes.
        strict: the profile's `output.strict`.
        unsaveable: why np.asarray/np.save failed on the output, or None.

    Returns:
        (problem or None, labels as int64 or None, warnings).
    """
    if unsaveable:
        return f"predict returned a {output_type} that np.asarray cannot turn into numbers ({unsaveable})", None, []
    strict_note = " (the profile says the platform is strict: output.strict)"
    warnings = []
    if output_type != "numpy.ndarray":
        if strict:
            return f"predict should return a numpy array; it returned {output_type}{strict_note}", None, []
        warnings.append(f"predict returned {'a list' if output_type == 'builtins.list' else output_type}, not a numpy "
                        "array; converted with np.asarray as the platform's np.save does: return an array")
    if y.ndim == 2 and y.shape == (n, num_classes):
        return (f"predict returned shape {y.shape}: probabilities or one-hot rows, one column per class; "
                f"return class ids with np.argmax(p, axis=1)"), None, warnings
    if y.shape != (n,):
        return f"predict should return shape ({n},); it returned {y.shape}", None, warnings
    if y.dtype.kind == "f" and not strict and np.all(np.isfinite(y)) and np.array_equal(y, np.round(y)):
        warnings.append(f"predict returned whole-number floats ({y.dtype}); converted to integers, as scoring the "
                        "saved array does: return .astype(int)")
        y = y.astype(np.int64)
    if y.dtype.kind not in "iu":
        note = strict_note if strict and y.dtype.kind == "f" else " (use .astype(int))"
        return f"predict should return integer class ids; it returned dtype {y.dtype}{note}", None, warnings
    if n and (y.min() < 0 or y.max() >= num_classes):
        return (f"predicted class ids should lie in 0..{num_classes - 1}; found {int(y.min())}..{int(y.max())}",
                None, warnings)
    return None, y.astype(np.int64), warnings


def projected_seconds(init_seconds, predict_seconds, n, expected):
    """Model() plus predict over `expected` images at the measured speed; None when nothing to project."""
    if not expected or not n or expected <= n or predict_seconds is None:
        return None
    return (init_seconds or 0.0) + predict_seconds * expected / n


def time_verdict(projected, limit, n, expected, predict_seconds):
    """(TIMEOUT, message) when the projection passes the limit, (None, warning) past half of it, else (None, None)."""
    if projected is None:
        return None, None
    speed = f"{predict_seconds / n:.3g} s per image measured on {n}"
    if projected > limit:
        return TIMEOUT, (f"Model() plus predict would take about {projected:,.0f} s on the {expected:,} hidden test "
                         f"images ({speed}), over the {limit:g} s limit; make predict faster")
    if projected > limit / 2:
        return None, (f"Model() plus predict would take about {projected:,.0f} s on the {expected:,} hidden test "
                      f"images ({speed}), over half the {limit:g} s limit: little margin on a slower machine")
    return None, None
