"""submit.py against a local stand-in for Codabench's API (tests/codabench_server.py), never the internet."""

import socket

import pytest
from click.testing import CliRunner

from codapack.files import file_sha256
from tests.codabench_server import PASSWORD, TOKEN, USER, FakeCodabench
from tests.conftest import TINY_PROFILE, last_json_line, make_zip
from codapack.tools.leaderboard import Leaderboard
from codapack.cli.submit import main


@pytest.fixture(autouse=True)
def local_only(monkeypatch, tmp_path):
    """Refuse any connection off 127.0.0.1, and keep the user's own Codabench settings out."""
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        assert address[0] == "127.0.0.1", f"a test tried to reach {address}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    for name in ("CODABENCH_TOKEN", "CODABENCH_USERNAME", "CODABENCH_PASSWORD", "CODABENCH_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CODAPACK_CODABENCH_CONFIG", str(tmp_path / "no-such-config.toml"))
    monkeypatch.setattr("codapack.tools.codabench.time.sleep", lambda s: None)


@pytest.fixture
def site():
    with FakeCodabench() as fake:
        yield fake


@pytest.fixture
def db(tmp_path):
    return str(tmp_path / "lb.sqlite")


def _zip(tmp_path, db, verdict="OK", name="submission.zip"):
    path = make_zip(tmp_path / name, {"model.py": "class Model: pass\n", "blob.bin": bytes(range(256)) * 40})
    if verdict:
        Leaderboard(db).record({"zip": path, "zip_sha256": file_sha256(path), "verdict": verdict, "n": 5,
                                "accuracy": 0.5 if verdict == "OK" else None}, "tiny")
    return path


def _submit(site, zip_path, db, *extra, env=None, phase="Development"):
    args = [zip_path, "--competition", "42", "--phase", phase, "--url", site.url, "--db", db,
            "--poll-interval", "0", *extra]
    return CliRunner().invoke(main, args, env={"CODABENCH_TOKEN": TOKEN, **(env or {})})


def test_submit_completes_like_the_web_page(tmp_path, site, db):
    zip_path = _zip(tmp_path, db)
    result = _submit(site, zip_path, db, "--json")
    assert result.exit_code == 0, result.output
    assert "status: Running" in result.output and "submission 1: Finished; accuracy 0.8125" in result.output
    assert last_json_line(result.output)["scores"] == {"accuracy": 0.8125}
    (key, dataset), = site.datasets.items()
    assert dataset == {"type": "submission", "competition": 42, "request_sassy_file_name": "submission.zip",
                       "file_name": "submission.zip", "file_size": len(open(zip_path, "rb").read()),
                       "completed": True}
    assert site.stored[f"/storage/{key}.zip"] == open(zip_path, "rb").read()
    assert site.submissions[1]["phase"] == 7 and site.submissions[1]["data"] == key
    storage_put = [headers for method, path, headers in site.requests if path.startswith("/storage/")]
    assert storage_put and "Authorization" not in storage_put[0]  # the token never goes to the storage


def test_credentials_from_a_config_file(tmp_path, site, db):
    config = tmp_path / "codabench.toml"
    config.write_text(f'url = "{site.url}"\ntoken = "{TOKEN}"\n')
    result = CliRunner().invoke(main, [_zip(tmp_path, db), "--competition", "42", "--phase", "development",
                                       "--db", db, "--config", str(config), "--poll-interval", "0"])
    assert result.exit_code == 0, result.output
    config.write_text("token = [unclosed")
    broken = CliRunner().invoke(main, [_zip(tmp_path, db), "--competition", "42", "--phase", "x", "--db", db,
                                       "--config", str(config)])
    assert broken.exit_code == 1 and f"{config}: not a valid TOML file" in broken.output


def test_expired_token_is_a_clear_error_and_nothing_is_uploaded(tmp_path, site, db):
    site.tokens.clear()
    result = _submit(site, _zip(tmp_path, db), db)
    assert result.exit_code == 1
    assert "Codabench rejected the token from the environment (Invalid token.): it has expired" in result.output
    assert "Traceback" not in result.output and not site.datasets


