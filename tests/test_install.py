"""`pip install .` from the checkout into a fresh virtual environment gives a working `svd-demo` command.

The environment sees this interpreter's packages (`--system-site-packages`), so nothing is downloaded: pip still
resolves the package's declared dependencies (requirements.txt, read by pyproject.toml) against them, and the
package itself is built and installed from the checkout's files, then run from a folder outside the checkout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import free_port, stop_process
from packaging.requirements import Requirement

from svd_demo.media import probe_video

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _tracked_files(dest: Path) -> Path:
    """The checkout's files as git sees them (tracked and new, not ignored), copied: pip builds in the source tree."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with svd-demo installed from a copy of the checkout; returns its bin folder."""
    root = tmp_path_factory.mktemp("install")
    source = _tracked_files(root / "source")
    venv = root / "venv"
    # Without its own pip and setuptools, the venv uses this interpreter's (setuptools >= 77, as pyproject asks),
    # so the build needs no download either.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "--no-build-isolation", "--quiet",
                           str(source)], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    return venv / "bin"


def _run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": ""}
    return subprocess.run(list(args), capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_installed_package_is_the_copy_with_its_dependencies_and_examples(installed, tmp_path):
    probe = ("import importlib.metadata as m, svd_demo, svd_demo.examples as e; "
             "print(svd_demo.__file__); print(len(e.example_images()), len(e.example_prompts())); "
             "print('\\n'.join(m.requires('svd-demo')))")
    done = _run(installed, str(installed / "python"), "-c", probe, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    module, counts, *requires = done.stdout.splitlines()
    assert str(installed.parent) in module and str(REPO) not in module  # not the checkout's svd_demo
    assert counts != "0 0"  # the example photos and prompts travel with the package
    pinned = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    declared = {(r.name, r.specifier) for r in map(Requirement, requires) if r.marker is None}
    assert {(r.name, r.specifier) for r in map(Requirement, pinned)} == declared  # the one list of dependencies
    assert any(r.startswith("pytest") and 'extra == "tests"' in r for r in requires)


def test_console_script_answers_help_and_makes_a_tiny_video(installed, tmp_path, photo):
    done = _run(installed, "svd-demo", "--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: svd-demo") and "app" in done.stdout and "generate" in done.stdout
    app_help = _run(installed, "svd-demo", "app", "--help", cwd=tmp_path)
    assert app_help.returncode == 0 and app_help.stdout.startswith("usage: svd-demo app") and "--svd-model" in \
        app_help.stdout

    made = _run(installed, "svd-demo", "tiny-models", "models", "--which", "svd", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    out = tmp_path / "clip.mp4"
    run = _run(installed, "svd-demo", "generate", "--image", str(photo), "--out", str(out), "--svd-model",
               "models/svd", "--resolution", "256", "--num-frames", "4", "--num-inference-steps", "2", "--seed", "3",
               cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    info = probe_video(out)
    assert (info.width, info.height, info.num_frames) == (256, 144, 4)
    assert json.loads(out.with_suffix(".json").read_text())["parameters"]["seed"] == 3


def test_console_script_serves_the_app_as_the_readme_says(installed, tmp_path):
    """The README's offline quickstart, from the installed command: the page answers and says it runs quick."""
    assert _run(installed, "svd-demo", "tiny-models", "tiny-models", cwd=tmp_path).returncode == 0
    port = free_port()
    env = {**os.environ, "PATH": f"{installed}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": "",
           "GRADIO_SERVER_PORT": str(port), "SVD_DEMO_OUTPUT_DIR": str(tmp_path / "outputs")}
    log = (tmp_path / "app.log").open("w")
    app = subprocess.Popen(["svd-demo", "app", "--svd-model", "./tiny-models/svd", "--sdxl-model",
                            "./tiny-models/sdxl"], cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
                           start_new_session=True)
    try:
        page = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and app.poll() is None and not page:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=5).read().decode()
            except OSError:
                time.sleep(0.5)
        assert page, f"svd-demo app did not serve: {(tmp_path / 'app.log').read_text()[-2000:]}"
        assert "Quick settings:" in page and "Random weights:" in page
    finally:
        stop_process(app, timeout=10)
        log.close()
