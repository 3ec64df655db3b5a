"""Where `Model()` start-up goes: imports, building, loading, tracing, for the template and each member format.

Each zip is unpacked and timed stage by stage in a fresh Python process, run
from the submission folder as the platform does; the kinds alternate and the
least time of each stage over the rounds is kept. The stages replay what each
runtime does: the template imports TensorFlow and Keras and calls
`keras.models.load_model` (deserialise the config, build, load the weights);
codapack's `model.py` imports TensorFlow (with Keras hidden from it when every
member is compiled, see `compiled._tensorflow_without_keras`), then per member either rebuilds the
network from `networks.py` and loads its `.weights.h5` (keras), or opens the
`.tflite` file in an interpreter (tflite, tflite-fp16). The first batch
(tracing the Keras graph, or sizing the interpreter's tensors) is timed apart:
it is paid on the first `predict`, not in `Model()`.

    python bench/startup.py RUN_DIR [--rounds 2]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import Row  # noqa: E402

STAGES = r"""
import json, os, sys, time
folder, shape = sys.argv[1], tuple(json.loads(sys.argv[2]))
os.chdir(folder)
sys.path.insert(0, folder)
stages = {}

def timed(name, function):
    started = time.perf_counter()
    out = function()
    stages[name] = stages.get(name, 0.0) + time.perf_counter() - started
    return out

np = timed("import numpy", lambda: __import__("numpy"))
X = np.zeros((64, *shape), np.float32)
if os.path.exists("weights.keras"):
    timed("import tensorflow (Keras with it)", lambda: __import__("tensorflow"))
    import keras
    network = timed("load_model: config, build, weights", lambda: keras.models.load_model("weights.keras"))
    timed("first batch: predict's tracing", lambda: network.predict(X, verbose=0))
else:
    model = timed("model.py", lambda: __import__("model"))
    manifest = timed("manifest.py, manifest.json",
                     lambda: model._load_sibling_module(model.MANIFEST_FILE).read_manifest(folder))
    networks = None
    if model.needs_networks(manifest):
        timed("import tensorflow (Keras with it)", lambda: __import__("tensorflow"))
        networks = timed("networks.py", lambda: model._load_sibling_module(model.NETWORKS_FILE))
    compiled = timed("compiled.py, tta.py", lambda: (model._load_sibling_module(model.COMPILED_FILE),
                                                     model._load_sibling_module(model.TTA_FILE)))[0]
    if networks is None:  # as compiled.py imports it for its interpreter
        timed("import tensorflow (Keras hidden)", compiled._tensorflow_without_keras)
    for entry in manifest["members"]:
        if model.member_format(entry) == "keras":
            import tensorflow as tf
            network = timed("build network", lambda: networks.build_network(
                entry["architecture"], shape, len(manifest["classes"]), entry.get("options")))
            timed("load weights", lambda: network.load_weights(os.path.join(folder, entry["weights"])))
            function = tf.function(lambda x: network(x, training=False),
                                   input_signature=[tf.TensorSpec([None, *shape], tf.float32)])
            timed("first batch: tracing", lambda: function(X))
        else:
            member = timed("open interpreter", lambda: compiled.CompiledMember(entry, folder))
            timed("first batch: sizing tensors", lambda: member.predict_batch(X))
print("STAGES " + json.dumps(stages))
"""


def stages(zip_path, shape, folder):
    """{stage: seconds} of one fresh process starting the zip in `zip_path`."""
    submission = os.path.join(folder, os.path.basename(zip_path)[:-4] + "-startup")
    if not os.path.isdir(submission):
        zipfile.ZipFile(zip_path).extractall(submission)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH",)}
    env["CUDA_VISIBLE_DEVICES"] = ""
    done = subprocess.run([sys.executable, "-c", STAGES, submission, json.dumps(list(shape))], capture_output=True,
                          text=True, cwd=submission, env=env, timeout=600)
    line = next((line for line in done.stdout.splitlines() if line.startswith("STAGES ")), None)
    if line is None:
        raise RuntimeError(f"{zip_path}: start-up breakdown failed:\n{done.stderr[-2000:]}")
    return json.loads(line[len("STAGES "):])


def breakdown(zips, shape, rounds=2):
    """{label: {stage: least seconds over `rounds`}} for {label: zip path}, the kinds alternating."""
    best = {label: {} for label in zips}
    with tempfile.TemporaryDirectory(prefix="codapack-startup-") as folder:
        for _ in range(rounds):
            for label, path in zips.items():
                for stage, seconds in stages(path, shape, folder).items():
                    best[label][stage] = min(seconds, best[label].get(stage, float("inf")))
    return best


def rows(zips, shape, rounds=2):
    """One row per stage and kind; the last row of each kind is `Model()`'s total against the template's."""
    measured = breakdown(zips, shape, rounds)
    template = _model_seconds(measured.get("template", {}))
    out = []
    for label, found in measured.items():
        for stage, seconds in found.items():
            out.append(Row("start-up", f"{label}: {stage}", seconds, "s",
                           note="paid on the first predict, not in Model()" if stage.startswith("first") else ""))
        if label != "template":
            out.append(Row("start-up", f"{label}: Model() stages in all", _model_seconds(found), "s", template or None,
                           "template: the same stages", higher_is_better=False,
                           note=f"least of {rounds} fresh processes per stage"))
    return out


def _model_seconds(found):
    return sum(seconds for stage, seconds in found.items() if not stage.startswith("first"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run directory written by `codapack train`")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    from bench.common import format_rows
    from bench.template import template_zip
    from codapack.tools.package import package_runs
    from codapack.trainer.run_dir import read_run

    run = read_run(args.run)
    with tempfile.TemporaryDirectory(prefix="codapack-startup-zips-") as folder:
        zips = {"template": template_zip(run, folder)[0]}
        for member_format in ("keras", "tflite", "tflite-fp16"):
            zips[member_format] = package_runs([run["dir"]], os.path.join(folder, f"{member_format}.zip"),
                                               member_format=member_format)["path"]
        print(format_rows(rows(zips, tuple(run["network"]["input_shape"]), args.rounds)))


if __name__ == "__main__":
    main()
