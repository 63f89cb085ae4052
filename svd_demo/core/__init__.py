"""Core: what a request is, before anything runs. Errors, parameter specs, model presets, settings, access rules.

Imports no torch, numpy or gradio (an import contract checks it): the CLI's `--help`, the settings docs and the
budgets read these without loading a framework.
"""
