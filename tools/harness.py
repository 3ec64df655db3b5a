"""Run a submission zip the way the platform does: `python tools/harness.py submission.zip --data FILE.npz`.

The zip is unpacked into a fresh temporary folder and run in a separate Python
process (`tools/platform_worker.py`) with the platform's working directory,
only the submission folder on `sys.path`, no GPU, a stripped environment and
one time limit over `Model()` plus `predict`, walled in by bubblewrap where it
works (`tools/sandbox.py`). The output is checked, scored and recorded in the
leaderboard; the last line printed is JSON.
"""

import dataclasses
import importlib.metadata
import json
import os
import sys

import click
import numpy as np

from codapack.cli_common import command, emit_json, profile_option
from codapack.dataset import load_dataset
from codapack.errors import CodapackError
from codapack.files import file_sha256
from codapack.profile import WORKDIR_CHOICES, load_profile
from codapack.splits import SPLIT_NAMES, split_for
from evaluator.metrics import classification_metrics
from tools import diagnosis, leaderboard
from tools.diagnosis import OK
from tools.platform_process import crash_message, run_worker
from tools.sandbox import AUTO, NONE
from tools.scratch import scratch_dir
from tools.target_env import CURRENT, TARGET, resolve_python
from tools.zip_safety import check_zip, unpack_zip

MB = 1024 * 1024


@dataclasses.dataclass
class HarnessOptions:
    """How to run a submission.

    Args:
        split: "train", "val", "test", "final" (of the saved split of the data) or "all".
        dtype: "uint8" or "float32", the dtype of the images given to predict.
        workdir: "submission" or "elsewhere"; None follows the profile.
        time_limit_s: limit over Model() plus predict; None follows the profile.
        env: "current" (this Python) or "target" (the profile's pinned platform environment).
        python: an explicit interpreter to play the platform; overrides `env`.
        batch_check: how many samples to re-predict in smaller batches; 0 skips the check.
        probabilities: also collect `predict_proba(X)` when the model has it.
        shifted: also run on a corrupted copy of the split and report `shifted_accuracy`.
        memory_limit_mb: kill the run above this resident memory; None follows the profile (0: none).
        network: let the submission reach the network (off, as on the platform).
        sandbox: "auto" (bubblewrap where it works) or "none" (see tools/sandbox.py).
    """

    split: str = "test"
    dtype: str = "uint8"
    workdir: str = None
    time_limit_s: float = None
    env: str = CURRENT
    python: str = None
    batch_check: int = 8
    probabilities: bool = False
    shifted: bool = False
    memory_limit_mb: float = None
    network: bool = False
    sandbox: str = AUTO


def run_harness(zip_path, data_path, profile, options=HarnessOptions()):
    """Run a zip on labelled data as the platform would and score it.

    Args:
        zip_path: the submission zip.
        data_path: a competition `.npz` with labels.
        profile: the competition `Profile`.
        options: `HarnessOptions`.

    Returns:
        A JSON-ready dict: `verdict`, `error` (the message of a failed verdict),
        `warnings`, the headline metrics (`accuracy`; `precision`, `recall`, `f1`
        macro-averaged), `n`, `seconds`, `init_seconds`, `predict_seconds`,
        `peak_rss_mb`, the zip's hash, size and members, and how it was run.
    """
    dataset = load_dataset(data_path, profile)
    indices = np.arange(len(dataset)) if options.split == "all" else split_for(dataset, profile)[options.split]
    images, labels = dataset.subset(indices)
    result = run_submission(zip_path, images.astype(options.dtype, copy=False), profile, options)
    predictions = result.pop("predictions", None)
    result.pop("probabilities", None)
    if result["verdict"] == OK:
        metrics = classification_metrics(labels, predictions.astype(np.int64), profile.classes)
        result.update(accuracy=metrics["accuracy"], precision=metrics["precision_macro"],
                      recall=metrics["recall_macro"], f1=metrics["f1_macro"], metrics=metrics)
        if options.shifted:
            result["shifted_accuracy"] = _shifted_accuracy(zip_path, images, labels, profile, options)
    result.update(data_sha256=dataset.sha256, split=options.split, dtype=options.dtype)
    return result


