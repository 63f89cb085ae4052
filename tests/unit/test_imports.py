"""`import svd_demo` is cheap and side-effect free, and no runtime module imports the test-model builder."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import svd_demo

REPO = Path(__file__).resolve().parents[2]


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """`python -c code` in an empty folder, with HOME, the temp and cache folders all empty folders of its own."""
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir()
    home.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(home), "TMPDIR": str(home), "XDG_CACHE_HOME": str(home),
           "HF_HOME": str(home / "hf"), "GRADIO_TEMP_DIR": str(home / "gradio"), "PYTHONDONTWRITEBYTECODE": "1",
           # Importing diffusers imports torch._dynamo, which makes its cache folder under TMPDIR unless this names
           # one (and sets it in the environment of the process that imported it first: whether a child inherits
           # it would depend on the order the tests ran in).
           "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "torch-cache")}
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert not list(cwd.iterdir()) and not list(home.iterdir())  # wrote nothing
    return result


def test_importing_the_package_imports_only_the_standard_library_and_writes_nothing(tmp_path):
    code = ("import json, sys\nbefore = set(sys.modules)\nimport svd_demo\n"
            "print(json.dumps(sorted(set(sys.modules) - before)))")
    added = json.loads(_run(code, tmp_path).stdout)
    outside = sorted({name.split(".")[0] for name in added} - set(sys.stdlib_module_names) - {"svd_demo"})
    assert not outside, f"`import svd_demo` imported {outside}"  # no torch, gradio, diffusers, numpy, PIL
    assert [name for name in added if name.startswith("svd_demo")] == ["svd_demo"]


def test_no_runtime_module_imports_the_tiny_model_builder(tmp_path):
    """The app asks `models.is_tiny_model` whether a folder holds random weights; building them is for tests."""
    runtime = sorted(m.name for m in pkgutil.walk_packages(svd_demo.__path__, "svd_demo.")
                     if m.name != "svd_demo.__main__")
    assert "svd_demo.web.ui" in runtime and "svd_demo.engine.pipelines" in runtime
    code = (f"import importlib, sys\nfor name in {runtime!r}:\n    importlib.import_module(name)\n"
            "print(sorted(m for m in sys.modules if m.startswith('svd_demo')))")
    loaded = _run(code, tmp_path).stdout
    assert "svd_demo.web.ui" in loaded and "svd_demo_testing.tiny_models" not in loaded
