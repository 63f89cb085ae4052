"""Keyframes to video (ViBiDSampler): one step against the paper's update written out with stand-in denoisers of
known output, the EDM preconditioning against diffusers' own scheduler, and the whole sampler on the tiny models."""

from __future__ import annotations

import math
import re
import threading

import numpy as np
import pytest
import torch
from helpers import FAST, keyframe_params
from PIL import Image

from svd_demo.core.errors import GenerationCancelled
from svd_demo.core.params import VideoParams
from svd_demo.engine.image_to_video import generate_frames
from svd_demo.engine.keyframes import Conditioning, bidirectional_step, denoise_keyframes, unet_denoiser

FRAMES, SHAPE = 5, (1, 5, 4, 3, 2)


def _conditioning(tag: float) -> Conditioning:
    """A conditioning whose `tag` a stand-in denoiser can read back (it says which photo it was given)."""
    return Conditioning(embeddings=torch.full((2, 1, 1), tag), image_latents=torch.zeros(2, FRAMES, 4, 3, 2),
                        added_time_ids=torch.zeros(2, 3))


def _stand_in(calls: list[tuple[float, float]]):
    """D_u(x) = 0.5 x + tag * frame index, D_c(x) = 0.25 x + 2 tag * frame index + sigma: different per direction,
    per frame and per noise level, so a wrong conditioning, frame order or sigma shows in the result."""

    def denoise(x, sigma, conditioning):
        tag = float(conditioning.embeddings[1, 0, 0])
        calls.append((tag, sigma))
        ramp = torch.arange(x.shape[1], dtype=x.dtype).view(1, -1, 1, 1, 1)
        return 0.5 * x + tag * ramp, 0.25 * x + 2 * tag * ramp + sigma

    return denoise


def _paper_step(x, s, s_next, start_tag, end_tag, start_latent, end_latent, w, noise):
    """The update as the paper writes it, frame by frame with plain arithmetic on numpy arrays (frames on axis 1)."""
    def d_u(v, tag):
        return np.stack([0.5 * v[:, f] + tag * f for f in range(v.shape[1])], axis=1)

    def d_c(v, tag):
        return np.stack([0.25 * v[:, f] + 2 * tag * f + s for f in range(v.shape[1])], axis=1)

    # forward: start-conditioned, end pinned on the last frame, CFG++ along the unconditional direction
    u, c = d_u(x, start_tag), d_c(x, start_tag)
    x0 = u + w * (c - u)
    x0[:, -1] = end_latent
    x = x0 + s_next * (x - u) / s
    # re-noise to s, flip
    x = x + np.sqrt(s**2 - s_next**2) * noise
    x = x[:, ::-1].copy()
    # backward: end-conditioned, start pinned on the (now) last frame
    u, c = d_u(x, end_tag), d_c(x, end_tag)
    x0 = u + w * (c - u)
    x0[:, -1] = start_latent
    x = x0 + s_next * (x - u) / s
    return x[:, ::-1], x0[:, ::-1]


@pytest.mark.parametrize(("sigma", "sigma_next", "guidance"), [(14.6, 9.1, 1.0), (2.0, 0.7, 2.5), (0.3, 0.0, 1.0)])
def test_one_step_equals_the_papers_update(sigma, sigma_next, guidance):
    gen = torch.Generator().manual_seed(0)
    x, noise = torch.randn(SHAPE, generator=gen, dtype=torch.float64), torch.randn(SHAPE, generator=gen,
                                                                                   dtype=torch.float64)
    start_latent, end_latent = torch.randn(1, 4, 3, 2, generator=gen), torch.randn(1, 4, 3, 2, generator=gen)
    calls: list[tuple[float, float]] = []
    got, prediction = bidirectional_step(x, sigma, sigma_next, _stand_in(calls), _conditioning(3.0),
                                         _conditioning(-7.0), start_latent.double(), end_latent.double(), guidance,
                                         noise)
    want, want_prediction = _paper_step(x.numpy(), sigma, sigma_next, 3.0, -7.0, start_latent.numpy(),
                                        end_latent.numpy(), guidance, noise.numpy())
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(prediction.numpy(), want_prediction, rtol=1e-12, atol=1e-12)
    assert calls == [(3.0, sigma), (-7.0, sigma)]  # forward on the start, backward on the end, both at sigma
    # pinned frames: the prediction starts on the start latent; the forward half's on the end one (checked above)
    np.testing.assert_allclose(prediction[:, 0].numpy(), start_latent.numpy())
    if sigma_next == 0:  # the last step lands on the prediction: the first frame is the start latent exactly
        np.testing.assert_allclose(got[:, 0].numpy(), start_latent.numpy())