def _shifted_accuracy(zip_path, images, labels, profile, options):
    """Accuracy of the zip on a corrupted copy of the images (see evaluator.corruptions.shifted_copy)."""
    from evaluator.corruptions import shifted_copy

    shifted = shifted_copy(images).astype(options.dtype, copy=False)
    run = run_submission(zip_path, shifted, profile, dataclasses.replace(options, batch_check=0, shifted=False))
    if run["verdict"] != OK:
        return None
    return float(np.mean(run["predictions"].astype(np.int64) == labels))


def run_submission(zip_path, images, profile, options=HarnessOptions()):
    """Run a zip on images as the platform would, without scoring.

    Args:
        zip_path: the submission zip.
        images: the array given to `predict`.
        profile: the competition `Profile`.
        options: `HarnessOptions` (`split` and `dtype` are not used here).

    Returns:
        The result dict of `run_harness` without metrics, plus `predictions`
        (and `probabilities` when asked for and available) as numpy arrays.

    Raises:
        CodapackError: the zip is missing, corrupt or hostile.
    """
    workdir = options.workdir or profile.platform_workdir
    limit = options.time_limit_s or profile.time_limit_s
    if options.memory_limit_mb is None:
        options = dataclasses.replace(options, memory_limit_mb=profile.memory_limit_mb)
    size = os.path.getsize(zip_path) if os.path.isfile(zip_path) else 0
    result = {"verdict": OK, "error": None, "warnings": [], "n": int(len(images)), "zip": os.path.abspath(zip_path),
              "zip_bytes": size, "env": options.env, "workdir": workdir, "time_limit_s": limit}
    entries = check_zip(zip_path)
    result.update(zip_sha256=file_sha256(zip_path))
    if size >= profile.failing_upload_mb * MB:
        return dict(result, verdict=diagnosis.TOO_LARGE,
                    error=f"the zip is {size / MB:.1f} MB; uploads of {profile.failing_upload_mb:g} MB and more fail")
    if size >= profile.safe_upload_mb * MB:
        result["warnings"].append(f"the zip is {size / MB:.1f} MB, above the {profile.safe_upload_mb:g} MB known "
                                  "to upload safely")
    with scratch_dir() as scratch:
        submission = unpack_zip(zip_path, os.path.join(scratch, "submission"), entries)
        result["members"] = _member_names(submission)
        static = diagnosis.static_verdict(submission, [entry.filename for entry in entries])
        if static:
            return dict(result, verdict=static[0], error=static[1])
        python = options.python or resolve_python(options.env, profile, log=_say)
        outcome, files = _run_in(scratch, submission, images, python, workdir, limit, options)
        result.update(_timings(outcome))
        if outcome["sandbox_warning"]:
            result["warnings"].append(outcome["sandbox_warning"])
        verdict, error = _verdict(outcome, files, submission, profile, options, len(images))
        result.update(verdict=verdict, error=error)
        result["warnings"] += _warnings(outcome["worker"], submission, workdir, options, profile)
        if verdict == OK:
            result["predictions"] = np.load(files["predictions"], allow_pickle=False)
            if os.path.exists(files["probabilities"]):
                result["probabilities"] = np.load(files["probabilities"], allow_pickle=False)
        elif outcome["worker"].get("traceback") or outcome["log"]:
            result["traceback"] = outcome["worker"].get("traceback") or outcome["log"][-3000:]
    return result


def _run_in(scratch, submission, images, python, workdir, limit, options):
    cwd = submission if workdir == "submission" else os.path.join(scratch, "elsewhere")
    output = os.path.join(scratch, "output")
    for folder in (cwd, output):
        os.makedirs(folder, exist_ok=True)
    files = {name: os.path.join(scratch, f"{name}.npy") for name in ("input", "predictions", "probabilities")}
    files["result"] = os.path.join(scratch, "result.json")
    files["watched"] = [cwd, submission, output]
    files["metadata_before"] = diagnosis.existing_metadata_files(files["watched"])
    np.save(files["input"], images)
    job = {"submission_dir": submission, "input": files["input"], "predictions": files["predictions"],
           "result": files["result"], "output_dir": output, "batch_check": options.batch_check,
           "probabilities": files["probabilities"] if options.probabilities else None}
    return run_worker(python, job, cwd, limit, len(images), run_dir=scratch, network=options.network,
                      sandbox_mode=options.sandbox, memory_limit_mb=options.memory_limit_mb or None), files


