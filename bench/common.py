"""Shared pieces of the benchmarks: the kit, timing, and the rows every benchmark reports.

Each benchmark measures codapack's way against the baseline a user would
otherwise run, in the same process and on the same data, and reports rows of
(figure, value, unit, baseline value, ratio).
"""

import dataclasses
import os
import platform
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared")
MAKE_KIT = os.path.join(SHARED, "tools", "make_kit.py")


@dataclasses.dataclass
class Row:
    """One measured figure against its baseline.

    Args:
        benchmark: which benchmark it belongs to.
        figure: what was measured, e.g. "training images/s, baseline CNN".
        value: codapack's figure.
        unit: its unit.
        baseline: the baseline's figure in the same unit, or None.
        baseline_name: what the baseline is.
        higher_is_better: whether a larger value is better (for the ratio's sense).
        note: anything the reader must know to interpret it.
    """

    benchmark: str
    figure: str
    value: float
    unit: str
    baseline: float = None
    baseline_name: str = ""
    higher_is_better: bool = True
    note: str = ""

    @property
    def ratio(self):
        """How many times better codapack is than the baseline (>1 is better)."""
        if self.baseline in (None, 0) or self.value == 0:
            return None
        return self.value / self.baseline if self.higher_is_better else self.baseline / self.value


def kit_path(folder):
    """The kit's training_set.npz in `folder`, built there with ../shared/tools/make_kit.py if missing."""
    path = os.path.join(folder, "training_set.npz")
    if not os.path.exists(path):
        if not os.path.isfile(MAKE_KIT):
            sys.exit(f"the benchmarks need the kit: {MAKE_KIT} is missing (pass --kit PATH to an existing kit)")
        subprocess.run([sys.executable, MAKE_KIT, folder], check=True)
    return path


def timed(function, *args, **kwargs):
    """(seconds, result) of one call."""
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def machine_description():
    """The machine and library versions a result was measured with."""
    import keras
    import tensorflow as tf

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
            "gpu": bool(tf.config.list_physical_devices("GPU"))}


def format_rows(rows):
    """A fixed-width table: figure, codapack, baseline, ratio."""
    header = f"{'benchmark':<18}{'figure':<52}{'codapack':>14}{'baseline':>14}  {'ratio':>7}  unit / baseline"
    lines = [header, "-" * len(header)]
    for row in rows:
        baseline = "" if row.baseline is None else f"{row.baseline:>14.3f}"
        ratio = "" if row.ratio is None else f"{row.ratio:>6.2f}x"
        lines.append(f"{row.benchmark:<18}{row.figure:<52}{row.value:>14.3f}{baseline:>14}  {ratio:>7}  "
                     f"{row.unit}{' / ' + row.baseline_name if row.baseline_name else ''}"
                     f"{' (' + row.note + ')' if row.note else ''}")
    return "\n".join(lines)
