"""File helpers: atomic output and content hashes.

Every stage writes through `atomic_path` so that an interrupted run leaves no
truncated JSON, weights or zip behind: a reader sees the old file or the whole
new one, never half.
"""

import contextlib
import hashlib
import json
import os
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the same folder; rename it to `path` on success.

    Args:
        path: the final destination. Its folder is created if missing.

    Yields:
        A path to write to. It is removed if the block raises.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    # The temporary name ends with the final name so extension-sensitive writers
    # (np.savez, keras' save_weights) accept it.
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=f"-{base}")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_json(path, obj):
    """Write `obj` as indented JSON to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=False)
            f.write("\n")


def read_json(path):
    """Read a JSON file written by `write_json`."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def file_sha256(path):
    """sha256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
