"""Evaluation beyond bits per byte: lm-eval tasks, benchmarks built from held-out text, intervals, speed."""
