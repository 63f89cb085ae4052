"""What ships, run for real: the Dockerfile's CMD serves the app here and its HEALTHCHECK passes, and fails when
nothing answers (the Dockerfile is parsed by dockerfile_parser.py: there is no Docker engine here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dockerfile_parser import env_of, exec_form, healthcheck_command, only
from helpers import free_port, stop_process, wait_until_served

ROOT = Path(__file__).resolve().parents[2]


def _local(argv: list[str], port: int) -> list[str]:
    """The image's command on this machine: this interpreter for `python`, the test's port for 7860."""
    return [sys.executable if a == "python" else a.replace(":7860", f":{port}") for a in argv]


def test_image_cmd_serves_and_healthcheck_passes(dockerfile, tiny_models_dir, tmp_path):
    port = free_port()
    env = {**os.environ, **env_of(dockerfile)}
    env.update({
        "GRADIO_SERVER_PORT": str(port),
        "SVD_DEMO_SVD_MODEL": str(tiny_models_dir / "svd"),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf-cache"),  # /data is the image's volume; it does not exist here
        "TMPDIR": str(tmp_path),  # outputs and Gradio's uploads go under $TMPDIR by default
        "GRADIO_ANALYTICS_ENABLED": "False",
    })
    log = (tmp_path / "app.log").open("wb")
    proc = subprocess.Popen(_local(exec_form(only(dockerfile, "CMD")), port), cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_served(f"http://127.0.0.1:{port}/", proc, 90, tmp_path / "app.log")
        check = subprocess.run(_local(healthcheck_command(dockerfile), port), cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
    finally:
        stop_process(proc, 15)
        log.close()
    # and the health check does fail when nothing answers
    dead = free_port()
    check = subprocess.run(_local(healthcheck_command(dockerfile), dead), cwd=ROOT,
                           env={**env, "GRADIO_SERVER_PORT": str(dead)}, capture_output=True, timeout=30)
    assert check.returncode != 0
