"""Run directories: what one training run leaves behind for every later stage.

    runs/NAME/
        run.json          config, network, data hash, split id, versions, metrics
        config.toml       the config file as it was given
        weights.weights.h5  the trained weights (rebuilt from code, see submission/networks.py)
        history.json      per-epoch loss and accuracy
        split.json        the indices of the train/val/test split used

A run is written into a hidden sibling folder and renamed into place at the
end, so `runs/NAME` either holds a whole run or does not exist.
"""

import contextlib
import errno
import os
import shutil
import tempfile

from codapack.errors import fail_for
from codapack.files import read_json

RUN_FILE = "run.json"
CONFIG_FILE = "config.toml"
WEIGHTS_FILE = "weights.weights.h5"
HISTORY_FILE = "history.json"
SPLIT_FILE = "split.json"
# Errors of an output folder the user can fix: no permission, a read-only or full disk, a file in the way.
WRITE_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EISDIR, errno.ENOTDIR)


def write_error(exc, out_dir):
    """The one-line error for an output that could not be written, or None when `exc` is not that kind."""
    if not isinstance(exc, OSError) or exc.errno not in WRITE_ERRNOS:
        return None
    where = exc.filename or out_dir
    return fail_for(where, f"cannot write the run ({exc.strerror}). Choose a writable --out, or make "
                           f"{os.path.dirname(os.path.abspath(out_dir))} writable and rerun with --resume to "
                           "continue from the last epoch saved")


def check_new_run_dir(path, *, overwrite=False):
    """Refuse an existing run directory, before any expensive work, unless `overwrite`."""
    if os.path.exists(path) and not overwrite:
        raise fail_for(os.path.abspath(path), "already exists; choose another --out or pass --overwrite")


@contextlib.contextmanager
def new_run_dir(path, *, overwrite=False):
    """Yield a scratch folder that becomes `path` only if the block succeeds.

    Args:
        path: the run directory to create.
        overwrite: replace an existing run at `path`.

    Raises:
        CodapackError: `path` exists and `overwrite` is false.
    """
    path = os.path.abspath(path)
    check_new_run_dir(path, overwrite=overwrite)  # again: another process may have written it meanwhile
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(dir=parent, prefix=f".{os.path.basename(path)}.", suffix=".partial")
    try:
        yield scratch
        if os.path.exists(path):
            shutil.rmtree(path)
        os.replace(scratch, path)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def read_run(path):
    """Read a run directory's `run.json`, checking that its weights are there.

    Args:
        path: a run directory written by `codapack train`.

    Returns:
        The run record (dict) with `dir` set to the absolute path.

    Raises:
        CodapackError: not a run directory, or its files are missing or unreadable.
    """
    path = os.path.abspath(path)
    record_path = os.path.join(path, RUN_FILE)
    if not os.path.isdir(path):
        raise fail_for(path, "no such run directory")
    if not os.path.isfile(record_path):
        raise fail_for(path, f"not a run directory: no {RUN_FILE}. Create one with `codapack train`")
    try:
        record = read_json(record_path)
    except (OSError, ValueError) as exc:
        raise fail_for(record_path, f"unreadable ({exc})") from None
    for key in ("network", "profile", "data", "split"):
        if key not in record:
            raise fail_for(record_path, f"missing `{key}`; was it written by `codapack train`?")
    if not os.path.isfile(os.path.join(path, WEIGHTS_FILE)):
        raise fail_for(path, f"missing {WEIGHTS_FILE}")
    record["dir"] = path
    return record


def weights_path(record):
    """Path of the weights file of a run read by `read_run`."""
    return os.path.join(record["dir"], WEIGHTS_FILE)


def load_run_network(record):
    """Rebuild a run's network from code and load its trained weights.

    Args:
        record: a run record from `read_run`.

    Returns:
        The `keras.Model`, mapping pixels 0..255 to probabilities.
    """
    from codapack.submission.networks import build_network

    spec = record["network"]
    network = build_network(spec["architecture"], spec["input_shape"], spec["num_classes"], spec["options"])
    network.load_weights(weights_path(record))
    return network


def manifest_of(records, weights, profile, *, batch_size, tta, files):
    """The submission manifest of `records` as one weighted ensemble.

    Args:
        records: run records from `read_run`.
        weights: one ensemble weight per record.
        profile: the competition `Profile` the runs share.
        batch_size: images per prediction batch in `model.py`.
        tta: the test-time augmentation policy `model.py` applies.
        files: one (format, path of the member's file relative to the manifest's folder, fallback note
            or None) per record.
    """
    import datetime

    import codapack
    from codapack.submission import manifest

    members = [manifest.member_entry(
        name=record["name"], member_format=member_format, file=file, architecture=record["network"]["architecture"],
        options=record["network"]["options"], preprocessing=record["network"]["preprocessing"], weight=weight,
        split_id=record["split"]["id"], data_sha256=record["data"]["sha256"], trained_with=record["versions"],
        trained_families=record.get("training", {}).get("augmentation", {}).get("families", []), fallback=fallback)
        for record, weight, (member_format, file, fallback) in zip(records, weights, files)]
    return manifest.new_manifest(
        competition=profile.name, input_shape=profile.input_shape, classes=profile.classes, batch_size=batch_size,
        tta=tta, members=members, codapack_version=codapack.__version__,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
