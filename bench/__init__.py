"""Benchmarks: `python -m bench` runs them all and writes docs/PERFORMANCE.md (see bench/__main__.py)."""
