"""Evaluation of runs on local splits: metrics, ensembles through the shipped runtime, TTA, and the
shift estimate on corruption families a run never trained on."""
