"""`codapack harness`: run a submission zip as the platform does, check its output, score and record it."""

import click

from codapack.cli.options import command, data_option, db_option, emit_json, json_option, profile_option
from codapack.errors import CodapackError
from codapack.profile import WORKDIR_CHOICES, load_profile
from codapack.splits import SPLIT_NAMES
from codapack.tools import leaderboard
from codapack.tools.diagnosis import OK
from codapack.tools.harness import AUTO, DTYPES, HarnessOptions, run_harness, summary_line
from codapack.tools.sandbox import AUTO as SANDBOX_AUTO
from codapack.tools.sandbox import DOCKER as SANDBOX_DOCKER
from codapack.tools.sandbox import MODES as SANDBOX_MODES
from codapack.tools.sandbox import NONE as SANDBOX_NONE
from codapack.tools.target_env import CURRENT, TARGET


@command(name="harness")
@click.argument("zip_path", metavar="ZIP", type=click.Path())
@data_option
@click.option("--split", default="test", type=click.Choice(SPLIT_NAMES + ("all",)),
              help="Which images of --data to score: a split of the saved train/val/test split, or all.")
@click.option("--dtype", default="uint8", type=click.Choice(DTYPES),
              help="Dtype of the images given to predict (values 0..255 either way).")
@click.option("--workdir", default=None, type=click.Choice(WORKDIR_CHOICES),
              help="Working directory of the run [default: the profile's platform.workdir].")
@click.option("--time-limit", "time_limit_s", default=None, type=float,
              help="Seconds for Model() plus predict [default: the profile's limits.time_limit_s].")
@click.option("--phase", default=leaderboard.DEVELOPMENT, type=click.Choice(leaderboard.PHASES),
              help="development: score --split, shown at once; final: score the held-back final split, whose "
                   "scores the leaderboard hides until `leaderboard --reveal`.")
@db_option
@click.option("--note", default="", help="Free note stored with the leaderboard entry.")
@click.option("--no-record", is_flag=True, help="Do not record this run in the leaderboard.")
@click.option("--env", default=AUTO, type=click.Choice((AUTO, CURRENT, TARGET)),
              help="Run in this Python (current), in the profile's pinned platform environment (target; built "
                   "once, cached), or in the target one when the zip ships .keras or .h5 models (auto). Not with "
                   "--sandbox docker, which runs the image's own Python (current or target is refused there).")
@click.option("--batch-check", default=8, help="After the timed run, re-predict the first N images as one batch and "
                                               "the first two one by one, to catch batch-dependent predictions; "
                                               "0 skips.")
@click.option("--shifted", is_flag=True, help="Also score a corrupted copy of the split (one of 21 corruptions x 5 "
                                              "severities per image, 9 families) and record the accuracy on families "
                                              "the zip never trained on (held out: the one to trust) and on the rest.")
@click.option("--memory-limit", "memory_limit_mb", default=None, type=click.FloatRange(min=0),
              help="Kill the submission once its processes hold more than this many MB "
                   "[default: the profile's limits.memory_limit_mb; 0: no limit].")
@click.option("--network", is_flag=True, help="Let the submission reach the network (off by default, as on the platform).")
@click.option("--sandbox", "sandbox_mode", default=SANDBOX_AUTO, type=click.Choice(SANDBOX_MODES),
              help="How the submission is walled in.\n\n\b\n"
                   "auto: bubblewrap where it works, else unwalled with a warning.\n"
                   "docker: a container of the platform's image (--docker-image), run by its own Python.\n"
                   "none: unwalled, as you, with a warning (same as --no-sandbox).")
@click.option("--no-sandbox", is_flag=True, help="Same as --sandbox none.")
@click.option("--docker-image", default=None, metavar="IMAGE",
              help="The platform's Docker image for --sandbox docker, pulled beforehand "
                   "[default: the profile's platform.image].")
@profile_option
@json_option
def main(zip_path, data_path, split, dtype, workdir, time_limit_s, phase, db, note, no_record, env, batch_check,
         shifted, memory_limit_mb, network, sandbox_mode, no_sandbox, docker_image, profile_name, as_json):
    """Run a submission zip as the platform does, check its output and score it.

    Exits 1 unless the verdict is OK. Failed verdicts: NO_MODEL_PY, METADATA_FILE, TOO_LARGE, BAD_ZIP,
    SYNTAX_ERROR, MISSING_PACKAGE, INIT_ARGUMENTS, RELATIVE_PATH, MISSING_FILE, BROKEN_FILE, KERAS_VERSION,
    DESERIALIZATION, INIT_ERROR, PREDICT_ERROR, BAD_OUTPUT, TIMEOUT, CRASH. A failed verdict's full error
    and the run's output go to a log file under .codapack/harness-logs/, whose path is printed.
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
                             network=network, sandbox=_sandbox(sandbox_mode, no_sandbox, docker_image),
                             docker_image=docker_image)
    result = run_harness(zip_path, data_path, profile, options)
    if not no_record and result.get("zip_sha256"):
        try:
            result["leaderboard_id"] = leaderboard.Leaderboard(db).record(result, profile.name, note=note, phase=phase)
        except CodapackError as exc:  # the verdict is printed all the same, with why it is not recorded
            result["leaderboard_error"] = str(exc)
            result["warnings"].append(f"not recorded in the leaderboard: {exc}")
    if phase == leaderboard.FINAL:
        result = leaderboard.seal(result)
    for warning in result["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    click.echo(summary_line(result) if phase == leaderboard.DEVELOPMENT else leaderboard.final_summary(result))
    if result.get("log"):
        click.echo(f"full error and output: {result['log']}", err=True)
    if as_json:
        emit_json({k: v for k, v in result.items() if k != "metrics"})
    if result["verdict"] != OK or result.get("leaderboard_error"):
        click.get_current_context().exit(1)


def _sandbox(mode, no_sandbox, docker_image):
    """The sandbox asked for: --no-sandbox is --sandbox none; --docker-image goes with --sandbox docker only."""
    if no_sandbox:
        if mode not in (SANDBOX_AUTO, SANDBOX_NONE):
            raise CodapackError(f"--no-sandbox is --sandbox none and cannot go with --sandbox {mode}")
        mode = SANDBOX_NONE
    if docker_image and mode != SANDBOX_DOCKER:
        raise CodapackError(f"--docker-image applies only with --sandbox docker. Received: --sandbox {mode}")
    return mode
