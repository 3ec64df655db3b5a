"""`harness --sandbox docker`: the platform's image, run through a stand-in docker client and engine.

No Docker engine runs here or in CI, so `tests/fake_docker.py` plays the client
and the engine: it checks the `docker run` line, runs the container's command on
this machine with only the `-e` environment, and keeps each container outside
the harness's process tree, so that only `docker kill NAME` stops it. The walls
themselves (read-only root, no network, dropped capabilities, the memory
limit) are a real engine's work and are checked here as flags only.
"""

import csv
import os
import subprocess
import sys
import tempfile
import time

import pytest
from click.testing import CliRunner

from codapack.cli.main import main
from codapack.profile import load_profile
from codapack.tools import platform_process, sandbox
from codapack.tools.harness import HarnessOptions, run_harness
from tests import fake_docker
from tests.conftest import TINY_PROFILE, make_zip, processes_with
from tests.test_harness_sandbox import STUBBORN_MODEL

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "codapack-test/platform:1"

# Deterministic in the images alone, so any two sandboxes must score it alike.
BRIGHTNESS_MODEL = """
import numpy as np
class Model:
    def predict(self, X):
        X = np.asarray(X, dtype=np.float64)
        return (X.reshape(len(X), -1).mean(axis=1) // 7).astype(np.int64) % 4
"""


