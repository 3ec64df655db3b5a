"""The robustness suite: corrupted copies of a split, scored per shift family, held-out apart.

The hidden test sets teams met were corrupted and differently distributed
(0.95 local became 0.59 remote). Accuracy on corruption families the run
trained on says little about that: augmentation made them easy. Accuracy on
the families it never saw (leave-family-out) is the figure to trust, and every
report shows it first.
"""

import numpy as np
from tqdm import tqdm

from codapack.evaluator.corruptions import CORRUPTIONS, FAMILY_OF, SEVERITIES, corrupt, shifted_assignment, shifted_copy
from codapack.metrics import classification_metrics
from codapack.shift_families import FAMILIES


def trained_families_of(records):
    """The union of the shift families the runs trained on, from run.json.

    Runs written before run.json recorded it get their families from the
    augmentation in their config.
    """
    from codapack.data.policies import layer_names, trained_families
    from codapack.trainer.config import Augmentation

    families = set()
    for record in records:
        recorded = record.get("training", {}).get("augmentation")
        if recorded is None:
            settings = record.get("config", {}).get("augmentation", {})
            layers = tuple(settings.get("layers", ()))
            recorded = {"families": trained_families(layer_names(Augmentation(policy=settings.get("policy", "none"),
                                                                             layers=layers)))}
        families.update(recorded["families"])
    return [family for family in FAMILIES if family in families]


def family_split(per_family, trained_families):
    """Held-out and trained accuracy: means over families, so each family counts once.

    Args:
        per_family: {family: accuracy} for the families scored.
        trained_families: the families the model's augmentation covered.

    Returns:
        {"held_out_accuracy", "trained_accuracy", "held_out_families", "trained_families"};
        an accuracy is None when no scored family falls on its side.
    """
    trained = [f for f in FAMILIES if f in per_family and f in set(trained_families)]
    held_out = [f for f in FAMILIES if f in per_family and f not in set(trained_families)]

    def mean(families):
        return float(np.mean([per_family[f] for f in families])) if families else None

    return {"held_out_accuracy": mean(held_out), "trained_accuracy": mean(trained),
            "held_out_families": held_out, "trained_families": trained}


def robustness_suite(predict_proba, images, labels, class_names, *, trained_families=(), corruptions=None,
                     severities=SEVERITIES, seed=0):
    """Score a model on every corruption at every severity of a split.

    Args:
        predict_proba: callable mapping images (n, H, W, 3) to probabilities (n, k).
        images: the clean split's images.
        labels: their labels.
        class_names: the profile's class names.
        trained_families: the shift families the model trained on (run.json's
            `training.augmentation.families`); the others are held out.
        corruptions: names from `evaluator.corruptions.CORRUPTIONS`; all when None.
        severities: the severities to score, 1..5.
        seed: seed of the corruptions' random parts.

    Returns:
        A dict: `held_out_accuracy` and `trained_accuracy` (means over the families
        on each side), `per_family`, `clean_accuracy`, `shifted_accuracy` (mean over
        every cell), `shifted_f1_macro`, `per_corruption` and `table` {corruption:
        {severity: {"accuracy", "f1_macro"}}}.
    """
    names = list(corruptions or CORRUPTIONS)
    clean = classification_metrics(labels, predict_proba(images).argmax(axis=1), class_names)
    table = {}
    with tqdm(total=len(names) * len(severities), desc="robustness", unit="copy", disable=None) as bar:
        for name in names:
            table[name] = {}
            for severity in severities:
                predicted = predict_proba(corrupt(images, name, severity, seed=seed)).argmax(axis=1)
                scores = classification_metrics(labels, predicted, class_names)
                table[name][severity] = {"accuracy": scores["accuracy"], "f1_macro": scores["f1_macro"]}
                bar.update()
    cells = [cell for row in table.values() for cell in row.values()]
    per_corruption = {name: float(np.mean([c["accuracy"] for c in row.values()])) for name, row in table.items()}
    per_family = {}
    for name, accuracy in per_corruption.items():
        per_family.setdefault(FAMILY_OF[name], []).append(accuracy)
    per_family = {family: float(np.mean(values)) for family, values in per_family.items()}
    return {**family_split(per_family, trained_families), "per_family": per_family,
            "n": int(len(labels)), "clean_accuracy": clean["accuracy"],
            "shifted_accuracy": float(np.mean([c["accuracy"] for c in cells])),
            "shifted_f1_macro": float(np.mean([c["f1_macro"] for c in cells])),
            "per_corruption": per_corruption, "table": table}


def shifted_scores(labels, predicted, trained_families, offset=0):
    """Scores of predictions on `shifted_copy(images, offset=offset)`: overall, per family, held-out apart.

    Each image carried one corruption at one severity, so per-family figures rest
    on about n * (corruptions in the family) / 105 images: cheap, and noisier than
    the full suite.
    """
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    families = np.array([FAMILY_OF[name] for name, _ in shifted_assignment(len(labels), offset)])
    per_family = {family: float(np.mean(predicted[families == family] == labels[families == family]))
                  for family in FAMILIES if np.any(families == family)}
    return {**family_split(per_family, trained_families), "per_family": per_family,
            "shifted_accuracy": float(np.mean(predicted == labels))}


def shifted_estimate(predict_proba, images, labels, trained_families, *, rounds=3, seed=0):
    """`shifted_scores` over `rounds` corrupted copies of a split (each image gets `rounds` corruptions).

    The bench's figure: rounds x n predictions instead of the suite's 105 x n.
    """
    per_round = []
    for r in range(rounds):
        offset = r * 37  # co-prime with the 105 pairs: each round gives an image another corruption
        guesses = predict_proba(shifted_copy(images, seed=seed + r, offset=offset)).argmax(axis=1)
        per_round.append(shifted_scores(labels, guesses, trained_families, offset))
    per_family = {family: float(np.mean([s["per_family"][family] for s in per_round]))
                  for family in per_round[0]["per_family"]}
    return {**family_split(per_family, trained_families), "per_family": per_family, "rounds": rounds,
            "shifted_accuracy": float(np.mean([s["shifted_accuracy"] for s in per_round]))}
