"""The submission manifest: `manifest.json`, its keys, a checked reader and a version check.

Shipped in every zip beside `model.py`, so it imports the standard library only. The
packager writes manifests with `new_manifest` and `member_entry`; the runtime, the
harness, the leaderboard and the evaluator read them with `read_manifest` or
`check_manifest`, so a key is named in this file and nowhere else.
"""

import json
import os
import zipfile

FILE = "manifest.json"
FORMAT = "codapack-submission"
VERSION = 1

KERAS = "keras"  # a member rebuilt from networks.py and its .weights.h5; the compiled formats are in compiled.py

# Top-level keys: name -> the types a value may have.
KEYS = {"format": (str,), "format_version": (int,), "competition": (str,), "input_shape": (list,),
        "classes": (list,), "batch_size": (int,), "tta": (str,), "members": (list,), "codapack": (str,),
        "created": (str,)}
# Member keys every entry has; `weights` (keras) or `model` (compiled) names its file.
MEMBER_KEYS = {"name": (str,), "format": (str,), "architecture": (str,), "options": (dict,),
               "preprocessing": (str, dict, type(None)), "weight": (int, float), "split_id": (str, type(None)),
               "data_sha256": (str, type(None)), "trained_with": (dict,), "trained_families": (list,)}
LIMIT = 1 << 20  # bytes: a larger manifest.json is not read from a zip
FILE_KEY = {KERAS: "weights"}  # every other format: "model"
FALLBACK = "fallback"  # why a member asked to ship compiled ships as keras


class ManifestError(ValueError):
    """A manifest that is missing, unreadable, or not the one this runtime reads."""


def file_key(member_format):
    """The member key naming its file: `weights` for keras, `model` for compiled formats."""
    return FILE_KEY.get(member_format, "model")


def member_entry(*, name, member_format, file, architecture, options, preprocessing, weight, split_id,
                 data_sha256, trained_with, trained_families, fallback=None):
    """One member of `members`: its network, its file in the zip and where it came from."""
    entry = {"name": name, "format": member_format, "architecture": architecture, "options": options,
             "preprocessing": preprocessing, "weight": float(weight), "split_id": split_id,
             "data_sha256": data_sha256, "trained_with": dict(trained_with),
             "trained_families": list(trained_families), file_key(member_format): file}
    if fallback:
        entry[FALLBACK] = fallback
    return entry


def new_manifest(*, competition, input_shape, classes, batch_size, tta, members, codapack_version, created):
    """A complete manifest, checked as `read_manifest` will check it."""
    manifest = {"format": FORMAT, "format_version": VERSION, "competition": competition,
                "input_shape": list(input_shape), "classes": list(classes), "batch_size": int(batch_size),
                "tta": tta, "members": list(members), "codapack": codapack_version, "created": created}
    return check_manifest(manifest, "the new manifest")


def read_manifest(path):
    """The manifest at `path` (a file, or a folder holding `manifest.json`), every key checked.

    Raises:
        ManifestError: naming the file, the key and what it should be.
    """
    if os.path.isdir(path):
        path = os.path.join(path, FILE)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise ManifestError(f"{path}: missing; the zip should hold the {FILE} that `codapack package` "
                            "writes") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path}: unreadable ({exc}); package the runs again") from None
    return check_manifest(manifest, path)


def read_manifest_in_zip(zip_path):
    """The checked manifest inside the submission zip at `zip_path`.

    Raises:
        ManifestError: no readable manifest at the zip's root, or one larger than `LIMIT`.
    """
    where = f"{zip_path}: {FILE}"
    try:
        with zipfile.ZipFile(zip_path) as zf:
            info = zf.getinfo(FILE)
            if info.file_size > LIMIT:
                raise ManifestError(f"{where}: should be under {LIMIT} bytes. Received: {info.file_size}")
            manifest = json.loads(zf.read(info))
    except KeyError:
        raise ManifestError(f"{where}: missing; not a zip `codapack package` wrote") from None
    except (OSError, UnicodeDecodeError, ValueError, zipfile.BadZipFile) as exc:
        raise ManifestError(f"{where}: unreadable ({exc})") from None
    return check_manifest(manifest, where)


def check_manifest(manifest, where):
    """`manifest` itself once every key has the right type; `where` names it in the error."""
    if not isinstance(manifest, dict):
        raise ManifestError(f"{where}: should be a JSON object. Received: {type(manifest).__name__}")
    if manifest.get("format") != FORMAT or manifest.get("format_version") != VERSION:
        raise ManifestError(f"{where}: should be a {FORMAT} manifest of version {VERSION}. Received: format "
                            f"{manifest.get('format')!r}, version {manifest.get('format_version')!r}; "
                            "package the runs again with this codapack")
    _check_keys(manifest, KEYS, where)
    if not manifest["members"]:
        raise ManifestError(f"{where}: `members` should list at least one member. Received: []")
    for i, member in enumerate(manifest["members"]):
        at = f"{where}: members[{i}]"
        if not isinstance(member, dict):
            raise ManifestError(f"{at} should be an object. Received: {type(member).__name__}")
        _check_keys(member, {**MEMBER_KEYS, file_key(member.get("format")): (str,)}, at)
    return manifest


def _check_keys(mapping, keys, where):
    for key, types in keys.items():
        if key not in mapping:
            raise ManifestError(f"{where}: `{key}` is missing; package the runs again with this codapack")
        if not isinstance(mapping[key], types) or isinstance(mapping[key], bool) and bool not in types:
            expected = " or ".join(t.__name__ for t in types)
            raise ManifestError(f"{where}: `{key}` should be {expected}. Received: {mapping[key]!r}")


def version_warnings(manifest, running):
    """One line per member whose `trained_with` versions differ from `running` ({package: version}).

    Keras rebuilds a network from code and loads its weights, which crosses minor versions;
    but a difference is where a platform-only failure starts, so it is said before predict.
    """
    lines = []
    for member in manifest["members"]:
        differ = [f"{package} {member['trained_with'][package]} (here {version})"
                  for package, version in sorted(running.items())
                  if version and member["trained_with"].get(package) not in (None, version)]
        if differ:
            lines.append(f"member `{member['name']}` was trained with {', '.join(differ)}")
    return lines
