"""Benchmarks against baselines, run in the same process on the same data: `python bench/run.py`."""
