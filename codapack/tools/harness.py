"""Run a submission zip the way the platform does: `python tools/harness.py submission.zip --data FILE.npz`.

The zip is unpacked into a fresh temporary folder and run in a separate Python
process (`tools/platform_worker.py`) with the platform's working directory,
only the submission folder on `sys.path`, no GPU, a stripped environment and
one time limit over `Model()` plus `predict`, walled in by bubblewrap where it
works, or in a container of the platform's Docker image (`tools/sandbox.py`).
The output is checked, scored and recorded in the leaderboard; the last line
printed is JSON, and a failed run's full exception and output go to a log file
whose path is printed.
"""

import dataclasses
import datetime
import importlib.metadata
import os
import zipfile
import zlib

import click
import numpy as np

from codapack.dataset import load_dataset
from codapack.errors import CodapackError
from codapack.files import atomic_path, file_sha256
from codapack.metrics import classification_metrics
from codapack.profile import UPLOAD_FAILS, UPLOAD_RISKY
from codapack.splits import split_for, state_dir
from codapack.submission.manifest import ManifestError, read_manifest, read_manifest_in_zip
from codapack.tools import diagnosis, sandbox
from codapack.tools.diagnosis import OK
from codapack.tools.platform_process import AFTER_PREDICT, crash_message, run_worker
from codapack.tools.sandbox import AUTO as SANDBOX_AUTO
from codapack.tools.scratch import scratch_dir
from codapack.tools.shipped_files import reached_in_submission, saved_models, working_directory_differences
from codapack.tools.target_env import CURRENT, TARGET, resolve_python
from codapack.tools.zip_safety import check_zip, unpack_zip

# `--env auto`: the target environment for zips that ship saved models, whose loading is what differs
# between Keras versions; this Python for the rest (weights rebuilt in code load the same in both).
AUTO = "auto"
# The environment of a run in the platform's Docker image, named in the result and the verdicts.
DOCKER_ENV = "docker"
# What Codabench runs a competition in when its bundle names no `docker_image` (its competition.yaml reference).
CODABENCH_DEFAULT_IMAGE = "codalab/codalab-legacy:py3"
DTYPES = ("uint8", "float32")  # what the platform may hand predict: pixels 0..255 either way
# What reading or unpacking a zip may raise besides CodapackError: every one ends in a BAD_ZIP verdict.
ZIP_ERRORS = (CodapackError, zipfile.BadZipFile, zipfile.LargeZipFile, RuntimeError, NotImplementedError, OSError,
              EOFError, ValueError, zlib.error)


