"""`pip install .` from the checkout into a fresh virtual environment gives a working `svd-demo` command.

The environment sees the packages of the interpreter that runs the suite, so nothing is downloaded: pip still
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

from svd_demo.files.media import probe_video

REPO = Path(__file__).resolve().parents[2]


def _tracked_files(dest: Path) -> Path:
    """The checkout's files as git sees them (tracked and new, not ignored), copied: pip builds in the source tree."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def venv_seeing(python: str | Path, venv: Path) -> Path:
    """A fresh venv that sees the packages `python` sees; returns its interpreter.

    `--system-site-packages` is not that when `python` is itself in a venv: the new venv then sees the *base*
    interpreter's site-packages (an old setuptools, none of the suite's packages), not the venv's. So the new venv
    adds `python`'s own site folders, as site.addsitedir does (their .pth files included, so a chain of such venvs
    sees the first one's packages). It has no pip or setuptools of its own: it uses those `python` has (the tests
    extra asks for setuptools >= 77, which pyproject's licence field needs), so a build needs no download.
    """
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(venv)], check=True)
    probe = ("import json, os, site; dirs = site.getsitepackages() + "
             "([site.getusersitepackages()] if site.ENABLE_USER_SITE else []); "
             "print(json.dumps([d for d in dirs if os.path.isdir(d)]))")
    parents = json.loads(subprocess.run([str(python), "-c", probe], capture_output=True, text=True,
                                        check=True).stdout)
    new = venv / "bin" / "python"
    own = subprocess.run([str(new), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True,
                         text=True, check=True).stdout.strip()
    lines = [f"import site; site.addsitedir({folder!r})" for folder in parents]
    (Path(own) / "_parent_packages.pth").write_text("\n".join(lines) + "\n")
    return new


def test_a_venv_made_from_a_venv_sees_that_venvs_packages(tmp_path):
    outer = venv_seeing(sys.executable, tmp_path / "outer")
    own = subprocess.run([str(outer), "-c", "import site; print(site.getsitepackages()[0])"], capture_output=True,
                         text=True, check=True).stdout.strip()
    (Path(own) / "only_in_the_outer_venv.py").write_text("WHERE = 'outer'\n")
    inner = venv_seeing(outer, tmp_path / "inner")
    probe = ("import only_in_the_outer_venv as o, setuptools, torch; "
             "print(o.WHERE, setuptools.__version__)")
    done = subprocess.run([str(inner), "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    where, setuptools_version = done.stdout.split()
    assert where == "outer" and int(setuptools_version.split(".")[0]) >= 77


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with svd-demo installed from a copy of the checkout; returns its bin folder.

    The venv is made from another fresh venv, as when a person runs the suite inside their own virtual
    environment, so that case is tried on every run.
    """
    root = tmp_path_factory.mktemp("install")
    source = _tracked_files(root / "source")
    python = venv_seeing(venv_seeing(sys.executable, root / "outer"), root / "venv")
    venv = root / "venv"
    done = subprocess.run([str(python), "-m", "pip", "install", "--no-build-isolation", "--quiet",
                           str(source)], capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    return venv / "bin"


def _run(bin_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": ""}
    return subprocess.run(list(args), capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_installed_package_is_the_copy_with_its_dependencies_and_examples(installed, tmp_path):
    probe = ("import importlib.metadata as m, svd_demo, svd_demo.files.examples as e; "
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
    readme = ["svd-demo", "app", "--svd-model", "./tiny-models/svd", "--sdxl-model", "./tiny-models/sdxl",
              "--upscale-model", "./tiny-models/upscaler.pth"]
    app = subprocess.Popen(readme, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
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
    # Nothing the app ran wrote into its installed package (Gradio writes a .pyi stub beside any module that
    # subclasses a component: left there, it outlives an uninstall and shadows a later editable install).
    probe = ("import importlib.metadata as m, pathlib, svd_demo; d = m.distribution('svd-demo'); "
             "print(pathlib.Path(svd_demo.__file__).parent); "
             "print('\\n'.join(str(d.locate_file(f)) for f in d.files))")
    package, *recorded = _run(installed, str(installed / "python"), "-c", probe, cwd=tmp_path).stdout.splitlines()
    present = {str(f) for f in Path(package).rglob("*") if f.is_file() and "__pycache__" not in f.parts}
    assert present <= set(recorded), sorted(present - set(recorded))
