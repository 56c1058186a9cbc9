"""Benchmarks against the anchors: `python -m benchmarks run [--quick]` (see __main__.py)."""
