"""The memory levers of the `low` and `minimal` profiles, on the CPU with the tiny models: group offloading (block
and leaf level), fp8 weight storage, and int8 weights through torchao (`--quantize int8`).

Group offloading runs its CUDA code path with the onload device "cpu:0" (see test_offload_and_oom_recovery.py); the
CUDA stream it uses on a GPU cannot be created on the CPU, so here every group is copied synchronously.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from helpers import FAST, STAND_IN
from optional_deps import require

from svd_demo.core.params import VideoParams
from svd_demo.engine import memory
from svd_demo.engine.image_to_video import generate_frames
from svd_demo.engine.memory import PLANS, apply_plan, fp8_storage_enabled, pixel_note
from svd_demo.engine.pipelines import PipelineCache
from svd_demo.studio import sidecar

PARAMS = VideoParams.from_raw(FAST).resolved(num_frames=4, fps=7)


# fp8 storage is lossy. On the tiny random-weight UNet (2 steps, 256x144, 4 frames) it measured 33.4 dB PSNR against
# the same seed in full precision; the floor leaves room for other CPUs' rounding. Real weights: BENCHMARKS.md.
FP8_MIN_PSNR_DB = 30.0


def _frames(cache: PipelineCache, loaded, image, params: VideoParams = PARAMS) -> np.ndarray:
    return cache.run(lambda: generate_frames(cache, loaded, image, params)).frames


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _hooks_left(pipe) -> list[str]:
    """Every offload or casting hook still on the pipeline's models: accelerate's `_hf_hook`, diffusers' registry."""
    left = []
    for name, model in pipe.components.items():
        for path, module in model.named_modules() if isinstance(model, torch.nn.Module) else ():
            if hasattr(module, "_hf_hook"):
                left.append(f"{name}.{path}: accelerate")
            registry = getattr(module, "_diffusers_hook", None)
            if registry is not None and registry.hooks:
                left.append(f"{name}.{path}: {', '.join(registry.hooks)}")
    return left


@pytest.mark.parametrize("offload", ["group_block", "group_leaf"])
def test_group_offload_gives_the_frames_of_no_offload(stand_in_cache, image, offload):
    loaded = stand_in_cache.get("svd", stand_in_cache.settings.svd_model)
    resident = _frames(stand_in_cache, loaded, image)
    apply_plan(loaded.pipe, dataclasses.replace(PLANS["high"], offload=offload), STAND_IN)
    assert loaded.pipe._execution_device == torch.device(STAND_IN)  # latents are made where the groups compute
    offloaded = _frames(stand_in_cache, loaded, image)
    # Offloading moves weights; it does not change what they compute (measured: identical on this CPU).
    assert np.abs(offloaded.astype(int) - resident.astype(int)).max() <= 1
    apply_plan(loaded.pipe, PLANS["high"], STAND_IN)
    assert _hooks_left(loaded.pipe) == []


@pytest.mark.parametrize("profile", ["low", "minimal"])
def test_every_weight_a_run_uses_reaches_the_gpu(stand_in_cache, image, profile, monkeypatch):
    """On "cpu:0" a weight the hooks never onload still computes; on a GPU it would be a device-mismatch error.

    The VAE is called through `decode`/`encode`, not `forward`, so its groups must hang on its children.
    """
    from diffusers.hooks.group_offloading import ModuleGroup

    onloaded: set[int] = set()
    real_onload = ModuleGroup.onload_

    def onload(group):
        onloaded.update(id(t) for m in group.modules for t in (*m.parameters(), *m.buffers()))
        onloaded.update(id(t) for t in (*group.parameters, *group.buffers))
        return real_onload(group)

    monkeypatch.setattr(ModuleGroup, "onload_", onload)
    loaded = stand_in_cache.get("svd", stand_in_cache.settings.svd_model)
    stand_in_cache.use_profile(loaded, profile)
    used: dict[int, str] = {}  # the weights of every module whose forward ran (the tiny VAE skips some)
    handles = []
    for name in ("unet", "vae", "image_encoder"):
        for path, module in getattr(loaded.pipe, name).named_modules():
            tensors = (*module.parameters(recurse=False), *module.buffers(recurse=False))
            own = {id(t): f"{name}.{path}" for t in tensors}
            handles.append(module.register_forward_pre_hook(lambda m, args, own=own: used.update(own)))
    try:
        _frames(stand_in_cache, loaded, image)
    finally:
        for handle in handles:
            handle.remove()
    assert len(used) > 100
    assert sorted({where for key, where in used.items() if key not in onloaded}) == []


