"""Benchmarks: `make bench` (= `python -m bench [names...]`). Each module prints ratios measured side by side in one run."""
