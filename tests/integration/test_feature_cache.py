"""Feature caching across steps (engine/feature_cache.py) on the tiny SVD: deterministic, close to the plain run,
and gone without a trace after the run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from svd_demo.engine.feature_cache import DEFAULT_BRANCH, DEFAULT_INTERVAL, feature_cache

STEPS = 4


def latents(pipe, seed: int = 0, steps: int = STEPS) -> np.ndarray:
    image = Image.new("RGB", (256, 144), (120, 80, 40))
    with torch.no_grad():
        out = pipe(image, height=144, width=256, num_frames=3, num_inference_steps=steps, output_type="latent",
                   generator=torch.Generator().manual_seed(seed)).frames
    return out.numpy()


def state_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in module.state_dict().items()}


def test_cached_run_is_deterministic_and_close_to_the_plain_run(pipe):
    """Interval 2 here: of only 4 steps, interval 3 reuses step 0's features for steps 1 and 2 (at sigma 700 and
    below), which on the tiny random UNet is far from the plain run (mean |diff| 15 % of the spread); a real run's 25
    steps are what DeepCache's setting was measured on, and the GPU benchmark's rows compare the settings there."""
    plain = latents(pipe)
    with feature_cache(pipe.unet, interval=2) as stats:
        cached = latents(pipe)
    assert (stats.full_steps, stats.reused_steps) == (2, 2)  # 4 steps: full, reused, full, reused
    with feature_cache(pipe.unet, interval=2):
        again = latents(pipe)
    np.testing.assert_array_equal(cached, again)  # same seed, same latents
    assert np.isfinite(cached).all()
    diff = np.abs(cached - plain)
    assert diff.max() > 1e-3  # the reused steps really skipped the deep layers
    # Close, the tolerance: mean |diff| under 2% of the latents' spread and no value off by more than a fifth of it.
    # Measured on the tiny random UNet (4 steps, 3 frames, 256x144, branch 0): mean |diff| 0.4 % of the spread
    # (std 0.57), max 3.9 %.
    assert diff.mean() < 0.02 * plain.std() and diff.max() < 0.2 * plain.std()


def test_the_unet_is_unchanged_after_a_cached_run(pipe):
    before = state_of(pipe.unet)
    plain = latents(pipe, seed=3)
    with feature_cache(pipe.unet):
        latents(pipe, seed=3)
    after = state_of(pipe.unet)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    hooked = [name for name, m in pipe.unet.named_modules() if getattr(m, "_diffusers_hook", None) is not None
              and m._diffusers_hook.hooks]
    assert hooked == []
    np.testing.assert_array_equal(latents(pipe, seed=3), plain)  # the next uncached run is a plain run


def test_a_failed_run_removes_the_hooks_too(pipe):
    plain = latents(pipe, seed=5, steps=2)
    with pytest.raises(RuntimeError, match="stop"), feature_cache(pipe.unet):
        raise RuntimeError("stop")
    np.testing.assert_array_equal(latents(pipe, seed=5, steps=2), plain)


def test_every_step_is_full_with_interval_one_so_nothing_changes(pipe):
    plain = latents(pipe, seed=1, steps=3)
    with feature_cache(pipe.unet, interval=1) as stats:
        same = latents(pipe, seed=1, steps=3)
    np.testing.assert_array_equal(same, plain)
    assert (stats.full_steps, stats.reused_steps) == (3, 0)


def test_bad_settings_and_other_models_are_refused(pipe):
    with pytest.raises(ValueError, match="interval"), feature_cache(pipe.unet, interval=0):
        pass
    with pytest.raises(ValueError, match="`branch` must be from 0 to 4"), feature_cache(pipe.unet, branch=5):
        pass  # the tiny UNet: 2 levels of 2 layers: branches 0-2 (first level), 3-4 (the last has no downsampler)
    with pytest.raises(ValueError, match="spatio-temporal UNet"), feature_cache(torch.nn.Linear(2, 2)):
        pass


# ---------------------------------------------------------------------------------------------------------------
# What a reused step runs: DeepCache's skip branches (horseee/DeepCache, DeepCache/svd/
# unet_spatio_temporal_condition.py and unet_3d_blocks.py: `exist_module_idx` ends the down block after layer b % 3
# of block b // 3, `enter_module_idx` starts the matching up block at the layer that takes its skip connection)


def _layers_run(pipe, steps: int, **setting) -> list[set[str]]:
    """For each UNet call of a run: the down/mid/up layers (block.kind.index) whose weights were used."""
    calls: list[set[str]] = []
    handles = [pipe.unet.register_forward_pre_hook(lambda module, args: calls.append(set()))]
    for name, module in pipe.unet.named_modules():
        if name.startswith(("down_blocks.", "mid_block.", "up_blocks.")) and not list(module.children()):
            unit = ".".join(name.split(".")[:3 if name.startswith("mid_block") else 4])
            handles.append(module.register_forward_hook(lambda m, a, o, unit=unit: calls[-1].add(unit)))
    try:
        with feature_cache(pipe.unet, **setting):
            latents(pipe, steps=steps)
    finally:
        for handle in handles:
            handle.remove()
    return calls


DOWN0 = {"down_blocks.0.resnets.0", "down_blocks.0.attentions.0", "down_blocks.0.resnets.1",
         "down_blocks.0.attentions.1"}
UP1 = {f"up_blocks.1.{kind}.{i}" for kind in ("resnets", "attentions") for i in range(3)}  # the last up block
REUSED = {  # the tiny UNet: down (cross-attention, plain), up (plain, cross-attention), 2 layers per down block
    0: {"down_blocks.0.resnets.0", "down_blocks.0.attentions.0", "up_blocks.1.resnets.1", "up_blocks.1.attentions.1",
        "up_blocks.1.resnets.2", "up_blocks.1.attentions.2"},
    1: DOWN0 | UP1,
    2: DOWN0 | {"down_blocks.0.downsamplers.0", "up_blocks.0.resnets.2", "up_blocks.0.upsamplers.0"} | UP1,
}


@pytest.mark.parametrize("branch", sorted(REUSED))
def test_a_reused_step_runs_exactly_deepcaches_shallow_branch(pipe, branch):
    full, reused, again, next_full = _layers_run(pipe, 4, interval=3, branch=branch)
    assert reused == again == REUSED[branch]  # steps 1 and 2 reuse step 0's features, step 3 runs in full
    assert full == next_full and full > reused and {"mid_block.resnets.0", "down_blocks.1.resnets.1"} <= full


def test_the_default_is_deepcaches_published_svd_setting():
    """DeepCache's stable_video_diffusion.py (the SVD-XT 1.7x in its README) runs cache_interval=3, cache_branch=0."""
    from svd_demo.core.settings import Settings, parse_settings

    assert (DEFAULT_INTERVAL, DEFAULT_BRANCH) == (3, 0)
    assert (Settings().feature_cache_interval, Settings().feature_cache_branch) == (3, 0)
    chosen = parse_settings(["--feature-cache-interval", "2"], {"SVD_DEMO_FEATURE_CACHE_BRANCH": "1"})
    assert (chosen.feature_cache_interval, chosen.feature_cache_branch) == (2, 1)
    with pytest.raises(SystemExit):
        parse_settings(["--feature-cache-interval", "0"])