@pytest.fixture
def docker_state(tmp_path, monkeypatch):
    """The stand-in `docker` first on PATH, with no engine running."""
    state = str(tmp_path / "docker")
    monkeypatch.setenv("PATH", fake_docker.install(state) + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv(fake_docker.STATE_ENV, state)
    return state


@pytest.fixture
def engine(docker_state):
    """The stand-in engine running, with IMAGE pulled."""
    fake_docker.set_images(docker_state, [IMAGE])
    with open(os.path.join(docker_state, "engine.log"), "w") as log:
        process = subprocess.Popen([sys.executable, fake_docker.HERE, "--engine", docker_state],
                                   stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60  # a liveness bound for a loaded machine
    while not os.path.exists(os.path.join(docker_state, "engine.sock")):
        assert process.poll() is None and time.monotonic() < deadline, open(log.name).read()
        time.sleep(0.05)
    yield docker_state
    process.terminate()
    process.wait(timeout=60)


def _docker(*args):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60)


def _runs(state):
    return [call[1:] for call in fake_docker.calls(state) if call[:1] == ["run"]]


def _flag_values(argv, flag):
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


def _profile_with_image(tmp_path, image):
    path = tmp_path / "imaged.toml"
    path.write_text(TINY_PROFILE.replace('workdir = "submission"\n', f'workdir = "submission"\nimage = "{image}"\n'))
    return load_profile(str(path))


def test_a_submission_scores_the_same_in_the_image_as_unwalled(engine, tmp_path, tiny_data, tiny_profile):
    zip_path = make_zip(tmp_path / "bright.zip", {"model.py": BRIGHTNESS_MODEL})
    unwalled = run_harness(zip_path, tiny_data, tiny_profile, HarnessOptions(sandbox=sandbox.NONE))
    # The image comes from the profile's platform.image here; --docker-image in the tests below.
    docker = run_harness(zip_path, tiny_data, _profile_with_image(tmp_path, IMAGE),
                         HarnessOptions(sandbox=sandbox.DOCKER))
    assert unwalled["verdict"] == docker["verdict"] == "OK", docker["error"]
    assert 0 < docker["accuracy"] < 1 and docker["accuracy"] == unwalled["accuracy"]
    assert docker["f1"] == unwalled["f1"]
    assert docker["env"] == "docker" and docker["docker_image"] == IMAGE
    assert not any("no sandbox" in warning for warning in docker["warnings"])
    assert len(_runs(engine)) == 1  # it ran in the container, once


def test_the_container_sees_only_its_run_folder_and_the_worker(engine, tmp_path, tiny_data, tiny_profile, monkeypatch):
    monkeypatch.setenv("CODABENCH_TOKEN", "secret")
    # A comma in the run folder's path: docker reads --mount as CSV, so the path must be quoted.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch,with comma"))
    os.makedirs(tempfile.tempdir)
    zip_path = make_zip(tmp_path / "bright.zip", {"model.py": BRIGHTNESS_MODEL})
    limited = run_harness(zip_path, tiny_data, tiny_profile, HarnessOptions(
        sandbox=sandbox.DOCKER, docker_image=IMAGE, memory_limit_mb=300, batch_check=0))
    assert limited["verdict"] == "OK", limited["error"]
    open_net = run_harness(zip_path, tiny_data, tiny_profile, HarnessOptions(
        sandbox=sandbox.DOCKER, docker_image=IMAGE, network=True, memory_limit_mb=0, batch_check=0))
    assert open_net["verdict"] == "OK", open_net["error"]
    argv, networked = _runs(engine)

    assert {"--rm", "--init", "--read-only"} <= set(argv)
    assert _flag_values(argv, "--network") == ["none"] and _flag_values(networked, "--network") == []
    assert _flag_values(argv, "--cap-drop") == ["ALL"]
    assert _flag_values(argv, "--security-opt") == ["no-new-privileges"]
    assert _flag_values(argv, "--tmpfs") == ["/tmp"] and _flag_values(argv, "--pull") == ["never"]
    assert _flag_values(argv, "--user") == [f"{os.getuid()}:{os.getgid()}"]
    assert _flag_values(argv, "--memory") == ["300m"] and _flag_values(argv, "--memory-swap") == ["300m"]
    assert _flag_values(networked, "--memory") == []
    names = _flag_values(argv, "--name") + _flag_values(networked, "--name")
    assert all(name.startswith("codapack-harness-") for name in names) and len(set(names)) == 2

    environment = dict(value.split("=", 1) for value in _flag_values(argv, "-e"))
    assert environment["HOME"] == environment["TMPDIR"] == "/tmp" and environment["CUDA_VISIBLE_DEVICES"] == ""
    assert "PATH" not in environment and "CODABENCH_TOKEN" not in environment  # the image's PATH finds its python

    run_folder, worker = _flag_values(argv, "--mount")
    assert worker == f"type=bind,source={platform_process.WORKER},target={platform_process.WORKER},readonly"
    fields = next(csv.reader([run_folder]))
    folder = fields[1].split("=", 1)[1]
    assert fields == ["type=bind", f"source={folder}", f"target={folder}"] and '"source=' in run_folder
    assert os.path.dirname(os.path.dirname(folder)) == tempfile.tempdir and os.path.basename(folder) == "run"
    assert _flag_values(argv, "-w")[0].startswith(folder + "/")
    # Never the labelled data, by any path.
    assert not any(os.path.dirname(tiny_data) in arg for arg in argv)
    assert argv[argv.index(IMAGE) + 1:][:3] == ["python", "-I", platform_process.WORKER]


def test_a_time_out_kills_the_container_by_name(engine, tmp_path, tiny_data, tiny_profile):
    marker = f"codapack-test-{os.getpid()}-docker-timeout"
    zip_path = make_zip(tmp_path / "s.zip", {"model.py": STUBBORN_MODEL.format(marker=marker)})
    result = run_harness(zip_path, tiny_data, tiny_profile,
                         HarnessOptions(sandbox=sandbox.DOCKER, docker_image=IMAGE, time_limit_s=2.5))
    assert result["verdict"] == "TIMEOUT" and "longer than the 2.5 s limit" in result["error"]
    (argv,) = _runs(engine)
    assert ["kill", _flag_values(argv, "--name")[0]] in fake_docker.calls(engine)
    assert not processes_with(marker)  # the stand-in's containers die by `docker kill` only (next test)
    assert _docker("ps").stdout.strip() == ""


def test_the_stand_in_keeps_a_container_running_when_its_client_dies(engine, tmp_path):
    marker = f"codapack-test-{os.getpid()}-docker-orphan"
    client = subprocess.Popen(["docker", "run", "--rm", "--name", "orphan", "--mount",
                               f"type=bind,source={tmp_path},target={tmp_path}", "-w", str(tmp_path), IMAGE,
                               "python", "-c", f"import time; time.sleep(600)  # {marker}"])
    deadline = time.monotonic() + 60  # a liveness bound
    while not set(processes_with(marker)) - {client.pid}:  # the client's own command line holds the marker too
        assert client.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    client.kill()
    client.wait()
    assert processes_with(marker) and _docker("ps").stdout.split() == ["orphan"]
    assert _docker("kill", "orphan").returncode == 0
    assert not processes_with(marker) and _docker("ps").stdout.strip() == ""


HARNESS_SCRIPT = """
import sys
from codapack.profile import load_profile
from codapack.tools.harness import HarnessOptions, run_harness
run_harness(sys.argv[1], sys.argv[2], load_profile(sys.argv[3]), HarnessOptions(sandbox="docker",
            docker_image=sys.argv[4]))
"""


def test_the_harness_death_kills_the_container(engine, tmp_path, tiny_data, tiny_profile):
    marker = f"codapack-test-{os.getpid()}-docker-sigkill"
    zip_path = make_zip(tmp_path / "s.zip", {"model.py": STUBBORN_MODEL.format(marker=marker)})
    with open(tmp_path / "harness.log", "w") as log:
        harness = subprocess.Popen([sys.executable, "-c", HARNESS_SCRIPT, zip_path, tiny_data, tiny_profile.source,
                                    IMAGE], env=dict(os.environ, PYTHONPATH=REPO), stdout=subprocess.DEVNULL,
                                   stderr=log)
    deadline = time.monotonic() + 180  # a loaded machine starts Python slowly
    while len(processes_with(marker)) < 2:  # both children of Model()
        assert time.monotonic() < deadline and harness.poll() is None, (tmp_path / "harness.log").read_text()
        time.sleep(0.1)
    harness.kill()
    harness.wait()
    deadline = time.monotonic() + 60  # reaper.py runs `docker kill` on its parent's death
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not processes_with(marker)
    assert any(call[0] == "kill" and call[1].startswith("codapack-harness-") for call in fake_docker.calls(engine))


def test_the_progress_channel_crosses_into_the_container(engine, tmp_path, tiny_data, tiny_profile):
    # Quick on the full batch, stuck on the batch check's small ones: only a harness that heard
    # "stage predicted" from inside the container stops the clock there and gives the checks their own limit.
    source = ("import time\nimport numpy as np\nclass Model:\n    def predict(self, X):\n"
              "        if len(X) < 20:\n            time.sleep(600)\n"
              "        return np.zeros(len(X), dtype=np.int64)\n")
    result = run_harness(make_zip(tmp_path / "slow.zip", {"model.py": source}), tiny_data, tiny_profile,
                         HarnessOptions(sandbox=sandbox.DOCKER, docker_image=IMAGE, time_limit_s=3))
    assert result["verdict"] == "OK", result["error"]
    assert any("checks after predict" in w and "did not finish" in w for w in result["warnings"])
    assert any(call[0] == "kill" for call in fake_docker.calls(engine))


def test_a_container_that_never_starts_is_named_and_does_not_hang(engine, tmp_path, tiny_data, tiny_profile,
                                                                  monkeypatch):
    # The image vanishes between the check and the run: the engine refuses, and the worker never opens its pipe.
    monkeypatch.setattr(sandbox, "docker_problem", lambda image: None)
    fake_docker.set_images(engine, [])
    zip_path = make_zip(tmp_path / "bright.zip", {"model.py": BRIGHTNESS_MODEL})
    result = run_harness(zip_path, tiny_data, tiny_profile, HarnessOptions(sandbox=sandbox.DOCKER, docker_image=IMAGE))
    assert result["verdict"] == "CRASH"
    assert result["error"] == ("docker run failed (exit status 125): docker: Error response from daemon: "
                               f"No such image: {IMAGE}")


def test_a_killed_container_is_named_without_a_sampled_peak():
    outcome = {"worker": {}, "memory_exceeded": False, "last_stage": "predict", "signal": "SIGKILL",
               "returncode": 137, "docker": True, "peak_tree_mb": None, "memory_limit_mb": 300, "log": ""}
    assert platform_process.crash_message(outcome) == (
        "killed by SIGKILL in stage `predict`, probably at the 300 MB memory limit docker enforces (--memory-limit or "
        "the profile's limits.memory_limit_mb) (peak memory is not sampled with --sandbox docker)")


UNUSABLE = {
    "no docker": (["--docker-image", IMAGE], "--sandbox docker: `docker` is not on PATH. Install Docker"),
    "no engine": (["--docker-image", IMAGE], "the Docker engine does not answer (`docker info`: Cannot connect to the "
                                             "Docker daemon"),
    "no image": (["--docker-image", "team/never-pulled:2"],
                 "the image `team/never-pulled:2` is not on this machine (Error response from daemon: No such image: "
                 "team/never-pulled:2). Pull it once with `docker pull team/never-pulled:2`"),
    "no image named": ([], "--sandbox docker needs the platform's Docker image: pass --docker-image IMAGE or set "
                           "`platform.image`"),
    "an --env": (["--docker-image", IMAGE, "--env", "target"], "--env target does not apply with --sandbox docker"),
}


@pytest.mark.parametrize("case", UNUSABLE)
def test_unusable_docker_is_one_clear_line_before_anything_runs(case, request, tmp_path, tiny_data,
                                                                tiny_profile_path, monkeypatch):
    state = request.getfixturevalue("docker_state")
    if case == "no docker":
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    elif case != "no engine":
        request.getfixturevalue("engine")
    extra, expected = UNUSABLE[case]
    zip_path = make_zip(tmp_path / "bright.zip", {"model.py": BRIGHTNESS_MODEL})
    result = CliRunner().invoke(main, ["harness", zip_path, "--data", tiny_data, "--profile", tiny_profile_path,
                                       "--sandbox", "docker", *extra])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], result.output
    if case in ("no docker", "no engine", "no image"):
        assert "--sandbox auto" in lines[0]  # the way out: the default sandbox
    assert _runs(state) == []


