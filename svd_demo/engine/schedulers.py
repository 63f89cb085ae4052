"""The sampler AnimateLCM-SVD-xt needs, which diffusers does not ship: multistep consistency sampling.

AnimateLCM (Wang et al. 2024, arXiv 2402.00769) distils SVD-XT's UNet into a consistency model on the EDM
formulation SVD uses (v-prediction, sigma_data 1, conditioned on c_noise = log(sigma) / 4). Its training
discretises the Karras sigma ramp (rho 7, sigma 700 down to 0.002) into 40 steps; sampling with N steps visits every
(40 // N)-th of them from the top. Each step is the consistency function and a fresh noise draw:

    x0     = c_skip(sigma) * x + c_out(sigma) * F(c_in(sigma) * x, c_noise(sigma))
    x_next = x0 + sigma_next * z,  z ~ N(0, I)          (sigma_next = 0 after the last step: x_next = x0)

with c_in = 1 / sqrt(sigma^2 + 1), c_skip = 1 / (sigma^2 + 1), c_out = -sigma / sqrt(sigma^2 + 1).

diffusers' StableVideoDiffusionPipeline calls `step` without a generator, so the noise of the re-noising comes from
`noise_generator`, which the caller sets for each run (the pipeline's own generator: the same seed, the same video).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput


@dataclass
class ConsistencyStepOutput(BaseOutput):
    """`prev_sample`: the input of the next step; `pred_original_sample`: this step's x0 prediction."""

    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor


class AnimateLCMScheduler(SchedulerMixin, ConfigMixin):
    """Multistep consistency sampler on Karras sigmas, with the interface StableVideoDiffusionPipeline uses."""

    order = 1
    _compatibles: list[str] = []

    @register_to_config
    def __init__(self, num_train_timesteps: int = 40, sigma_min: float = 0.002, sigma_max: float = 700.0,
                 sigma_data: float = 1.0, rho: float = 7.0, s_noise: float = 1.0) -> None:
        # The pipeline scales its unit-variance starting noise by this: the noisiest training point, sigma_max,
        # in the EDM parameterisation that SVD's latents use (sqrt(sigma^2 + sigma_data^2)).
        self.init_noise_sigma = math.sqrt(sigma_max**2 + sigma_data**2)
        self.noise_generator: torch.Generator | None = None
        self.num_inference_steps: int | None = None
        self._step_index: int | None = None
        self.set_timesteps(4)

    @property
    def step_index(self) -> int | None:
        """Steps taken since `set_timesteps` (None before the first)."""
        return self._step_index

    def karras_sigmas(self, ramp: np.ndarray) -> np.ndarray:
        """Sigmas at positions `ramp` (0 = sigma_max, 1 = sigma_min) of the Karras et al. (2022) schedule."""
        c = self.config
        top, bottom = c.sigma_max ** (1 / c.rho), c.sigma_min ** (1 / c.rho)
        return (top + ramp * (bottom - top)) ** c.rho

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None,
                      **_: Any) -> None:
        """Every (40 // N)-th discretisation point from the top: N sigmas, then 0; timesteps are c_noise."""
        most = self.config.num_train_timesteps
        if not isinstance(num_inference_steps, int) or not 1 <= num_inference_steps <= most:
            raise ValueError(f"`num_inference_steps` must be from 1 to {most} for a consistency model distilled on "
                             f"{most} steps; got {num_inference_steps!r}.")
        self.num_inference_steps = num_inference_steps
        indices = np.arange(num_inference_steps) * (most // num_inference_steps)
        sigmas = self.karras_sigmas(indices / (most - 1))
        self.sigmas = torch.from_numpy(np.append(sigmas, 0.0).astype(np.float32))  # stays on the CPU
        # float32: MPS has no float64, and the UNet's time projection takes any float
        self.timesteps = torch.from_numpy((0.25 * np.log(sigmas)).astype(np.float32)).to(device)
        self._step_index = None

    def _index_of(self, timestep: float | torch.Tensor) -> int:
        """The step `timestep` belongs to (the sigmas fall strictly, so each timestep is one step)."""
        value = float(timestep)
        return int(np.argmin(np.abs(self.timesteps.cpu().numpy() - value)))

    def scale_model_input(self, sample: torch.Tensor, timestep: float | torch.Tensor) -> torch.Tensor:
        """c_in(sigma) * x: the UNet sees unit-variance input at every noise level."""
        if self._step_index is None:
            self._step_index = self._index_of(timestep)
        sigma = float(self.sigmas[self._step_index])
        return sample / math.sqrt(sigma**2 + self.config.sigma_data**2)

    def step(self, model_output: torch.Tensor, timestep: float | torch.Tensor, sample: torch.Tensor,
             generator: torch.Generator | None = None, return_dict: bool = True) -> ConsistencyStepOutput | tuple:
        """x0 from the consistency function, then re-noised to the next sigma (no noise after the last step)."""
        if self._step_index is None:
            self._step_index = self._index_of(timestep)
        sigma, sigma_next = float(self.sigmas[self._step_index]), float(self.sigmas[self._step_index + 1])
        data = self.config.sigma_data
        c_skip = data**2 / (sigma**2 + data**2)
        c_out = -sigma * data / math.sqrt(sigma**2 + data**2)
        # In float32: at sigma 700, c_skip is 2e-6 and fp16 would lose the sample's share entirely.
        x0 = c_skip * sample.float() + c_out * model_output.float()
        prev = x0
        if sigma_next > 0:
            noise = torch.randn(x0.shape, generator=generator or self.noise_generator, dtype=torch.float32,
                                device=getattr(generator or self.noise_generator, "device", None) or "cpu")
            prev = x0 + sigma_next * self.config.s_noise * noise.to(x0.device)
        self._step_index += 1
        prev, x0 = prev.to(model_output.dtype), x0.to(model_output.dtype)
        if not return_dict:
            return (prev, x0)
        return ConsistencyStepOutput(prev_sample=prev, pred_original_sample=x0)

    def __len__(self) -> int:
        return self.config.num_train_timesteps
