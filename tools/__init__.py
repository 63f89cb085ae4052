"""Repository tooling that is not part of the app: nothing under `svd_demo` imports it, and it is not installed."""
