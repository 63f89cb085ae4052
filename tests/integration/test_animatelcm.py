"""The 4-step lane: the AnimateLCM-SVD-xt preset, its defaults, and loading it through the app's own loading code from
tiny local folders laid out like the hub repo (the distilled UNet as one safetensors file at its root)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from helpers import FAST

from svd_demo.core import models
from svd_demo.core.errors import ModelLoadError
from svd_demo.core.models import SVD_PRESETS, svd_defaults, svd_settings
from svd_demo.core.params import SPECS, VideoParams
from svd_demo.engine import animatelcm
from svd_demo.engine.schedulers import AnimateLCMScheduler


@pytest.mark.parametrize("model_id", [models.HUB_ID, models.HUB_ID_1_1])
def test_each_published_file_is_a_preset_with_the_authors_settings(model_id):
    """The authors' demo (G-U-N/AnimateLCM animatelcm_svd/app.py) calls the pipeline with its default fps 7 (the UNet
    sees 6), motion bucket 80 and 4 steps, and writes the file at 8 fps; guidance 1/1 as their README advises."""
    preset = next(p for p in SVD_PRESETS if p.model_id == model_id)
    assert "4 steps" in preset.label and ("1.1" in preset.label) == (model_id == models.HUB_ID_1_1)
    assert svd_defaults(model_id) == (25, 7)
    assert svd_settings(model_id) == {
        "num_frames": 25, "fps": 7, "num_inference_steps": 4, "min_guidance_scale": 1.0, "max_guidance_scale": 1.0,
        "motion_bucket_id": 80, "playback_fps": 8}
    assert models.is_animatelcm(model_id)
    resolved = VideoParams.from_raw({k: v for k, v in svd_settings(model_id).items() if k != "num_frames"})
    assert resolved.fps == 7 and resolved.effective_playback_fps == 8


def test_each_reference_reads_its_own_file(tmp_path, monkeypatch):

    asked = []
    monkeypatch.setattr(animatelcm, "fetch", lambda repo, files, **kwargs: asked.append((repo, *files)) or tmp_path)
    assert animatelcm._weights_path(models.HUB_ID).name == models.WEIGHTS_FILE
    assert animatelcm._weights_path(models.HUB_ID_1_1).name == models.WEIGHTS_FILE_1_1
    assert asked == [(models.HUB_ID, models.WEIGHTS_FILE), (models.HUB_ID, models.WEIGHTS_FILE_1_1)]
    assert not models.is_animatelcm(f"{models.HUB_ID}/other.safetensors")
    (tmp_path / models.WEIGHTS_FILE_1_1).write_bytes(b"")  # a local folder holding the 1.1 file alone
    assert models.is_animatelcm(str(tmp_path))
    assert animatelcm._weights_path(str(tmp_path)) == tmp_path / models.WEIGHTS_FILE_1_1
    assert svd_settings(str(tmp_path))["playback_fps"] == 8


def test_other_models_get_the_parameters_own_defaults_back():
    settings = svd_settings("stabilityai/stable-video-diffusion-img2vid-xt")
    assert settings == {"num_frames": 25, "fps": 7, **{name: SPECS[name].default for name in (
        "num_inference_steps", "min_guidance_scale", "max_guidance_scale", "motion_bucket_id", "playback_fps")}}


def test_the_lane_is_recognised_by_id_or_by_a_folder_holding_the_weights(tmp_path, tiny_models_dir):
    assert models.is_animatelcm(models.HUB_ID)
    assert not models.is_animatelcm("stabilityai/stable-video-diffusion-img2vid-xt")
    assert not models.is_animatelcm(str(tiny_models_dir / "svd"))
    (tmp_path / models.WEIGHTS_FILE).write_bytes(b"")
    assert models.is_animatelcm(str(tmp_path))


@pytest.fixture(scope="module")
def distilled_weights(tmp_path_factory, tiny_models_dir):
    """A tiny 'distilled' UNet: same shape as the tiny SVD's, other weights, saved as the hub repo saves it."""
    from diffusers import UNetSpatioTemporalConditionModel
    from safetensors.torch import save_file

    unet = UNetSpatioTemporalConditionModel.from_pretrained(tiny_models_dir / "svd" / "unet")
    with torch.no_grad():
        for parameter in unet.parameters():
            parameter.mul_(0.9)
    folder = tmp_path_factory.mktemp("animatelcm-hub-layout")
    save_file({k: v.contiguous() for k, v in unet.state_dict().items()}, folder / models.WEIGHTS_FILE)
    return folder, unet.state_dict()


def test_loading_puts_the_distilled_unet_and_the_consistency_sampler_into_the_svd_pipeline(
        distilled_weights, tiny_models_dir, monkeypatch):
    from diffusers import StableVideoDiffusionPipeline

    folder, state = distilled_weights
    monkeypatch.setattr(animatelcm, "BASE_MODEL", str(tiny_models_dir / "svd"))  # stands in for SVD-XT's hub id
    pipe = animatelcm.load_pipeline(StableVideoDiffusionPipeline, str(folder), dtype=torch.float32)
    assert isinstance(pipe.scheduler, AnimateLCMScheduler)
    loaded = pipe.unet.state_dict()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_a_checkpoint_of_another_shape_is_refused(tmp_path, tiny_models_dir, monkeypatch):
    from diffusers import StableVideoDiffusionPipeline
    from safetensors.torch import save_file

    save_file({"conv_in.weight": torch.zeros(1)}, tmp_path / models.WEIGHTS_FILE)
    monkeypatch.setattr(animatelcm, "BASE_MODEL", str(tiny_models_dir / "svd"))
    with pytest.raises(ModelLoadError, match="does not fit.*conv_in.weight"):
        animatelcm.load_pipeline(StableVideoDiffusionPipeline, str(tmp_path), dtype=torch.float32)


