"""End to end: the app as people run it (a browser on the page, the installed command, the Docker image's command,
the CLI and the benchmarks as subprocesses), and the long runs of each subject (several generations a test, a local
Ray cluster, the whole corpus of hostile inputs). All slow: the fast tier, `pytest -m "not slow"`, leaves this folder
out, and no test elsewhere is marked slow."""

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/tests/e2e/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.slow)
