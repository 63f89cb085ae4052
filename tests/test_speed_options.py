"""Speed options give the same video as the plain path (tiny models, within a stated tolerance)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from svd_demo.memory import PLANS, apply_plan


@pytest.fixture(scope="module")
def pipe(tiny_models_dir):
    from diffusers import StableVideoDiffusionPipeline

    pipe = StableVideoDiffusionPipeline.from_pretrained(tiny_models_dir / "svd")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def frames(pipe) -> np.ndarray:
    image = Image.new("RGB", (256, 144), (120, 80, 40))
    return pipe(image, height=144, width=256, num_frames=3, num_inference_steps=2, output_type="np",
                generator=torch.Generator().manual_seed(0)).frames[0]


def test_attention_uses_pytorch_sdpa_by_default(pipe):
    names = {type(p).__name__ for p in pipe.unet.attn_processors.values()}
    assert names == {"AttnProcessor2_0"}


def test_channels_last_gives_the_same_frames_and_switches_back(pipe):
    apply_plan(pipe, PLANS["high"], "cpu")
    plain = frames(pipe)
    apply_plan(pipe, dataclasses.replace(PLANS["high"], channels_last=True), "cpu")
    assert pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert np.abs(frames(pipe) - plain).max() < 1e-4
    apply_plan(pipe, PLANS["high"], "cpu")
    assert pipe.unet.conv_in.weight.is_contiguous()


def test_forward_chunking_gives_the_same_frames(pipe):
    apply_plan(pipe, PLANS["high"], "cpu")
    plain = frames(pipe)
    apply_plan(pipe, PLANS["low"], "cpu")  # forward chunking on
    assert np.abs(frames(pipe) - plain).max() < 1e-4
    apply_plan(pipe, PLANS["high"], "cpu")


def test_bf16_stays_close_to_fp32(tiny_models_dir, pipe):
    from diffusers import StableVideoDiffusionPipeline

    apply_plan(pipe, PLANS["high"], "cpu")
    reference = frames(pipe)
    half = StableVideoDiffusionPipeline.from_pretrained(tiny_models_dir / "svd", dtype=torch.bfloat16)
    half.set_progress_bar_config(disable=True)
    diff = np.abs(frames(half).astype(np.float32) - reference)
    assert diff.mean() < 0.02  # bf16 keeps 8 bits of mantissa: close, not identical
