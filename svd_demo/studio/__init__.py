"""Studio: the one entry every front end calls (`svd_demo.studio.studio.Studio`). A run's cost before it starts
(budgets), its record (sidecar) and restoring from it, cancellation, and ZeroGPU's wrapper around the GPU work.
"""
