"""codapack: from a competition's training data to a submission zip known to work.

The pipeline, one folder per stage:
    codapack/   the competition profile, data validation and splits shared by every stage
    trainer/    configs, models and training runs
    evaluator/  metrics on local splits
    submission/ the runtime that ships inside every zip (model.py, networks.py)
    tools/      packaging, the local harness and the leaderboard
"""

__version__ = "0.1.0"
