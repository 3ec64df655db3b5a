"""`codapack package`: runs to a verified submission zip."""

import os

import click

from codapack.cli.options import command, emit_json, json_option
from codapack.errors import CodapackError
from codapack.profile import load_profile
from codapack.submission.tta import POLICIES as TTA_POLICIES
from codapack.tools import member_formats
from codapack.tools.package import describe_size, package_runs


@command(name="package")
@click.argument("runs", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_path", default="submission.zip", type=click.Path(), help="The zip to write.")
@click.option("--weights", default=None, help="Comma-separated ensemble weights, one per run (default: equal).")
@click.option("--batch-size", default=64, help="Images per prediction batch inside model.py.")
@click.option("--tta", default="none", type=click.Choice(TTA_POLICIES),
              help="Test-time augmentation model.py applies: none, flips, d4 (8 rotations/flips), shifts.")
@click.option("--format", "member_format", default="auto", type=click.Choice((member_formats.AUTO, *member_formats.FORMATS)),
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
    if member_format != member_formats.AUTO:
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
    from codapack.tools.target_env import CURRENT
    from codapack.tools.verify import (
        COMPILED_SAMPLE_SIZE,
        THRESHOLDS,
        sample_labelled,
        verify_zip,
    )

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
