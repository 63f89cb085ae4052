"""Work budgets: every request's cost estimated from its parameters and its input's header, and refused before it
queues (studio/budgets.py), naming the parameter to lower and by how much; and the request-size limits of uploads
(inline `data:` URLs, request bodies)."""

from __future__ import annotations

import base64
import io
import subprocess
from dataclasses import replace

import httpx
import numpy as np
import pytest
from helpers import FAST, launched
from PIL import Image

from svd_demo.core.errors import InputError
from svd_demo.core.params import VideoParams
from svd_demo.files.media import ffmpeg_exe
from svd_demo.studio.budgets import PRIVATE, PUBLIC, budgets, check_upscale_tile
from svd_demo.studio.studio import Studio

# Within the parameters' ranges, yet 5,821 frames that grow the server by 4.9 GB without the budgets.
HUGE = {"resolution": 512, "num_frames": 50, "loop": "ping-pong", "playback_fps": 1, "interpolate_fps": 60,
        "num_inference_steps": 1, "randomize_seed": False}


def _call(url: str, endpoint: str, values: dict) -> httpx.Response:
    """Join the queue of `endpoint` with `values` by name (the others at their defaults), as an API client does."""
    info = httpx.get(f"{url}gradio_api/info").json()["named_endpoints"][f"/{endpoint}"]
    data = [values.get(p["parameter_name"], p.get("parameter_default")) for p in info["parameters"]]
    return httpx.post(f"{url}gradio_api/call/{endpoint}", json={"data": data}, timeout=120)


def _upload(url: str, path) -> dict:
    name = httpx.post(f"{url}gradio_api/upload", files=[("files", (path.name, path.read_bytes()))]).json()[0]
    return {"path": name, "meta": {"_type": "gradio.FileData"}}


def _ran(studio: Studio, monkeypatch) -> list[str]:
    """What the studio was asked to do (nothing runs: each call is recorded and refused)."""
    calls: list[str] = []

    def recorder(name):
        def record(*args, **kwargs):
            calls.append(name)
            raise InputError("not run in this test")
        return record

    for name in ("image_to_video", "extend_video", "interpolate", "upscale", "compare_seeds"):
        monkeypatch.setattr(studio, name, recorder(name))
    return calls


@pytest.fixture
def public_studio(tiny_settings, tmp_path):
    studio = Studio(replace(tiny_settings, output_dir=tmp_path / "outputs"))
    studio.budgets = budgets(public=True)
    return studio


