"""Beyond one process: mirrored replicas, multi-worker training, and a chief with two search workers.

Every multi-process test runs codapack in subprocesses on 127.0.0.1 with free ports and a time limit.
"""

import json
import os
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from codapack.cli.main import main
from codapack.errors import CodapackError
from tests.conftest import REPO, TINY_CONFIG, last_json_line
from tests.test_tuning import SEARCHABLE
from codapack.trainer import distribute, run_dir

LIMIT_S = 240


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def codapack(*args, **env):
    """Start `python -m codapack ARGS` with this test's state folder and extra environment variables."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3", **env)
    return subprocess.Popen([sys.executable, "-m", "codapack", *args], cwd=REPO, env=full_env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def finish(process):
    try:
        output, _ = process.communicate(timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"timed out after {LIMIT_S} s:\n{output[-3000:]}")
    assert process.returncode == 0, output[-3000:]
    return output


@pytest.mark.parametrize("value, problem", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{not json", "not valid JSON"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "should hold a `cluster` table and a `task` table"),
    ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}', "is not in the cluster"),
])
def test_bad_tf_config_is_one_clear_error(value, problem):
    environ = {} if value is None else {"TF_CONFIG": value}
    with pytest.raises(CodapackError, match="TF_CONFIG") as error:
        distribute.read_tf_config(environ)
    assert problem in str(error.value)


def test_only_the_chief_writes():
    cluster = {"worker": ["a:1", "b:2"]}
    assert distribute.is_chief({"cluster": cluster, "task": {"type": "worker", "index": 0}})
    assert not distribute.is_chief({"cluster": cluster, "task": {"type": "worker", "index": 1}})
    assert not distribute.is_chief({"cluster": dict(cluster, chief=["c:3"]), "task": {"type": "worker", "index": 0}})


def test_train_with_multi_worker_and_no_tf_config_fails_clearly(tmp_path, tiny_data, tiny_profile_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = tmp_path / "c.toml"
    config.write_text(TINY_CONFIG.format(seed=0))
    result = CliRunner().invoke(main, ["train", str(config), "--data", tiny_data, "--out", str(tmp_path / "r"),
                                       "--strategy", "multi_worker", "--profile", tiny_profile_path])
    assert result.exit_code == 1 and "needs the TF_CONFIG environment variable" in result.output
    assert not (tmp_path / "r").exists()


MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from codapack.cli.main import main
main(sys.argv[1:], prog_name="codapack")
"""


def test_mirrored_trains_two_cpu_replicas_in_sync(tmp_path, tiny_data, tiny_profile_path):
    config = tmp_path / "c.toml"
    config.write_text(TINY_CONFIG.format(seed=0).replace("epochs = 5", "epochs = 1"))
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", MIRRORED, "train", str(config), "--data", tiny_data, "--out",
                           str(tmp_path / "run"), "--strategy", "mirrored", "--profile", tiny_profile_path],
                          env=env, capture_output=True, text=True, timeout=LIMIT_S)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    distribution = run_dir.read_run(str(tmp_path / "run"))["distribution"]
    assert distribution["strategy"] == "mirrored" and distribution["replicas"] == 2
    assert [d.rsplit(":", 2)[-2:] for d in distribution["devices"]] == [["CPU", "0"], ["CPU", "1"]]
    assert distribution["max_replica_difference"] == 0.0


def test_two_workers_train_one_run_that_packages_and_scores(tmp_path, tiny_data, tiny_profile_path):
    config = tmp_path / "c.toml"
    config.write_text(TINY_CONFIG.format(seed=0).replace("epochs = 5", "epochs = 1"))
    out = tmp_path / "runs" / "mw"
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    workers = [codapack("train", str(config), "--data", tiny_data, "--out", str(out), "--strategy", "multi_worker",
                        "--profile", tiny_profile_path,
                        TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}))
               for i in range(2)]
    outputs = [finish(w) for w in workers]
    assert "this worker writes into" in outputs[1]
    assert os.listdir(tmp_path / "runs") == ["mw"]  # the second worker left nothing behind
    record = run_dir.read_run(str(out))
    assert record["distribution"]["workers"] == 2 and record["distribution"]["replicas"] == 2
    zip_path = str(tmp_path / "mw.zip")
    runner = CliRunner()
    assert runner.invoke(main, ["package", str(out), "--out", zip_path, "--no-verify"]).exit_code == 0
    scored = runner.invoke(main, ["harness", zip_path, "--data", tiny_data, "--profile", tiny_profile_path, "--json"])
    assert scored.exit_code == 0, scored.output
    assert last_json_line(scored.output)["verdict"] == "OK"


def test_a_chief_and_two_workers_run_every_trial_once(tmp_path, tiny_data, tiny_profile_path):
    config = tmp_path / "search.toml"
    config.write_text(SEARCHABLE)
    address = f"127.0.0.1:{free_port()}"
    common = ["tune", str(config), "--data", tiny_data, "--out", str(tmp_path / "search"), "--trials", "3",
              "--oracle", address, "--profile", tiny_profile_path]
    chief = codapack(*common, "--role", "chief", "--json")
    workers = [codapack(*common, "--role", "worker", "--worker-id", f"w{i}", "--json") for i in range(2)]
    ran = [last_json_line(finish(w))["trials_run"] for w in workers]
    summary = last_json_line(finish(chief))
    done = sorted(ran[0] + ran[1])
    assert done == ["0", "1", "2"]  # every trial once, none twice
    assert summary["trials"] == summary["completed"] == 3 and summary["trials_run"] == []
    assert sorted(os.listdir(tmp_path / "search" / "runs")) == ["trial_0", "trial_1", "trial_2"]
    assert (tmp_path / "search" / "best.toml").is_file()