@dataclasses.dataclass
class HarnessOptions:
    """How to run a submission.

    Args:
        split: "train", "val", "test", "final" (of the saved split of the data) or "all".
        dtype: "uint8" or "float32", the dtype of the images given to predict.
        workdir: "submission" or "elsewhere"; None follows the profile.
        time_limit_s: limit over Model() plus predict; None follows the profile.
        env: "current" (this Python), "target" (the profile's pinned platform environment) or
            "auto" (target when the zip ships `.keras` or `.h5` models, else current).
        python: an explicit interpreter to play the platform; overrides `env`.
        batch_check: how many samples to re-predict as one smaller batch (and the first two alone),
            after the timed run; 0 skips the check.
        probabilities: also collect `predict_proba(X)` when the model has it.
        shifted: also run on a corrupted copy of the split and report `shifted_held_out_accuracy`
            (families none of the zip's members trained on: the one to trust),
            `shifted_trained_accuracy` and `shifted_accuracy` (all families).
        memory_limit_mb: kill the run above this resident memory; None follows the profile (0: none).
        network: let the submission reach the network (off, as on the platform).
        sandbox: "auto" (bubblewrap where it works), "docker" (a container of the platform's image,
            whose own Python runs the submission: `env` and `python` do not apply) or "none"
            (see tools/sandbox.py).
        docker_image: the platform's image for "docker"; None follows the profile's `platform.image`.
    """

    split: str = "test"
    dtype: str = "uint8"
    workdir: str = None
    time_limit_s: float = None
    env: str = AUTO
    python: str = None
    batch_check: int = 8
    probabilities: bool = False
    shifted: bool = False
    memory_limit_mb: float = None
    network: bool = False
    sandbox: str = SANDBOX_AUTO
    docker_image: str = None


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

    Raises:
        CodapackError: --sandbox docker cannot run here (no docker, no engine, no image), before anything runs.
    """
    options = docker_ready(options, profile)
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
            result.update(_shifted_scores(zip_path, images, labels, profile, options))
    result.update(data_sha256=dataset.sha256, split=options.split, dtype=options.dtype)
    return result


def _shifted_scores(zip_path, images, labels, profile, options):
    """The zip's accuracy on a corrupted copy of the images, split into held-out and trained families.

    The families a zip trained on come from its manifest; a zip codapack did not
    make declares none, so every family counts as held out for it.
    """
    from codapack.evaluator.corruptions import shifted_copy
    from codapack.evaluator.robustness import shifted_scores

    shifted = shifted_copy(images).astype(options.dtype, copy=False)
    run = run_submission(zip_path, shifted, profile, dataclasses.replace(options, batch_check=0, shifted=False))
    if run["verdict"] != OK:
        return {"shifted_accuracy": None}
    scores = shifted_scores(labels, run["predictions"].astype(np.int64), _trained_families(zip_path))
    return {"shifted_accuracy": scores["shifted_accuracy"], "shifted_held_out_accuracy": scores["held_out_accuracy"],
            "shifted_trained_accuracy": scores["trained_accuracy"], "shifted_families": scores["per_family"],
            "held_out_families": scores["held_out_families"]}


def _trained_families(zip_path):
    """The union of the families the zip's members trained on (manifest `trained_families`); [] when unknown."""
    try:
        manifest = read_manifest_in_zip(zip_path)
    except ManifestError:
        return []
    return sorted({family for member in manifest["members"] for family in member["trained_families"]})


def run_submission(zip_path, images, profile, options=HarnessOptions()):
    """Run a zip on images as the platform would, without scoring.

    Args:
        zip_path: the submission zip.
        images: the array given to `predict`.
        profile: the competition `Profile`.
        options: `HarnessOptions` (`split` and `dtype` are not used here).

    Returns:
        The result dict of `run_harness` without metrics, plus `predictions`
        (and `probabilities` when asked for and available) as numpy arrays;
        `log`, the path of the log file, for a verdict other than OK.
        A zip that cannot be read or is unsafe gets the verdict BAD_ZIP.

    Raises:
        CodapackError: --sandbox docker cannot run here (no docker, no engine, no image), before anything runs.
    """
    options = docker_ready(options, profile)
    workdir = options.workdir or profile.platform_workdir
    limit = options.time_limit_s or profile.time_limit_s
    if options.memory_limit_mb is None:
        options = dataclasses.replace(options, memory_limit_mb=profile.memory_limit_mb)
    size = os.path.getsize(zip_path) if os.path.isfile(zip_path) else 0
    result = {"verdict": OK, "error": None, "warnings": [], "n": int(len(images)), "zip": os.path.abspath(zip_path),
              "zip_bytes": size, "env": options.env, "workdir": workdir, "time_limit_s": limit}
    if options.sandbox == sandbox.DOCKER:
        result["docker_image"] = options.docker_image
    if os.path.isfile(zip_path):
        result.update(zip_sha256=file_sha256(zip_path))
    try:
        entries = check_zip(zip_path)
    except ZIP_ERRORS as exc:
        return _with_log(result, *diagnosis.zip_verdict(zip_path, exc), details=f"{type(exc).__name__}: {exc}")
    upload, sentence = profile.upload_size(size)
    if upload == UPLOAD_FAILS:
        return _with_log(result, diagnosis.TOO_LARGE, f"the zip is {sentence}")
    if upload == UPLOAD_RISKY:
        result["warnings"].append(f"the zip is {sentence}")
    with scratch_dir() as scratch:
        try:
            submission = unpack_zip(zip_path, os.path.join(scratch, "submission"), entries)
        except ZIP_ERRORS as exc:
            return _with_log(result, *diagnosis.zip_verdict(zip_path, exc), details=f"{type(exc).__name__}: {exc}")
        result["members"] = _member_names(submission)
        static = diagnosis.static_verdict(submission, [entry.filename for entry in entries])
        if static:
            return _with_log(result, *static)
        env, python = _environment(options, profile, submission, result["warnings"])
        outcome, files = _run_in(scratch, submission, images, python, workdir, limit, options)
        result.update(_timings(outcome), env=env)
        if outcome["sandbox_warning"]:
            result["warnings"].append(outcome["sandbox_warning"])
        context = diagnosis.RunContext(submission, env, _env_keras_version(env, options, profile),
                                       _platform_keras_version(profile))
        if _failed(outcome):
            context.relative_cause = _working_directory_cause(outcome, files, submission, python, images, limit,
                                                              options)
        verdict, error, predictions = _verdict(outcome, files, context, profile, result)
        result["warnings"] += _warnings(outcome, submission, workdir, context)
        if verdict != OK:
            return _with_log(result, verdict, error, outcome=outcome)
        result["predictions"] = predictions
        if os.path.exists(files["probabilities"]):
            result["probabilities"] = np.load(files["probabilities"], allow_pickle=False)
    return result


