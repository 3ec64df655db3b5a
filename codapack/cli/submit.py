"""`codapack submit`: upload a zip the harness passed to a Codabench competition."""

import sys

import click

from codapack.cli.options import command, db_option, emit_json, json_option, profile_option
from codapack.profile import MB, load_profile
from codapack.tools import leaderboard
from codapack.tools.codabench import CodabenchClient, load_credentials
from codapack.tools.submit import local_checks, planned_requests, scores_of, submit


@command(name="submit")
@click.argument("zip_path", metavar="ZIP", type=click.Path(exists=True, dir_okay=False))
@click.option("--competition", required=True, help="The Codabench competition id (the number in its URL).")
@click.option("--phase", "phase_name", required=True, help="The phase's name (or id), e.g. Development.")
@click.option("--url", default=None, help="The Codabench site [default: $CODABENCH_URL, the config file, "
                                          "or https://www.codabench.org].")
@click.option("--config", "config_path", default=None, type=click.Path(),
              help="TOML file with url, token or username and password [default: ~/.config/codapack/codabench.toml].")
@db_option
@click.option("--dry-run", is_flag=True, help="Run the local checks and show what would be sent; send nothing.")
@click.option("--force", is_flag=True, help="Upload even when the last harness verdict is not OK.")
@click.option("--no-wait", is_flag=True, help="Return once the submission is created; do not poll.")
@click.option("--poll-interval", default=10.0, help="Seconds between status polls.")
@click.option("--wait-timeout", default=3600.0, help="Give up polling after this many seconds.")
@click.option("--retries", default=3, help="Attempts of the file upload before giving up.")
@profile_option
@json_option
def main(zip_path, competition, phase_name, url, config_path, db, dry_run, force, no_wait, poll_interval,
         wait_timeout, retries, profile_name, as_json):
    """Upload a submission zip to a Codabench competition phase, then follow its status and score."""
    checks = local_checks(zip_path, load_profile(profile_name), leaderboard.Leaderboard(db), force=force)
    entry = checks["last_entry"]
    click.echo(f"{zip_path}: {checks['bytes'] / MB:.2f} MB, sha256 {checks['sha256'][:12]}, last harness verdict "
               + (f"{entry['verdict']} (entry {entry['id']}, {entry['phase']}, {entry['created']})" if entry else "none"))
    for warning in checks["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    credentials = load_credentials(url, config_path)
    if dry_run:
        click.echo(f"dry run: nothing sent. Credentials: {_describe(credentials)}. Would send:")
        for method, target, body in planned_requests(credentials, competition, phase_name, zip_path, checks["bytes"]):
            click.echo(f"  {method} {target}" + (f"  {body}" if body is not None else ""))
        if as_json:
            emit_json(dict(checks, dry_run=True))
        return
    client = CodabenchClient(credentials, retries=retries, log=click.echo)
    result = submit(client, zip_path, competition, phase_name, wait=not no_wait, poll_s=poll_interval,
                    wait_timeout_s=wait_timeout)
    scores = scores_of(result)
    click.echo(f"submission {result['id']}: {result.get('status')}"
               + ("; " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()) if scores else ""))
    if as_json:
        emit_json(dict(checks, submission_id=result["id"], status=result.get("status"), scores=scores))
    if result.get("status") in ("Failed", "Cancelled", "Unknown"):
        sys.exit(1)


def _describe(credentials):
    if credentials.token:
        return f"a token from {credentials.source}, for {credentials.url}"
    if credentials.username:
        return f"user {credentials.username} from {credentials.source}, for {credentials.url}"
    return f"none found (a real upload would stop here), for {credentials.url}"
