"""Benchmarks and the load test: tooling, not part of the app. Run each from the repository root as
`python -m benchmarks.NAME --help` (gpu, app, interpolation, loadtest); BENCHMARKS.md records their numbers.
What they need on top of the app is the `bench` extra: `pip install -e ".[bench]"`."""
