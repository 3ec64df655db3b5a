"""What the files a submission ships say about a failure: Keras versions, broken archives, working-directory effects.

Pure inspection of the unpacked folder, used by `tools/diagnosis.py` to name
the real cause of a verdict rather than the first plausible one.
"""

import glob
import json
import os
import zipfile

# Saved models whose loading depends on the Keras version (`.weights.h5` holds weights only).
MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
LFS_POINTER = b"version https://git-lfs.github.com/spec/"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HDF5_SIGNATURE_OFFSETS = (0, 512, 1024, 2048)  # where the HDF5 format allows its superblock to start


def version_tuple(text):
    parts = []
    for piece in str(text).split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def shipped_files(folder):
    """Relative paths of every file under `folder`, sorted."""
    found = []
    for root, _, files in os.walk(folder):
        found += [os.path.relpath(os.path.join(root, name), folder) for name in files]
    return sorted(found)


def saved_models(folder):
    """Shipped files that hold a whole saved model (`.keras`, `.h5` other than `.weights.h5`)."""
    return [name for name in shipped_files(folder)
            if name.endswith(MODEL_SUFFIXES) and not name.endswith(".weights.h5")]


def keras_file_versions(folder):
    """{relative path: Keras version it records} for every `.keras` file under `folder`."""
    return {name: _recorded_keras_version(os.path.join(folder, name))
            for name in shipped_files(folder) if name.endswith(".keras")}


def _recorded_keras_version(path):
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("metadata.json")).get("keras_version")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, RuntimeError, NotImplementedError):
        return None


def broken_file_problem(path):
    """Why a shipped file cannot be what its name says (a Git LFS pointer, a truncated archive), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(max(HDF5_SIGNATURE_OFFSETS) + len(HDF5_SIGNATURE))
    except OSError:
        return None
    name = os.path.basename(path)
    if head.startswith(LFS_POINTER):
        return f"{name} is a Git LFS pointer, not the file: run `git lfs pull` before zipping"
    if name.endswith(".keras") and not zipfile.is_zipfile(path):
        return f"{name} is truncated or not a valid .keras archive ({os.path.getsize(path)} bytes): save it again"
    if name.endswith((".h5", ".hdf5")) and not any(head[o:o + 8] == HDF5_SIGNATURE for o in HDF5_SIGNATURE_OFFSETS):
        return f"{name} is truncated or not an HDF5 file ({os.path.getsize(path)} bytes): save it again"
    return None


def broken_files(folder):
    """{relative path: problem} for every shipped file that is a LFS pointer or a broken model archive."""
    problems = {}
    for name in shipped_files(folder):
        problem = broken_file_problem(os.path.join(folder, name))
        if problem:
            problems[name] = problem
    return problems


def working_directory_differences(reached, cwd, submission):
    """The relative paths a run reached that mean something else from `cwd` than from the submission folder.

    Args:
        reached: the worker's [how, path] pairs ("opens", "lists", "globs", "probes").
        cwd: the folder the run started in.
        submission: the unpacked submission.

    Returns:
        [(how, path)] where the file exists, the listing or the glob differs between the two folders.
    """
    if os.path.realpath(cwd) == os.path.realpath(submission):
        return []
    return [(how, path) for how, path in reached if _seen(how, path, cwd) != _seen(how, path, submission)]


def reached_in_submission(reached, submission):
    """[(how, path)] of relative paths that find something in the submission folder, one per path."""
    found, paths = [], set()
    for how, path in reached:
        if path not in paths and _seen(how, path, submission):
            found.append((how, path))
            paths.add(path)
    return found


def _seen(how, path, folder):
    target = os.path.join(folder, path)
    if how == "lists":
        return sorted(os.listdir(target)) if os.path.isdir(target) else None
    if how == "globs":
        return sorted(glob.glob(path, root_dir=folder))
    return os.path.exists(target)