def test_the_studio_runs_the_lane_from_one_folder_deterministically(studio, distilled_weights, tiny_models_dir,
                                                                     tmp_path, photo):
    """Offline use: the AnimateLCM file copied into a local SVD folder makes one folder that holds everything."""
    folder = tmp_path / "svd-animatelcm"
    shutil.copytree(tiny_models_dir / "svd", folder)
    shutil.copy(distilled_weights[0] / models.WEIGHTS_FILE, folder)
    lane = {**FAST, **{k: v for k, v in svd_settings(models.HUB_ID).items() if k not in ("num_frames", "fps")},
            "seed": 5}
    first = studio.image_to_video(photo, VideoParams.from_raw(lane), model_ref=str(folder))
    loaded = studio.cache.loaded("svd")
    assert isinstance(loaded.pipe.scheduler, AnimateLCMScheduler)
    assert first.record["parameters"]["num_inference_steps"] == 4 and first.record["model"]["id"] == str(folder)
    second = studio.image_to_video(photo, VideoParams.from_raw(lane), model_ref=str(folder))
    from svd_demo.files.video_input import frames_of

    np.testing.assert_array_equal(np.stack(frames_of(first.files.video, 10, "t")[0]),
                                  np.stack(frames_of(second.files.video, 10, "t")[0]))


def test_without_the_base_model_the_error_names_it(distilled_weights, tiny_models_dir):
    """Hub layout, offline, SVD-XT not in the cache: the message says which model is missing and what to do."""
    from svd_demo.core.settings import Settings
    from svd_demo.engine.pipelines import PipelineCache

    cache = PipelineCache(Settings(svd_model=str(tiny_models_dir / "svd"), device="cpu"))
    with pytest.raises(ModelLoadError, match="stable-video-diffusion-img2vid-xt") as caught:
        cache.get("svd", str(distilled_weights[0]))
    assert "AnimateLCM" in str(caught.value)


def test_picking_the_preset_in_the_ui_sets_its_defaults_and_starting_with_it_shows_them(tiny_settings, studio):
    from dataclasses import replace

    import gradio as gr

    from svd_demo.web import ui

    def model_picker_and_change(settings):
        demo = ui.build_demo(settings, studio)
        picker = next(b for b in demo.blocks.values() if isinstance(b, gr.Dropdown) and b.label == "Video model")
        change = next(fn for fn in demo.fns.values() if [b._id for b in fn.inputs] == [picker._id]
                      and len(fn.outputs) > 2)
        return picker, change

    quick = studio.quick_defaults()  # on a CPU the page starts from fewer frames and at most 4 steps

    def expected(ref: str) -> dict:
        values = svd_settings(ref)
        values["num_frames"] = quick.get("num_frames", values["num_frames"])
        values["num_inference_steps"] = min(values["num_inference_steps"], quick.get("num_inference_steps", 100))
        return values

    _, change = model_picker_and_change(tiny_settings)
    labels = {SPECS[name].label: name for name in SPECS}
    set_to = {labels[box.label]: update["value"] for box, update in zip(change.outputs, change.fn(models.HUB_ID),
                                                                         strict=True)}
    assert set_to == expected(models.HUB_ID) and set_to["num_inference_steps"] == 4
    back = {labels[box.label]: update["value"] for box, update in zip(
        change.outputs, change.fn("stabilityai/stable-video-diffusion-img2vid-xt"), strict=True)}
    assert back == expected("stabilityai/stable-video-diffusion-img2vid-xt")
    assert (back["max_guidance_scale"], back["motion_bucket_id"]) == (3.0, 127)

    _, change = model_picker_and_change(replace(tiny_settings, svd_model=models.HUB_ID))
    shown = {labels[box.label]: box.value for box in change.outputs}
    assert shown == expected(models.HUB_ID) and shown["max_guidance_scale"] == 1.0


def test_the_cli_runs_a_few_step_model_as_made_unless_a_flag_says_otherwise(tmp_path):
    import argparse
    from types import SimpleNamespace

    from svd_demo.cli.commands import _video_values

    gpu = SimpleNamespace(settings=SimpleNamespace(svd_model=None), quick_defaults=lambda *refs: {})  # no quick values
    (tmp_path / models.WEIGHTS_FILE).write_bytes(b"")  # a local folder laid out like the hub repo
    names = [*SPECS, "extra_formats"]
    blank = {name: None for name in names}
    lane = _video_values(argparse.Namespace(**blank, svd_model=str(tmp_path)), gpu, names)
    assert (lane["num_inference_steps"], lane["min_guidance_scale"], lane["max_guidance_scale"],
            lane["motion_bucket_id"]) == (4, 1.0, 1.0, 80)
    typed = _video_values(argparse.Namespace(**{**blank, "num_inference_steps": "6"}, svd_model=models.HUB_ID),
                          gpu, names)
    assert typed["num_inference_steps"] == "6" and typed["max_guidance_scale"] == 1.0
    plain = _video_values(argparse.Namespace(**blank, svd_model="stabilityai/stable-video-diffusion-img2vid-xt"),
                          gpu, names)
    usual = ("num_inference_steps", "min_guidance_scale", "max_guidance_scale", "motion_bucket_id")
    assert [plain[name] for name in usual] == [SPECS[name].default for name in usual]  # other models: the usual
