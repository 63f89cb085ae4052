"""Cancellation: a run nobody waits for stops at its next step (or frame) and leaves no file."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from svd_demo.errors import GenerationCancelled
from svd_demo.media import write_video
from svd_demo.params import VideoParams
from svd_demo.studio import CancelFlag, CancelTokens, Studio


@pytest.fixture
def own_studio(tiny_settings, tmp_path) -> Studio:
    """A studio writing into a folder of this test's own, so "no file left" can be checked exactly."""
    return Studio(replace(tiny_settings, output_dir=tmp_path / "outputs"))


def _clip(path, frames: int = 12, size: tuple[int, int] = (96, 64)):
    """A small clip with motion (a bright square moving right), so every pair is really interpolated."""
    width, height = size
    video = np.zeros((frames, height, width, 3), np.uint8)
    video[..., 2] = 60
    for i in range(frames):
        video[i, 20:40, 4 + 4 * i:24 + 4 * i] = (240, 220, 40)
    return write_video(video, path, 8.0).path


def test_interpolation_stops_at_the_next_frame_and_leaves_no_file(own_studio, tmp_path):
    source = _clip(tmp_path / "in.mp4")
    cancel = threading.Event()
    seen = []

    def progress(fraction: float, text: str) -> None:
        seen.append(text)
        if len(seen) == 5:
            cancel.set()

    with pytest.raises(GenerationCancelled):
        own_studio.interpolate(source, factor=4, progress=progress, cancel=cancel)
    assert len(seen) == 5  # not one frame after the flag
    assert list(own_studio.settings.output_dir.iterdir()) == []  # no video, no partial file, no sidecar


def test_encoding_stops_when_cancelled_and_leaves_no_file(tmp_path):
    from svd_demo.outputs import write_outputs

    cancel = threading.Event()
    frames = np.zeros((8, 64, 96, 3), np.uint8)

    class Frames:  # the clip, setting the flag once the encoder has taken three frames
        def __iter__(self):
            for i, frame in enumerate(frames):
                if i == 3:
                    cancel.set()
                yield frame

    with pytest.raises(GenerationCancelled):
        write_outputs(Frames(), tmp_path / "clip", 8.0, {"parameters": {}}, extra_formats=("gif",), cancel=cancel)
    assert list(tmp_path.iterdir()) == []


def test_a_run_cancelled_after_denoising_leaves_no_file(own_studio, photo):
    from conftest import FAST

    cancel = threading.Event()

    def progress(fraction: float, text: str) -> None:
        if text == "Encoding":  # denoised and decoded: only the files are left to write
            cancel.set()

    with pytest.raises(GenerationCancelled):
        own_studio.image_to_video(photo, VideoParams.from_raw(FAST), progress=progress, cancel=cancel)
    assert list(own_studio.settings.output_dir.iterdir()) == []


def test_published_files_are_removed_when_the_run_is_dropped_later(own_studio, photo):
    from conftest import FAST

    flag = CancelFlag()
    result = own_studio.image_to_video(photo, VideoParams.from_raw(FAST), cancel=flag)
    assert result.files.video.exists() and result.files.sidecar in flag.files
    flag.set()  # the client went away while the result was on its way
    flag.discard()
    assert list(own_studio.settings.output_dir.iterdir()) == []


def test_one_flag_per_run_and_cancel_reaches_all_of_a_session():
    tokens = CancelTokens()
    with tokens.token("a") as first, tokens.token("a") as second, tokens.token("b") as other:
        assert first is not second
        assert tokens.cancel("a")
        assert first.is_set() and second.is_set() and not other.is_set()
        assert not tokens.wait_stopped("a", timeout=0.05)  # still running
    assert tokens.wait_stopped("a", timeout=0.05)
    assert not tokens.cancel("a")  # nothing left to cancel

