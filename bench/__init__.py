"""Benchmarks, run by hand from the repository root (`python -m bench.<name>_bench`); see bench/README.md."""