def docker_ready(options, profile):
    """`options` with the Docker image filled in, once Docker can run it; unchanged for the other sandboxes.

    Raises:
        CodapackError: one line naming what is missing (the image's name, docker, its engine, the
            image itself) and the fix; asking for Docker never falls back to another sandbox.
    """
    if options.sandbox not in sandbox.MODES:
        raise CodapackError(f"`sandbox` should be one of {sandbox.MODES}. Received: {options.sandbox!r}")
    if options.sandbox != sandbox.DOCKER:
        return options
    if options.env != AUTO or options.python:
        chosen = f"python {options.python}" if options.python else f"--env {options.env}"
        raise CodapackError(f"{chosen} does not apply with --sandbox docker: the platform's image runs the "
                            "submission in its own Python. Leave out --env, or use another sandbox")
    image = options.docker_image or profile.platform_image
    if not image:
        raise CodapackError(f"--sandbox docker needs the platform's Docker image: pass --docker-image IMAGE or set "
                            f"`platform.image` in {profile.source or 'the profile'} (Codabench's default image is "
                            f"{CODABENCH_DEFAULT_IMAGE}, unless the competition names its own)")
    problem = sandbox.docker_problem(image)
    if problem:
        raise CodapackError(problem)
    return dataclasses.replace(options, docker_image=image)


def _environment(options, profile, submission, warnings):
    """(env name, interpreter) for the run; `auto` picks the target for zips that ship saved models."""
    if options.sandbox == sandbox.DOCKER:
        return DOCKER_ENV, sandbox.IMAGE_PYTHON
    if options.python:
        return options.env, options.python
    models = saved_models(submission)
    env = (TARGET if models else CURRENT) if options.env == AUTO else options.env
    try:
        python = resolve_python(env, profile, log=_say)
    except CodapackError as exc:
        if options.env != AUTO:
            raise
        reason = str(exc).splitlines()[0][:150]
        warnings.append(f"not the platform: the target environment is unavailable ({reason}); judged in this Python")
        return CURRENT, resolve_python(CURRENT, profile)
    if env == CURRENT and models:
        warnings.append(f"not the platform: the zip ships {models[0]}, and this Python has Keras "
                        f"{_env_keras_version(CURRENT, options, profile)}, the platform "
                        f"{_platform_keras_version(profile)}; --env target runs it as the platform does")
    return env, python


def _run_in(scratch, submission, images, python, workdir, limit, options, visible=None):
    cwd = submission if workdir == "submission" else os.path.join(scratch, "elsewhere")
    output = os.path.join(scratch, "output")
    for folder in (cwd, output):
        os.makedirs(folder, exist_ok=True)
    files = {name: os.path.join(scratch, f"{name}.npy") for name in ("input", "predictions", "probabilities")}
    files["result"] = os.path.join(scratch, "result.json")
    files["cwd"] = cwd
    files["watched"] = [cwd, submission, output]
    files["metadata_before"] = diagnosis.existing_metadata_files(files["watched"])
    np.save(files["input"], images)
    job = {"submission_dir": submission, "input": files["input"], "predictions": files["predictions"],
           "result": files["result"], "output_dir": output, "batch_check": options.batch_check,
           "probabilities": files["probabilities"] if options.probabilities else None}
    return run_worker(python, job, cwd, limit, len(images), run_dir=visible or scratch, network=options.network,
                      sandbox_mode=options.sandbox, memory_limit_mb=options.memory_limit_mb or None,
                      image=options.docker_image), files