def _clip(path, *, fps: int, frames: int = 12, size: str = "64x48"):
    """A small H.264 clip at any rate (the app's own writer stops at 240 fps)."""
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", f"testsrc=size={size}:rate={fps}",
                    "-frames:v", str(frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


# ----------------------------------------------------------------------------------------------------- the numbers


def test_budgets_are_private_by_default_and_public_is_stricter_in_every_measure():
    assert budgets(False) == PRIVATE and budgets(True) == PUBLIC
    for name in PRIVATE.__dataclass_fields__:
        assert getattr(PUBLIC, name) < getattr(PRIVATE, name), name
    changed = budgets(True, "output_frames=3000, upscaled-megapixels=500")
    assert (changed.output_frames, changed.upscaled_megapixels) == (3000, 500.0)
    with pytest.raises(ValueError, match="frames_out"):
        budgets(True, "frames_out=3")
    with pytest.raises(ValueError, match="positive"):
        budgets(False, "output_frames=-1")


def test_the_budgets_are_a_setting_with_an_environment_variable():
    from svd_demo.core.settings import parse_settings

    assert parse_settings(["--budgets", "output_frames=99"], {}).budgets == "output_frames=99"
    assert parse_settings([], {"SVD_DEMO_BUDGETS": "output_frames=7"}).budgets == "output_frames=7"


def test_a_tile_that_makes_upscaling_several_times_slower_is_refused():
    assert check_upscale_tile(0) == 0 and check_upscale_tile(128) == 128
    with pytest.raises(InputError, match=r"`upscale_tile` 64 makes upscaling several times slower.*128 or more"):
        check_upscale_tile(64)


# ------------------------------------------------------------------------------------------- refused before queueing


def test_the_5821_frame_request_is_refused_before_it_queues_in_public_mode(public_studio, tiny_settings, photo,
                                                                         tmp_path, monkeypatch):
    calls = _ran(public_studio, monkeypatch)
    with launched(tiny_settings, public_studio, tmp_path / "gradio") as url:
        answer = _call(url, "image_to_video", {**HUGE, "image": _upload(url, photo)})
    assert answer.status_code in (400, 422), answer.text
    detail = str(answer.json())
    assert "5,821 frames" in detail and "interpolate_fps to 18 or less" in detail, detail
    assert calls == []


def test_a_request_within_the_public_budgets_is_accepted(public_studio, tiny_settings, photo, tmp_path,
                                                         monkeypatch):
    calls = _ran(public_studio, monkeypatch)
    with launched(tiny_settings, public_studio, tmp_path / "gradio") as url:
        answer = _call(url, "image_to_video", {**FAST, "image": _upload(url, photo)})
        assert answer.status_code == 200, answer.text
        httpx.get(f"{url}gradio_api/call/image_to_video/{answer.json()['event_id']}", timeout=60)
    assert calls == ["image_to_video"]


def test_too_many_steps_name_the_steps_that_fit(public_studio, photo):
    from svd_demo.studio.budgets import check_image_to_video

    params = VideoParams.from_raw({"resolution": 1024, "num_frames": 25, "num_inference_steps": 100})
    fits = r"5,000 frame-steps at 1024x576, over this server's budget of 2,500. Lower `num_inference_steps` to 50,"
    with pytest.raises(InputError, match=fits) as info:
        check_image_to_video(public_studio.budgets, str(photo), params, model_ref=None,
                             default_model=public_studio.settings.svd_model, seeds=2)
    assert "x 2 seeds" in str(info.value)


def test_extending_a_799_fps_clip_is_refused_before_any_work(studio, tiny_settings, tmp_path, monkeypatch):
    """Extend interpolates its new part up to the clip's rate: at 799 fps that can never be written, and it was
    said only after generating (54 s)."""
    clip = _clip(tmp_path / "fast.mp4", fps=480)  # issue 22: 799 fps (ffmpeg reads 400-600 back)
    generated: list[object] = []
    monkeypatch.setattr(studio, "image_to_video", lambda *a, **k: generated.append(a))
    with pytest.raises(InputError, match=r"plays at [1-9][0-9]{2} fps.*at most 240 fps"):
        studio.extend_video(clip, VideoParams.from_raw(FAST))
    assert generated == []

    calls = _ran(studio, monkeypatch)
    with launched(tiny_settings, studio, tmp_path / "gradio") as url:
        answer = _call(url, "extend_video", {**FAST, "video": _upload(url, clip)})
    assert answer.status_code in (400, 422) and "at most 240 fps" in answer.text, answer.text
    assert calls == []


def test_interpolation_and_upscaling_are_refused_from_the_header(public_studio, tiny_settings, tmp_path,
                                                                 monkeypatch):
    clip = _clip(tmp_path / "long.mp4", fps=30, frames=600, size="640x360")
    calls = _ran(public_studio, monkeypatch)
    with launched(tiny_settings, public_studio, tmp_path / "gradio") as url:
        video = _upload(url, clip)
        interpolate = _call(url, "interpolate", {"video": video, "factor": 16})
        upscale = _call(url, "upscale", {"media": video, "upscale_factor": "2x", "upscale_tile": 512})
        tile = _call(url, "upscale", {"media": video, "upscale_factor": "2x", "upscale_tile": 64})
    # 600 frames x 16 = 9,585 frames; a factor of 3 makes 1,798, within the public 1,800.
    assert interpolate.status_code in (400, 422) and "9,585 frames" in interpolate.text, interpolate.text
    assert "lower factor to 3 or less" in interpolate.text, interpolate.text
    # 600 frames of 0.23 megapixels = 138, over the public 120: 520 frames fit.
    assert upscale.status_code in (400, 422) and "send at most 520 frames" in upscale.text, upscale.text
    assert tile.status_code in (400, 422) and "upscale_tile 64" in tile.text, tile.text
    assert calls == []


# --------------------------------------------------------------------------------------------------------- uploads


def _png(size: int) -> bytes:
    """A PNG of noise, which does not compress: about 3 x size**2 bytes."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _files_under(folder) -> list:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_an_inline_image_over_the_file_size_limit_is_refused_with_nothing_written(studio, tiny_settings, tmp_path,
                                                                                  monkeypatch):
    calls = _ran(studio, monkeypatch)
    gradio_dir = tmp_path / "gradio"
    inline = "data:image/png;base64," + base64.b64encode(_png(300)).decode()  # ~270 KB
    with launched(tiny_settings, studio, gradio_dir, max_file_size="200kb") as url:
        before = _files_under(gradio_dir)
        answer = _call(url, "image_to_video", {**FAST, "image": {"url": inline, "meta": {"_type": "gradio.FileData"}}})
        after = _files_under(gradio_dir)
    assert answer.status_code in (400, 422), answer.text
    assert "data: URL" in answer.text and "--max-file-size" in answer.text, answer.text
    assert after == before and calls == []


def test_an_inline_image_within_the_limit_is_used_without_writing_it(studio, tiny_settings, tmp_path, photo):
    gradio_dir = tmp_path / "gradio"
    inline = "data:image/png;base64," + base64.b64encode(photo.read_bytes()).decode()
    with launched(tiny_settings, studio, gradio_dir) as url:
        answer = _call(url, "image_to_video", {**FAST, "image": {"url": inline, "meta": {"_type": "gradio.FileData"}}})
        assert answer.status_code == 200, answer.text
        events = httpx.get(f"{url}gradio_api/call/image_to_video/{answer.json()['event_id']}", timeout=120).text
    assert "event: complete" in events, events[-500:]
    assert not any(p.suffix == ".png" for p in _files_under(gradio_dir))  # the inline image itself: never a file


def test_a_request_body_over_the_limit_gets_413(studio, tiny_settings, tmp_path):
    settings = replace(tiny_settings, max_file_size="100kb")
    with launched(settings, studio, tmp_path / "gradio") as url:
        big = httpx.post(f"{url}gradio_api/call/image_to_video", content=b"{" + b" " * 2_000_000 + b"}",
                         headers={"content-type": "application/json"})

        def chunks():
            yield b"{"
            for _ in range(40):
                yield b" " * 60_000
            yield b"}"

        streamed = httpx.post(f"{url}gradio_api/call/image_to_video", content=chunks(),
                              headers={"content-type": "application/json"})
        small = httpx.get(f"{url}gradio_api/info")
    assert big.status_code == 413 and "--max-file-size" in big.text
    assert streamed.status_code == 413
    assert small.status_code == 200
