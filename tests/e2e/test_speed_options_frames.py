"""Speed options give the same video as the plain path (tiny models, within a stated tolerance): the `fast`
profile's compile, forward chunking and bf16, each generating and comparing clips."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from PIL import Image

from svd_demo.engine.memory import PLANS, apply_plan


def frames(pipe) -> np.ndarray:
    image = Image.new("RGB", (256, 144), (120, 80, 40))
    return pipe(image, height=144, width=256, num_frames=3, num_inference_steps=2, output_type="np",
                generator=torch.Generator().manual_seed(0)).frames[0]


def test_fast_compiles_without_falling_back_to_eager_and_gives_the_same_frames(pipe, monkeypatch):
    """dynamo gives up after `recompile_limit` recompiles of one block class and silently runs the rest eager; this
    makes that an error, and uses dynamo's eager backend (the tracing and guards are the same as inductor's)."""
    real_compile = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: real_compile(self, backend="eager", **kw))
    monkeypatch.setattr(torch._dynamo.config, "fail_on_recompile_limit_hit", True)
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 8)  # the default
    apply_plan(pipe, PLANS["high"], "cpu")
    plain = frames(pipe)
    try:
        apply_plan(pipe, PLANS["fast"], "cpu")
        assert np.abs(frames(pipe) - plain).max() < 1e-4
        image = Image.new("RGB", (128, 128), (120, 80, 40))
        for size in (128, 192):  # other sizes: recompiled once with dynamic sizes, then reused
            pipe(image, height=size, width=size, num_frames=3, num_inference_steps=1, output_type="latent",
                 generator=torch.Generator().manual_seed(0))
    finally:
        apply_plan(pipe, PLANS["high"], "cpu")
        torch._dynamo.reset()
    assert all(getattr(m, "_compiled_call_impl", None) is None for m in pipe.unet.modules())


def test_forward_chunking_gives_the_same_frames(pipe):
    apply_plan(pipe, PLANS["high"], "cpu")
    plain = frames(pipe)
    apply_plan(pipe, dataclasses.replace(PLANS["high"], forward_chunking=True), "cpu")  # `low` adds lossy fp8 too
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
