"""The AnimateLCM consistency sampler (engine/schedulers.py): its schedule against the published one, its step,
and whole tiny generations with diffusers' own StableVideoDiffusionPipeline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from svd_demo.engine.schedulers import AnimateLCMScheduler

# The published schedule: Karras et al. sigmas (rho 7) from sigma_max 700 to sigma_min 0.002 over the 40 discretised
# training steps the UNet was distilled on; N sampling steps take every (40 // N)-th of them from the top, then 0.
PUBLISHED_4 = [700.0, 128.563697, 13.6784441, 0.496878420, 0.0]
PUBLISHED_8 = [700.0, 315.737397, 128.563697, 45.8507238, 13.6784441, 3.16661079, 0.496878420, 0.0397536912, 0.0]


@pytest.mark.parametrize(("steps", "published"), [(4, PUBLISHED_4), (8, PUBLISHED_8)])
def test_sigmas_and_timesteps_are_the_published_schedule(steps, published):
    scheduler = AnimateLCMScheduler()
    scheduler.set_timesteps(steps)
    np.testing.assert_allclose(scheduler.sigmas.numpy(), published, rtol=1e-5)
    # The UNet is conditioned on c_noise = log(sigma) / 4, as SVD's own (EDM) sampler does.
    np.testing.assert_allclose(scheduler.timesteps.numpy(), [0.25 * math.log(s) for s in published[:-1]],
                               rtol=1e-5)
    assert scheduler.timesteps.dtype == torch.float32 and len(scheduler.timesteps) == steps
    assert scheduler.init_noise_sigma == pytest.approx(math.sqrt(700.0**2 + 1))
    assert scheduler.order == 1


def test_too_many_steps_are_refused_with_the_parameter_named():
    with pytest.raises(ValueError, match="`num_inference_steps`.*1 to 40"):
        AnimateLCMScheduler().set_timesteps(41)
    with pytest.raises(ValueError, match="`num_inference_steps`"):
        AnimateLCMScheduler().set_timesteps(0)


def test_each_step_predicts_x0_and_renoises_to_the_next_sigma():
    scheduler = AnimateLCMScheduler()
    scheduler.set_timesteps(4)
    sample = torch.full((1, 2, 4, 3, 3), 2.0)
    model_output = torch.full_like(sample, 0.5)
    t0 = scheduler.timesteps[0]
    sigma = 700.0
    assert torch.allclose(scheduler.scale_model_input(sample, t0), sample / math.sqrt(sigma**2 + 1))
    noise = torch.randn(sample.shape, generator=torch.Generator().manual_seed(7))
    out = scheduler.step(model_output, t0, sample, generator=torch.Generator().manual_seed(7))
    # EDM v-prediction boundary scalings with sigma_data 1: x0 = x / (s^2 + 1) - s / sqrt(s^2 + 1) * v
    x0 = sample / (sigma**2 + 1) - sigma / math.sqrt(sigma**2 + 1) * model_output
    assert torch.allclose(out.prev_sample, x0 + PUBLISHED_4[1] * noise, atol=1e-4)
    assert torch.allclose(out.pred_original_sample, x0)
    # The last step lands on sigma 0: the prediction itself, no noise.
    for t in scheduler.timesteps[1:-1]:
        scheduler.step(model_output, t, sample)
    last = scheduler.step(model_output, scheduler.timesteps[-1], sample).prev_sample
    s = PUBLISHED_4[3]
    assert torch.allclose(last, sample / (s**2 + 1) - s / math.sqrt(s**2 + 1) * model_output)


def test_the_noise_comes_from_the_generator_it_is_given():
    scheduler = AnimateLCMScheduler()

    def first_step(seed: int) -> torch.Tensor:
        scheduler.set_timesteps(4)
        scheduler.noise_generator = torch.Generator().manual_seed(seed)
        x = torch.zeros(1, 2, 4, 3, 3)
        return scheduler.step(x, scheduler.timesteps[0], x).prev_sample

    assert torch.equal(first_step(1), first_step(1)) and not torch.equal(first_step(1), first_step(2))


@pytest.fixture(scope="module")
def lcm_pipe(tiny_models_dir):
    from diffusers import StableVideoDiffusionPipeline

    pipe = StableVideoDiffusionPipeline.from_pretrained(tiny_models_dir / "svd", scheduler=AnimateLCMScheduler())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def generate(pipe, seed: int, steps: int = 4) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    pipe.scheduler.noise_generator = generator  # the stock pipeline calls `step` without a generator
    with torch.no_grad():
        return pipe(Image.new("RGB", (256, 144), (40, 90, 160)), height=144, width=256, num_frames=3,
                    num_inference_steps=steps, min_guidance_scale=1.0, max_guidance_scale=1.0, output_type="np",
                    generator=generator).frames[0]


def test_a_tiny_generation_with_diffusers_pipeline_is_deterministic_per_seed(lcm_pipe):
    first = generate(lcm_pipe, 3)
    assert first.shape == (3, 144, 256, 3) and np.isfinite(first).all()
    np.testing.assert_array_equal(generate(lcm_pipe, 3), first)
    assert not np.array_equal(generate(lcm_pipe, 4), first)
    assert lcm_pipe.scheduler.step_index == 4  # one step per UNet call, no guidance batch


def test_the_config_round_trips(tmp_path):
    AnimateLCMScheduler(sigma_max=80.0).save_pretrained(tmp_path)
    again = AnimateLCMScheduler.from_pretrained(tmp_path)
    names = ("num_train_timesteps", "sigma_min", "sigma_max", "sigma_data", "rho", "s_noise")
    assert {n: again.config[n] for n in names} == {**{n: AnimateLCMScheduler().config[n] for n in names},
                                                   "sigma_max": 80.0}
