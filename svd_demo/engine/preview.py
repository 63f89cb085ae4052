"""Live preview while denoising: every few steps the model's current prediction of the finished clip becomes a
small, rough picture, without the VAE, so a person sees a run going wrong and can cancel it.

What is previewed is the denoised prediction x0 of the step just taken (the scheduler's `pred_original_sample`), as
ComfyUI's latent previewer does, not the noisy latents: at SVD-XT's step 3 of 25 those are 99.7 % noise, while the
prediction already shows the clip's layout. Every sampler we run computes x0 inside its `step` and returns it; the
pipeline keeps only `prev_sample`, so `watching_predictions` keeps the last x0 for the step callback. No UNet or VAE
pass is added: the preview is a fixed linear map from the 4 latent channels to RGB of a tensor that exists anyway.
The step callback only projects (a few multiply-adds per latent pixel, on the device) and hands uint8 frames on;
encoding the animated image happens on the caller's thread, outside the denoising loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def latents_to_rgb(latents: Any) -> np.ndarray:
    """(batch, frames, 4, h, w) video or (batch, 4, h, w) image latents -> (frames, h, w, 3) uint8, first batch item.

    Meant for clean latents (a prediction x0, or a finished result): the factors map them to about -1..1.
    """
    import torch

    latents = latents[0]
    if latents.ndim == 3:  # one image: (4, h, w)
        latents = latents[None]
    factors = torch.tensor(SD_LATENT_RGB_FACTORS, dtype=torch.float32, device=latents.device)
    rgb = torch.einsum("fchw,cr->fhwr", latents.float(), factors)  # on the device: a tiny matrix product
    rgb = ((rgb + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
    return rgb.cpu().numpy()


PREDICTION = "svd_demo_pred_original_sample"  # the scheduler attribute `watching_predictions` keeps x0 in


@contextmanager
def watching_predictions(scheduler: Any) -> Iterator[None]:
    """Within the block, each `scheduler.step` also leaves its x0 prediction (`pred_original_sample`, the second
    item of a tuple) on the scheduler, where `previewing` reads it. Nothing is computed or copied: x0 is kept until
    the next step replaces it, and the scheduler is as before when the block ends."""
    original = scheduler.step

    def step(*args: Any, **kwargs: Any) -> Any:
        out = original(*args, **kwargs)
        x0 = out[1] if isinstance(out, tuple) else getattr(out, "pred_original_sample", None)
        if x0 is None:
            raise TypeError(f"{type(scheduler).__name__}.step returns no `pred_original_sample`: the live preview "
                            "shows the model's prediction of the clean clip and needs it.")
        setattr(scheduler, PREDICTION, x0)
        return out

    scheduler.step = step  # on the instance: the class and every other pipeline's scheduler stay untouched
    try:
        yield
    finally:
        del scheduler.step
        if hasattr(scheduler, PREDICTION):
            delattr(scheduler, PREDICTION)


def predicted_clean(pipe: Any) -> Any:
    """The x0 prediction of the step just taken (`watching_predictions` must be around the pipeline call)."""
    x0 = getattr(getattr(pipe, "scheduler", None), PREDICTION, None)
    if x0 is None:
        raise RuntimeError("The live preview needs the sampler's x0 prediction: run the pipeline inside "
                           "`watching_predictions(pipe.scheduler)` (svd_demo/engine/preview.py).")
    return x0


def previewing(callback: Callable[..., dict], sink: PreviewSink,
               every: int = PREVIEW_EVERY_STEPS) -> Callable[..., dict]:
    """`callback` (a `callback_on_step_end`) that also sends a preview of the x0 prediction to `sink` every `every`
    steps; the pipeline call runs inside `watching_predictions(pipe.scheduler)`.

    The inner callback runs first, so a cancelled run stops before previewing. The last step gets no preview: the
    decoded video follows at once.
    """

    def with_preview(pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        out = callback(pipe, step, timestep, callback_kwargs)
        total = getattr(pipe, "num_timesteps", None) or 0
        if (step + 1) % every == 0 and step + 1 != total:
            sink(latents_to_rgb(predicted_clean(pipe)))
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
