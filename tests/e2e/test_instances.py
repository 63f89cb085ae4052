"""Two `app.py` instances on one machine, as their operators start them (no --output-dir, no GRADIO_TEMP_DIR):
neither serves the other's uploads, and each leaves nothing in the temporary folder when it stops."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import httpx
from helpers import free_port, stop_process, wait_until_served

REPO = pathlib.Path(__file__).resolve().parents[2]
START_S = 90


@contextmanager
def _app(models: pathlib.Path, tmp: pathlib.Path, work: pathlib.Path) -> Iterator[str]:
    """`python app.py` on the tiny models with `tmp` as the machine's temporary folder; stopped as `docker stop`
    stops it (SIGTERM), and waited for."""
    work.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    for name in ("GRADIO_TEMP_DIR", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "SVD_DEMO_OUTPUT_DIR",
                 "SVD_DEMO_AUTH", "SVD_DEMO_SHARE", "SVD_DEMO_PRELOAD"):
        env.pop(name, None)
    port = free_port()
    log = work / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--svd-model", str(models / "svd"),
                                    "--sdxl-model", str(models / "sdxl"), "--port", str(port)],
                                   cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_served(url, process, START_S, log)
        yield url
    finally:
        stop_process(process, 15)


def test_two_instances_keep_their_uploads_apart_and_leave_nothing_behind(tiny_models_dir, tmp_path, photo):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with ExitStack() as stack:
        first = stack.enter_context(_app(tiny_models_dir, tmp, tmp_path / "first"))
        second = stack.enter_context(_app(tiny_models_dir, tmp, tmp_path / "second"))
        with open(photo, "rb") as f:
            upload = httpx.post(f"{second}gradio_api/upload", files={"files": (photo.name, f, "image/png")})
        upload.raise_for_status()
        (path,) = upload.json()
        assert httpx.get(f"{second}gradio_api/file={path}").status_code == 200
        assert httpx.get(f"{first}gradio_api/file={path}").status_code in (403, 404)
        left_while_running = sorted(p.name for p in tmp.iterdir())
    assert all(name.startswith("svd-demo-") for name in left_while_running), left_while_running
    assert sorted(tmp.iterdir()) == [], "stopped instances leave nothing in the temporary folder"

