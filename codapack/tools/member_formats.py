"""Member formats of a submission zip, and the conversion of trained networks to TensorFlow Lite.

    keras        weights (`.weights.h5`) rebuilt into the network by `networks.py`: exact, slowest
    tflite       the network converted to TensorFlow Lite, float32: the same numbers within ~1e-5
    tflite-fp16  the same with float16 weights: half the size, probabilities mostly within ~1e-2

`submission/compiled.py` runs the TFLite members on the platform. A network the
converter cannot express in TFLite's built-in operations stays a Keras member,
and the packager says so. Conversion runs in this environment; the packager's
verification then runs the zip in the platform's pinned one.
"""

import dataclasses
import os
import tempfile

from codapack.submission.compiled import FORMATS as COMPILED_FORMATS

KERAS = "keras"
FORMATS = (KERAS, *COMPILED_FORMATS)
# `--format auto` tries these in turn, fastest first, and keeps the first that passes verification.
AUTO = "auto"  # the fastest format that passes verification
AUTO_ORDER = ("tflite-fp16", "tflite", KERAS)
SUFFIX = {KERAS: ".weights.h5", "tflite": ".tflite", "tflite-fp16": ".tflite"}


@dataclasses.dataclass
class MemberFile:
    """What one member ships as.

    Args:
        format: the member's format after any fallback.
        source: the file to put in the zip.
        note: why it fell back to Keras, or None.
    """

    format: str
    source: str
    note: str = None


def convert(network, member_format):
    """The `.tflite` bytes of a Keras network for inputs (any batch, *its input shape) in float32.

    Raises:
        Exception: whatever the converter raises for a network it cannot convert.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    signature = tf.TensorSpec([None, *network.input_shape[1:]], tf.float32)
    function = tf.function(lambda x: network(x, training=False), input_signature=[signature])
    # Frozen into constants: Keras 3 variables reached through a concrete function otherwise
    # convert as uninitialised resources (the model then predicts NaN).
    frozen = convert_variables_to_constants_v2(function.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex ops: the platform lacks them
    if member_format == "tflite-fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return converter.convert()


def member_files(records, member_format, folder, *, log=print):
    """Each run's member file in `member_format`, converted into `folder`; Keras where conversion fails.

    Args:
        records: run records from `trainer.run_dir.read_run`.
        member_format: one of `FORMATS`.
        folder: where converted files are written.
        log: where each fallback is reported.

    Returns:
        One `MemberFile` per record.
    """
    from codapack.trainer import run_dir

    files, done = [], {}
    for i, record in enumerate(records):
        weights = run_dir.weights_path(record)
        if member_format == KERAS:
            files.append(MemberFile(KERAS, weights))
            continue
        if weights in done:  # the same run twice in an ensemble: converted once
            files.append(done[weights])
            continue
        try:
            content = convert(run_dir.load_run_network(record), member_format)
        except Exception as exc:  # noqa: BLE001 -- the converter raises many kinds; each means "not convertible"
            reason = str(exc).strip().splitlines()[-1][:300] if str(exc).strip() else type(exc).__name__
            note = (f"`{record['name']}` ({record['network']['architecture']}) cannot be converted to {member_format} "
                    f"({reason}); it ships as a keras member")
            log(note)
            files.append(done.setdefault(weights, MemberFile(KERAS, weights, note)))
            continue
        path = os.path.join(folder, f"{i:02d}{SUFFIX[member_format]}")
        with open(path, "wb") as f:
            f.write(content)
        files.append(done.setdefault(weights, MemberFile(member_format, path)))
    return files


def scratch_folder():
    """A temporary folder for converted members (removed by the caller's `with`)."""
    return tempfile.TemporaryDirectory(prefix="codapack-members-")
