"""Shared fixtures: tiny random-weight pipelines saved once per session, and studios that load them through the
app's own loading code (`from_pretrained` on a folder, exactly as with a hub model)."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the suite may reach for the hub
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from svd_demo.settings import Settings  # noqa: E402
from svd_demo.tiny_models import save_tiny_models  # noqa: E402

# Small sizes with the real 8x latent geometry: a 4-frame 256x144 clip with 2 steps takes well under a second.
FAST = {"resolution": 256, "num_frames": 4, "num_inference_steps": 2, "randomize_seed": False}


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> pathlib.Path:
    """A dir holding ``svd/`` and ``sdxl/`` tiny pipelines, written once per test session."""
    directory = tmp_path_factory.mktemp("tiny_models")
    save_tiny_models(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_settings(tiny_models_dir, tmp_path_factory) -> Settings:
    return Settings(svd_model=str(tiny_models_dir / "svd"), sdxl_model=str(tiny_models_dir / "sdxl"),
                    output_dir=tmp_path_factory.mktemp("outputs"),
                    device="cpu")


@pytest.fixture(scope="session")
def studio(tiny_settings):
    """One studio for the session, so the tiny pipeline is loaded once (as in the app)."""
    from svd_demo.studio import Studio

    return Studio(tiny_settings)


@pytest.fixture
def photo(tmp_path) -> pathlib.Path:
    """A 4:3 landscape photo-like PNG with structure (a gradient and a square), not noise."""
    y, x = np.mgrid[0:300, 0:400]
    rgb = np.stack([x * 255 // 400, y * 255 // 300, np.full_like(x, 90)], axis=-1).astype(np.uint8)
    rgb[100:200, 150:250] = (250, 240, 30)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    return path


def free_port() -> int:
    """A free TCP port on loopback (for apps the tests launch)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def launched(settings: Settings, studio, gradio_dir: pathlib.Path, **overrides) -> Iterator[str]:
    """The app launched in this process as `app.py` launches it (Gradio's own test style); yields its URL."""
    from svd_demo.ui import build_demo, launch_kwargs

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(gradio_dir))
        demo = build_demo(settings, studio)
        demo.queue(max_size=settings.queue_size)
        _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True,
                                **{**launch_kwargs(settings), "server_port": free_port(), **overrides})
        try:
            yield url
        finally:
            demo.close()


def save_frames(folder: pathlib.Path, frames, names=None, *, first: int = 0) -> pathlib.Path:
    """Frames as PNG files in `folder` (frame{first}.png, frame{first+1}.png, ... unless named)."""
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"frame{first + i}.png" for i in range(len(frames))]
    for name, frame in zip(names, frames, strict=True):
        Image.fromarray(frame).save(folder / name)
    return folder


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it is still there after `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)
