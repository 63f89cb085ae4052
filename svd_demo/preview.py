"""Live preview while denoising: every few steps the current latents become a small, rough picture of the clip,
without the VAE, so a person sees a run going wrong and can cancel it.

The projection is a fixed linear map from the 4 latent channels to RGB. The step callback only projects (a few
multiply-adds per latent pixel, on the device) and hands uint8 frames on; encoding the animated image happens on the
caller's thread, outside the denoising loop.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# Approximate RGB of each SD VAE latent channel (rows: channels 0-3; columns: R, G, B), as published in ComfyUI's
# comfy/latent_formats.py (`SD15.latent_rgb_factors`, from the "latent to RGB" approximation by Keturn on the
# diffusers/HF forums). SVD's VAE shares SD's latent space (its encoder is SD's, scaling factor 0.18215), and the
# factors apply to the scaled latents the pipeline denoises. The result is about -1..1.
SD_LATENT_RGB_FACTORS = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)
PREVIEW_EVERY_STEPS = 3  # 25 steps: 8 previews; each costs a small fraction of a step (BENCHMARKS.md)
PREVIEW_LONG_SIDE = 256  # px: a thumbnail under the progress bar (1024x576 latents are 128x72)
PREVIEW_FPS = 7

# sink(frames): (frames, height, width, 3) uint8, called from the denoising thread
PreviewSink = Callable[[np.ndarray], None]


def latents_to_rgb(latents: Any, sigma: float = 0.0) -> np.ndarray:
    """(batch, frames, 4, h, w) video or (batch, 4, h, w) image latents -> (frames, h, w, 3) uint8, first batch item.

    Noisy latents x_t = x_0 + sigma * noise are divided by sqrt(1 + sigma^2), as the UNet's input is, so early
    previews stay in range (they are mostly noise: that is what the model has at that point).
    """
    import torch

    latents = latents[0]
    if latents.ndim == 3:  # one image: (4, h, w)
        latents = latents[None]
    factors = torch.tensor(SD_LATENT_RGB_FACTORS, dtype=torch.float32, device=latents.device)
    scale = 1.0 / float(np.sqrt(1.0 + float(sigma) ** 2))
    rgb = torch.einsum("fchw,cr->fhwr", latents.float() * scale, factors)  # on the device: a tiny matrix product
    rgb = ((rgb + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
    return rgb.cpu().numpy()


def current_sigma(pipe: Any) -> float:
    """The noise level of the latents a step callback sees (the scheduler's next sigma); 0 if it has none."""
    scheduler = getattr(pipe, "scheduler", None)
    sigmas, index = getattr(scheduler, "sigmas", None), getattr(scheduler, "step_index", None)
    if sigmas is None or index is None or index >= len(sigmas):
        return 0.0
    return float(sigmas[index])


def previewing(callback: Callable[..., dict], sink: PreviewSink,
               every: int = PREVIEW_EVERY_STEPS) -> Callable[..., dict]:
    """`callback` (a `callback_on_step_end`) that also sends a preview to `sink` every `every` steps.

    The inner callback runs first, so a cancelled run stops before previewing. The last step gets no preview: the
    decoded video follows at once.
    """

    def with_preview(pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        out = callback(pipe, step, timestep, callback_kwargs)
        total = getattr(pipe, "num_timesteps", None) or 0
        if (step + 1) % every == 0 and step + 1 != total:
            sink(latents_to_rgb(callback_kwargs["latents"], current_sigma(pipe)))
        return out

    return with_preview


def write_preview(frames: np.ndarray, path: Path, fps: float = PREVIEW_FPS) -> Path:
    """The frames as a small looping animated WebP (one frame: a still), long side PREVIEW_LONG_SIDE."""
    height, width = frames.shape[1:3]
    scale = PREVIEW_LONG_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    images = [Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR) for frame in frames]
    # quality 60, method 0: the fastest WebP encoding; it is a rough thumbnail that is replaced in seconds
    images[0].save(path, format="WEBP", save_all=len(images) > 1, append_images=images[1:], loop=0,
                   duration=round(1000 / fps), quality=60, method=0)
    return path
