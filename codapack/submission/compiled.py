"""Compiled members: a network converted to TensorFlow Lite at package time, run by its interpreter.

Ships in every zip next to `model.py` (numpy and tensorflow only). The
interpreter comes from `ai_edge_litert` where that package is installed, else
from `tf.lite`, which every TensorFlow the platform may pin has (2.17 has no
`ai_edge_litert`; TensorFlow 2.20 and later warn on each `tf.lite.Interpreter`
that it moved there, a warning this module silences because the fallback is
deliberate).
"""

import importlib
import os
import sys
import time
import warnings

import numpy as np

# The manifest's member formats this module runs; "keras" members are rebuilt from networks.py.
FORMATS = ("tflite", "tflite-fp16")
_MOVED_WARNING = r"\s*Warning: tf\.lite\.Interpreter is deprecated"


def _interpreter_class():
    try:
        # Optional, hence imported by name: present in new environments, absent on the platform.
        return importlib.import_module("ai_edge_litert.interpreter").Interpreter
    except ImportError:
        return _tensorflow_without_keras().lite.Interpreter


def _tensorflow_without_keras():
    """`import tensorflow`, without the Keras import TensorFlow starts by itself.

    TensorFlow's `__init__` imports Keras' optimisers at once (to register them for
    SavedModels), inside a guard that lets it go on where Keras is missing. The
    interpreter never uses Keras, and that import was 1.2 s of TensorFlow 2.21's 3.0 s
    (Keras 3.15) on 2 cores, though only 0.07 s of TensorFlow 2.17's 1.65 s (Keras 3.4). Keras is
    hidden while TensorFlow imports and importable again afterwards, for a Keras member of
    the same ensemble; where Keras is already loaded, nothing is hidden.
    """
    hidden = "keras" not in sys.modules and "tensorflow" not in sys.modules
    if hidden:
        sys.modules["keras"] = None  # `import keras` then raises ImportError, which TensorFlow's guard expects
    try:
        import tensorflow as tf
    finally:
        if hidden and sys.modules.get("keras", False) is None:
            del sys.modules["keras"]
    return tf


def usable_cores():
    """The cores this process may run on (its affinity, which a sandbox or a container narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _Interpreter:
    """One TFLite interpreter with its tensors sized for the last batch."""

    def __init__(self, path, threads):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_MOVED_WARNING)
            self.interpreter = _interpreter_class()(model_path=path, num_threads=threads)
        self.threads = threads
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]
        self.batch = None  # the batch size the tensors are sized for

    def run(self, images):
        if len(images) != self.batch:  # tensors are sized per batch; the usual case reuses them
            self.interpreter.resize_tensor_input(self._input, list(images.shape))
            self.interpreter.allocate_tensors()
            self.batch = len(images)
        self.interpreter.set_tensor(self._input, np.ascontiguousarray(images, dtype=np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output).copy()


class CompiledMember:
    """One network of the ensemble as a `.tflite` file, predicting numpy batches.

    Where the process may use several cores, the member opens two interpreters,
    one thread and one per core (at most `MAX_THREADS`), and keeps whichever
    predicts faster. On free cores, threads nearly double the speed (MobileNetV2 at
    96 px, 2 cores: 2,200 against 1,200 images/s). On cores something else keeps
    busy, TensorFlow 2.17's threads spin while they wait and ran 9x slower (56
    against 507 images/s), so only a measurement can tell. Each interpreter
    predicts real batches, the first sizing its tensors and the next of the same
    size timed, then the slower one is closed: nothing is predicted twice.

    Args:
        entry: the member's manifest entry (`name`, `weight`, `model`: the `.tflite` path).
        folder: the folder `entry["model"]` is relative to.
        threads: the thread counts to choose from; every usable core (at most
            `MAX_THREADS`) and one when None.
    """

    MAX_THREADS = 8

    def __init__(self, entry, folder, threads=None):
        self.name = entry["name"]
        self.weight = float(entry.get("weight", 1.0))
        self.format = entry["format"]
        path = os.path.join(folder, entry["model"])
        if threads is None:
            threads = sorted({min(usable_cores(), self.MAX_THREADS), 1}, reverse=True)
        self._candidates = [_Interpreter(path, count) for count in threads]
        self._seconds_per_image = []

    @property
    def threads(self):
        """The chosen thread count, or None while the interpreters are still being timed."""
        return self._candidates[0].threads if len(self._candidates) == 1 else None

    def predict_batch(self, images):
        """Probabilities (n, classes) of a float32 batch (n, H, W, C), as numpy."""
        if len(self._candidates) == 1:
            return self._candidates[0].run(images)
        candidate = self._candidates[len(self._seconds_per_image)]
        timed = len(images) == candidate.batch  # sized already: neither its first call nor a resizing one
        started = time.perf_counter()
        out = candidate.run(images)
        if timed:
            self._seconds_per_image.append((time.perf_counter() - started) / len(images))
            if len(self._seconds_per_image) == len(self._candidates):
                self._candidates = [self._candidates[int(np.argmin(self._seconds_per_image))]]
        return out
