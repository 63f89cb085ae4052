"""The architecture's import contracts (.importlinter, docs/architecture.md): kept by the code, and broken by an
import that points the wrong way, such as gradio in the core or the studio imported by the engine."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    # The console script's module, run by this interpreter: the package is found from `cwd` first.
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(cwd)})


def test_the_code_keeps_every_contract():
    done = _lint_imports(ROOT)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("core/params.py", "import gradio", "Only the web layer imports gradio"),
    ("core/params.py", "import torch", "The core imports no framework"),
    ("engine/preview.py", "from svd_demo.studio import studio", "Each layer imports only the layers below it"),
    ("files/media.py", "def later():\n    from svd_demo.engine import hub", "Each layer imports only"),
    ("engine/hub.py", "from svd_demo.engine import pipelines", "No import cycles"),
    ("web/ui.py", "import svd_demo_testing.tiny_models", "never imports the tiny-model builder"),
    ("web/runs.py", "def later():\n    from svd_demo.web import handlers", "Inside the web layer"),
])
def test_a_planted_violation_breaks_its_contract(tmp_path, module, line, contract):
    """A copy of the package with one wrong import (inside a function too: those count) fails, naming the rule."""
    for name in ("svd_demo", "svd_demo_testing"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    path = tmp_path / "svd_demo" / module
    path.write_text(path.read_text() + "\n" + line + "\n")
    done = _lint_imports(tmp_path)
    assert done.returncode != 0
    assert f"{contract}" in done.stdout and "BROKEN" in done.stdout, done.stdout[-3000:]


def test_the_tiers_are_folders_slow_tests_live_in_e2e_only():
    """The fast tier (`-m "not slow"`) is tests/unit and tests/integration whole: a long test of a subject sits in
    tests/e2e beside its fast file's subject, where the folder's conftest marks it, never marked one by one."""
    tests = ROOT / "tests"
    marked = [f"{path.relative_to(tests)}:{number}"
              for folder in ("unit", "integration") for path in sorted((tests / folder).rglob("*.py"))
              for number, line in enumerate(path.read_text().splitlines(), 1)
              if re.search(r"mark\.slow\b|pytestmark\s*=.*\bslow\b", line)]
    assert marked == []
