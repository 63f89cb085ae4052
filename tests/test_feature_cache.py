"""Feature caching across steps (svd_demo/feature_cache.py) on the tiny SVD: deterministic, close to the plain run,
and gone without a trace after the run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from svd_demo.feature_cache import feature_cache

STEPS = 4


@pytest.fixture(scope="module")
def pipe(tiny_models_dir):
    from diffusers import StableVideoDiffusionPipeline

    pipe = StableVideoDiffusionPipeline.from_pretrained(tiny_models_dir / "svd")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def latents(pipe, seed: int = 0, steps: int = STEPS) -> np.ndarray:
    image = Image.new("RGB", (256, 144), (120, 80, 40))
    with torch.no_grad():
        out = pipe(image, height=144, width=256, num_frames=3, num_inference_steps=steps, output_type="latent",
                   generator=torch.Generator().manual_seed(seed)).frames
    return out.numpy()


def state_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.clone() for name, value in module.state_dict().items()}


def test_cached_run_is_deterministic_and_close_to_the_plain_run(pipe):
    plain = latents(pipe)
    with feature_cache(pipe.unet) as stats:
        cached = latents(pipe)
    assert (stats.full_steps, stats.reused_steps) == (2, 2)  # 4 steps: full, reused, full, reused
    with feature_cache(pipe.unet):
        again = latents(pipe)
    np.testing.assert_array_equal(cached, again)  # same seed, same latents
    assert np.isfinite(cached).all()
    diff = np.abs(cached - plain)
    assert diff.max() > 1e-3  # the reused steps really skipped the deep blocks
    # Close, the tolerance: mean |diff| under 2% of the latents' spread and no value off by more than a fifth of it.
    # Measured on the tiny random UNet (4 steps, 3 frames, 256x144): std 0.57, mean |diff| 0.0023, max 0.022.
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
    with pytest.raises(ValueError, match="depth"), feature_cache(pipe.unet, depth=2):  # the tiny UNet has 2 levels
        pass
    with pytest.raises(ValueError, match="spatio-temporal UNet"), feature_cache(torch.nn.Linear(2, 2)):
        pass
