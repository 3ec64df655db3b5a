"""Checking and unpacking a submission zip without trusting it.

A zip may come from anywhere: entries that climb out of the target folder,
absolute paths, links, duplicate names, or a few kilobytes that inflate to
gigabytes are refused with a message naming the zip and the entry, before
anything is written. Every check reads only the central directory (names and
declared sizes); nothing is inflated until all of them pass, and inflating
never writes more than an entry declares (zipfile stops there and checks the CRC).
"""

import os
import stat
import zipfile

from codapack.errors import fail_for

MAX_ENTRIES = 2_000
MAX_UNPACKED_BYTES = 4 * 1024 ** 3
MAX_RATIO = 200
# Entries or zips smaller than this unpacked may compress as well as they like.
RATIO_FLOOR_BYTES = 2 ** 20


def check_zip(path):
    """Validate a submission zip and return its entries.

    Args:
        path: the zip file.

    Returns:
        The list of `zipfile.ZipInfo` entries.

    Raises:
        CodapackError: missing, not a zip, unsafe or duplicate entries, or too large unpacked.
            (A zip that is safe but not runnable, such as one without
            `model.py` at its root, is the harness's verdict, not an error.)
    """
    if not os.path.isfile(path):
        raise fail_for(path, "no such file")
    if not zipfile.is_zipfile(path):
        raise fail_for(path, "not a zip file")
    try:
        with zipfile.ZipFile(path) as zf:
            entries = zf.infolist()  # the central directory only
            check_directory(path, entries)
            broken = zf.testzip()  # bounded now: every declared size has passed
    except (zipfile.BadZipFile, OSError, NotImplementedError, EOFError) as exc:
        raise fail_for(path, f"unreadable zip ({exc})") from None
    if broken is not None:
        raise fail_for(path, f"entry {broken!r} is corrupt (CRC mismatch)")
    return entries


def check_directory(path, entries):
    """Refuse a zip from its central directory alone: entry count, names, declared sizes and ratios."""
    if len(entries) > MAX_ENTRIES:
        raise fail_for(path, f"holds {len(entries)} entries; at most {MAX_ENTRIES} are accepted")
    seen = {}
    for entry in entries:
        _check_entry(path, entry)
        key = _normalised(entry.filename)
        if key in seen:
            raise fail_for(path, f"holds entry {entry.filename!r} twice (also as {seen[key]!r}); an unpacker "
                                 "keeps only one of them. Rebuild the zip with each file once")
        seen[key] = entry.filename
        if entry.file_size > RATIO_FLOOR_BYTES and entry.file_size > MAX_RATIO * max(entry.compress_size, 1):
            raise fail_for(path, f"entry {entry.filename!r} inflates {entry.file_size / max(entry.compress_size, 1):.0f}x; "
                                 "refusing a likely zip bomb")
    total = sum(entry.file_size for entry in entries)
    if total > MAX_UNPACKED_BYTES:
        raise fail_for(path, f"unpacks to {total / 1024 ** 3:.1f} GiB; at most "
                             f"{MAX_UNPACKED_BYTES / 1024 ** 3:.0f} GiB are accepted")
    packed = os.path.getsize(path)
    if total > RATIO_FLOOR_BYTES and total > MAX_RATIO * packed:
        raise fail_for(path, f"unpacks to {total / packed:.0f}x its {packed} bytes; refusing a likely zip bomb "
                             "(entries that share compressed data)")


def _normalised(name):
    """The path an unpacker writes an entry to, relative to its folder."""
    return "/".join(part for part in name.replace("\\", "/").split("/") if part not in ("", "."))


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
            try:
                zf.extract(entry, root)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                raise fail_for(path, f"entry {entry.filename!r} cannot be unpacked ({exc})") from None
    return root
