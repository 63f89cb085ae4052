"""Extending a clip: SVD continues from its last frame; the result is the source plus the new frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import FAST

from svd_demo.core.errors import InputError
from svd_demo.core.params import VideoParams
from svd_demo.files.media import probe_video
from svd_demo.files.video_input import frames_of


@pytest.fixture(scope="module")
def clip(studio, tmp_path_factory):
    """A generated 4-frame 256x144 clip (played at the conditioning fps)."""
    from PIL import Image

    y, x = np.mgrid[0:144, 0:256]
    photo = tmp_path_factory.mktemp("extend") / "photo.png"
    Image.fromarray(np.stack([x, y, np.full_like(x, 90)], axis=-1).astype(np.uint8)).save(photo)
    return studio.image_to_video(photo, VideoParams.from_raw({**FAST, "seed": 3}))


def test_the_new_frames_follow_the_last_one(studio, clip):
    source, source_fps = frames_of(clip.files.video, 100, "test")
    result = studio.extend_video(clip.files.video, VideoParams.from_raw({**FAST, "seed": 5}))
    info = probe_video(result.files.video)
    assert (info.num_frames, info.width, info.height) == (4 + 3, 256, 144)  # the new part's first frame is dropped
    assert info.fps == pytest.approx(source_fps)
    extended, _ = frames_of(result.files.video, 100, "test")
    # The source comes first, re-encoded once (crf 18): within a few levels of what it was.
    assert all(np.abs(a.astype(int) - b.astype(int)).mean() < 3 for a, b in zip(source, extended[:4], strict=True))
    record = json.loads(result.files.sidecar.read_text())
    assert record["kind"] == "extend_video" and record["added_frames"] == 3 and record["parameters"]["seed"] == 5
    assert record["source"] == {"name": clip.files.video.name, "frames": 4, "fps": source_fps, "width": 256,
                                "height": 144}
    assert not list(result.files.video.parent.glob("*-segment-*")), "the intermediate segment was left behind"


def test_a_faster_source_gets_a_new_part_interpolated_to_its_rate(studio, clip, tmp_path):
    from svd_demo.engine.interpolation import interpolate_file

    fast = interpolate_file(clip.files.video, tmp_path / "fast.mp4", factor=2)  # 4 frames -> 7 at twice the rate
    result = studio.extend_video(fast.output_path, VideoParams.from_raw({**FAST, "seed": 5}))
    info = probe_video(result.files.video)
    assert info.fps == pytest.approx(fast.output_fps)
    assert info.num_frames == 7 + (7 - 1)  # the new 4 frames interpolated to the same rate, minus the seam frame
    record = json.loads(result.files.sidecar.read_text())
    assert record["interpolation"]["target_fps"] == pytest.approx(fast.output_fps)


def test_bad_sources_are_refused_clearly(studio, clip, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        studio.extend_video(tmp_path / "missing.mp4", VideoParams.from_raw(FAST))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all" * 100)
    with pytest.raises(InputError):
        studio.extend_video(broken, VideoParams.from_raw(FAST))
    with pytest.raises(InputError, match="up to 3 frames"):
        frames_of(clip.files.video, 3, "Extending")  # what extend_video does with MAX_EXTEND_FRAMES
