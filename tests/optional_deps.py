"""Optional dependencies in tests: skip where one is not installed, but fail in CI, which installs them all."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def require(module: str, install: str) -> ModuleType:
    """Import `module`; when it is missing, skip the test, or fail it when CI=true (a missing extra is a CI bug)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        message = f"{module} is not installed ({install}): {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}. CI installs requirements-dev.txt, so this test must run there.", pytrace=False)
        pytest.skip(message)
