"""Verdicts true to the platform: the nine cases of issue #17, one test each.

Each case is a small zip that real course submissions resembled; the verdict
must be what the platform would do, with a short message naming the real cause.
Keras cases use tiny models; the cases that need the platform's own Keras use
the target environment (built once and cached, as in test_target_env.py).
"""

import json
import os
import subprocess
import zipfile

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from codapack.cli.main import main
from codapack.dataset import load_dataset
from codapack.profile import load_profile
from codapack.splits import split_for
from tests.conftest import TINY_PROFILE, last_json_line, make_zip
from tests.test_harness_keras import TEMPLATE_MODEL, tiny_keras_model
from codapack.tools.diagnosis import RunContext, run_verdict
from codapack.tools.harness import HarnessOptions, run_harness, summary_line
from codapack.tools.target_env import ensure_target_env

CURRENT = HarnessOptions(env="current")


def numpy_model(predict="return np.zeros(len(X), dtype=np.int64)", init="pass", header=""):
    return (f"import os, glob, sys, time\nimport numpy as np\n{header}\nclass Model:\n    def __init__(self):\n"
            f"        {init}\n    def predict(self, X):\n        {predict}\n")


def profile_with(tmp_path, name, *, output="", limits=""):
    """The tiny profile with extra lines in its [output] and [limits] tables."""
    text = TINY_PROFILE.replace("[limits]\n", f"[limits]\n{limits}\n").replace("[output]\n", f"[output]\n{output}\n")
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return load_profile(str(path))


def labels_of_test_split(tiny_data, tiny_profile):
    dataset = load_dataset(tiny_data, tiny_profile)
    return dataset.labels[split_for(dataset, tiny_profile)["test"]]


def assert_short_verdict(result):
    """The message stays short (the printed line under 300 characters); a failure's full story is in its log file."""
    assert len(result["error"] or "") < 250, result["error"]
    assert len(summary_line(result)) < 300
    if result["verdict"] != "OK":
        assert os.path.isfile(result["log"]), result.get("log")


def saved_keras_bytes(tmp_path, name="weights.keras", model=None):
    path = tmp_path / name
    (model or tiny_keras_model()).save(path)
    return path.read_bytes()


def with_keras_version(data, version, tmp_path):
    """The same .keras archive with `version` recorded in its metadata, as a newer Keras would write it."""
    src_path, out_path = tmp_path / "src.keras", tmp_path / "forged.keras"
    src_path.write_bytes(data)
    with zipfile.ZipFile(src_path) as src, zipfile.ZipFile(out_path, "w") as dst:
        for item in src.infolist():
            content = src.read(item.filename)
            if item.filename == "metadata.json":
                content = json.dumps(dict(json.loads(content), keras_version=version)).encode()
            dst.writestr(item, content)
    return out_path.read_bytes()


@pytest.fixture(scope="module")
def target_python(tiny_profile):
    return ensure_target_env(tiny_profile, log=lambda message: None)


# 1. A newer .keras file takes the blame for any failure.
def test_a_newer_keras_file_that_loads_is_not_blamed_for_another_failure(tmp_path, tiny_data, tiny_profile):
    source = TEMPLATE_MODEL.replace('load_model("weights.keras")',
                                    'load_model("weights.keras")\n        raise RuntimeError("scaler.pkl is missing")')
    weights = with_keras_version(saved_keras_bytes(tmp_path), "99.0.0", tmp_path)
    zip_path = make_zip(tmp_path / "s.zip", {"model.py": source, "weights.keras": weights})
    result = run_harness(zip_path, tiny_data, tiny_profile, CURRENT)
    assert result["verdict"] == "INIT_ERROR", result["error"]
    assert "RuntimeError: scaler.pkl is missing" in result["error"]
    assert any("weights.keras was saved by Keras 99.0.0, newer than the platform's Keras 3.4.1" in w
               for w in result["warnings"])
    assert_short_verdict(result)


# 2. A .keras that exists but is not a valid archive is not a RELATIVE_PATH.
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 123456\n"


def test_a_git_lfs_pointer_is_named_from_the_submission_folder(tmp_path, tiny_data, tiny_profile):
    zip_path = make_zip(tmp_path / "s.zip", {"model.py": TEMPLATE_MODEL, "weights.keras": LFS_POINTER})
    result = run_harness(zip_path, tiny_data, tiny_profile, CURRENT)
    assert result["workdir"] == "submission"
    assert result["verdict"] == "BROKEN_FILE", result["error"]
    assert "weights.keras is a Git LFS pointer, not the file: run `git lfs pull`" in result["error"]
    assert_short_verdict(result)


