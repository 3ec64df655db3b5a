"""Greedy ensemble selection on validation probabilities."""

import numpy as np

from codapack.evaluator.ensemble import Candidate, greedy_selection

LABELS = np.array([0, 0, 1, 1, 2, 2])


def candidate(name, predicted, confidence=0.8, size=100, seconds=0.001):
    probabilities = np.full((len(predicted), 3), (1 - confidence) / 2)
    probabilities[np.arange(len(predicted)), predicted] = confidence
    return Candidate({"name": name}, probabilities, size, seconds)


def mixed(name, confident_right, weakly_wrong):
    """Confidently right on some images, weakly wrong (0.45 against 0.35) on the others."""
    probabilities = np.zeros((len(LABELS), 3))
    for i in confident_right:
        probabilities[i] = 0.05
        probabilities[i, LABELS[i]] = 0.9
    for i, wrong in weakly_wrong.items():
        probabilities[i] = 0.2
        probabilities[i, wrong], probabilities[i, LABELS[i]] = 0.45, 0.35
    return Candidate({"name": name}, probabilities, 100, 0.001)


# a and b are each right on 4 of 6 images, wrong on different ones; together they are right on all.
A = mixed("a", [0, 1, 2, 3], {4: 0, 5: 0})
B = mixed("b", [2, 3, 4, 5], {0: 1, 1: 1})
C = candidate("c", [0, 1, 1, 0, 2, 0])


def test_selection_adds_members_while_they_help_then_stops():
    counts, history = greedy_selection([A, B, C], LABELS)
    assert counts[0] >= 1 and counts[1] >= 1
    assert {history[0]["added"], history[1]["added"]} == {"a", "b"}
    accuracies = [step["accuracy"] for step in history]
    assert accuracies == sorted(accuracies) and accuracies[-1] == 1.0


def test_selection_respects_member_size_and_time_caps():
    assert sum(1 for n in greedy_selection([A, B, C], LABELS, max_members=1)[0] if n) == 1
    big_b = Candidate(B.record, B.probabilities, 10_000, B.seconds_per_image)
    assert greedy_selection([A, big_b, C], LABELS, max_bytes=5_000)[0][1] == 0
    assert greedy_selection([A, big_b, C], LABELS, max_bytes=50_000)[0][1] >= 1
    slow_b = Candidate(B.record, B.probabilities, B.bytes, 1.0)
    assert greedy_selection([A, slow_b, C], LABELS, max_seconds_per_image=0.5)[0][1] == 0


def test_a_member_that_only_hurts_is_never_added():
    wrong = candidate("wrong", [2, 2, 0, 0, 1, 1], confidence=0.99)
    counts, _ = greedy_selection([A, wrong], LABELS)
    assert counts == [counts[0], 0] and counts[0] >= 1
