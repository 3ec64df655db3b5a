"""The robustness suite: every corruption at every severity, scored, and one summary "shifted" score.

The hidden test sets teams met were corrupted and differently distributed
(0.95 local became 0.59 remote); the mean accuracy over the corrupted copies
predicts that drop better than the clean score does.
"""

import numpy as np
from tqdm import tqdm

from evaluator.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from evaluator.metrics import classification_metrics


def robustness_suite(predict_proba, images, labels, class_names, *, corruptions=None, seed=0):
    """Score a model on corrupted copies of a split.

    Args:
        predict_proba: callable mapping images (n, H, W, 3) to probabilities (n, k).
        images: the clean split's images.
        labels: their labels.
        class_names: the profile's class names.
        corruptions: names from `evaluator.corruptions.CORRUPTIONS`; all when None.
        seed: seed of the corruptions' random parts.

    Returns:
        A dict: `clean_accuracy`, `shifted_accuracy` (mean over every corruption
        and severity), `shifted_f1_macro`, and `table` {corruption: {severity:
        {"accuracy", "f1_macro"}}} plus `per_corruption` {corruption: mean accuracy}.
    """
    names = list(corruptions or CORRUPTIONS)
    clean = classification_metrics(labels, predict_proba(images).argmax(axis=1), class_names)
    table = {}
    with tqdm(total=len(names) * len(SEVERITIES), desc="robustness", unit="copy", disable=None) as bar:
        for name in names:
            table[name] = {}
            for severity in SEVERITIES:
                predicted = predict_proba(corrupt(images, name, severity, seed=seed)).argmax(axis=1)
                scores = classification_metrics(labels, predicted, class_names)
                table[name][severity] = {"accuracy": scores["accuracy"], "f1_macro": scores["f1_macro"]}
                bar.update()
    cells = [cell for row in table.values() for cell in row.values()]
    return {"n": int(len(labels)), "clean_accuracy": clean["accuracy"],
            "shifted_accuracy": float(np.mean([c["accuracy"] for c in cells])),
            "shifted_f1_macro": float(np.mean([c["f1_macro"] for c in cells])),
            "per_corruption": {name: float(np.mean([c["accuracy"] for c in row.values()]))
                               for name, row in table.items()},
            "table": table}
