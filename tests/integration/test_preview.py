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

from svd_demo.core.errors import GenerationCancelled
from svd_demo.core.params import VideoParams
from svd_demo.engine.preview import (
    PREDICTION,
    PREVIEW_EVERY_STEPS,
    PREVIEW_LONG_SIDE,
    SD_LATENT_RGB_FACTORS,
    latents_to_rgb,
    write_preview,
)
from svd_demo.web import handlers

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


# ---------------------------------------------------------------------------------------------------------------
# What a preview shows: the model's prediction of the clean clip (x0), as ComfyUI's previewer does, not the noise


@pytest.fixture(scope="module")
def loaded_svd(tiny_settings):
    from svd_demo.engine.pipelines import PipelineCache

    return PipelineCache(tiny_settings, "cpu").get("svd", tiny_settings.svd_model)


def predicting(clean: torch.Tensor):
    """A stand-in UNet forward whose prediction of the clean latents is always `clean`: from the scaled input
    c_in * x and c_noise = log(sigma) / 4 it returns the v that makes x0 = c_skip * x + c_out * v equal `clean`
    (the EDM v-prediction that SVD's Euler sampler and the consistency sampler both use)."""

    def forward(sample, timestep, *args, return_dict=True, **kwargs):
        sigma = torch.exp(4 * torch.as_tensor(timestep, dtype=torch.float64))
        x = sample[:, :, :4].double() * torch.sqrt(sigma**2 + 1)  # the image latents' 4 channels follow
        c_skip, c_out = 1 / (sigma**2 + 1), -sigma / torch.sqrt(sigma**2 + 1)
        v = (clean.double() - c_skip * x) / c_out  # one row per batch item (with guidance: two, alike)
        return (v.to(sample.dtype),)

    return forward


@pytest.mark.parametrize("sampler", ["euler", "consistency"])
def test_every_preview_shows_the_models_clean_prediction(loaded_svd, image, monkeypatch, sampler):
    from svd_demo.engine.image_to_video import denoise
    from svd_demo.engine.schedulers import AnimateLCMScheduler

    pipe = loaded_svd.pipe
    if sampler == "consistency":  # AnimateLCM's sampler: re-noises every step, so x0 cannot follow from latents
        monkeypatch.setattr(pipe, "scheduler", AnimateLCMScheduler())
    clean = torch.randn(1, 3, 4, 144 // 8, 256 // 8, generator=torch.Generator().manual_seed(0)) * 0.6
    monkeypatch.setattr(pipe.unet, "forward", predicting(clean))
    expected = latents_to_rgb(clean)
    seen: list[np.ndarray] = []
    params = VideoParams.from_raw({**FAST, "num_frames": 3, "num_inference_steps": STEPS, "fps": 7})
    denoise(loaded_svd, image, params, preview=seen.append)
    assert len(seen) == 2  # after steps 3 and 6 of 7, while the latents themselves are still mostly noise
    for frames in seen:  # equal within rounding at every preview, the first one included
        assert np.abs(frames.astype(int) - expected).max() <= 1
    assert "step" not in vars(pipe.scheduler) and not hasattr(pipe.scheduler, PREDICTION)  # the watch is gone


def test_a_preview_outside_the_watch_says_what_is_missing(loaded_svd):
    from svd_demo.engine.preview import previewing

    callback = previewing(lambda pipe, step, t, kwargs: kwargs, lambda frames: None, every=1)
    with pytest.raises(RuntimeError, match="watching_predictions"):
        callback(loaded_svd.pipe, 0, 0, {"latents": torch.zeros(1, 1, 4, 2, 2)})


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
    for update in handlers.image_to_video(studio, {**values, "live_preview": True}):
        if update[-1] is not None:  # the preview file lives until the next update is asked for
            with Image.open(update[-1]) as image:
                updates.append((image.format, image.n_frames))
        else:
            updates.append(update)
    assert updates[:2] == [("WEBP", 4), ("WEBP", 4)]
    video, seed, prepared, notes, files, preview = updates[-1]
    assert video.endswith(".mp4") and preview is None and len(updates) == 3
    assert not list(studio.settings.output_dir.glob("preview-*.webp"))  # removed once shown

    off = list(handlers.image_to_video(studio, values))  # the API's default: no previews, only the result
    assert len(off) == 1 and off[0][0].endswith(".mp4") and off[0][-1] is None


def test_text_to_video_streams_previews_after_the_still(studio):
    updates = list(handlers.text_to_video(studio, {"prompt": "a boat", "sdxl_steps": 1, "resolution": 256, "seed": 3,
                                             "randomize_seed": False, "num_frames": 2,
                                             "num_inference_steps": STEPS, "live_preview": True}))
    assert updates[0][0].endswith(".png") and updates[0][-1] is None  # the still first
    assert [u[-1].endswith(".webp") for u in updates[1:-1]] == [True, True]
    assert updates[-1][1].endswith(".mp4") and updates[-1][-1] is None


def test_a_failing_run_with_previews_raises_its_error(studio, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    with pytest.raises(gr.Error, match="broken.png"):  # raised on the run's thread, re-raised by the handler
        list(handlers.image_to_video(studio, {"image": str(broken), **FAST, "live_preview": True}))


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
    from helpers import StepLog, launched

    from svd_demo.studio.studio import Studio

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
