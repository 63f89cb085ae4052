"""Live preview while denoising: the latent->RGB projection, previews during a run (through the step callback and the
UI's streaming handlers), none when off, and a cancel that still stops a previewing run."""

from __future__ import annotations

import threading
import time

import gradio as gr
import numpy as np
import pytest
import torch
from helpers import FAST
from PIL import Image

from svd_demo import ui
from svd_demo.errors import GenerationCancelled
from svd_demo.params import VideoParams
from svd_demo.preview import (
    PREVIEW_EVERY_STEPS,
    PREVIEW_LONG_SIDE,
    SD_LATENT_RGB_FACTORS,
    latents_to_rgb,
    write_preview,
)

STEPS = 2 * PREVIEW_EVERY_STEPS + 1  # previews after steps EVERY and 2*EVERY; none after the last


def test_projection_shape_range_and_values():
    video = torch.randn(1, 5, 4, 18, 32) * 3
    rgb = latents_to_rgb(video)
    assert rgb.shape == (5, 18, 32, 3) and rgb.dtype == np.uint8
    assert rgb.min() == 0 and rgb.max() == 255  # clamped, not wrapped around
    assert latents_to_rgb(torch.randn(2, 4, 18, 32)).shape == (1, 18, 32, 3)  # an image's latents, first item

    unit = torch.zeros(1, 1, 4, 2, 2)
    unit[:, :, 1] = 1.0  # channel 1 alone: its row of factors, mapped from -1..1 to 0..255
    expected = np.round((np.array(SD_LATENT_RGB_FACTORS[1]) + 1) * 127.5).astype(np.uint8)
    assert (latents_to_rgb(unit) == expected).all()
    # noisy latents are scaled like the UNet's input: sigma 3 divides by sqrt(10)
    assert (latents_to_rgb(unit * np.sqrt(10.0), sigma=3.0) == expected).all()


def test_preview_file_is_a_small_animation(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (6, 72, 128, 3), dtype=np.uint8)
    with Image.open(write_preview(frames, tmp_path / "p.webp")) as image:
        assert (image.format, image.n_frames, max(image.size)) == ("WEBP", 6, PREVIEW_LONG_SIDE)
        assert image.size == (PREVIEW_LONG_SIDE, 144)


def test_previews_arrive_during_a_run(studio, photo):
    seen: list[np.ndarray] = []
    result = studio.image_to_video(photo, VideoParams.from_raw({**FAST, "num_inference_steps": STEPS}),
                                   preview=seen.append)
    assert len(seen) == 2  # every PREVIEW_EVERY_STEPS steps, the last step excepted
    assert all(frames.shape == (4, 144 // 8, 256 // 8, 3) and frames.dtype == np.uint8 for frames in seen)
    assert result.files.video.exists()


def test_a_cancel_stops_a_previewing_run(studio, photo):
    cancel = threading.Event()
    seen: list[np.ndarray] = []

    def sink(frames: np.ndarray) -> None:
        seen.append(frames)
        cancel.set()  # the person saw the preview and pressed Cancel

    with pytest.raises(GenerationCancelled):
        studio.image_to_video(photo, VideoParams.from_raw({**FAST, "num_inference_steps": 20}), preview=sink,
                              cancel=cancel)
    assert len(seen) == 1  # stopped at the next step, before another preview


def test_ui_streams_previews_only_when_asked(studio, photo):
    values = {"image": str(photo), **FAST, "num_inference_steps": STEPS}
    updates = []
    for update in ui.image_to_video(studio, {**values, "live_preview": True}):
        if update[-1] is not None:  # the preview file lives until the next update is asked for
            with Image.open(update[-1]) as image:
                updates.append((image.format, image.n_frames))
        else:
            updates.append(update)
    assert updates[:2] == [("WEBP", 4), ("WEBP", 4)]
    video, seed, prepared, notes, files, preview = updates[-1]
    assert video.endswith(".mp4") and preview is None and len(updates) == 3
    assert not list(studio.settings.output_dir.glob("preview-*.webp"))  # removed once shown

    off = list(ui.image_to_video(studio, values))  # the API's default: no previews, only the result
    assert len(off) == 1 and off[0][0].endswith(".mp4") and off[0][-1] is None


def test_text_to_video_streams_previews_after_the_still(studio):
    updates = list(ui.text_to_video(studio, {"prompt": "a boat", "sdxl_steps": 1, "resolution": 256, "seed": 3,
                                             "randomize_seed": False, "num_frames": 2,
                                             "num_inference_steps": STEPS, "live_preview": True}))
    assert updates[0][0].endswith(".png") and updates[0][-1] is None  # the still first
    assert [u[-1].endswith(".webp") for u in updates[1:-1]] == [True, True]
    assert updates[-1][1].endswith(".mp4") and updates[-1][-1] is None


def test_a_failing_run_with_previews_raises_its_error(studio, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(gr.Error, match="broken.png"):  # raised on the run's thread, re-raised by the handler
        list(ui.image_to_video(studio, {"image": str(broken), **FAST, "live_preview": True}))


def test_api_streams_previews_only_when_asked(tiny_settings, studio, photo, tmp_path):
    from gradio_client import Client, handle_file
    from helpers import launched

    with launched(tiny_settings, studio, tmp_path / "gradio") as url:
        client = Client(url, verbose=False)
        job = client.submit(image=handle_file(str(photo)), **{**FAST, "num_inference_steps": STEPS},
                            live_preview=True, api_name="/image_to_video")
        final = job.result(timeout=300)
        streamed = job.outputs()
        plain = client.submit(image=handle_file(str(photo)), **{**FAST, "num_inference_steps": STEPS},
                              api_name="/image_to_video")  # live_preview omitted: the API's default
        plain.result(timeout=300)
    previews = [update[-1] for update in streamed[:-1]]
    assert len(previews) == 2 and all(path.endswith(".webp") for path in previews)
    with Image.open(previews[0]) as image:
        assert image.n_frames == FAST["num_frames"]
    assert final[0].endswith(".mp4") and final[-1] is None
    assert len(plain.outputs()) == 1  # off unless asked: the result only


@pytest.mark.timeout(300)
def test_cancelling_a_previewing_api_run_stops_it(tiny_settings, photo, tmp_path, monkeypatch):
    from dataclasses import replace

    from gradio_client import Client, handle_file
    from helpers import launched
    from test_cancellation import StepLog

    from svd_demo.studio import Studio

    settings = replace(tiny_settings, output_dir=tmp_path / "outputs")
    steps = StepLog(monkeypatch)
    many = 100  # the most steps allowed
    with launched(settings, Studio(settings), tmp_path / "gradio") as url:
        job = Client(url, verbose=False).submit(image=handle_file(str(photo)), **{**FAST, "num_inference_steps": many},
                                                live_preview=True, api_name="/image_to_video")
        deadline = time.monotonic() + 120
        while not job.outputs():  # the first preview arrived: the person saw it and cancels
            assert time.monotonic() < deadline and not job.done(), "no preview arrived"
            time.sleep(0.05)
        stopped = time.monotonic()
        job.cancel()
        time.sleep(3)
        assert len(steps.times("step", many, after=stopped)) <= 1  # stopped at its next step
        assert len(steps.times("step", many)) < many
        assert not list(settings.output_dir.glob("*.mp4"))
