"""The app as a client sees it, several clips a test: out-of-range numbers refused while the server keeps serving,
and interpolate, extend and compare seeds through the API (the launched demo's fixtures are in conftest.py)."""

from __future__ import annotations

import httpx
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError, ValidationError
from helpers import FAST

from svd_demo.files.media import probe_video


def test_out_of_range_numbers_are_refused_and_the_server_keeps_serving(api_client, photo, api_server):
    for bad in [{"num_frames": 0}, {"num_frames": 10000}, {"num_inference_steps": -1}, {"fps": 0}]:
        with pytest.raises((ValidationError, AppError, httpx.HTTPStatusError)):
            api_client.predict(image=handle_file(str(photo)), **{**FAST, **bad}, api_name="/image_to_video")
    # NaN cannot even be sent as JSON by the client; a raw request gets a 400, not a crash.
    raw = '{"data": [null, "", NaN, false, 256, "crop", 4, 2, 127, 7, 0.02, 1, 3, 0, 0, "none", []]}'
    response = httpx.post(f"{api_server}gradio_api/call/image_to_video", content=raw,
                          headers={"content-type": "application/json"})
    assert response.status_code in (400, 422)
    video, *_ = api_client.predict(image=handle_file(str(photo)), **FAST, api_name="/image_to_video")
    assert probe_video(video).num_frames == 4


def test_interpolate_through_the_api(api_client, photo):
    video, *_ = api_client.predict(image=handle_file(str(photo)), **FAST, api_name="/image_to_video")
    out, notes, files = api_client.predict(video=handle_file(video), factor=3, target_fps=0,
                                           slow_motion=False, api_name="/interpolate")
    info = probe_video(out)
    assert (info.num_frames, info.codec, info.pix_fmt) == (10, "h264", "yuv420p")  # (4 - 1) * 3 + 1
    assert info.fps == pytest.approx(21)
    assert "became 10 frames" in notes
    out, *_ = api_client.predict(video=handle_file(video), factor=2, target_fps=14, slow_motion=False,
                                 api_name="/interpolate")
    assert probe_video(out).fps == pytest.approx(14)  # an exact target fps wins over the factor


def test_extend_video_through_the_api(api_client, photo):
    video, *_ = api_client.predict(image=handle_file(str(photo)), **FAST, api_name="/image_to_video")
    longer, seed, _prepared, notes, files = api_client.predict(video=handle_file(video), **{**FAST, "seed": 21},
                                                               api_name="/extend_video")
    info = probe_video(longer)
    assert (info.num_frames, info.width, info.height) == (4 + 3, 256, 144)
    assert seed == 21 and "Added 3 frames to the 4" in notes
    with pytest.raises(ValidationError, match="Generate or choose a video first"):
        api_client.predict(video=None, api_name="/extend_video")


def test_compare_seeds_through_the_api(api_client, photo):
    gallery = api_client.predict(image=handle_file(str(photo)), num_seeds=2, seed=5, randomize_seed=False,
                                 resolution=256, num_frames=4, num_inference_steps=2, api_name="/compare_seeds")
    assert [item["caption"] for item in gallery] == ["seed 5", "seed 6"]
    assert all(probe_video(item["video"]["video"] if isinstance(item["video"], dict) else item["video"]).num_frames
               == 4 for item in gallery)
