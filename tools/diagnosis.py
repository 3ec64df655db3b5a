"""Turning what happened to a submission into one verdict and one message that says what to do.

Static checks look at the unpacked folder before anything runs (no `model.py`
at the root, a `metadata` file, `.keras` files saved by a newer Keras); the
run's outcome is then classified by stage and exception. Every verdict other
than OK comes with a message naming the file or the call at fault.
"""

import json
import os
import re
import zipfile

OK = "OK"
NO_MODEL_PY = "NO_MODEL_PY"
METADATA_FILE = "METADATA_FILE"
TOO_LARGE = "TOO_LARGE"
SYNTAX_ERROR = "SYNTAX_ERROR"
MISSING_PACKAGE = "MISSING_PACKAGE"
INIT_ARGUMENTS = "INIT_ARGUMENTS"
RELATIVE_PATH = "RELATIVE_PATH"
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
DESERIALIZATION_SIGNS = ("could not be deserialized", "Unknown layer", "Lambda", "custom_objects",
                         "Could not locate class", "safe_mode")


def version_tuple(text):
    parts = []
    for piece in str(text).split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def keras_file_versions(folder):
    """{relative path: Keras version it records} for every `.keras` file under `folder`."""
    found = {}
    for root, _, files in os.walk(folder):
        for name in files:
            if name.endswith(".keras"):
                path = os.path.join(root, name)
                found[os.path.relpath(path, folder)] = _recorded_keras_version(path)
    return found


def _recorded_keras_version(path):
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("metadata.json")).get("keras_version")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        return None


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


def run_verdict(worker, submission, keras_versions, env_keras):
    """Classify a failed run by its stage and exception.

    Args:
        worker: the worker's result dict (stage, error_type, error, missing_module, traceback).
        submission: the unpacked submission folder.
        keras_versions: `keras_file_versions(submission)`.
        env_keras: the Keras version of the environment that ran it, or None.

    Returns:
        (verdict, message).
    """
    stage, kind, error = worker.get("stage"), worker.get("error_type", ""), worker.get("error", "")
    where = {"import": "importing model.py", "init": "Model()", "predict": "predict",
             "batch_check": "predict on a smaller batch"}.get(stage, stage)
    if kind in ("SyntaxError", "IndentationError", "TabError"):
        return SYNTAX_ERROR, f"model.py does not compile: {error}"
    if kind == "ModuleNotFoundError":
        module = worker.get("missing_module") or error
        return MISSING_PACKAGE, (f"{where} imports `{module}`, which the environment that ran it lacks "
                                 f"({error}); ship the code in the zip or use what the platform has")
    if stage == "init" and kind == "TypeError" and "argument" in error and "__init__" in error:
        return INIT_ARGUMENTS, f"Model() must take no arguments; the platform calls Model() ({error})"
    newer = {name: v for name, v in keras_versions.items()
             if v and env_keras and version_tuple(v) > version_tuple(env_keras)}
    if stage == "init" and newer:
        name, saved = next(iter(newer.items()))
        return KERAS_VERSION, (f"{name} was saved by Keras {saved}, newer than the Keras {env_keras} that "
                               f"loads it ({error}). Ship weights (.weights.h5) and rebuild the model in code, "
                               f"as `tools/package.py` does")
    if stage == "init" and any(sign in error for sign in DESERIALIZATION_SIGNS):
        return DESERIALIZATION, (f"the saved model does not deserialize in Model() ({error}). Lambda layers and "
                                 "custom objects need their code at load time: rebuild the network in code "
                                 "and load .weights.h5")
    missing = _missing_relative_file(error, submission)
    if kind in ("FileNotFoundError", "OSError", "ValueError") and missing:
        return RELATIVE_PATH, (f"{where} opens `{missing}` relative to the working directory, which is not the "
                               f"submission folder here; locate files with os.path.dirname(__file__)")
    if stage == "predict":
        return PREDICT_ERROR, f"predict raised {error}"
    if stage == "init":
        return INIT_ERROR, f"Model() raised {error}"
    return CRASH, error or "the submission process ended without a result"


def _missing_relative_file(error, submission):
    """A name in `error` that is missing from the working directory but ships in the submission."""
    for token in re.findall(r"[\w./-]+", error):
        candidate = token.rstrip(".")
        if "." in candidate and not os.path.isabs(candidate) and os.path.isfile(os.path.join(submission, candidate)):
            return candidate
    return None


def output_problem(y, output_type, n, num_classes):
    """Why the predictions break the contract, or None when they are (n,) integer ids in range."""
    if output_type != "numpy.ndarray":
        return f"predict should return a numpy array; it returned {output_type}"
    if y.ndim == 2 and y.shape == (n, num_classes):
        return (f"predict returned shape {y.shape}: probabilities or one-hot rows, one column per class; "
                f"return class ids with np.argmax(p, axis=1)")
    if y.shape != (n,):
        return f"predict should return shape ({n},); it returned {y.shape}"
    if y.dtype.kind not in "iu":
        return f"predict should return integer class ids; it returned dtype {y.dtype} (use .astype(int))"
    if n and (y.min() < 0 or y.max() >= num_classes):
        return f"predicted class ids should lie in 0..{num_classes - 1}; found {int(y.min())}..{int(y.max())}"
    return None
