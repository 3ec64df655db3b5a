"""Ensembles of runs: built with the shipped runtime, chosen by greedy selection on the validation split.

`load_ensemble` builds `submission.model.Ensemble`, the very class `model.py`
uses, from run directories, so an ensemble scores locally exactly as it
predicts on the platform. `greedy_selection` is Caruana et al.'s ensemble
selection: add, with replacement, the member that most improves the
validation score; stop when nothing helps or a budget would be exceeded.
"""

import dataclasses
import os
import time

import numpy as np

from codapack.submission.manifest import KERAS
from codapack.trainer import run_dir


def load_ensemble(records, profile, *, weights=None, tta="none", batch_size=64):
    """The runtime ensemble of `records` (run records), weights loaded from the run directories.

    Args:
        records: run records from `trainer.run_dir.read_run`.
        profile: the competition `Profile`.
        weights: one ensemble weight per record; equal when None.
        tta: a test-time augmentation policy of `submission.tta`.
        batch_size: images per prediction batch.

    Returns:
        A `submission.model.Ensemble`.
    """
    from codapack.submission import model as runtime
    from codapack.submission import networks
    from codapack.submission import tta as tta_module

    # Each member's weights stay in its run folder: the manifest names them from the folder the runs share.
    folder = os.path.commonpath([os.path.abspath(record["dir"]) for record in records])
    files = [(KERAS, os.path.relpath(os.path.abspath(run_dir.weights_path(record)), folder), None)
             for record in records]
    manifest = run_dir.manifest_of(records, weights or [1.0] * len(records), profile, batch_size=batch_size,
                                   tta=tta, files=files)
    return runtime.Ensemble(manifest, folder, networks, tta_module)


@dataclasses.dataclass
class Candidate:
    """One run as a possible ensemble member.

    Args:
        record: its run record.
        probabilities: its validation probabilities (n, k).
        bytes: size of its weights file.
        seconds_per_image: measured prediction time per image (with the TTA policy).
    """

    record: dict
    probabilities: np.ndarray
    bytes: int
    seconds_per_image: float


def measure_candidate(record, profile, images, tta="none"):
    """Validation probabilities, weights size and prediction speed of one run."""
    ensemble = load_ensemble([record], profile, tta=tta)
    ensemble.predict_proba(images[:8])  # trace the graph before timing
    started = time.perf_counter()
    probabilities = ensemble.predict_proba(images)
    seconds = (time.perf_counter() - started) / max(len(images), 1)
    return Candidate(record, probabilities, os.path.getsize(run_dir.weights_path(record)), seconds)


def _score(probabilities, labels):
    """Accuracy first; mean log-likelihood breaks ties so small improvements still count."""
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, 1.0)
    return float(np.mean(probabilities.argmax(axis=1) == labels)), float(np.mean(np.log(picked)))


def greedy_selection(candidates, labels, *, max_members=5, max_bytes=None, max_seconds_per_image=None):
    """Choose ensemble weights by greedy forward selection with replacement.

    Args:
        candidates: `Candidate`s with validation probabilities.
        labels: validation labels.
        max_members: most distinct runs in the ensemble.
        max_bytes: most bytes of weights in the zip (distinct runs counted once).
        max_seconds_per_image: most prediction time per image, summed over distinct runs.

    Returns:
        (weights, history): weights is a list of counts, one per candidate
        (0 for runs not chosen); history lists the validation score after each step.
    """
    counts = np.zeros(len(candidates), dtype=int)
    total = np.zeros_like(candidates[0].probabilities)
    best, history = (-1.0, -np.inf), []
    while True:
        step_best, step_choice = best, None
        for i, candidate in enumerate(candidates):
            if not counts[i] and not _fits(candidates, counts, i, max_members, max_bytes, max_seconds_per_image):
                continue
            score = _score((total + candidate.probabilities) / (counts.sum() + 1), labels)
            if score > step_best:
                step_best, step_choice = score, i
        if step_choice is None:
            return counts.tolist(), history
        counts[step_choice] += 1
        total += candidates[step_choice].probabilities
        best = step_best
        history.append({"added": candidates[step_choice].record["name"], "accuracy": best[0],
                        "mean_log_likelihood": best[1]})


def _fits(candidates, counts, new, max_members, max_bytes, max_seconds):
    chosen = [c for c, n in zip(candidates, counts) if n] + [candidates[new]]
    if max_members and len(chosen) > max_members:
        return False
    if max_bytes and sum(c.bytes for c in chosen) > max_bytes:
        return False
    return not (max_seconds and sum(c.seconds_per_image for c in chosen) > max_seconds)
