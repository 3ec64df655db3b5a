"""Submission runtime: the `Model` class the platform imports.

Shipped unchanged in every zip built by `tools/package.py`, next to
`manifest.py` (which reads and checks `manifest.json`), `networks.py`, `tta.py`, `compiled.py` and the members' files:
a `.weights.h5` for a "keras" member (rebuilt from `networks.py`), a `.tflite`
for a "tflite" or "tflite-fp16" member (run by `compiled.py`). It
imports only the standard library, numpy, tensorflow and keras, and finds every
file relative to its own location, so it works whatever folder the platform
runs it from.

Contract: `Model()` takes no arguments; `Model().predict(X)` takes an array
(n, H, W, C) of pixels 0..255 (uint8 or float32) and returns an int64 array
(n,) of class ids: the argmax of the weighted mean of the members' probabilities,
averaged over the manifest's test-time augmentation policy (`tta.py`).
"""

import importlib.metadata
import importlib.util
import os
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MANIFEST_FILE = "manifest.py"
NETWORKS_FILE = "networks.py"
TTA_FILE = "tta.py"
COMPILED_FILE = "compiled.py"


def _load_sibling_module(filename):
    """Import a module shipped beside this file without relying on sys.path."""
    path = os.path.join(HERE, filename)
    spec = importlib.util.spec_from_file_location(f"codapack_submission_{filename[:-3]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _platform_versions():
    """The installed TensorFlow and Keras versions, read without importing either."""
    versions = {}
    for package in ("tensorflow", "keras"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


class _Member:
    """One network of the ensemble, rebuilt from code and its weights file."""

    def __init__(self, entry, networks, input_shape, num_classes, folder):
        self.name = entry["name"]
        self.weight = float(entry.get("weight", 1.0))
        self.format = "keras"
        # Imported here: a zip of compiled members run by ai_edge_litert never pays TensorFlow's import.
        import tensorflow as tf

        network = networks.build_network(entry["architecture"], input_shape, num_classes,
                                         entry.get("options"))
        network.load_weights(os.path.join(folder, entry["weights"]))
        signature = tf.TensorSpec([None, *input_shape], tf.float32)
        # One traced graph for every batch: no per-call retracing, unlike model.predict.
        self.probabilities = tf.function(lambda x: network(x, training=False),
                                         input_signature=[signature])

    def predict_batch(self, images):
        """Probabilities (n, classes) of a float32 batch (n, H, W, C), as numpy."""
        return self.probabilities(images).numpy()


def member_format(entry):
    """A manifest entry's format."""
    return entry["format"]


def needs_networks(manifest):
    """Whether any member is rebuilt from `networks.py` (importing it costs Keras' start-up)."""
    return any(member_format(entry) == "keras" for entry in manifest["members"])


class Ensemble:
    """Weighted mean of members' probabilities, averaged over a test-time augmentation policy.

    Members may mix formats: each has `predict_batch`, whatever runs it.

    Args:
        manifest: the manifest dict (members, input_shape, classes, batch_size, tta).
        folder: the folder member file paths are relative to.
        networks: the module holding `build_network` (None when no member is "keras").
        tta: the module holding `transforms`.
        compiled: the module holding `CompiledMember` (None when every member is "keras").
    """

    def __init__(self, manifest, folder, networks, tta, compiled=None):
        self.input_shape = tuple(manifest["input_shape"])
        self.num_classes = len(manifest["classes"])
        self.batch_size = int(manifest.get("batch_size", 64))
        self.transforms = tta.transforms(manifest.get("tta", "none"), self.input_shape)
        self.members = [_member(entry, folder, networks, compiled, self.input_shape, self.num_classes)
                        for entry in manifest["members"]]
        # Optional callable(done, total) after each batch; the local harness sets it for a progress bar.
        self.on_progress = None

    def predict_proba(self, X):
        """Probabilities (n, num_classes) for images X (n, H, W, C) of pixels 0..255."""
        X = np.asarray(X)
        if X.ndim != 4 or X.shape[1:] != self.input_shape:
            raise ValueError(f"predict expects an array of shape (n, {', '.join(map(str, self.input_shape))}); "
                             f"received {X.shape}")
        total_weight = sum(member.weight for member in self.members) * len(self.transforms)
        out = np.zeros((len(X), self.num_classes), dtype=np.float32)
        for start in range(0, len(X), self.batch_size):
            batch = X[start:start + self.batch_size].astype(np.float32)
            for transform in self.transforms:
                view = np.ascontiguousarray(transform(batch))
                for member in self.members:
                    out[start:start + len(batch)] += member.weight * member.predict_batch(view)
            if self.on_progress is not None:
                self.on_progress(min(start + self.batch_size, len(X)), len(X))
        return out / total_weight

    def predict(self, X):
        """Class ids (n,) int64 for images X (n, H, W, C) of pixels 0..255."""
        return np.argmax(self.predict_proba(X), axis=1).astype(np.int64)


def _member(entry, folder, networks, compiled, input_shape, num_classes):
    kind = member_format(entry)
    if kind == "keras":
        return _Member(entry, networks, input_shape, num_classes, folder)
    if compiled is None or kind not in compiled.FORMATS:
        raise ValueError(f"member `{entry['name']}` has format `{kind}`, which this runtime cannot run")
    return compiled.CompiledMember(entry, folder)


class Model(Ensemble):
    """The submission: the ensemble described by the manifest shipped beside this file."""

    def __init__(self):
        manifest_module = _load_sibling_module(MANIFEST_FILE)
        manifest = manifest_module.read_manifest(HERE)
        if needs_networks(manifest):  # compiled members do not run on TensorFlow or Keras
            for line in manifest_module.version_warnings(manifest, _platform_versions()):
                warnings.warn(f"{line}: predictions may differ from the ones measured locally", stacklevel=2)
        networks = _load_sibling_module(NETWORKS_FILE) if needs_networks(manifest) else None
        super().__init__(manifest, HERE, networks, _load_sibling_module(TTA_FILE),
                         _load_sibling_module(COMPILED_FILE))
