"""The encoder: files that browsers play, odd sizes, metadata, and nothing half-written on failure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from svd_demo.media import EncodeError, open_video_writer, parameters_tag, probe_video, read_metadata, write_video
from svd_demo.outputs import apply_loop, output_stem, remove_old_outputs


def frames(n: int = 5, h: int = 64, w: int = 96) -> list[np.ndarray]:
    y, x = np.mgrid[0:h, 0:w]
    return [np.stack([(x + 4 * i) % 256, y * 3 % 256, np.full_like(x, 128)], -1).astype(np.uint8) for i in range(n)]


@pytest.mark.parametrize(("fmt", "codec"), [("mp4", "h264"), ("webm", "vp9"), ("gif", "gif")])
def test_formats_probe_right(tmp_path, fmt, codec):
    info = write_video(frames(), tmp_path / f"v.{fmt}", 8)
    assert (info.codec, info.num_frames, info.width, info.height) == (codec, 5, 96, 64)
    assert info.size_bytes > 0
    if fmt == "mp4":
        assert info.pix_fmt == "yuv420p"


def test_odd_sizes_are_made_even_and_play(tmp_path):
    info = write_video(frames(h=63, w=95), tmp_path / "odd.mp4", 8)
    assert (info.width, info.height, info.pix_fmt, info.num_frames) == (96, 64, "yuv420p", 5)


def test_metadata_round_trip_with_awkward_characters(tmp_path):
    params = {"prompt": "a=b; c#d\\e", "seed": 3}
    path = write_video(frames(), tmp_path / "m.mp4", 8, metadata=parameters_tag(params)).path
    assert json.loads(read_metadata(path)["comment"]) == params


def test_failure_mid_way_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="earlier frames"):
        with open_video_writer(tmp_path / "x.mp4", 8) as writer:
            writer.write(frames()[0])
            writer.write(frames(h=32)[0])
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_is_a_clear_error(tmp_path):
    target = tmp_path / "file-not-folder"
    target.write_text("")
    with pytest.raises(EncodeError, match="folder"):
        write_video(frames(), target / "v.mp4", 8)


def test_bad_fps_and_suffix(tmp_path):
    with pytest.raises(EncodeError, match="fps"):
        write_video(frames(), tmp_path / "v.mp4", float("nan"))
    with pytest.raises(EncodeError, match=".mp4"):
        write_video(frames(), tmp_path / "v.avi", 8)


def test_not_a_video_is_a_clear_error(tmp_path):
    path = tmp_path / "fake.mp4"
    path.write_text("hello")
    with pytest.raises(EncodeError, match="not a readable video"):
        probe_video(path)


def test_ping_pong_and_unique_names(tmp_path):
    clip = np.arange(4)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    assert [int(f[0, 0, 0]) for f in apply_loop(clip, "ping-pong")] == [0, 1, 2, 3, 2, 1]
    assert len(apply_loop(clip, "none")) == 4
    assert len({output_stem(tmp_path, "video", 1) for _ in range(100)}) == 100


def test_old_outputs_are_removed(tmp_path):
    import os
    import time

    old, new = tmp_path / "old.mp4", tmp_path / "new.mp4"
    old.write_text("x")
    new.write_text("x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert remove_old_outputs(tmp_path, 3600) == 1
    assert not old.exists() and new.exists()
    assert remove_old_outputs(tmp_path, 0) == 0
