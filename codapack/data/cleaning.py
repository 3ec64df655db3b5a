"""`clean_dataset`: a new .npz without the groups an inspection found; the input is never touched.

The report must come from the same data (checked by hash). Beside the output,
OUT.removed.json lists every removed index and why, so the cleaning can be
audited or undone.
"""

import os

import numpy as np

from codapack.data.inspection.duplicates import duplicate_indices, exact_duplicate_sets
from codapack.data.inspection.report import REPORT_NAME
from codapack.dataset import IMAGES_KEY, LABELS_KEY, load_dataset
from codapack.errors import CodapackError, fail_for
from codapack.files import atomic_path, read_json, write_json

DUPLICATE_MODES = ("keep", "dedupe", "drop")


def clean_dataset(data_path, report_dir, out_path, profile, *, drop=(), duplicates="keep", min_score=None):
    """Write `out_path` holding the images of `data_path` minus the chosen groups.

    Args:
        data_path: the competition .npz that was inspected.
        report_dir: the folder `codapack inspect` wrote (holding report.json).
        out_path: the .npz to write; must differ from `data_path`.
        profile: the competition `Profile`.
        drop: group names ("background-1") or kinds ("background") to remove.
        duplicates: "keep", "dedupe" (keep the first of each set of exact
            duplicates) or "drop" (remove every copy).
        min_score: when set, only members of the dropped groups whose score
            reaches it are removed (members of groups without scores all are).

    Returns:
        The record written to OUT.removed.json.

    Raises:
        CodapackError: same input and output, a report of other data, an
            unknown group or duplicate mode.
    """
    if duplicates not in DUPLICATE_MODES:
        raise CodapackError(f"`duplicates` should be one of {', '.join(DUPLICATE_MODES)}. "
                            f"Received: {duplicates!r}")
    if not os.fspath(out_path).endswith(".npz"):
        raise fail_for(out_path, "the output should be a .npz file (name ending in .npz)")
    if os.path.exists(out_path) and os.path.samefile(out_path, data_path):
        raise fail_for(out_path, "is the input file; clean never overwrites its input, choose another --out")
    dataset = load_dataset(data_path, profile)
    report = _read_report(report_dir, dataset)
    removed = {}
    for wanted in drop:
        matches = [g for g in report["groups"] if wanted in (g["name"], g["kind"])]
        if not matches:
            known = sorted({g["name"] for g in report["groups"]} | {g["kind"] for g in report["groups"]})
            raise fail_for(report_dir, f"no group named or of kind {wanted!r} in {REPORT_NAME}; "
                                       f"it has: {', '.join(known) or 'no groups'}")
        for group in matches:
            removed[group["name"]] = _members_to_drop(group, min_score)
    if duplicates != "keep":
        removed[f"exact-duplicates-{duplicates}"] = duplicate_indices(exact_duplicate_sets(dataset.images), duplicates)
    gone = np.zeros(len(dataset), dtype=bool)
    for indices in removed.values():
        gone[np.asarray(indices, dtype=int)] = True
    _write_subset(data_path, out_path, np.flatnonzero(~gone))
    record = {"source": os.fspath(data_path), "source_sha256": dataset.sha256, "output": os.fspath(out_path),
              "report": os.path.join(report_dir, REPORT_NAME), "min_score": min_score, "kept": int((~gone).sum()),
              "removed_count": int(gone.sum()), "removed_indices": np.flatnonzero(gone).tolist(),
              "removed_by_reason": removed}
    write_json(removed_list_path(out_path), record)
    return record


def _members_to_drop(group, min_score):
    scores = group.get("scores")
    if min_score is None or scores is None:
        return group["indices"]
    return [index for index, score in zip(group["indices"], scores) if score >= min_score]


def removed_list_path(out_path):
    """OUT.removed.json for OUT.npz."""
    return f"{os.path.splitext(os.fspath(out_path))[0]}.removed.json"


def _read_report(report_dir, dataset):
    path = os.path.join(report_dir, REPORT_NAME)
    if not os.path.isfile(path):
        raise fail_for(report_dir, f"no {REPORT_NAME}; run `codapack inspect DATA --out {report_dir}` first")
    report = read_json(path)
    if report.get("sha256") != dataset.sha256:
        raise fail_for(path, f"was written for other data ({report.get('data')}); "
                             f"inspect {dataset.path} again before cleaning it")
    return report


def _write_subset(data_path, out_path, keep):
    # The raw arrays keep the input's dtypes and label shape, so the cleaned
    # file looks like the competition's own.
    with np.load(data_path, allow_pickle=False) as npz:
        images, labels = npz[IMAGES_KEY][keep], npz[LABELS_KEY][keep]
    with atomic_path(out_path) as tmp:
        np.savez(tmp, **{IMAGES_KEY: images, LABELS_KEY: labels})