def _failed(outcome):
    """True when the run ended before predict returned (the checks after it do not count), within the limit."""
    return not outcome["timed_out"] and outcome["worker"].get("stage") not in AFTER_PREDICT


def _working_directory_cause(outcome, files, submission, python, images, limit, options):
    """(how, path) when the run failed because of its folder, else None.

    Evidence is the exception naming a shipped file missing from the run's folder, or else, when a
    relative path the run reached resolves differently there, a run from the submission folder that
    gets further or fails differently.
    """
    worker = outcome["worker"]
    named = diagnosis.named_relative_files(worker.get("error", ""), files["cwd"], submission)
    if named:  # the exception itself names a shipped file that is not where the run looked
        return "opens", named[0]
    suspects = working_directory_differences(worker.get("relative_paths", []), files["cwd"], submission)
    if not suspects:
        return None
    scratch = os.path.dirname(files["result"])  # the sandbox shows the second run all of it: the submission too
    again, _ = _run_in(os.path.join(scratch, "from-submission"), submission, images, python, "submission", limit,
                       dataclasses.replace(options, batch_check=0, probabilities=False), visible=scratch)
    stages = ("import", "init", "predict", "predicted", "batch_check", "done")
    failed_at, reached = worker.get("stage"), again["worker"].get("stage")
    further = reached in stages and failed_at in stages and stages.index(reached) > stages.index(failed_at)
    otherwise = reached == failed_at and again["worker"].get("error") != worker.get("error")
    return suspects[0] if further or otherwise else None


def _verdict(outcome, files, context, profile, result):
    """(verdict, message, predictions as int64 or None); adds the output's and the projection's warnings."""
    worker = outcome["worker"]
    if outcome["timed_out"]:
        return diagnosis.TIMEOUT, (f"Model() plus predict took longer than the {outcome['limit_s']:g} s limit; "
                                   f"killed in stage `{outcome['last_stage']}`"), None
    crashed = crash_message(outcome)
    if crashed:
        return diagnosis.CRASH, crashed, None
    if _failed(outcome) and not worker:
        return diagnosis.CRASH, (f"the submission process ended without a result (exit status "
                                 f"{outcome['returncode']}; a negative status is the signal that killed it)"), None
    if _failed(outcome):
        return (*diagnosis.run_verdict(worker, context), None)
    written = diagnosis.new_metadata_files(files["watched"], files["metadata_before"])
    if written:
        return diagnosis.METADATA_FILE, (f"the submission wrote `{os.path.basename(written[0])}` during the run; "
                                         "Codabench reads a file of that name as a program's run command"), None
    raw = None if worker.get("output_unsaveable") else np.load(files["predictions"], allow_pickle=False)
    problem, predictions, warnings = diagnosis.output_check(raw, worker["output_type"], result["n"],
                                                            profile.num_classes, profile.strict_output,
                                                            worker.get("output_unsaveable"))
    result["warnings"] += warnings
    if problem:
        return diagnosis.BAD_OUTPUT, problem, None
    limit, expected = result["time_limit_s"], profile.expected_test_images
    projected = diagnosis.projected_seconds(worker.get("init_seconds"), worker.get("predict_seconds"),
                                            result["n"], expected)
    result["projected_seconds"] = _round(projected)
    verdict, message = diagnosis.time_verdict(projected, limit, result["n"], expected, worker.get("predict_seconds"))
    if verdict:
        return verdict, message, None
    if message:
        result["warnings"].append(message)
    return OK, None, predictions


