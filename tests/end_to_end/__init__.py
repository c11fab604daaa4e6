"""End to end: the CLI, the demo, the examples, the benchmarks smoke run."""