@pytest.mark.parametrize("options, expected", [
    (["--no-sandbox", "--sandbox", "docker"], "--no-sandbox is --sandbox none and cannot go with --sandbox docker"),
    (["--docker-image", IMAGE], "--docker-image applies only with --sandbox docker. Received: --sandbox auto"),
])
def test_sandbox_options_that_contradict_each_other_are_refused(options, expected, tmp_path, tiny_data,
                                                                tiny_profile_path):
    zip_path = make_zip(tmp_path / "bright.zip", {"model.py": BRIGHTNESS_MODEL})
    result = CliRunner().invoke(main, ["harness", zip_path, "--data", tiny_data, "--profile", tiny_profile_path,
                                       *options])
    assert result.exit_code == 1 and result.output.strip() == f"Error: {expected}"


def test_no_sandbox_still_means_sandbox_none(tmp_path, tiny_data, tiny_profile_path):
    zip_path = make_zip(tmp_path / "bright.zip", {"model.py": BRIGHTNESS_MODEL})
    result = CliRunner().invoke(main, ["harness", zip_path, "--data", tiny_data, "--profile", tiny_profile_path,
                                       "--no-sandbox", "--no-record"])
    assert result.exit_code == 0, result.output
    assert "warning: no sandbox: turned off (--sandbox none)" in result.output


def test_the_help_explains_each_sandbox():
    text = CliRunner().invoke(main, ["harness", "--help"]).output
    for line in ("auto: bubblewrap where it works", "docker: a container of the platform's image",
                 "none: unwalled"):
        assert line in text
    assert "--docker-image IMAGE" in text
