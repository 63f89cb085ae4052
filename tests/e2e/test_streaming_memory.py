"""Frames stream from the producer to every encoder: looped, interpolated and upscaled as they are encoded, each once
whatever the number of formats, so a request's memory does not grow with its clip."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import FAST

from svd_demo.core.params import VideoParams
from svd_demo.engine.interpolation import engine, interpolate_frames
from svd_demo.files.media import probe_video
from svd_demo.studio.studio import Studio
from svd_demo_testing.tiny_models import save_tiny_upscalers

HUGE = {"resolution": 512, "num_frames": 50, "loop": "ping-pong", "playback_fps": 1, "interpolate_fps": 60,
        "num_inference_steps": 1, "randomize_seed": False}  # issue 22: 5,821 frames, +4.9 GB
MAX_GROWTH_MB = 300


@pytest.fixture(scope="module")
def upscaling_studio(tiny_settings, tmp_path_factory):
    upscalers = save_tiny_upscalers(tmp_path_factory.mktemp("upscalers"))
    return Studio(replace(tiny_settings, upscale_model=str(upscalers["srvgg"]),
                          output_dir=tmp_path_factory.mktemp("upscaled")))


def test_each_frame_is_upscaled_once_whatever_the_number_of_formats(upscaling_studio, photo, monkeypatch):
    from svd_demo.engine.upscale import files

    upscaled: list[tuple[int, ...]] = []
    real = files.upscale_frame

    def counted(upscaler, frame, factor, **kwargs):
        upscaled.append(frame.shape)
        return real(upscaler, frame, factor, **kwargs)

    monkeypatch.setattr(files, "upscale_frame", counted)
    result = upscaling_studio.image_to_video(photo, VideoParams.from_raw(
        {**FAST, "upscale": "2x", "loop": "ping-pong", "extra_formats": ["gif", "webm"]}))
    frames = 2 * FAST["num_frames"] - 2  # ping-pong
    assert len(upscaled) == frames  # not once per format (3x)
    for path in (result.files.video, *result.files.extras.values()):
        info = probe_video(path)
        assert (info.width, info.height, info.num_frames) == (512, 288, frames), path


def test_a_pair_made_in_parts_gives_the_same_frames(monkeypatch):
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (48, 64, 3), np.uint8)
    clip = [np.roll(base, shift, axis=1) for shift in (0, 3, 6)]
    whole = list(interpolate_frames(iter(clip), 8.0, factor=16))
    seen: list[int] = []
    monkeypatch.setattr(engine, "PART_BYTES", base.nbytes * 3)  # three frames per backend call

    class Counting:
        name = "flow"

        def __init__(self) -> None:
            from svd_demo.engine.interpolation import FlowBackend

            self.flow = FlowBackend()

        def interpolate(self, frame0, frame1, times):
            seen.append(len(times))
            return self.flow.interpolate(frame0, frame1, times)

    parts = list(interpolate_frames(iter(clip), 8.0, factor=16, backend=Counting()))
    assert len(parts) == len(whole) == 33
    assert all(np.array_equal(a, b) for a, b in zip(parts, whole, strict=True))
    assert max(seen) == 3 and sum(seen) == 30


class PeakRss:
    """The process's peak RSS above its RSS at the start, in MB: Linux's high-water mark, reset at the start, and
    a sampler every 10 ms where the mark cannot be reset."""

    def __init__(self) -> None:
        self.start = self.peak = self._read("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self.resettable = True
        except OSError:
            self.resettable = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def _read(key: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(key)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._read("VmRSS"))

    def growth_mb(self) -> float:
        self._stop.set()
        self._thread.join()
        peak = max(self.peak, self._read("VmHWM")) if self.resettable else self.peak
        return peak - self.start


def test_the_5821_frame_request_completes_in_private_mode_within_300_mb(studio, photo):
    """Issue 22's request (50 frames, ping-pong, 1 fps played, interpolated to 60 fps): 5,821 frames at 512x288,
    which grew the server by 4.9 GB when the smoothed clip was held (a list and a stacked copy).

    Measured from the end of generation (the 50 frames are made, "Encoding" begins) to the files: the part of the
    request that grows with the clip. The generation's own working memory is the model's (the same for a clip
    written as it came), and it is measured in BENCHMARKS.md ("Streaming memory")."""
    meters: list[PeakRss] = []

    def progress(fraction: float, text: str) -> None:
        if text == "Encoding":
            meters.append(PeakRss())

    started = time.perf_counter()
    whole = PeakRss()
    result = studio.image_to_video(photo, VideoParams.from_raw(HUGE), progress=progress)
    growth = meters[0].growth_mb()
    info = result.files.info
    assert (info.width, info.height, info.num_frames) == (512, 288, 5821)
    assert result.record["interpolation"]["frames"] == 5821
    print(f"5,821 frames in {time.perf_counter() - started:.0f} s; peak RSS growth {growth:.0f} MB after "
          f"generating, {whole.growth_mb():.0f} MB for the whole request")
    assert growth <= MAX_GROWTH_MB, f"peak RSS grew by {growth:.0f} MB while looping, interpolating and encoding"