def _verdict(outcome, files, submission, profile, options, n):
    worker = outcome["worker"]
    if outcome["timed_out"]:
        return diagnosis.TIMEOUT, (f"Model() plus predict took longer than the {outcome['limit_s']:g} s limit; "
                                   f"killed in stage `{outcome['last_stage']}`")
    crashed = crash_message(outcome)
    if crashed:
        return diagnosis.CRASH, crashed
    if outcome["returncode"] != 0 or worker.get("stage") != "done":
        return diagnosis.run_verdict(worker, submission, diagnosis.keras_file_versions(submission),
                                     _env_keras_version(options, profile))
    written = diagnosis.new_metadata_files(files["watched"], files["metadata_before"])
    if written:
        return diagnosis.METADATA_FILE, (f"the submission wrote `{os.path.basename(written[0])}` during the run; "
                                         "Codabench reads a file of that name as a program's run command")
    problem = diagnosis.output_problem(np.load(files["predictions"], allow_pickle=False),
                                       worker["output_type"], n, profile.num_classes)
    return (diagnosis.BAD_OUTPUT, problem) if problem else (OK, None)


def _warnings(worker, submission, workdir, options, profile):
    warnings = []
    relative = [p for p in worker.get("relative_opens", []) if os.path.exists(os.path.join(submission, p))]
    if relative and workdir == "submission":
        warnings.append(f"model.py opens {', '.join(relative[:3])} relative to the working directory: it works "
                        "here because the profile runs from the submission folder, and breaks as soon as the "
                        "platform runs from another one (Codabench's generic worker does); use "
                        "os.path.dirname(__file__)")
    if worker.get("batch_consistent") is False:
        warnings.append("predictions change with the batch they come in (" + worker["batch_detail"] + "); "
                        "the platform may batch differently: use inference-mode layers, no per-batch statistics")
    env_keras = _env_keras_version(options, profile)
    for name, saved in diagnosis.keras_file_versions(submission).items():
        if saved and env_keras and diagnosis.version_tuple(saved) > diagnosis.version_tuple(env_keras):
            warnings.append(f"{name} was saved by Keras {saved}; the environment that ran it has {env_keras}")
    return warnings


def _env_keras_version(options, profile):
    """The Keras version of the environment that runs the submission, if known."""
    if options.env == TARGET and not options.python:
        pins = [p.split("==", 1)[1] for p in profile.platform_packages if p.replace(" ", "").startswith("keras==")]
        return pins[0] if pins else None
    try:
        return importlib.metadata.version("keras")
    except importlib.metadata.PackageNotFoundError:
        return None


def _timings(outcome):
    worker = outcome["worker"]
    return {"seconds": round(outcome["seconds"], 3), "init_seconds": _round(worker.get("init_seconds")),
            "predict_seconds": _round(worker.get("predict_seconds")),
            "peak_rss_mb": _round(worker.get("peak_rss_mb") or outcome["peak_tree_mb"] or None)}