def test_the_servers_setting_is_what_a_generation_uses_and_records(tiny_settings, photo, tmp_path):
    from dataclasses import replace

    from helpers import FAST

    from svd_demo.core.params import VideoParams
    from svd_demo.studio.studio import Studio

    settings = replace(tiny_settings, output_dir=tmp_path, feature_cache_interval=2, feature_cache_branch=4)
    result = Studio(settings).image_to_video(photo, VideoParams.from_raw({**FAST, "num_inference_steps": 3,
                                                                         "feature_cache": True}))
    assert result.record["feature_cache"] == {"interval": 2, "branch": 4, "full_steps": 2, "reused_steps": 1}


# ---------------------------------------------------------------------------------------------------------------
# The option as UI, CLI and API get it: one parameter, recorded in the sidecar


def test_the_option_is_one_parameter_off_by_default():
    from svd_demo.core.params import SPECS, VideoParams

    spec = SPECS["feature_cache"]
    assert spec.kind is bool and spec.default is False and spec.label == "Faster, slightly softer"
    assert VideoParams().feature_cache is False
    assert VideoParams.from_raw({"feature_cache": "true"}).feature_cache is True
    from svd_demo.core.errors import InputError

    with pytest.raises(InputError, match="`feature_cache` must be true or false"):
        VideoParams.from_raw({"feature_cache": "sometimes"})


