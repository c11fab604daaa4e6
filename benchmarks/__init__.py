"""Side-by-side benchmarks: ``python -m benchmarks`` regenerates docs/benchmarks.md."""
