"""Helpers the test modules import (`from helpers import ...`); fixtures stay in conftest.py."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

from svd_demo.core.params import VideoParams

if TYPE_CHECKING:
    from svd_demo.core.settings import Settings

# Small sizes with the real 8x latent geometry: a 4-frame 256x144 clip with 2 steps takes well under a second.
FAST = {"resolution": 256, "num_frames": 4, "num_inference_steps": 2, "randomize_seed": False}
# FAST's counterpart for a still from the tiny SDXL (text to image): two steps at the same size.
FAST_STILL = {"resolution": 256, "sdxl_steps": 2, "randomize_seed": False}
# The tiny pipelines' frame size at FAST's resolution (16:9, both multiples of 8).
HEIGHT, WIDTH = 144, 256
# The execution device that makes offload hooks take their CUDA branches on the CPU: torch.device("cpu:0") is
# not the weights' torch.device("cpu"), so every move runs and copies the weights, as a move to a GPU does.
STAND_IN = "cpu:0"


def fast_video(studio, image, **overrides):
    """Image to video through the studio at FAST's small sizes, with `overrides` on top."""
    return studio.image_to_video(image, VideoParams.from_raw({**FAST, **overrides}))


def keyframe_photo(color: tuple[int, int, int]) -> Image.Image:
    """A 256x144 gradient whose red offset and blue level (`color`'s first and last values) tell photos apart."""
    y, x = np.mgrid[0:144, 0:256]
    pixels = np.stack([(x + color[0]) % 256, y * 255 // 143, np.full_like(x, color[2])], axis=-1)
    return Image.fromarray(pixels.astype(np.uint8))


def keyframe_params(**overrides) -> VideoParams:
    """FAST with seed 11, resolved to 14 frames at 7 fps as keyframes to video runs it, with `overrides` on top."""
    return VideoParams.from_raw({**FAST, "seed": 11, **overrides}).resolved(num_frames=14, fps=7)


def free_port() -> int:
    """A free TCP port on loopback (for apps the tests launch)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def launched(settings: Settings, studio, gradio_dir: pathlib.Path, **overrides) -> Iterator[str]:
    """The app launched in this process as `app.py` launches it (Gradio's own test style); yields its URL."""
    from svd_demo.web.ui import build_demo, launch_kwargs

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_TEMP_DIR", str(gradio_dir))
        demo = build_demo(settings, studio)
        demo.queue(max_size=settings.queue_size)
        _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True,
                                **{**launch_kwargs(settings if settings.output_dir else studio.settings),
                                   "server_port": free_port(), **overrides})
        try:
            yield url
        finally:
            demo.close()


def wait_until_served(url: str, process: subprocess.Popen, seconds: float, log: pathlib.Path | None = None) -> None:
    """Return once `url` answers HTTP 200; fail the test if `process` exits first or `seconds` pass (with the end of
    its `log`, when it writes one)."""
    tail = (lambda: f" Its log:\n{log.read_text(errors='replace')[-3000:]}") if log else (lambda: "")
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            pytest.fail(f"{process.args[1]} exited with code {process.returncode} before serving.{tail()}",
                        pytrace=False)
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"nothing served HTTP 200 at {url} within {seconds} s.{tail()}", pytrace=False)
        time.sleep(0.25)


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


def running_children(name: str) -> set[int]:
    """Pids of this process's children whose command name starts with `name` and that still run (Linux /proc)."""
    found = set()
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
        except OSError:  # gone meanwhile
            continue
        comm, fields = rest.rsplit(") ", 1)
        state, ppid = fields.split()[:2]
        if int(ppid) == os.getpid() and comm.startswith(name) and state != "Z":
            found.add(int(pid))
    return found


def read_frames(path) -> np.ndarray:
    """Every frame of a video file, decoded (N, H, W, 3 uint8)."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    width, height = next(gen)["size"]
    return np.stack([np.frombuffer(frame, np.uint8).reshape(height, width, 3) for frame in gen])


class StepLog:
    """When each denoising run began and each of its steps ended, by the run's number of steps."""

    def __init__(self, monkeypatch) -> None:
        from svd_demo.engine import image_to_video

        self.events: list[tuple[str, int, float]] = []
        original = image_to_video.step_callback

        def logged(total, progress, cancel):
            self.events.append(("begin", total, time.monotonic()))  # made just before the pipeline's first step
            inner = original(total, progress, cancel)

            def callback(pipe, step, timestep, kwargs):
                self.events.append(("step", total, time.monotonic()))
                return inner(pipe, step, timestep, kwargs)

            return callback

        monkeypatch.setattr(image_to_video, "step_callback", logged)

    def times(self, kind: str, total: int, after: float = 0.0) -> list[float]:
        return [t for k, n, t in list(self.events) if k == kind and n == total and t > after]

    def wait(self, kind: str, total: int, count: int, after: float, timeout: float = 120.0) -> list[float]:
        deadline = time.monotonic() + timeout
        while len(found := self.times(kind, total, after)) < count:
            assert time.monotonic() < deadline, f"no {count} x {kind} of a {total}-step run within {timeout:g} s"
            time.sleep(0.02)
        return found