def test_a_cached_generation_records_it_and_the_next_plain_one_is_plain(studio, photo):
    from helpers import FAST

    from svd_demo.core.params import VideoParams
    from svd_demo.studio.sidecar import Sidecar

    steps = {**FAST, "num_inference_steps": 4, "seed": 11}
    plain = studio.image_to_video(photo, VideoParams.from_raw(steps))
    cached = studio.image_to_video(photo, VideoParams.from_raw({**steps, "feature_cache": True}))
    again = studio.image_to_video(photo, VideoParams.from_raw(steps))
    record = Sidecar.read(cached.files.sidecar)
    assert record.parameters["feature_cache"] is True and Sidecar.read(plain.files.sidecar).parameters[
        "feature_cache"] is False
    assert cached.record["feature_cache"] == {"interval": 3, "branch": 0, "full_steps": 2, "reused_steps": 2}
    assert "feature_cache" not in plain.record
    from svd_demo.files.video_input import frames_of

    def decoded(result) -> np.ndarray:
        return np.stack(frames_of(result.files.video, 10, "test")[0])

    first = decoded(plain)
    np.testing.assert_array_equal(decoded(again), first)  # the hooks are gone: the next plain run is a plain run
    assert not np.array_equal(decoded(cached), first)


def test_the_cli_has_the_flag():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "svd_demo", "generate", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "--feature-cache" in out and "--no-feature-cache" in out


# ---------------------------------------------------------------------------------------------------------------
# With the offloading levers the memory profiles use (on the CPU as helpers.STAND_IN explains): the same cached latents


def test_caching_under_model_offload_and_group_offload_gives_the_same_latents(pipe):
    from diffusers.hooks import apply_group_offloading

    with feature_cache(pipe.unet) as stats:
        reference = latents(pipe, seed=2)
    assert stats.reused_steps == 2  # the default: interval 3 over 4 steps reuses steps 1 and 2
    try:
        pipe.enable_model_cpu_offload(device="cpu:0")  # the code path a GPU takes: hooks move the whole UNet
        with feature_cache(pipe.unet):
            offloaded = latents(pipe, seed=2)
    finally:
        pipe.remove_all_hooks()
        pipe.to("cpu")
    # The same weights, copied by the hooks to other addresses: float32 GEMMs may round their last bit differently
    # (MKL/oneDNN block by alignment), a few 1e-5 after 4 steps here. A cache that reused the wrong features, or
    # none, differs by orders of magnitude more (see the closeness tests above).
    np.testing.assert_allclose(offloaded, reference, atol=1e-4)
    try:  # block-level group offloading registers its hooks on the same blocks, in the same registry
        apply_group_offloading(pipe.unet, onload_device=torch.device("cpu"), offload_type="block_level",
                               num_blocks_per_group=1)
        with feature_cache(pipe.unet):
            grouped = latents(pipe, seed=2)
    finally:  # every group-offloading hook off again, for the tests after this one
        for module in pipe.unet.modules():
            registry = getattr(module, "_diffusers_hook", None)
            for name in list(registry.hooks) if registry is not None else []:
                registry.remove_hook(name, recurse=False)
    np.testing.assert_allclose(grouped, reference, atol=1e-4)
