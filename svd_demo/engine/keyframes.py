"""Keyframes to video: SVD fills in the motion between a start and an end photo, with the unchanged SVD-XT weights.

The sampler is ViBiDSampler (Yang, Kwon, Ye, "ViBiDSampler: Enhancing Video Interpolation Using Bidirectional
Diffusion Sampler", ICLR 2025, arXiv 2410.05651). Each step from x at sigma_i to sigma_{i+1} has two halves:

1. forward: denoise x conditioned on the start photo (unconditional and conditional), combine with guidance, replace
   the last frame of the prediction by the end photo's clean latent (the paper's data-consistency step, whose
   conjugate-gradient solve on a last-frame mask converges to exactly that replacement in one iteration), and step
   to sigma_{i+1} along the unconditional direction (CFG++): x <- x0 + sigma_{i+1} * (x - D_uncond) / sigma_i;
2. backward: add fresh noise of standard deviation sqrt(sigma_i^2 - sigma_{i+1}^2) to get back to sigma_i, reverse
   the frame order, take the same half step conditioned on the end photo with the start latent pinned to the (now
   last) frame, and reverse back.

The last step ends at sigma 0, where x is the backward prediction itself: its first frame is the start photo's
latent. The end frame is pinned in the forward halves only and reached through the model's own conditioning.

The pipeline's components are used as they are (no second load), through its own conditioning helpers, so the
memory profiles (offload hooks, fp8 storage, chunked decode) apply as they do to image to video.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

from svd_demo.core.errors import GenerationCancelled, InputError
from svd_demo.engine.preview import PREVIEW_EVERY_STEPS, PreviewSink, latents_to_rgb

if TYPE_CHECKING:
    import torch

    from svd_demo.core.params import VideoParams
    from svd_demo.engine.pipelines import LoadedPipeline

# progress(fraction in [0, 1], description)
ProgressFn = Callable[[float, str], None]
METHOD = "ViBiDSampler"


@dataclass(frozen=True)
class Keyframes:
    """The two photos, already framed to the same video size, and the guidance of both directions."""

    start: Image.Image
    end: Image.Image
    guidance: float = 1.0

    @property
    def size(self) -> tuple[int, int]:
        return self.start.size


@dataclass(frozen=True)
class Conditioning:
    """What one direction's denoiser is conditioned on, batched as [unconditional, conditional] like the pipeline."""

    embeddings: torch.Tensor  # (2, 1, dim): CLIP image embedding, zeros for the unconditional half
    image_latents: torch.Tensor  # (2, frames, 4, h, w): the noise-augmented photo's latent, concatenated per frame
    added_time_ids: torch.Tensor  # (2, 3): fps - 1, motion bucket, noise augmentation


# denoise(x at sigma, sigma, conditioning) -> (D_uncond, D_cond): the two clean-latent predictions, like x in shape
Denoiser = Callable[["torch.Tensor", float, Conditioning], "tuple[torch.Tensor, torch.Tensor]"]


