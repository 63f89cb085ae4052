"""The app as a client sees it: a launched demo on loopback (fixtures in conftest.py), driven through gradio_client
(Gradio's own style). Calls that generate several clips are end to end (tests/e2e/test_api_runs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError, ValidationError
from helpers import FAST

from svd_demo.files.media import probe_video


def test_api_names_and_keyword_parameters(api_client):
    api = api_client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    names = [p["parameter_name"] for p in api["/image_to_video"]["parameters"]]
    assert names[:1] == ["image"]
    for name in ["seed", "randomize_seed", "resolution", "num_frames", "num_inference_steps", "motion_bucket_id",
                 "fps", "noise_aug_strength", "min_guidance_scale", "max_guidance_scale", "decode_chunk_size",
                 "playback_fps", "aspect_mode", "loop"]:
        assert name in names


def test_image_to_video_through_the_api(api_client, photo, studio):
    video, seed, prepared, notes, files, preview = api_client.predict(image=handle_file(str(photo)), seed=11, **FAST,
                                                                  api_name="/image_to_video")
    assert preview is None  # live previews are off for API calls unless asked
    info = probe_video(video)
    assert (info.codec, info.pix_fmt, info.num_frames, info.width, info.height) == ("h264", "yuv420p", 4, 256, 144)
    assert seed == 11
    sidecar = next(f for f in files if f.endswith(".json"))
    assert json.loads(open(sidecar).read())["parameters"]["seed"] == 11
    assert "Cropped" in notes


def test_outputs_are_served_from_where_they_are_written_and_stored_once(api_client, photo, studio, api_gradio_dir):
    """A result is written once, to the studio's output folder, and served from there: Gradio's cache holds no copy
    (a long clip would otherwise take its disk space two or three times over)."""
    video, _, _, _, files, _ = api_client.predict(image=handle_file(str(photo)), seed=5, **FAST,
                                              api_name="/image_to_video")
    written = {path.name: path.read_bytes() for path in studio.settings.output_dir.iterdir() if path.is_file()}
    served = [Path(video), *map(Path, files)]
    assert {path.name for path in served} <= set(written)
    assert all(path.read_bytes() == written[path.name] for path in served)  # what the client fetched is the file
    copies = [path for path in api_gradio_dir.rglob("*") if path.is_file() and path.name in written]
    assert copies == []


def test_prepare_image_preview(api_client, photo):
    image, notes = api_client.predict(handle_file(str(photo)), 512, "native", api_name="/prepare_image")
    assert "512x384" in notes


def test_missing_image_is_refused_before_the_queue(api_client):
    with pytest.raises(ValidationError, match="upload an image"):
        api_client.predict(image=None, api_name="/image_to_video")


def test_a_corrupt_upload_gets_a_clear_message(api_client, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 50)
    # Refused before the queue (its header is read to estimate the work), with the loader's message.
    with pytest.raises((AppError, ValidationError), match="could not be read as an image|not a valid|cannot be read"):
        api_client.predict(image=handle_file(str(bad)), **FAST, api_name="/image_to_video")


def test_extend_video_refuses_a_non_video(api_client, tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises((AppError, ValidationError), match="not a readable video|could not be read|not a video"):
        api_client.predict(video=handle_file(str(fake)), **FAST, api_name="/extend_video")


def test_interpolate_refuses_a_non_video(api_client, tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises((AppError, ValidationError), match="not a readable video"):
        api_client.predict(video=handle_file(str(fake)), factor=2, target_fps=0, slow_motion=False,
                           api_name="/interpolate")


def test_keyframes_to_video_through_the_api(api_client, photo, tmp_path):
    from PIL import Image

    end = tmp_path / "portrait_end.png"
    Image.new("RGB", (300, 400), (10, 120, 200)).save(end)
    video, seed, notes, files, preview = api_client.predict(
        start_image=handle_file(str(photo)), end_image=handle_file(str(end)), keyframe_guidance=1.5, seed=4, **FAST,
        api_name="/keyframes_to_video")
    assert preview is None and seed == 4
    info = probe_video(video)
    assert (info.num_frames, info.width, info.height) == (4, 256, 144)
    record = json.loads(open(next(f for f in files if f.endswith(".json"))).read())
    assert record["kind"] == "keyframes_to_video" and record["parameters"]["keyframe_guidance"] == 1.5
    assert "framed to the start photo's 256x144 with the same aspect mode (crop)" in notes
    # No end photo and no loop: refused before the queue, naming the end photo and the loop switch.
    with pytest.raises(ValidationError, match=r"end photo \(end_image\).*loop_to_start"):
        api_client.predict(start_image=handle_file(str(photo)), end_image=None, **FAST, api_name="/keyframes_to_video")
    looped = api_client.predict(start_image=handle_file(str(photo)), end_image=None, loop_to_start=True, seed=4,
                                **FAST, api_name="/keyframes_to_video")
    assert probe_video(looped[0]).num_frames == 4
