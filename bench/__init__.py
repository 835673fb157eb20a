"""Benchmarks at real volume (not tests): see bench/README.md and docs/performance.md."""