def _member_names(submission):
    """Names of the runs inside a codapack-built zip; empty for other zips."""
    try:
        with open(os.path.join(submission, "manifest.json"), encoding="utf-8") as f:
            return [member["name"] for member in json.load(f)["members"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _say(message):
    click.echo(message, err=True)


def _round(value):
    return None if value is None else round(float(value), 3)


def summary_line(result):
    if result["verdict"] != OK:
        return f"verdict {result['verdict']} ({result['env']} environment): {result['error']}"
    return (f"verdict OK ({result['env']} environment): accuracy {result['accuracy']:.4f}, macro F1 {result['f1']:.4f} on {result['n']} images "
            f"in {result['seconds']:.1f} s (Model() {result['init_seconds']:.1f} s, predict "
            f"{result['predict_seconds']:.1f} s), peak memory {result['peak_rss_mb']:.0f} MB")


@command(name="harness")
@click.argument("zip_path", metavar="ZIP", type=click.Path())
@click.option("--data", "data_path", required=True, type=click.Path(), help="Labelled competition .npz.")
@click.option("--split", default="test", type=click.Choice(SPLIT_NAMES + ("all",)),
              help="Which images of --data to score: a split of the saved train/val/test split, or all.")
@click.option("--dtype", default="uint8", type=click.Choice(("uint8", "float32")),
              help="Dtype of the images given to predict (values 0..255 either way).")
@click.option("--workdir", default=None, type=click.Choice(WORKDIR_CHOICES),
              help="Working directory of the run [default: the profile's platform.workdir].")
@click.option("--time-limit", "time_limit_s", default=None, type=float,
              help="Seconds for Model() plus predict [default: the profile's limits.time_limit_s].")
@click.option("--phase", default=leaderboard.DEVELOPMENT, type=click.Choice(leaderboard.PHASES),
              help="development: score --split, shown at once; final: score the held-back final split, whose "
                   "scores the leaderboard hides until `leaderboard --reveal`.")
@click.option("--db", default=None, type=click.Path(), help="Leaderboard database [default: .codapack/leaderboard.sqlite].")
@click.option("--note", default="", help="Free note stored with the leaderboard entry.")
@click.option("--no-record", is_flag=True, help="Do not record this run in the leaderboard.")
@click.option("--env", default=CURRENT, type=click.Choice((CURRENT, TARGET)),
              help="Run in this Python, or in the profile's pinned platform environment (built once, cached).")
@click.option("--batch-check", default=8, help="Samples re-predicted in smaller batches to catch batch-dependent "
                                               "predictions; 0 skips.")
@click.option("--shifted", is_flag=True, help="Also score a corrupted copy of the split (one of 8 corruptions x 5 "
                                              "severities per image) and record it as the shifted accuracy.")
@click.option("--memory-limit", "memory_limit_mb", default=None, type=click.FloatRange(min=0),
              help="Kill the submission once its processes hold more than this many MB "
                   "[default: the profile's limits.memory_limit_mb; 0: no limit].")
@click.option("--network", is_flag=True, help="Let the submission reach the network (off by default, as on the platform).")
@click.option("--no-sandbox", is_flag=True, help="Run without bubblewrap even where it works (a warning says so).")
@profile_option
@click.option("--json", "as_json", is_flag=True,
              help="Print only the JSON line (it is always the last line printed).")
def main(zip_path, data_path, split, dtype, workdir, time_limit_s, phase, db, note, no_record, env, batch_check,
         shifted, memory_limit_mb, network, no_sandbox, profile_name, as_json):
    """Run a submission zip as the platform does, check its output and score it.

    Exits 1 unless the verdict is OK. Failed verdicts: NO_MODEL_PY, METADATA_FILE, TOO_LARGE,
    SYNTAX_ERROR, MISSING_PACKAGE, INIT_ARGUMENTS, RELATIVE_PATH, KERAS_VERSION, DESERIALIZATION,
    INIT_ERROR, PREDICT_ERROR, BAD_OUTPUT, TIMEOUT, CRASH.
    """
    profile = load_profile(profile_name)
    if time_limit_s is not None and time_limit_s <= 0:
        raise CodapackError(f"--time-limit should be positive. Received: {time_limit_s}")
    if phase == leaderboard.FINAL:
        if click.get_current_context().get_parameter_source("split").name != "DEFAULT" or no_record:
            raise CodapackError("--phase final scores the held-back final split and records it; "
                                "leave out --split and --no-record")
        split = leaderboard.FINAL
    options = HarnessOptions(split=split, dtype=dtype, workdir=workdir, time_limit_s=time_limit_s, env=env,
                             batch_check=max(batch_check, 0), shifted=shifted, memory_limit_mb=memory_limit_mb,
                             network=network, sandbox=NONE if no_sandbox else AUTO)
    result = run_harness(zip_path, data_path, profile, options)
    if not no_record:
        try:
            result["leaderboard_id"] = leaderboard.Leaderboard(db).record(result, profile.name, note=note, phase=phase)
        except CodapackError as exc:  # the verdict is printed all the same, with why it is not recorded
            result["leaderboard_error"] = str(exc)
            result["warnings"].append(f"not recorded in the leaderboard: {exc}")
    if phase == leaderboard.FINAL:
        result = leaderboard.seal(result)
    if result.get("traceback"):
        click.echo(result["traceback"], err=True)
    if not as_json:
        for warning in result["warnings"]:
            click.echo(f"warning: {warning}", err=True)
        click.echo(summary_line(result) if phase == leaderboard.DEVELOPMENT else leaderboard.final_summary(result))
    emit_json({k: v for k, v in result.items() if k not in ("metrics", "traceback")})
    if result["verdict"] != OK or result.get("leaderboard_error"):
        sys.exit(1)


if __name__ == "__main__":
    main()
