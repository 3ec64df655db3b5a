"""Package trained runs into a submission zip: `python tools/package.py runs/A [runs/B ...] --out submission.zip`.

The zip holds, at its root, the fixed runtime (`model.py`, `networks.py`,
`compiled.py` ... from `submission/`), a `manifest.json` naming each member's
network, options, weight and format, and each member's file under `members/`:
`.weights.h5` for a keras member, `.tflite` for a compiled one (`--format`, see
tools/member_formats.py).
"""

import datetime
import json
import os
import zipfile

import click

import codapack
from codapack.files import atomic_path, file_sha256
from codapack.cli_common import command, emit_json, json_option
from codapack.errors import CodapackError
from codapack.profile import load_profile
from submission.tta import POLICIES as TTA_POLICIES
from tools import member_formats
from trainer import run_dir

SUBMISSION_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "submission")
RUNTIME_FILES = ("model.py", "networks.py", "applications.py", "scratch_networks.py", "tta.py", "compiled.py")
MANIFEST_FORMAT = "codapack-submission"
MANIFEST_VERSION = 1
MB = 1024 * 1024


def build_manifest(records, weights, profile, batch_size, tta="none", files=None):
    """The manifest `submission/model.py` reads: members, their networks and weights.

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
    members, sources = [], []
    for i, (record, weight, member) in enumerate(zip(records, weights, files)):
        arcname = f"members/{i:02d}-{_safe_name(record['name'])}{member_formats.SUFFIX[member.format]}"
        network = record["network"]
        entry = {"name": record["name"], "format": member.format, "architecture": network["architecture"],
                 "options": network["options"], "preprocessing": network["preprocessing"],
                 "weight": float(weight), "split_id": record["split"]["id"], "data_sha256": record["data"]["sha256"],
                 "trained_with": record["versions"],
                 "trained_families": record.get("training", {}).get("augmentation", {}).get("families", [])}
        entry["weights" if member.format == member_formats.KERAS else "model"] = arcname
        if member.note:
            entry["fallback"] = member.note
        members.append(entry)
        sources.append((arcname, member.source))
    manifest = {"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION,
                "competition": profile.name, "input_shape": list(profile.input_shape),
                "classes": list(profile.classes), "batch_size": int(batch_size), "tta": tta,
                "members": members, "codapack": codapack.__version__,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    return manifest, sources


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
            zf.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")
            for arcname, source in weight_files:
                zf.write(source, arcname)
        size = os.path.getsize(tmp)
        if size >= profile.failing_upload_mb * MB:
            raise CodapackError(f"{out_path}: the zip would be {size / MB:.1f} MB; uploads of "
                                f"{profile.failing_upload_mb:g} MB and more fail. Use fewer or smaller members")
        digest = file_sha256(tmp)
    return {"path": os.path.abspath(out_path), "bytes": size, "sha256": digest,
            "members": [m["name"] for m in manifest["members"]], "profile_source": profile.source,
            "format": member_format, "member_formats": [m["format"] for m in manifest["members"]],
            "fallbacks": [m["fallback"] for m in manifest["members"] if "fallback" in m],
            "data_path": records[0]["data"]["path"],
            "safe_upload_mb": profile.safe_upload_mb, "failing_upload_mb": profile.failing_upload_mb}


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
    size_mb = result["bytes"] / MB
    verdict = "safe to upload" if size_mb < result["safe_upload_mb"] else "above the safe upload size"
    return (f"{result['path']}: {size_mb:.2f} MB, {verdict} (safe below {result['safe_upload_mb']:g} MB, "
            f"uploads fail from {result['failing_upload_mb']:g} MB)")


@command(name="package")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_path", default="submission.zip", type=click.Path(), help="The zip to write.")
@click.option("--weights", default=None, help="Comma-separated ensemble weights, one per run (default: equal).")
@click.option("--batch-size", default=64, help="Images per prediction batch inside model.py.")
@click.option("--tta", default="none", type=click.Choice(TTA_POLICIES),
              help="Test-time augmentation model.py applies: none, flips, d4 (8 rotations/flips), shifts.")
@click.option("--format", "member_format", default="auto", type=click.Choice(("auto", *member_formats.FORMATS)),
              help="How members ship: keras (.weights.h5), tflite (float32) or tflite-fp16 (half the size). "
                   "auto: the fastest that passes verification (keras with --no-verify).")
@click.option("--verify/--no-verify", default=True,
              help="Run the zip in the profile's pinned platform environment and compare with this one.")
@json_option
def main(runs, out_path, weights, batch_size, tta, member_format, verify, as_json):
    """Package one run, or several as an averaging ensemble, into a submission zip.

    By default the zip is then verified: it runs in this environment and in the profile's pinned
    platform environment (built once, cached) on the same images, and must give the same labels with
    probabilities within 1e-4. A zip of compiled (TFLite) members runs in the platform's environment
    and is compared with the same runs packaged as keras, on the validation split, with its format's
    thresholds (tools/verify.py). A zip that fails is renamed to OUT.rejected and the command exits 1.
    """
    parsed = None
    if weights:
        try:
            parsed = [float(w) for w in weights.split(",")]
        except ValueError:
            raise click.BadParameter(f"should be comma-separated numbers. Received: {weights}") from None
    result = _package_formats(runs, out_path, dict(weights=parsed, batch_size=batch_size, tta=tta),
                              _candidate_formats(member_format, verify), verify)
    if as_json:
        emit_json(result)
    if result["verification"].get("rejected"):
        raise CodapackError(f"{out_path}: failed verification in the target environment: "
                            f"{result['verification']['problem']}. Moved to {out_path}.rejected; do not upload it")
    if result["verification"].get("not_run"):
        why = result["verification"].get("unverified") or result["verification"]["problem"]
        raise CodapackError(f"{out_path}: written but not verified: {why}. Fix that "
                            "and package again, or pass --no-verify to accept the zip unverified")


def _candidate_formats(member_format, verify):
    if member_format != "auto":
        return [member_format]
    if not verify:
        click.echo("--format auto with --no-verify: members ship as keras, the one format that needs no "
                   "check; pass --format tflite or tflite-fp16 to ship compiled members unverified", err=True)
        return [member_formats.KERAS]
    return list(member_formats.AUTO_ORDER)


def _package_formats(runs, out_path, options, formats, verify):
    """Package in each format in turn until one passes verification; the last failure is rejected."""
    say = lambda message: click.echo(message, err=True)  # noqa: E731
    with member_formats.scratch_folder() as folder:
        twin = None
        for i, member_format in enumerate(formats):
            result = package_runs(runs, out_path, member_format=member_format, log=say, **options)
            shipped = sorted(set(result["member_formats"]))
            click.echo(f"packaged {len(result['members'])} member(s) as {', '.join(shipped)}: "
                       f"{', '.join(result['members'])}")
            click.echo(describe_size(result))
            if not verify:
                result["verification"] = {"verified": False, "problem": "skipped (--no-verify)"}
                return result
            compiled = shipped != [member_formats.KERAS]
            if compiled and twin is None:
                twin = package_runs(runs, os.path.join(folder, "keras-twin.zip"), **options)["path"]
            last = i == len(formats) - 1 or not compiled  # a zip all of keras members is the last resort
            result["verification"] = _verify(result, member_format if compiled else member_formats.KERAS,
                                             twin if compiled else None, reject=last)
            if last or not result["verification"].get("rejected"):
                return result
            click.echo(f"{member_format}: refused ({result['verification']['problem']}); trying {formats[i + 1]}")
    return result


def _verify(result, member_format="keras", twin=None, reject=True):
    from tools.verify import COMPILED_SAMPLE_SIZE, THRESHOLDS, sample_labelled, verify_zip
    from tools.target_env import CURRENT

    profile = load_profile(result["profile_source"])
    images, labels, where = sample_labelled(profile, result["data_path"], COMPILED_SAMPLE_SIZE if twin else 64)
    say = lambda message: click.echo(message, err=True)  # noqa: E731
    check = dict(log=say, reference_zip=twin, labels=labels if twin else None, thresholds=THRESHOLDS[member_format])
    try:
        report = verify_zip(result["path"], profile, images, **check)
    except CodapackError as exc:  # the target environment could not be built here
        click.echo(f"not verified in the target environment: {exc}", err=True)
        if twin is None:
            return {"verified": False, "problem": str(exc), "not_run": True}
        # Compiled members are still held to their thresholds against the Keras twin, here.
        report = dict(verify_zip(result["path"], profile, images, env=CURRENT, **check), unverified=str(exc),
                      not_run=True)
    report["images"] = where
    if report["problem"] is None:
        click.echo(_agreement(report, profile, where))
        return report
    if reject:
        os.replace(result["path"], result["path"] + ".rejected")
    return dict(report, rejected=True)


def _agreement(report, profile, where):
    difference = report["max_probability_difference"]
    within = f", probabilities within {difference:.1e}" if difference is not None else ""
    if report["label_agreement"] == 1.0:
        labels = "same labels"
    else:
        labels = f"{report['label_agreement']:.2%} equal labels"
    if report["accuracy"] is not None:
        within += f", accuracy {report['accuracy']:.4f} (keras twin {report['reference_accuracy']:.4f})"
    where_run = (f"verified in the target environment ({' '.join(profile.platform_packages)})" if report["verified"]
                 else "checked in this environment only")
    return f"{where_run} on {where}: {labels}{within}"


if __name__ == "__main__":
    main()
