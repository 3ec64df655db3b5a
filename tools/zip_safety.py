"""Checking and unpacking a submission zip without trusting it.

A zip may come from anywhere: entries that climb out of the target folder,
absolute paths, links, or a few kilobytes that inflate to gigabytes are
refused with a message naming the zip and the entry, before anything is written.
"""

import os
import stat
import zipfile

from codapack.errors import fail_for

MAX_ENTRIES = 10_000
MAX_UNPACKED_BYTES = 4 * 1024 ** 3
MAX_RATIO = 200


def check_zip(path):
    """Validate a submission zip and return its entries.

    Args:
        path: the zip file.

    Returns:
        The list of `zipfile.ZipInfo` entries.

    Raises:
        CodapackError: missing, not a zip, unsafe entries, or too large unpacked.
            (A zip that is safe but not runnable, such as one without
            `model.py` at its root, is the harness's verdict, not an error.)
    """
    if not os.path.isfile(path):
        raise fail_for(path, "no such file")
    if not zipfile.is_zipfile(path):
        raise fail_for(path, "not a zip file")
    try:
        with zipfile.ZipFile(path) as zf:
            entries = zf.infolist()
            broken = zf.testzip()
    except (zipfile.BadZipFile, OSError, NotImplementedError) as exc:
        raise fail_for(path, f"unreadable zip ({exc})") from None
    if broken is not None:
        raise fail_for(path, f"entry {broken!r} is corrupt (CRC mismatch)")
    if len(entries) > MAX_ENTRIES:
        raise fail_for(path, f"holds {len(entries)} entries; at most {MAX_ENTRIES} are accepted")
    total = 0
    for entry in entries:
        _check_entry(path, entry)
        total += entry.file_size
        if entry.compress_size and entry.file_size / entry.compress_size > MAX_RATIO and entry.file_size > 2 ** 20:
            raise fail_for(path, f"entry {entry.filename!r} inflates {entry.file_size / entry.compress_size:.0f}x; "
                                 "refusing a likely zip bomb")
    if total > MAX_UNPACKED_BYTES:
        raise fail_for(path, f"unpacks to {total / 1024 ** 3:.1f} GiB; at most "
                             f"{MAX_UNPACKED_BYTES / 1024 ** 3:.0f} GiB are accepted")
    return entries


def _check_entry(path, entry):
    name = entry.filename
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise fail_for(path, f"entry {name!r} has an absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        raise fail_for(path, f"entry {name!r} climbs out of the submission folder ('..')")
    mode = entry.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise fail_for(path, f"entry {name!r} is a symbolic link; links are not accepted")


def unpack_zip(path, folder, entries=None):
    """Unpack `path` into `folder` (created if missing) and return the folder.

    Args:
        path: the zip.
        folder: where to unpack.
        entries: the result of an earlier `check_zip(path)`; checked here when None.
    """
    entries = check_zip(path) if entries is None else entries
    os.makedirs(folder, exist_ok=True)
    root = os.path.realpath(folder)
    with zipfile.ZipFile(path) as zf:
        for entry in entries:
            target = os.path.realpath(os.path.join(root, entry.filename))
            if not target.startswith(root + os.sep) and target != root:
                raise fail_for(path, f"entry {entry.filename!r} would be written outside the folder")
            zf.extract(entry, root)
    return root
