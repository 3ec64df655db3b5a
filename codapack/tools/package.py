"""Package trained runs into a submission zip: `python tools/package.py runs/A [runs/B ...] --out submission.zip`.

The zip holds, at its root, the fixed runtime (`RUNTIME_FILES`, from `codapack/submission/`),
a `manifest.json` (keys in `submission/manifest.py`) naming each member's
network, options, weight and format, and each member's file under `members/`:
`.weights.h5` for a keras member, `.tflite` for a compiled one (`--format`, see
tools/member_formats.py).
"""

import json
import os
import zipfile

from codapack.errors import CodapackError
from codapack.files import atomic_path, file_sha256
from codapack.profile import UPLOAD_FAILS, load_profile
from codapack.submission.manifest import FILE as MANIFEST_FILE
from codapack.submission.tta import POLICIES as TTA_POLICIES
from codapack.tools import member_formats
from codapack.trainer import run_dir

SUBMISSION_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "submission")
RUNTIME_FILES = ("model.py", "manifest.py", "networks.py", "applications.py", "scratch_networks.py", "tta.py",
                 "compiled.py")


def build_manifest(records, weights, profile, batch_size, tta="none", files=None):
    """The manifest `submission/model.py` reads, and where each member's file comes from.

    Args:
        records: run records from `trainer.run_dir.read_run`.
        weights: one ensemble weight per record.
        profile: the competition `Profile` all runs share.
        batch_size: images per prediction batch in `model.py`.
        tta: the test-time augmentation policy `model.py` applies (see submission/tta.py).
        files: one `member_formats.MemberFile` per record; keras weights from the runs when None.

    Returns:
        (manifest dict, list of (path in zip, source file) for the members' files).
    """
    if files is None:
        files = [member_formats.MemberFile(member_formats.KERAS, run_dir.weights_path(r)) for r in records]
    arcnames = [f"members/{i:02d}-{_safe_name(record['name'])}{member_formats.SUFFIX[member.format]}"
                for i, (record, member) in enumerate(zip(records, files))]
    manifest = run_dir.manifest_of(records, weights, profile, batch_size=batch_size, tta=tta,
                                   files=[(m.format, arcname, m.note) for m, arcname in zip(files, arcnames)])
    return manifest, [(arcname, member.source) for arcname, member in zip(arcnames, files)]


def package_runs(run_paths, out_path, *, weights=None, batch_size=64, tta="none", member_format="keras",
                 log=print):
    """Write a submission zip for one run or an ensemble of runs.

    Args:
        run_paths: run directories written by `codapack train`.
        out_path: the zip to write (atomically).
        weights: ensemble weights, one per run; equal when None.
        batch_size: images per prediction batch in `model.py`.
        tta: the test-time augmentation policy `model.py` applies.
        member_format: "keras", "tflite" or "tflite-fp16" (see tools/member_formats.py); a member
            that cannot be converted ships as keras, reported through `log`.
        log: where conversion fallbacks are reported.

    Returns:
        A dict with `path`, `bytes`, `sha256`, `members`, `format`, `member_formats`, `fallbacks`
        and the profile's size limits.

    Raises:
        CodapackError: unreadable runs, runs of different competitions, bad
            weights, or a zip above the size at which uploads fail.
    """
    if not run_paths:
        raise CodapackError("give at least one run directory to package")
    _check_out_path(out_path)
    records = [run_dir.read_run(path) for path in run_paths]
    profile = load_profile(records[0]["profile"]["source"])
    for record in records[1:]:
        if record["profile"]["name"] != profile.name:
            raise CodapackError(f"{record['dir']}: trained for competition `{record['profile']['name']}`, "
                                f"not `{profile.name}`; an ensemble must share one competition")
    _check_members(records, profile)
    weights = _check_weights(weights, len(records))
    if batch_size < 1:
        raise CodapackError(f"--batch-size should be at least 1. Received: {batch_size}")
    if tta not in TTA_POLICIES:
        raise CodapackError(f"--tta should be one of {', '.join(TTA_POLICIES)}. Received: {tta!r}")
    if member_format not in member_formats.FORMATS:
        raise CodapackError(f"--format should be one of {', '.join(member_formats.FORMATS)}. "
                            f"Received: {member_format!r}")
    with member_formats.scratch_folder() as converted, atomic_path(out_path) as tmp:
        files = member_formats.member_files(records, member_format, converted, log=log)
        manifest, weight_files = build_manifest(records, weights, profile, batch_size, tta, files)
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in RUNTIME_FILES:
                zf.write(os.path.join(SUBMISSION_DIR, name), name)
            zf.writestr(MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
            for arcname, source in weight_files:
                zf.write(source, arcname)
        size = os.path.getsize(tmp)
        upload, sentence = profile.upload_size(size)
        if upload == UPLOAD_FAILS:
            raise CodapackError(f"{out_path}: the zip would be {sentence}. Use fewer or smaller members")
        digest = file_sha256(tmp)
    return {"path": os.path.abspath(out_path), "bytes": size, "sha256": digest,
            "members": [m["name"] for m in manifest["members"]], "profile_source": profile.source,
            "format": member_format, "member_formats": [m["format"] for m in manifest["members"]],
            "fallbacks": [m["fallback"] for m in manifest["members"] if "fallback" in m],
            "data_path": records[0]["data"]["path"],
            "upload": upload, "upload_note": sentence}


def _check_out_path(out_path):
    """Refuse an output that cannot be written before anything is built."""
    if os.path.isdir(out_path):
        raise CodapackError(f"--out should be the path of a .zip file. Received: {out_path}, an existing "
                            f"directory; use {os.path.join(out_path, 'submission.zip')}")
    folder = os.path.dirname(os.path.abspath(out_path))
    if os.path.isdir(folder) and not os.access(folder, os.W_OK):
        raise CodapackError(f"--out should be in a writable folder. Received: {out_path} ({folder} is read-only)")


def _check_members(records, profile):
    """Cheap checks that always run, --no-verify or not: one class count, readable weights."""
    for record in records:
        classes = record["network"].get("num_classes")
        if classes != profile.num_classes:
            raise CodapackError(f"{record['dir']}: predicts {classes} classes, but the ensemble's competition "
                                f"`{profile.name}` (from {records[0]['dir']}) has {profile.num_classes}; "
                                "every member must predict the same classes")
        _check_weights_file(run_dir.weights_path(record))


def _check_weights_file(path):
    """Open the HDF5 file and visit every object: a truncated or corrupt file fails here, not on the platform."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            h5.visititems(lambda name, item: item.shape if isinstance(item, h5py.Dataset) else None)
    except (OSError, KeyError, RuntimeError, ValueError) as exc:
        raise CodapackError(f"{path}: unreadable weights ({exc}); retrain the run or restore the file") from None


def _check_weights(weights, count):
    if weights is None:
        return [1.0] * count
    if len(weights) != count or any(not w > 0 for w in weights):
        raise CodapackError(f"--weights should give {count} positive numbers, one per run. Received: {weights}")
    return weights


def _safe_name(name):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60] or "member"


def describe_size(result):
    """One line: the zip and how its size fares on upload."""
    return f"{result['path']}: {result['upload_note']}"
