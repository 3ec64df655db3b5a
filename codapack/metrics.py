"""Classification metrics, all computed by scikit-learn."""

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

HEADLINE = ("accuracy", "precision_macro", "recall_macro", "f1_macro",
            "precision_weighted", "recall_weighted", "f1_weighted")


def classification_metrics(y_true, y_pred, class_names):
    """Accuracy, macro and weighted precision/recall/F1, per-class scores and the confusion matrix.

    Args:
        y_true: (n,) true class ids.
        y_pred: (n,) predicted class ids.
        class_names: names of classes 0..k-1; every class appears in the
            outputs even when absent from `y_true`.

    Returns:
        A JSON-ready dict: the `HEADLINE` figures, `n`, `per_class` (name to
        precision, recall, f1, support) and `confusion_matrix` (rows true, columns predicted).
    """
    labels = np.arange(len(class_names))
    out = {"n": int(len(y_true)), "accuracy": float(accuracy_score(y_true, y_pred))}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=average,
                                                     zero_division=0)
        out.update({f"precision_{average}": float(p), f"recall_{average}": float(r), f"f1_{average}": float(f)})
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    out["per_class"] = {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                               "support": int(s[i])}
                        for i, name in enumerate(class_names)}
    out["confusion_matrix"] = confusion_matrix(y_true, y_pred, labels=labels).tolist()
    return out


def format_metrics(metrics):
    """A plain-text table of the headline figures, per-class scores and the confusion matrix."""
    lines = [f"n = {metrics['n']}"]
    lines += [f"{name:<20}{metrics[name]:.4f}" for name in HEADLINE]
    lines.append("")
    lines.append(f"{'class':<24}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}")
    for name, row in metrics["per_class"].items():
        lines.append(f"{name:<24}{row['precision']:>10.4f}{row['recall']:>10.4f}{row['f1']:>10.4f}"
                     f"{row['support']:>9d}")
    lines.append("")
    lines.append("confusion matrix (rows: true class, columns: predicted)")
    for row in metrics["confusion_matrix"]:
        lines.append(" ".join(f"{v:>6d}" for v in row))
    return "\n".join(lines)