def test_expired_token_is_renewed_by_logging_in(tmp_path, site, db):
    site.tokens.clear()
    result = _submit(site, _zip(tmp_path, db), db, env={"CODABENCH_USERNAME": USER, "CODABENCH_PASSWORD": PASSWORD})
    assert result.exit_code == 0, result.output
    assert "logging in again" in result.output and "Finished" in result.output


def test_upload_broken_midway_is_retried(tmp_path, site, db):
    site.failing_uploads = 1
    zip_path = _zip(tmp_path, db)
    result = _submit(site, zip_path, db)
    assert result.exit_code == 0, result.output
    assert "upload attempt 1/3 failed" in result.output
    assert list(site.stored.values()) == [open(zip_path, "rb").read()]


def test_upload_that_keeps_failing_stops_with_a_clear_error(tmp_path, site, db):
    site.failing_uploads = 99
    result = _submit(site, _zip(tmp_path, db), db, "--retries", "2")
    assert result.exit_code == 1
    assert "the upload to Codabench's storage failed 2 times" in result.output
    assert "nothing was submitted" in result.output and not site.submissions


@pytest.mark.parametrize("phase, fault, message", [
    ("Warm-up", None, "phase 'Warm-up' has ended and no longer accepts submissions"),
    ("Final", None, "phase 'Final' has not started yet"),
    ("Test", None, "competition 42 has no phase 'Test'; its phases: 'Development' (id 7)"),
    ("Development", "limit", "will not take a submission to phase 'Development': Reached the daily limit"),
    ("Development", "not approved", "Codabench refused the submission to phase 'Development': You do not have "
                                    "access to this competition"),
])
def test_rejected_phase_is_a_clear_error(tmp_path, site, db, phase, fault, message):
    if fault == "limit":
        site.can_submit = (False, "Reached the daily limit of submissions for this phase")
    if fault == "not approved":
        site.approved = False
    result = _submit(site, _zip(tmp_path, db), db, phase=phase)
    assert result.exit_code == 1 and message in result.output, result.output
    assert not site.submissions
    if fault != "not approved":
        assert not site.datasets  # refused before anything was uploaded


def test_dry_run_sends_nothing_and_shows_the_requests(tmp_path, site, db):
    result = _submit(site, _zip(tmp_path, db), db, "--dry-run")
    assert result.exit_code == 0, result.output
    assert not site.requests
    assert f"POST {site.url}/api/datasets/" in result.output and "'type': 'submission'" in result.output
    assert "last harness verdict OK" in result.output and TOKEN not in result.output


def test_zip_without_an_ok_harness_verdict_is_refused_unless_forced(tmp_path, site, db):
    never = _zip(tmp_path, db, verdict=None, name="never.zip")
    result = _submit(site, never, db, "--dry-run")
    assert result.exit_code == 1 and "never.zip: has never been run through the harness" in result.output
    failed = _zip(tmp_path, db, verdict="ERROR", name="failed.zip")
    result = _submit(site, failed, db, "--dry-run")
    assert result.exit_code == 1 and "failed its last harness run" in result.output and "ERROR" in result.output
    forced = _submit(site, failed, db, "--dry-run", "--force")
    assert forced.exit_code == 0 and "warning: --force" in forced.output


def test_zip_at_the_failing_upload_size_is_refused(tmp_path, site, db):
    profile = tmp_path / "small.toml"
    profile.write_text(TINY_PROFILE.replace("safe_upload_mb = 5", "safe_upload_mb = 0.001")
                       .replace("failing_upload_mb = 10", "failing_upload_mb = 0.002"))
    result = _submit(site, _zip(tmp_path, db), db, "--dry-run", "--force", "--profile", str(profile))
    assert result.exit_code == 1 and "uploads of 0.002 MB and more fail" in result.output
