"""How far the laid-over-picture search holds beyond the unit tests' own draws.

The unit tests (tests/test_inspection_overlays.py) check 12 contamination settings,
one source-tied setting and a clean file, each drawn once. This runs the same 14
with other draws: data seed s makes new procedural cells (`make_cells(seed=s)`)
and new sources, picks and weights (each setting's seed + 100 s). A setting passes
as the test asks: precision and recall >= 0.98 for the overlay groups (and no
class-tied group); for the source tied to one class, a single class-tied group at
0.98; for the clean file, no group at all.

The search's outcome can turn on rounding: run it again with another OpenBLAS
kernel (`OPENBLAS_CORETYPE=Haswell python bench/inspection_seeds.py`) to see which
settings are close to the cut.

    python bench/inspection_seeds.py [--seeds 0 1 2 3 4]
"""

import argparse
import dataclasses
import os
import sys

import numpy as np
from tqdm import tqdm

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from codapack.data.inspection.overlays import overlay_groups  # noqa: E402
from tests.contamination import contaminate, make_cells, precision_recall  # noqa: E402
from tests.test_inspection_overlays import CLASSES, N, SETTINGS, SIZE, TIED  # noqa: E402


def outcome(cells, setting):
    """(passed, precision, recall, group sizes by kind) of one setting, or of the clean file for None."""
    if setting is None:
        groups = overlay_groups(*cells, CLASSES, min_size=10)
        return groups == [], float("nan"), float("nan"), groups
    images, labels, source = contaminate(*cells, CLASSES, setting)
    groups = overlay_groups(images, labels.ravel(), CLASSES, min_size=10)
    kinds = [group.kind for group in groups]
    wanted = "class-tied" if setting.tied_class is not None else "overlay"
    precision, recall = precision_recall([g.indices for g in groups if g.kind == wanted], source >= 0)
    shape_ok = kinds == ["class-tied"] if setting.tied_class is not None else "class-tied" not in kinds
    return shape_ok and precision >= 0.98 and recall >= 0.98, precision, recall, groups


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args(argv)
    names = [s.name for s in SETTINGS] + [TIED.name, "clean"]
    passed = {name: [] for name in names}
    failures = []
    runs = [(seed, setting) for seed in args.seeds for setting in SETTINGS + [TIED, None]]
    cells = {}
    for seed, setting in tqdm(runs, desc="settings x seeds"):
        if seed not in cells:
            cells[seed] = make_cells(N, SIZE, CLASSES, seed=seed)
        drawn = None if setting is None else dataclasses.replace(setting, seed=setting.seed + 100 * seed)
        ok, precision, recall, groups = outcome(cells[seed], drawn)
        name = "clean" if setting is None else setting.name
        passed[name].append(ok)
        if not ok:
            sizes = ", ".join(f"{g.kind} {len(g.indices)}" for g in groups) or "none"
            failures.append(f"seed {seed} {name}: precision {precision:.3f}, recall {recall:.3f}, groups: {sizes}")
    print(f"| setting | passed (of {len(args.seeds)} seeds) |\n|---|---:|")
    for name in names:
        print(f"| {name} | {sum(passed[name])} |")
    total = sum(sum(v) for v in passed.values())
    print(f"| all | {total} of {len(runs)} |")
    print(f"OpenBLAS kernel: {os.environ.get('OPENBLAS_CORETYPE', 'detected')}")
    for line in failures:
        print(line)
    return np.mean([ok for v in passed.values() for ok in v])


if __name__ == "__main__":
    main()
