"""Evaluation of runs on local splits with scikit-learn's metrics."""