def source_sha256(source: Any) -> str:
    """The SHA-256 of a photo as it was given: a file's bytes (what `sha256sum` prints), raw bytes, or a PIL image's
    pixels (no file to hash)."""
    import hashlib

    digest = hashlib.sha256()
    if isinstance(source, Image.Image):
        digest.update(f"{source.mode} {source.size}".encode())
        digest.update(source.tobytes())
    elif isinstance(source, (bytes, bytearray, memoryview)):
        digest.update(source)
    else:
        with open(source, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _stopped(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise GenerationCancelled("Cancelled. The GPU is free for the next request.")


def half_step(x: torch.Tensor, sigma: float, sigma_next: float, denoise: Denoiser, conditioning: Conditioning,
              pinned: torch.Tensor, guidance: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One direction's step from `sigma` to `sigma_next`: (the new x, the prediction with the last frame pinned).

    Guided prediction x0 = D_u + guidance * (D_c - D_u) with its last frame set to `pinned` (batch, 4, h, w); the
    step follows the unconditional direction (CFG++), which keeps the re-noised x on the model's own path even with
    guidance above 1.
    """
    uncond, cond = denoise(x, sigma, conditioning)
    prediction = uncond + guidance * (cond - uncond)
    prediction[:, -1] = pinned
    return prediction + (sigma_next / sigma) * (x - uncond), prediction


def bidirectional_step(x: torch.Tensor, sigma: float, sigma_next: float, denoise: Denoiser, start: Conditioning,
                       end: Conditioning, start_latent: torch.Tensor, end_latent: torch.Tensor, guidance: float,
                       noise: torch.Tensor, cancel: threading.Event | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """One ViBiDSampler step (forward half, re-noise with `noise`, flip, backward half, flip back).

    x is (batch, frames, 4, h, w) at `sigma`; returns x at `sigma_next` and the backward half's prediction in the
    forward frame order (the live preview's picture). `cancel` is checked between the halves too: a full-size half
    step takes seconds.
    """
    x, _ = half_step(x, sigma, sigma_next, denoise, start, end_latent, guidance)
    _stopped(cancel)
    x = x + math.sqrt(max(sigma * sigma - sigma_next * sigma_next, 0.0)) * noise
    x, prediction = half_step(x.flip(1), sigma, sigma_next, denoise, end, start_latent, guidance)
    return x.flip(1), prediction.flip(1)


def unet_denoiser(unet: Any) -> Denoiser:
    """The SVD UNet as an EDM denoiser with SVD's v-prediction preconditioning (what diffusers' Euler scheduler
    computes): input scaled by 1/sqrt(sigma^2 + 1), noise level 0.25 * ln(sigma), and
    D = x / (sigma^2 + 1) - sigma / sqrt(sigma^2 + 1) * v. Both halves of the guidance batch run in one call."""
    import torch

    def denoise(x: torch.Tensor, sigma: float, conditioning: Conditioning) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = conditioning.embeddings.dtype
        doubled = torch.cat([x, x])
        scaled = (doubled / math.sqrt(sigma * sigma + 1.0)).to(dtype)
        model_input = torch.cat([scaled, conditioning.image_latents], dim=2)
        timestep = torch.tensor(0.25 * math.log(sigma), device=x.device, dtype=dtype)
        v = unet(model_input, timestep, encoder_hidden_states=conditioning.embeddings,
                 added_time_ids=conditioning.added_time_ids, return_dict=False)[0].float()
        clean = doubled / (sigma * sigma + 1.0) - (sigma / math.sqrt(sigma * sigma + 1.0)) * v
        uncond, cond = clean.chunk(2)
        return uncond, cond

    return denoise


def check_scheduler(pipe: Any, model_ref: str) -> None:
    """Keyframes runs SVD's own EDM sampler: the model's scheduler must be diffusers' v-prediction Euler one."""
    config = getattr(pipe.scheduler, "config", {})
    if config.get("prediction_type") != "v_prediction" or not hasattr(pipe.scheduler, "sigmas"):
        raise InputError(f"Keyframes to video needs an SVD or SVD-XT model with its own EDM (Euler, v-prediction) "
                         f"scheduler; {model_ref} uses {type(pipe.scheduler).__name__}. Pick SVD-XT in the video "
                         "model setting.")


def _encode(pipe: Any, image: Image.Image, params: VideoParams, generator: torch.Generator, device: Any
            ) -> tuple[Conditioning, torch.Tensor]:
    """One photo's conditioning (as the pipeline builds it) and its clean latent, scaled like the denoised ones."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    embeddings = pipe._encode_image(image, device, 1, True)
    pixels = pipe.video_processor.preprocess(image, height=image.height, width=image.width).to(device)
    noisy = pixels + params.noise_aug_strength * randn_tensor(pixels.shape, generator=generator, device=device,
                                                              dtype=pixels.dtype)
    # The SVD VAE overflows in fp16; the pipeline upcasts it for encoding, and so does this.
    upcast = pipe.vae.dtype == torch.float16 and pipe.vae.config.force_upcast
    if upcast:
        pipe.vae.to(dtype=torch.float32)
    try:
        image_latents = pipe._encode_vae_image(noisy, device=device, num_videos_per_prompt=1,
                                               do_classifier_free_guidance=True).to(embeddings.dtype)
        clean = pipe.vae.encode(pixels.to(pipe.vae.dtype)).latent_dist.mode().float()
    finally:
        if upcast:
            pipe.vae.to(dtype=torch.float16)
    time_ids = pipe._get_add_time_ids(params.fps - 1, params.motion_bucket_id, params.noise_aug_strength,
                                      embeddings.dtype, 1, 1, True).to(device)  # SVD is conditioned on fps - 1
    frames = image_latents.unsqueeze(1).repeat(1, params.num_frames, 1, 1, 1)
    return Conditioning(embeddings, frames, time_ids), clean * pipe.vae.config.scaling_factor


def denoise_keyframes(loaded: LoadedPipeline, keyframes: Keyframes, params: VideoParams, *,
                      progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                      cache_stats: list[dict[str, int]] | None = None, preview: PreviewSink | None = None) -> Any:
    """The ViBiDSampler loop on the loaded SVD pipeline; returns latents (1, frames, 4, h/8, w/8).

    The same arguments as `image_to_video.denoise`, so `generate_frames` runs it with the same out-of-memory retries
    and chunked decode. `params` must be resolved (frames and fps set). Feature caching does not apply here.
    """
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    pipe = loaded.pipe
    check_scheduler(pipe, loaded.model_ref)
    width, height = keyframes.size
    steps = params.num_inference_steps
    generator = torch.Generator(device="cpu").manual_seed(params.seed)  # per call: never global state
    # no_grad, never inference_mode (weights copied by offload hooks would become inference tensors: see denoise)
    with torch.no_grad():
        device = pipe._execution_device
        start, start_latent = _encode(pipe, keyframes.start, params, generator, device)
        end, end_latent = _encode(pipe, keyframes.end, params, generator, device)
        pipe.scheduler.set_timesteps(steps, device="cpu")
        sigmas = [float(s) for s in pipe.scheduler.sigmas]  # steps + 1 values, the last 0
        shape = (1, params.num_frames, pipe.unet.config.out_channels, height // pipe.vae_scale_factor,
                 width // pipe.vae_scale_factor)
        x = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
        x = x * float(pipe.scheduler.init_noise_sigma)  # the pipeline's starting noise for the same seed
        denoise = unet_denoiser(pipe.unet)
        for i in range(steps):
            _stopped(cancel)
            noise = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
            x, prediction = bidirectional_step(x, sigmas[i], sigmas[i + 1], denoise, start, end, start_latent,
                                               end_latent, keyframes.guidance, noise, cancel)
            if progress is not None:
                progress(0.05 + 0.85 * (i + 1) / steps, f"Step {i + 1}/{steps} (forward and backward)")
            if preview is not None and (i + 1) % PREVIEW_EVERY_STEPS == 0 and i + 1 != steps:
                preview(latents_to_rgb(prediction))  # the clean prediction: sigma 0
    pipe.maybe_free_model_hooks()
    return x.to(pipe.vae.dtype)  # what the decode takes, as the pipeline's latent output