def test_the_forward_half_pins_the_end_latent():
    """With the backward half a pass-through at sigma_next 0, the forward prediction's last frame is the end's."""
    seen = []

    def denoise(x, sigma, conditioning):
        seen.append(x.clone())
        return x * 0, x * 0

    end_latent = torch.full((1, 4, 3, 2), 5.0)
    x = torch.randn(SHAPE)
    bidirectional_step(x, 1.0, 0.0, denoise, _conditioning(1), _conditioning(2), torch.zeros(1, 4, 3, 2), end_latent,
                       1.0, torch.zeros(SHAPE))
    # the backward half sees the forward result (x0 at sigma_next 0) re-noised by 1 * 0 and flipped: frame 0 = end
    assert torch.equal(seen[1][:, 0], end_latent)


def test_unet_denoiser_matches_the_euler_schedulers_prediction():
    """Our EDM preconditioning is what diffusers' Euler scheduler computes for v-prediction (scale_model_input, the
    continuous timestep, pred_original_sample)."""
    from diffusers import EulerDiscreteScheduler

    scheduler = EulerDiscreteScheduler(prediction_type="v_prediction", use_karras_sigmas=True, sigma_min=0.002,
                                       sigma_max=700.0, timestep_type="continuous", beta_schedule="scaled_linear",
                                       beta_start=0.00085, beta_end=0.012, steps_offset=1, timestep_spacing="leading")
    scheduler.set_timesteps(5)
    seen = {}

    def unet(model_input, timestep, **kwargs):
        seen["input"], seen["t"] = model_input, timestep
        return (torch.sin(model_input[:, :, :4]) * 3,)

    x = torch.randn(SHAPE)
    step = 2
    sigma, t = float(scheduler.sigmas[step]), scheduler.timesteps[step]
    uncond, cond = unet_denoiser(unet)(x, sigma, _conditioning(1.0))
    scaled = scheduler.scale_model_input(torch.cat([x, x]), t)
    torch.testing.assert_close(seen["input"][:, :, :4], scaled)
    assert float(seen["t"]) == pytest.approx(float(t), rel=1e-6)
    expected = scheduler.step(torch.sin(scaled) * 3, t, torch.cat([x, x])).pred_original_sample
    torch.testing.assert_close(torch.cat([uncond, cond]), expected, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------- tiny models


def test_sampled_latents_start_on_the_start_photos_latent_and_repeat_per_seed(studio, keyframes):
    loaded = studio.cache.get("svd", studio.settings.svd_model)
    pipe = loaded.pipe
    steps: list[str] = []
    a = denoise_keyframes(loaded, keyframes, keyframe_params(), progress=lambda f, text: steps.append(text))
    b = denoise_keyframes(loaded, keyframes, keyframe_params())
    c = denoise_keyframes(loaded, keyframes, keyframe_params(seed=12))
    assert a.shape == (1, 4, 4, 18, 32) and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert steps == ["Step 1/2 (forward and backward)", "Step 2/2 (forward and backward)"]
    with torch.no_grad():
        pixels = pipe.video_processor.preprocess(keyframes.start, height=144, width=256)
        start_latent = pipe.vae.encode(pixels).latent_dist.mode() * pipe.vae.config.scaling_factor
    torch.testing.assert_close(a[:, 0], start_latent)


def test_first_decoded_frame_is_the_vae_round_trip_of_the_start_photo(studio, keyframes):
    loaded = studio.cache.get("svd", studio.settings.svd_model)
    pipe = loaded.pipe
    # one frame per decode: frame 0 is decoded on its own, as a round trip
    params = keyframe_params(decode_chunk_size=1)
    frames = generate_frames(studio.cache, loaded, keyframes, params, sampler=denoise_keyframes).frames
    assert frames.shape == (4, 144, 256, 3)
    with torch.no_grad():
        pixels = pipe.video_processor.preprocess(keyframes.start, height=144, width=256)
        latent = pipe.vae.encode(pixels).latent_dist.mode()
        decoded = pipe.vae.decode(latent, num_frames=1).sample
        round_trip = pipe.video_processor.postprocess_video(decoded[:, :, None], output_type="np")[0][0]
    expected = np.clip(round_trip * 255 + 0.5, 0, 255).astype(np.uint8)
    assert np.abs(frames[0].astype(int) - expected.astype(int)).max() <= 1


def test_cancel_stops_between_the_halves_of_a_step(studio, keyframes):
    loaded = studio.cache.get("svd", studio.settings.svd_model)
    cancel = threading.Event()
    calls = []
    unet = loaded.pipe.unet
    original = unet.forward

    def counting(*args, **kwargs):
        calls.append(1)
        cancel.set()  # set during the forward half of the first step
        return original(*args, **kwargs)

    unet.forward = counting
    try:
        with pytest.raises(GenerationCancelled):
            denoise_keyframes(loaded, keyframes, keyframe_params(), cancel=cancel)
    finally:
        del unet.forward
    assert len(calls) == 1  # the backward half never ran


def test_previews_show_the_prediction(studio, keyframes):
    loaded = studio.cache.get("svd", studio.settings.svd_model)
    previews = []
    denoise_keyframes(loaded, keyframes, keyframe_params(num_inference_steps=4), preview=previews.append)
    assert len(previews) == 1 and previews[0].shape == (4, 18, 32, 3) and previews[0].dtype == np.uint8
    assert math.isfinite(float(previews[0].std()))


# ------------------------------------------------------------------------------------------------------- studio


def _sha256(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_studio_writes_the_clip_with_both_hashes_and_the_method_and_restores_and_extends(studio, keyframe_photos,
                                                                                         tmp_path):
    import json

    from svd_demo.files.media import probe_video, read_metadata
    from svd_demo.studio.restore import read_settings

    start, end = keyframe_photos
    params = VideoParams.from_raw({**FAST, "seed": 21})
    result = studio.keyframes_to_video(start, end, params, keyframe_guidance=1.5, out_stem=tmp_path / "clip")
    info = probe_video(result.files.video)
    assert (info.width, info.height, info.num_frames) == (256, 144, 4)
    record = json.loads(result.files.sidecar.read_text())
    assert record["kind"] == "keyframes_to_video"
    parameters = record["parameters"]
    assert (parameters["method"], parameters["keyframe_guidance"], parameters["loop_to_start"]) == \
        ("ViBiDSampler", 1.5, False)
    assert (parameters["start_sha256"], parameters["end_sha256"]) == (_sha256(start), _sha256(end))
    assert record["input"]["start"]["sha256"] == _sha256(start) and record["input"]["end"]["size"] == [256, 144]
    tags = json.loads(read_metadata(result.files.video)["comment"])  # the MP4 carries the same parameters
    assert (tags["start_sha256"], tags["end_sha256"], tags["keyframe_guidance"]) == (_sha256(start), _sha256(end),
                                                                                     1.5)
    for source in (result.files.video, result.files.sidecar):
        restored = read_settings(source)
        assert restored.kind == "keyframes_to_video" and restored.video.seed == 21
        assert restored.keyframes == {"keyframe_guidance": 1.5, "loop_to_start": False}
        assert restored.values()["keyframe_guidance"] == 1.5
    from svd_demo.core.params import KEYFRAME_SPECS
    from svd_demo.web.handlers import TEXT_INPUTS, VIDEO_INPUTS, restore_settings

    *controls, tabs, note = restore_settings(str(result.files.video))
    by_name = dict(zip([*VIDEO_INPUTS, *TEXT_INPUTS, *KEYFRAME_SPECS], controls, strict=True))
    assert tabs.selected == "keyframes" and "Upload its start and end photo" in note
    assert (by_name["keyframe_guidance"]["value"], by_name["seed"]["value"]) == (1.5, 21)
    extended = studio.extend_video(result.files.video, VideoParams.from_raw({**FAST, "seed": 3}),
                                   out_stem=tmp_path / "longer")
    assert probe_video(extended.files.video).num_frames == 4 + 3  # the new part's first frame repeats the last


def test_a_missing_end_photo_is_refused_naming_it_unless_loop(studio, keyframe_photos):
    from svd_demo.core.errors import InputError

    start, _ = keyframe_photos
    with pytest.raises(InputError, match=r"end photo \(`end_image`\).*`loop_to_start`"):
        studio.keyframes_to_video(start, None, VideoParams.from_raw(FAST))
    looped = studio.prepare_keyframes(start, None, 256, "crop", loop_to_start=True)
    assert looped.end.image.tobytes() == looped.start.image.tobytes()


@pytest.mark.parametrize(("mode", "notice"), [("native", r"Cropped to the frame 256x192"),
                                              ("pad", r"Padded to 16:9"), ("crop", r"Cropped to the frame 256x144")])
def test_photos_of_different_shapes_are_framed_to_the_start_photos_size(studio, tmp_path, mode, notice):
    start, end = tmp_path / "landscape.png", tmp_path / "portrait.png"
    Image.new("RGB", (400, 300), (200, 10, 10)).save(start)
    Image.new("RGB", (300, 400), (10, 10, 200)).save(end)
    photos = studio.prepare_keyframes(start, end, 256, mode)
    assert photos.end.image.size == photos.start.image.size
    notes = " ".join(photos.end_notices)
    assert re.search(notice, notes) and "The photos differ in shape (400x300 and 300x400)" in notes
    assert f"same aspect mode ({mode})" in notes


def test_a_model_without_svds_edm_scheduler_is_refused_naming_it():
    from types import SimpleNamespace

    from svd_demo.core.errors import InputError
    from svd_demo.engine.keyframes import check_scheduler
    from svd_demo.engine.schedulers import AnimateLCMScheduler

    with pytest.raises(InputError, match=r"AnimateLCM-SVD-xt uses AnimateLCMScheduler.*SVD-XT"):
        check_scheduler(SimpleNamespace(scheduler=AnimateLCMScheduler()), "AnimateLCM-SVD-xt")


def test_on_zerogpu_a_keyframes_run_asks_for_twice_the_denoising_time(tiny_settings, keyframe_photos, monkeypatch):
    import sys
    import types

    from svd_demo.studio import zerogpu

    asked = []
    fake = types.ModuleType("spaces")
    fake.GPU = lambda duration: lambda fn: lambda *a, **k: asked.append(duration(*a, **k)) or fn(*a, **k)
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    studio = zerogpu.ZeroGPUStudio(tiny_settings, 600)  # a studio of its own; nothing runs on its models
    start, end = keyframe_photos
    params = VideoParams.from_raw({**FAST, "num_inference_steps": 25, "resolution": 1024})
    resolved = params.resolved(num_frames=4, fps=7)
    one = zerogpu.duration_for(zerogpu.video_seconds(resolved, 1024, 576), 600)
    two = zerogpu.duration_for(zerogpu.video_seconds(
        VideoParams.from_raw({**FAST, "num_inference_steps": 50, "resolution": 1024}).resolved(num_frames=4, fps=7),
        1024, 576), 600)
    monkeypatch.setattr(studio, "prepare_keyframes", lambda *a, **k: (_ for _ in ()).throw(
        GenerationCancelled("stop before the model")))  # only the duration matters here
    with pytest.raises(GenerationCancelled):
        studio.keyframes_to_video(start, end, params)
    assert asked == [two] and two > one


def test_a_keyframes_clip_is_looped_and_interpolated_as_it_is_written(studio, keyframe_photos, tmp_path):
    """The video options after generation stream as image to video's do: ping-pong, then interpolation up to
    `interpolate_fps`, counted in the sidecar."""
    start, end = keyframe_photos
    params = VideoParams.from_raw({**FAST, "seed": 2, "loop": "ping-pong", "playback_fps": 4, "interpolate_fps": 8})
    result = studio.keyframes_to_video(start, end, params, out_stem=tmp_path / "smooth")
    frames = 2 * FAST["num_frames"] - 2  # ping-pong
    assert result.files.info.num_frames == result.record["interpolation"]["frames"] == 2 * frames - 1
    assert result.record["timings"]["interpolate_s"] >= 0
