"""Each known way a submission fails on the platform, planted in a small zip: verdict and message.

The submissions are hand-written `model.py` files using numpy only (the Keras
cases are in test_harness_keras.py), so these run in a second each.
"""


import numpy as np
import pytest

from tests.conftest import make_zip
from codapack.tools.harness import HarnessOptions, run_harness

GOOD = "import numpy as np\nclass Model:\n    def predict(self, X):\n        return np.zeros(len(X), dtype=np.int64)\n"


def model_with(predict_body="return np.zeros(len(X), dtype=np.int64)", init="def __init__(self):\n        pass",
               header="import numpy as np"):
    return f"{header}\nclass Model:\n    {init}\n    def predict(self, X):\n        {predict_body}\n"


CATALOG = {
    "nested folder": ({"submission/model.py": GOOD}, "NO_MODEL_PY",
                      "found submission/model.py: zip the folder's contents, not the folder"),
    "macOS litter": ({"sub/model.py": GOOD, "__MACOSX/sub/._model.py": "x"}, "NO_MODEL_PY", "`__MACOSX/` litter"),
    "metadata shipped": ({"model.py": GOOD, "metadata": "command: python model.py"}, "METADATA_FILE",
                         "holds a file named `metadata` at its root"),
    "metadata written": ({"model.py": model_with("open('metadata', 'w').write('x')\n        "
                                                 "return np.zeros(len(X), dtype=np.int64)")},
                         "METADATA_FILE", "wrote `metadata` during the run"),
    "syntax error": ({"model.py": "class Model:\n    def predict(self X):\n        pass\n"}, "SYNTAX_ERROR",
                     "model.py does not compile: SyntaxError"),
    "missing package": ({"model.py": model_with(header="import numpy as np\nimport lightgbm_not_on_platform")},
                        "MISSING_PACKAGE", "imports `lightgbm_not_on_platform`"),
    "init arguments": ({"model.py": model_with(init="def __init__(self, weights_path):\n        pass")},
                       "INIT_ARGUMENTS", "Model() must take no arguments"),
    "predict raises": ({"model.py": model_with("raise RuntimeError('weights missing')")}, "PREDICT_ERROR",
                       "predict raised RuntimeError: weights missing"),
    "probabilities": ({"model.py": model_with("return np.full((len(X), 4), 0.25)")}, "BAD_OUTPUT",
                      "probabilities or one-hot rows"),
    "one-hot": ({"model.py": model_with("return np.eye(4, dtype=np.int64)[np.zeros(len(X), int)]")}, "BAD_OUTPUT",
                "np.argmax(p, axis=1)"),
    "fractional floats": ({"model.py": model_with("return np.full(len(X), 0.5, dtype=np.float32)")}, "BAD_OUTPUT",
                          "integer class ids; it returned dtype float32"),
    "wrong length": ({"model.py": model_with("return np.zeros(len(X) - 1, dtype=np.int64)")}, "BAD_OUTPUT",
                     "should return shape (80,); it returned (79,)"),
    "out of range": ({"model.py": model_with("return np.full(len(X), 8)")}, "BAD_OUTPUT",
                     "should lie in 0..3; found 8..8"),
    "ragged list": ({"model.py": model_with("return [[0, 1]] + [0] * (len(X) - 1)")}, "BAD_OUTPUT",
                    "np.asarray cannot turn into numbers"),
    "relative path elsewhere": ({"model.py": model_with(init="def __init__(self):\n        "
                                                             "self.k = int(open('label.txt').read())"),
                                 "label.txt": "1"}, "RELATIVE_PATH", "opens `label.txt` relative to the working"),
}


@pytest.mark.parametrize("case", sorted(CATALOG))
def test_failure_catalog(case, tmp_path, tiny_data, tiny_profile):
    files, verdict, message = CATALOG[case]
    options = HarnessOptions(workdir="elsewhere" if "elsewhere" in case else None)
    result = run_harness(make_zip(tmp_path / "s.zip", files), tiny_data, tiny_profile, options)
    assert result["verdict"] == verdict, result["error"]
    assert message in result["error"]


def test_upload_over_the_failing_size_is_refused_before_running(tmp_path, tiny_data, tiny_profile):
    noise = np.random.default_rng(0).integers(0, 256, 11 * 2 ** 20, dtype=np.uint8).tobytes()
    result = run_harness(make_zip(tmp_path / "big.zip", {"model.py": GOOD, "blob.bin": noise}), tiny_data, tiny_profile)
    assert result["verdict"] == "TOO_LARGE" and "uploads of 10 MB and more fail" in result["error"]
    assert result.get("seconds") is None  # never started


def test_upload_above_the_safe_size_warns(tmp_path, tiny_data, tiny_profile):
    noise = np.random.default_rng(0).integers(0, 256, 6 * 2 ** 20, dtype=np.uint8).tobytes()
    result = run_harness(make_zip(tmp_path / "big.zip", {"model.py": GOOD, "blob.bin": noise}), tiny_data, tiny_profile)
    assert result["verdict"] == "OK" and "above the 5 MB known to upload safely" in result["warnings"][0]


def test_relative_path_warns_where_the_profile_runs_from_the_submission(tmp_path, tiny_data, tiny_profile):
    files = CATALOG["relative path elsewhere"][0]
    result = run_harness(make_zip(tmp_path / "s.zip", files), tiny_data, tiny_profile)
    assert result["verdict"] == "OK"
    assert any("opens label.txt relative to the working directory" in w for w in result["warnings"])


def test_batch_dependent_predictions_are_flagged(tmp_path, tiny_data, tiny_profile):
    # Thresholding at the batch's own mean: the label of an image depends on its neighbours.
    body = "s = X.reshape(len(X), -1).mean(axis=1)\n        return (s > s.mean()).astype(np.int64)"
    result = run_harness(make_zip(tmp_path / "s.zip", {"model.py": model_with(body)}), tiny_data, tiny_profile)
    assert result["verdict"] == "OK"
    assert any("predictions change with the batch" in w for w in result["warnings"])
    clean = run_harness(make_zip(tmp_path / "g.zip", {"model.py": GOOD}), tiny_data, tiny_profile)
    assert clean["warnings"] == []


def test_a_zip_may_ship_modules_named_like_the_design_folders(tmp_path, tiny_data, tiny_profile):
    # codapack installs nothing as `tools` or `trainer`, so a team's own helpers of those names are theirs.
    files = {"model.py": "import sys, os\nsys.path.insert(0, os.path.dirname(__file__))\nimport tools\n"
                         "from trainer.labels import LABEL\n" + model_with("return np.full(len(X), LABEL + tools.ONE)"),
             "tools.py": "ONE = 1\n", "trainer/__init__.py": "", "trainer/labels.py": "LABEL = 1\n"}
    result = run_harness(make_zip(tmp_path / "s.zip", files), tiny_data, tiny_profile)
    assert result["verdict"] == "OK", result["error"]
    from codapack.dataset import load_dataset
    from codapack.splits import split_for

    dataset = load_dataset(tiny_data, tiny_profile)
    scored = dataset.labels[split_for(dataset, tiny_profile)["test"]]
    assert result["n"] == len(scored) and result["accuracy"] == pytest.approx(np.mean(scored == 2))
