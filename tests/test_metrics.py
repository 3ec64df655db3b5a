"""Metrics match hand computations, including classes that never occur."""

import numpy as np
import pytest

from codapack.metrics import classification_metrics, format_metrics


def test_metrics_on_a_small_case():
    y_true = np.array([0, 0, 0, 1, 1, 2])
    y_pred = np.array([0, 0, 1, 1, 1, 1])
    m = classification_metrics(y_true, y_pred, ["a", "b", "c", "d"])
    assert m["n"] == 6 and m["accuracy"] == pytest.approx(4 / 6)
    # class a: p=1, r=2/3; b: p=2/4, r=1; c: p=0, r=0; d: absent (0, 0)
    assert m["precision_macro"] == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    assert m["recall_macro"] == pytest.approx((2 / 3 + 1 + 0 + 0) / 4)
    f_a, f_b = 2 * (2 / 3) / (1 + 2 / 3), 2 * 0.5 / 1.5
    assert m["f1_macro"] == pytest.approx((f_a + f_b) / 4)
    assert m["f1_weighted"] == pytest.approx((3 * f_a + 2 * f_b) / 6)
    assert m["confusion_matrix"] == [[2, 1, 0, 0], [0, 2, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    assert m["per_class"]["d"]["support"] == 0
    assert "immature" not in format_metrics(m) and "accuracy            0.6667" in format_metrics(m)