def test_fp8_storage_quarters_fp32_weights_and_stays_within_its_tolerance(stand_in_cache, image):
    loaded = stand_in_cache.get("svd", stand_in_cache.settings.svd_model)
    unet = loaded.pipe.unet
    full = _frames(stand_in_cache, loaded, image)
    fp32_bytes = sum(p.numel() * p.element_size() for p in unet.parameters())
    apply_plan(loaded.pipe, dataclasses.replace(PLANS["high"], fp8_storage=True), STAND_IN)
    stored = {p.dtype for p in unet.parameters()}
    assert stored == {torch.float8_e4m3fn, torch.float32}  # normalisation layers etc. keep full precision
    assert all(p.dtype == torch.float32 for n, p in unet.named_parameters() if "norm" in n)
    fp8_bytes = sum(p.numel() * p.element_size() for p in unet.parameters())
    assert fp8_bytes <= 0.3 * fp32_bytes  # from fp16 weights (on a GPU) that is about half
    lossy = _frames(stand_in_cache, loaded, image)
    assert np.isfinite(lossy).all() and lossy.shape == full.shape
    assert FP8_MIN_PSNR_DB <= _psnr(lossy, full) < float("inf")
    assert np.array_equal(_frames(stand_in_cache, loaded, image), lossy)  # still deterministic per seed


def test_leaving_fp8_restores_the_exact_weights_and_a_clean_pipeline(stand_in_cache, image):
    loaded = stand_in_cache.get("svd", stand_in_cache.settings.svd_model)
    before = {k: v.clone() for k, v in loaded.pipe.unet.state_dict().items()}
    full = _frames(stand_in_cache, loaded, image)
    for profile in ("low", "balanced", "minimal", "low", "high"):  # group <-> model offload <-> none, fp8 on and off
        stand_in_cache.use_profile(loaded, profile)
        assert fp8_storage_enabled(loaded.pipe.unet) is PLANS[profile].fp8_storage
        _frames(stand_in_cache, loaded, image)
    after = loaded.pipe.unet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert _hooks_left(loaded.pipe) == []
    assert np.array_equal(_frames(stand_in_cache, loaded, image), full)


def test_the_pixel_note_reaches_the_run_notices_and_sidecar(tiny_settings, tmp_path, photo):
    from svd_demo.studio.studio import Studio

    studio = Studio(dataclasses.replace(tiny_settings, memory_profile="low", output_dir=tmp_path))
    result = studio.image_to_video(str(photo), VideoParams.from_raw(FAST))
    note = pixel_note("low", "none")
    assert note in result.notices
    assert result.record["runtime"]["unet_weights"] == "fp8"
    assert sidecar.Sidecar.from_record(result.record).runtime.unet_weights == "fp8"


def test_int8_weights_through_torchao_load_and_run_on_the_cpu(stand_in_cache, image):
    require("torchao", "pip install torchao==0.18.0")
    from torchao.quantization import Int8Tensor

    stand_in_cache.settings = dataclasses.replace(stand_in_cache.settings, quantize="int8", memory_profile="low")
    loaded = stand_in_cache.get("svd", stand_in_cache.settings.svd_model)
    unet = loaded.pipe.unet
    linear = unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    assert memory.is_quantized(unet) and isinstance(linear.weight, Int8Tensor)
    assert linear.weight.qdata.dtype == torch.int8
    assert not fp8_storage_enabled(unet)  # int8 already: `low` adds only the offloading
    one_at_a_time = VideoParams.from_raw({**FAST, "decode_chunk_size": 1}).resolved(num_frames=4, fps=7)
    frames = _frames(stand_in_cache, loaded, image, one_at_a_time)  # the decode chunk changes pixels: the same in both
    assert frames.shape == (4, 144, 256, 3)
    for profile in ("balanced", "high"):  # model offload, then none: offloading moves int8 weights unchanged
        stand_in_cache.use_profile(loaded, profile)
        assert np.array_equal(_frames(stand_in_cache, loaded, image, one_at_a_time), frames), profile


def test_the_sdxl_still_runs_in_the_new_profiles_and_keeps_its_weights(stand_in_cache):
    """The profiles apply to the SDXL pipeline too (its UNet in fp8, its VAE through the blocks it declares)."""
    from svd_demo.core.params import ImageParams
    from svd_demo.engine.text_to_image import generate_still

    params = ImageParams.from_raw({"prompt": "a lighthouse at dusk", "resolution": 256, "sdxl_steps": 2,
                                   "randomize_seed": False})
    loaded = stand_in_cache.get("sdxl", stand_in_cache.settings.sdxl_model)
    before = {k: v.clone() for k, v in loaded.pipe.unet.state_dict().items()}
    stills = {}
    for profile in ("high", "balanced", "low", "minimal", "high"):
        stand_in_cache.use_profile(loaded, profile)
        still = stand_in_cache.run(lambda: generate_still(loaded, params))
        assert (pixel_note(profile, "none") in still.notices) is PLANS[profile].fp8_storage
        stills[profile] = np.asarray(still.image)
    assert stills["high"].shape == (144, 256, 3)
    assert np.array_equal(stills["balanced"], stills["high"])
    assert 0 < np.abs(stills["low"].astype(int) - stills["high"]).max()  # fp8 changes the pixels, a little
    assert _psnr(stills["low"], stills["high"]) >= FP8_MIN_PSNR_DB
    assert all(torch.equal(before[k], v) for k, v in loaded.pipe.unet.state_dict().items())
    assert _hooks_left(loaded.pipe) == []