def test_a_truncated_keras_file_is_named(tmp_path, tiny_profile):
    # Keras' own words for a .keras that is not a zip archive (3.4.1 and 3.15 alike).
    data = saved_keras_bytes(tmp_path)
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "weights.keras").write_bytes(data[:len(data) // 2])
    worker = {"stage": "init", "error_type": "ValueError",
              "error": "ValueError: File not found: filepath=weights.keras. Please ensure the file is an accessible "
                       "`.keras` zip file."}
    verdict, message = run_verdict(worker, RunContext(str(folder), "target", "3.4.1", "3.4.1"))
    assert verdict == "BROKEN_FILE"
    assert message.startswith(f"weights.keras is truncated or not a valid .keras archive ({len(data) // 2} bytes)")


# 3. A .keras file that the platform loads is judged in the platform's environment by default.
@pytest.fixture(scope="module")
def keras_341_zip(target_python, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("keras341")
    save = ("import keras\n"
            "i = keras.Input((24, 24, 3)); x = keras.layers.RandomRotation(0.1)(i)\n"
            "x = keras.layers.Rescaling(1 / 255)(x); x = keras.layers.GlobalAveragePooling2D()(x)\n"
            "keras.Model(i, keras.layers.Dense(4, activation='softmax')(x)).save('weights.keras')\n")
    subprocess.run([target_python, "-c", save], cwd=tmp_path, check=True, capture_output=True)
    return make_zip(tmp_path / "t.zip", {"model.py": TEMPLATE_MODEL,
                                         "weights.keras": (tmp_path / "weights.keras").read_bytes()})


def test_a_keras_zip_is_judged_in_the_target_environment_by_default(keras_341_zip, tiny_data, tiny_profile):
    result = run_harness(keras_341_zip, tiny_data, tiny_profile)
    assert result["env"] == "target"
    assert result["verdict"] == "OK", result["error"]


def test_the_current_environment_says_it_is_not_the_platform(keras_341_zip, tiny_data, tiny_profile):
    result = run_harness(keras_341_zip, tiny_data, tiny_profile, CURRENT)
    assert result["verdict"] == "KERAS_VERSION", result["error"]
    assert f"Keras {keras.__version__}" in result["error"] and "--env target" in result["error"]
    assert "Lambda" not in result["error"]
    assert_short_verdict(result)
    with open(result["log"], encoding="utf-8") as f:
        assert "Unrecognized keyword arguments passed to RandomRotation" in f.read()


# 4. The batch check runs after the time limit, and captured output is capped.
def test_the_batch_check_runs_outside_the_time_limit(tmp_path, tiny_data, tiny_profile):
    # 0.6 s per predict call: the platform's one call fits 2.5 s; nine more would not.
    slow = ("time.sleep(0.6)\n        s = X.reshape(len(X), -1).mean(axis=1)\n"
            "        return (s > s.mean()).astype(np.int64)")
    zip_path = make_zip(tmp_path / "s.zip", {"model.py": numpy_model(slow)})
    result = run_harness(zip_path, tiny_data, tiny_profile, HarnessOptions(time_limit_s=2.5))
    assert result["verdict"] == "OK", result["error"]
    assert result["seconds"] < 2.5
    assert any("predictions change with the batch" in w for w in result["warnings"])  # the check still ran


def test_captured_output_is_capped_and_keeps_its_tail(tmp_path, tiny_data, tiny_profile):
    chatty = ("sys.stdout.write('x' * 20_000_000 + '\\nTHE LAST WORDS\\n'); sys.stdout.flush()\n"
              "        raise RuntimeError('gave up')")
    zip_path = make_zip(tmp_path / "s.zip", {"model.py": numpy_model(chatty)})
    result = run_harness(zip_path, tiny_data, tiny_profile)
    assert result["verdict"] == "PREDICT_ERROR"
    assert os.path.getsize(result["log"]) < 2_000_000
    with open(result["log"], encoding="utf-8") as f:
        text = f.read()
    assert "THE LAST WORDS" in text and "RuntimeError: gave up" in text
    assert_short_verdict(result)


# 5. Outputs the platform's np.save-and-score accepts are converted with a warning, unless the profile is strict.
OUTPUTS = {"list": ("return [2] * len(X)", "a list"),
           "whole floats": ("return np.full(len(X), 2.0)", "whole-number floats")}


@pytest.mark.parametrize("kind", sorted(OUTPUTS))
def test_lists_and_whole_number_floats_are_converted_with_a_warning(kind, tmp_path, tiny_data, tiny_profile):
    body, words = OUTPUTS[kind]
    zip_path = make_zip(tmp_path / "s.zip", {"model.py": numpy_model(body)})
    result = run_harness(zip_path, tiny_data, tiny_profile)
    assert result["verdict"] == "OK", result["error"]
    assert result["accuracy"] == pytest.approx(np.mean(labels_of_test_split(tiny_data, tiny_profile) == 2))
    assert any(words in w and "converted" in w for w in result["warnings"]), result["warnings"]
    strict = run_harness(zip_path, tiny_data, profile_with(tmp_path, "strict", output="strict = true"))
    assert strict["verdict"] == "BAD_OUTPUT" and "strict" in strict["error"]
    assert_short_verdict(strict)


def test_fractional_floats_stay_bad_output(tmp_path, tiny_data, tiny_profile):
    zip_path = make_zip(tmp_path / "s.zip", {"model.py": numpy_model("return np.full(len(X), 0.5)")})
    result = run_harness(zip_path, tiny_data, tiny_profile)
    assert result["verdict"] == "BAD_OUTPUT" and "integer class ids" in result["error"]


# 6. Finding files by listing or probing the working directory, run from another folder.
FINDERS = {
    "os.listdir": "name = [f for f in os.listdir('.') if f.endswith('.txt')][0]",
    "os.scandir": "name = [e.name for e in os.scandir('.') if e.name.endswith('.txt')][0]",
    "glob": "name = glob.glob('*.txt')[0]",
    "os.path.exists": "name = 'label.txt' if os.path.exists('label.txt') else None",
}


@pytest.mark.parametrize("finder", sorted(FINDERS))
def test_finding_files_in_the_working_directory_is_relative_path(finder, tmp_path, tiny_data, tiny_profile):
    init = FINDERS[finder] + "\n        self.label = int(open(os.path.join(os.path.dirname(__file__), name)).read())"
    zip_path = make_zip(tmp_path / "s.zip", {"model.py": numpy_model("return np.full(len(X), self.label)", init),
                                             "label.txt": "1"})
    assert run_harness(zip_path, tiny_data, tiny_profile)["verdict"] == "OK"
    result = run_harness(zip_path, tiny_data, tiny_profile, HarnessOptions(workdir="elsewhere"))
    assert result["verdict"] == "RELATIVE_PATH", result["error"]
    assert "relative to the working directory" in result["error"]
    assert_short_verdict(result)


def test_an_unrelated_failure_after_listing_is_not_relative_path(tmp_path, tiny_data, tiny_profile):
    init = "os.listdir('.')\n        raise RuntimeError('a bug of its own')"
    zip_path = make_zip(tmp_path / "s.zip", {"model.py": numpy_model(init=init), "label.txt": "1"})
    result = run_harness(zip_path, tiny_data, tiny_profile, HarnessOptions(workdir="elsewhere"))
    assert result["verdict"] == "INIT_ERROR" and "a bug of its own" in result["error"]


# 7. Zips that `zipfile` cannot read end in a verdict and the JSON line.
def _flag_encrypted(data):
    """Set the 'encrypted' bit of every entry, as `zip -e` does (the contents need not be encrypted to test it)."""
    data = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = data.find(signature)
        while start != -1:
            data[start + offset] |= 1
            start = data.find(signature, start + 4)
    return bytes(data)


def _unknown_compression(data):
    data = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        start = data.find(signature)
        while start != -1:
            data[start + offset:start + offset + 2] = (99).to_bytes(2, "little")
            start = data.find(signature, start + 4)
    return bytes(data)


@pytest.mark.parametrize("damage, words", [(_flag_encrypted, "password"), (_unknown_compression, "compression")])
def test_an_unreadable_zip_gets_a_verdict_and_the_json_line(damage, words, tmp_path, tiny_data, tiny_profile_path):
    clean = make_zip(tmp_path / "clean.zip", {"model.py": numpy_model()})
    zip_path = tmp_path / "s.zip"
    zip_path.write_bytes(damage(open(clean, "rb").read()))
    result = CliRunner().invoke(main, ["harness", str(zip_path), "--data", tiny_data, "--profile", tiny_profile_path,
                                       "--json"])
    assert result.exit_code == 1
    line = last_json_line(result.output)
    assert line["verdict"] == "BAD_ZIP" and words in line["error"]
    assert len(line["error"]) < 250


# 8. The time for the hidden test set is projected from the measured speed.
def test_a_submission_too_slow_for_the_hidden_test_set_fails(tmp_path, tiny_data):
    profile = profile_with(tmp_path, "hidden", limits="expected_test_images = 8000")
    zip_path = make_zip(tmp_path / "s.zip", {"model.py": numpy_model("time.sleep(0.01 * len(X))\n"
                                                                     "        return np.zeros(len(X), dtype=np.int64)")})
    result = run_harness(zip_path, tiny_data, profile, HarnessOptions(time_limit_s=30))
    assert result["verdict"] == "TIMEOUT", result["error"]
    # 0.01 s per image on 8,000 images: 80 s, plus whatever overhead the 80 measured images carried.
    assert 80 <= result["projected_seconds"] <= 130
    assert "8,000 hidden test images" in result["error"]
    assert_short_verdict(result)


# 9. The message names the file the zip actually ships.
def test_a_missing_file_names_the_one_the_zip_ships(tmp_path, tiny_data, tiny_profile):
    init = "self.weights = np.load(os.path.join(os.path.dirname(__file__), 'weights.npy'))"
    zip_path = make_zip(tmp_path / "s.zip", {"model.py": numpy_model(init=init),
                                             "first_attempt.npy": np.zeros(3).tobytes()})
    result = run_harness(zip_path, tiny_data, tiny_profile)
    assert result["verdict"] == "MISSING_FILE", result["error"]
    assert "`" + str(tmp_path) not in result["error"]  # the name, not the machine's folder
    assert "loads `weights.npy`, which the zip does not contain; the zip holds first_attempt.npy" in result["error"]
    assert_short_verdict(result)


def test_a_missing_keras_file_names_the_one_the_zip_ships(tmp_path):
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "first_attempt.keras").write_bytes(saved_keras_bytes(tmp_path))
    worker = {"stage": "init", "error_type": "ValueError",
              "error": "ValueError: File not found: filepath=weights.keras. Please ensure the file is an accessible "
                       "`.keras` zip file."}
    verdict, message = run_verdict(worker, RunContext(str(folder), "target", "3.4.1", "3.4.1"))
    assert verdict == "MISSING_FILE"
    assert "Model() loads `weights.keras`, which the zip does not contain; the zip holds first_attempt.keras" in message


def test_auto_falls_back_to_this_python_and_says_so(tmp_path, tiny_data):
    # A platform Python that no machine has: the target environment cannot be built here.
    text = TINY_PROFILE.replace('python = "3.11"', 'python = "3.99"')
    (tmp_path / "p.toml").write_text(text)
    profile = load_profile(str(tmp_path / "p.toml"))
    zip_path = make_zip(tmp_path / "s.zip", {"model.py": numpy_model(), "unused.keras": b"not loaded"})
    result = run_harness(zip_path, tiny_data, profile)
    assert result["verdict"] == "OK" and result["env"] == "current"
    assert any(w.startswith("not the platform: the target environment is unavailable (the platform runs Python 3.99")
               for w in result["warnings"]), result["warnings"]


def test_an_unregistered_custom_class_is_not_a_version_problem(tmp_path):
    # Keras 3.4.1's words for a custom layer whose code is not registered at load time.
    folder = tmp_path / "submission"
    folder.mkdir()
    (folder / "weights.keras").write_bytes(with_keras_version(saved_keras_bytes(tmp_path), "3.6.0", tmp_path))
    error = ("TypeError: Could not locate class 'Scale'. Make sure custom classes are decorated with "
             "`@keras.saving.register_keras_serializable()`. Full object config: {'module': None, 'class_name': "
             "'Scale', 'config': {'name': 'scale'}, 'registered_name': 'Scale'}")
    context = RunContext(str(folder), "target", "3.4.1", "3.4.1")
    assert run_verdict({"stage": "init", "error_type": "TypeError", "error": error}, context)[0] == "DESERIALIZATION"
    builtin = error.replace("'module': None", "'module': 'keras.layers'")
    verdict, message = run_verdict({"stage": "init", "error_type": "TypeError", "error": builtin}, context)
    assert verdict == "KERAS_VERSION" and "weights.keras was saved by Keras 3.6.0, newer than the Keras 3.4.1" in message
