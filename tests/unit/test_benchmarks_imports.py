"""The benchmarks use the app the way any caller would: only public names of svd_demo and svd_demo_testing, so the
app can rename its private helpers without breaking a benchmark that nobody runs until a GPU is lent."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APP_PACKAGES = ("svd_demo", "svd_demo_testing")


def _is_app(module: str) -> bool:
    return module.split(".")[0] in APP_PACKAGES


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_app_uses(source: str) -> list[str]:
    """Private app names a module's source imports, or reads as attributes of an imported app module or name."""
    tree = ast.parse(source)
    found: list[str] = []
    bound: set[str] = set()  # local names that refer to something of the app
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and _is_app(node.module):
            found += [f"{node.module} (module)" for part in node.module.split(".") if _private(part)]
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"from {node.module} import {alias.name}")
                bound.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _is_app(alias.name):
                    found += [f"import {alias.name}" for part in alias.name.split(".") if _private(part)]
                    bound.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in bound:
                found.append(ast.unparse(node))
    return found


def test_the_check_finds_private_imports_and_attributes():
    source = ("from svd_demo_testing.tiny_models import _tokenizer, build_tiny_svd\n"
              "import svd_demo.engine.memory as memory\nfrom svd_demo.engine import pipelines\n"
              "memory._plan(1)\npipelines.PipelineCache._lock\nbuild_tiny_svd()._private_ok_on_results\n"
              "from os import _exit\nself._halt.set()\n")
    assert sorted(private_app_uses(source)) == ["from svd_demo_testing.tiny_models import _tokenizer",
                                                "memory._plan", "pipelines.PipelineCache._lock"]


def test_benchmarks_import_only_public_app_names():
    files = sorted((REPO / "benchmarks").rglob("*.py"))
    assert len(files) >= 8
    uses = {str(path.relative_to(REPO)): private_app_uses(path.read_text()) for path in files}
    assert {path: found for path, found in uses.items() if found} == {}
