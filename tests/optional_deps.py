"""Optional dependencies in tests: skip where one is not installed, but fail in CI, which installs them all."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest


def missing(message: str) -> NoReturn:
    """Skip the test for a missing tool on a developer's machine, with `message` as the reason; fail it in CI
    (CI=true), which installs every tool, so that a broken setup never passes as skipped tests."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}. CI installs every test dependency (.ci/run), so this test must run there.",
                    pytrace=False)
    pytest.skip(message)


def require(module: str, install: str) -> ModuleType:
    """Import `module`; when it is missing, skip the test, or fail it when CI=true (a missing extra is a CI bug)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing(f"{module} is not installed ({install}): {exc}")