def _warnings(outcome, submission, workdir, context):
    worker, warnings = outcome["worker"], []
    relative = [f"{how} {path}" for how, path in reached_in_submission(worker.get("relative_paths", []), submission)]
    if relative and workdir == "submission":
        warnings.append(f"model.py {', '.join(relative[:3])} relative to the working directory: it works "
                        "here because the profile runs from the submission folder, and breaks as soon as the "
                        "platform runs from another one (Codabench's generic worker does); use "
                        "os.path.dirname(__file__)")
    if worker.get("batch_consistent") is False:
        warnings.append("predictions change with the batch they come in (" + worker["batch_detail"] + "); "
                        "the platform may batch differently: use inference-mode layers, no per-batch statistics")
    if outcome.get("checks_timed_out"):
        warnings.append("the checks after predict (batch consistency, probabilities) did not finish in time; skipped")
    elif worker.get("error") and not _failed(outcome):
        warnings.append(f"the checks after predict raised {diagnosis.brief(worker['error'])}")
    elif not _failed(outcome) and worker.get("stage") != "done":
        warnings.append(f"the process ended during the checks after predict (exit status {outcome['returncode']})")
    warnings += diagnosis.newer_than_platform(submission, context.platform_keras, context.env)
    return warnings


def _env_keras_version(env, options, profile):
    """The Keras version of the environment that runs the submission, if known."""
    if env == TARGET and not options.python:
        return _platform_keras_version(profile)
    if env == CURRENT and not options.python:
        try:
            return importlib.metadata.version("keras")
        except importlib.metadata.PackageNotFoundError:
            return None
    return None


def _platform_keras_version(profile):
    pins = [p.split("==", 1)[1] for p in profile.platform_packages if p.replace(" ", "").startswith("keras==")]
    return pins[0] if pins else None


def _with_log(result, verdict, error, *, outcome=None, details=""):
    """`result` with a failed verdict, and a log file holding the full exception and the run's output."""
    result = dict(result, verdict=verdict, error=error)
    worker = (outcome or {}).get("worker", {})
    sections = [f"zip: {result['zip']}", f"verdict: {verdict} ({result['env']} environment, workdir "
                f"{result['workdir']})", f"message: {error}", "", "--- exception ---",
                worker.get("traceback") or details or "(none)", "", "--- output of the run (tail) ---",
                (outcome or {}).get("log") or "(none)"]
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    path = os.path.join(state_dir(), "harness-logs", f"{stamp}-{(result.get('zip_sha256') or 'nozip')[:12]}.log")
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write("\n".join(sections) + "\n")
    result["log"] = path
    return result


def _timings(outcome):
    worker = outcome["worker"]
    return {"seconds": round(outcome["seconds"], 3), "init_seconds": _round(worker.get("init_seconds")),
            "predict_seconds": _round(worker.get("predict_seconds")),
            "peak_rss_mb": _round(worker.get("peak_rss_mb") or outcome["peak_tree_mb"] or None)}


def _member_names(submission):
    """Names of the runs inside a codapack-built zip; empty for other zips."""
    try:
        return [member["name"] for member in read_manifest(submission)["members"]]
    except ManifestError:
        return []


def _say(message):
    click.echo(message, err=True)


def _round(value):
    return None if value is None else round(float(value), 3)


def summary_line(result):
    if result["verdict"] != OK:
        where = f"{result['env']} environment" if result.get("seconds") is not None else "before running"
        line = f"verdict {result['verdict']} ({where}): {result['error']}"
        return line if len(line) < 300 else line[:296] + "..."  # the whole story is in the log file
    return (f"verdict OK ({result['env']} environment): accuracy {result['accuracy']:.4f}, macro F1 {result['f1']:.4f} on {result['n']} images "
            f"in {result['seconds']:.1f} s (Model() {result['init_seconds']:.1f} s, predict "
            f"{result['predict_seconds']:.1f} s), peak memory {result['peak_rss_mb']:.0f} MB"
            + _shifted_summary(result))


def _shifted_summary(result):
    """The held-out-family figure first: it is the one that predicts a hidden, corrupted test set."""
    if result.get("shifted_held_out_accuracy") is None:
        return ""
    trained = result.get("shifted_trained_accuracy")
    held_out = result["held_out_families"]
    return (f"; corrupted copy: held-out families {result['shifted_held_out_accuracy']:.4f} "
            f"({', '.join(held_out) if len(held_out) <= 3 else f'{len(held_out)} families'})"
            + (f", trained families {trained:.4f}" if trained is not None else ", no family trained on"))
