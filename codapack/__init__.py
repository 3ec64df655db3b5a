"""codapack: from a competition's training data to a submission zip known to work and score.

The pipeline, one subpackage per stage, each importing only those listed above it:
    codapack.submission  the runtime shipped in every zip (imports nothing of codapack)
    codapack             the ground floor: errors, files, profile, dataset, splits, metrics
    codapack.data        inspection, cleaning, augmentation policies and layers
    codapack.trainer     configs, recipes, training runs, search, cross-validation, bagging
    codapack.evaluator   metrics on local splits, ensembles, TTA, the shift estimate
    codapack.tools       packaging, the local harness, the leaderboard, upload
    codapack.cli         the `codapack` command's verbs
"""

__version__ = "0.1.0"
