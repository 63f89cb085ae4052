"""Image to video with SVD: denoise to latents, decode in chunks, and recover from running out of GPU memory.

Denoising and decoding are split (`output_type="latent"`, then `decode_latents`), which reproduces a plain pipeline
call exactly and lets an out-of-memory error in the decode be retried alone, with a smaller chunk, instead of
throwing away minutes of denoising.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import numpy as np
from PIL import Image

from svd_demo.core.errors import GenerationCancelled, OutOfMemory, UserFacingError
from svd_demo.core.params import VideoParams
from svd_demo.engine.feature_cache import DEFAULT_BRANCH, DEFAULT_INTERVAL, feature_cache
from svd_demo.engine.memory import decode_chunk, pixel_note, step_down
from svd_demo.engine.pipelines import LoadedPipeline, PipelineCache, free_memory
from svd_demo.engine.preview import PreviewSink, previewing, watching_predictions

# progress(fraction in [0, 1], description)
ProgressFn = Callable[[float, str], None]
T = TypeVar("T")


@dataclass
class Frames:
    """The frames of one generation and what it took to make them."""

    frames: np.ndarray  # (T, H, W, 3) uint8
    memory_profile: str
    decode_chunk_size: int
    memory_changes: list[str] = field(default_factory=list)  # what the out-of-memory recovery changed, for the user
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what changed the pixels on purpose (fp8/int8 weights)
    feature_cache: dict[str, int] | None = None  # steps run in full / reused, when `feature_cache` was on


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def step_callback(total: int, progress: ProgressFn | None, cancel: threading.Event | None) -> Callable[..., dict]:
    """Reports each denoising step and stops the pipeline at the next step once `cancel` is set."""

    def callback(pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled("Cancelled. The GPU is free for the next request.")
        if progress is not None:
            progress(0.05 + 0.85 * (step + 1) / total, f"Denoising step {step + 1}/{total}")
        return callback_kwargs

    return callback


def denoise(loaded: LoadedPipeline, image: Image.Image, params: VideoParams, *, progress: ProgressFn | None = None,
            cancel: threading.Event | None = None, cache_stats: list[dict[str, int]] | None = None,
            preview: PreviewSink | None = None, cache_interval: int = DEFAULT_INTERVAL,
            cache_branch: int = DEFAULT_BRANCH) -> Any:
    """Run the denoising loop and return latents (batch, frames, channels, h/8, w/8).

    With `params.feature_cache`, the UNet reuses its deep features below skip branch `cache_branch` on all but every
    `cache_interval`-th step (svd_demo/engine/feature_cache.py) for this call only; what it did is appended to
    `cache_stats`. `preview` gets a rough picture of the model's prediction every few steps (engine/preview.py).
    """
    import torch

    callback = step_callback(params.num_inference_steps, progress, cancel)
    if preview is not None:
        callback = previewing(callback, preview)

    generator = torch.Generator(device="cpu").manual_seed(params.seed)  # per call: never global state
    if hasattr(loaded.pipe.scheduler, "noise_generator"):
        # A consistency sampler re-noises after every step, and the pipeline calls `step` without a generator:
        # it draws from the same one, so the same seed gives the same video (svd_demo/engine/schedulers.py).
        loaded.pipe.scheduler.noise_generator = generator
    # no_grad, never inference_mode: under the offloading profiles the hooks copy weights while the pipeline runs,
    # and copies made in inference mode are inference tensors. The next profile switch (`remove_all_hooks`) turns
    # them back into Parameters, which raises and leaves meta weights behind. diffusers' own pipelines use no_grad.
    caching = feature_cache(loaded.pipe.unet, cache_interval, cache_branch) if params.feature_cache else nullcontext()
    # The preview shows each step's x0 prediction, which the sampler computes anyway (svd_demo/engine/preview.py).
    predictions = watching_predictions(loaded.pipe.scheduler) if preview is not None else nullcontext()
    with torch.no_grad(), caching as stats, predictions:
        latents = loaded.pipe(
            image,
            height=image.height,
            width=image.width,
            num_frames=params.num_frames,
            num_inference_steps=params.num_inference_steps,
            min_guidance_scale=params.min_guidance_scale,
            max_guidance_scale=params.max_guidance_scale,
            fps=params.fps,  # the pipeline conditions on fps - 1 itself
            motion_bucket_id=params.motion_bucket_id,
            noise_aug_strength=params.noise_aug_strength,
            generator=generator,
            output_type="latent",
            callback_on_step_end=callback,
        ).frames
    if stats is not None and cache_stats is not None:
        cache_stats.append(stats.as_record())
    return latents


def decode(loaded: LoadedPipeline, latents: Any, num_frames: int, chunk: int, *, progress: ProgressFn | None = None,
           cancel: threading.Event | None = None) -> np.ndarray:
    """Latents to (T, H, W, 3) float frames in [0, 1], `chunk` frames through the VAE at a time.

    The pipeline's own `decode_latents` loops over the chunks too; looping here, one chunk per call, gives the same
    frames and lets a cancel stop between chunks (a full-size decode takes seconds).
    """
    import torch

    pipe = loaded.pipe
    parts = []
    with torch.no_grad():  # not inference_mode: see denoise
        for start in range(0, num_frames, chunk):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("Cancelled. The GPU is free for the next request.")
            part = latents[:, start:start + chunk]
            parts.append(pipe.decode_latents(part, part.shape[1], chunk))
            if progress is not None:
                done = start + part.shape[1]
                progress(0.92 + 0.025 * done / num_frames, f"Decoded {done}/{num_frames} frames")  # < encoding's
        video = torch.cat(parts, dim=2)  # (batch, channels, frames, height, width)
        frames = pipe.video_processor.postprocess_video(video=video, output_type="np")
    pipe.maybe_free_model_hooks()
    return np.asarray(frames[0])


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames to 8 bits, refusing NaN/inf (fp16 overflow) instead of writing a black video."""
    # One summing pass finds any NaN or inf (they propagate), without a full boolean copy of the clip.
    if not np.isfinite(frames.sum()):
        bad = int((~np.isfinite(frames)).reshape(len(frames), -1).any(axis=1).sum())
        raise UserFacingError(f"The model produced invalid values (NaN) in {bad} of {len(frames)} frames, which "
                              "would be black. This is a known fp16 overflow: try another seed, or start the app "
                              "with --dtype bf16 or --dtype fp32.")
    scaled = frames * np.float32(255.0)  # one temporary, then in place: 3x faster than chained expressions
    scaled += 0.5
    np.clip(scaled, 0.0, 255.0, out=scaled)
    return scaled.astype(np.uint8)


def generate_frames(cache: PipelineCache, loaded: LoadedPipeline, image: Any, params: VideoParams, *,
                    progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                    preview: PreviewSink | None = None, sampler: Callable[..., Any] | None = None,
                    cache_interval: int = DEFAULT_INTERVAL, cache_branch: int = DEFAULT_BRANCH) -> Frames:
    """Generate the frames of one clip, retrying out-of-memory failures as the memory profiles allow.

    `cache_interval` and `cache_branch` are the feature cache's setting, used when `params.feature_cache` is on.

    Denoising out of memory: step down one profile and retry once. Decode out of memory: retry the decode alone with
    about half the chunk, down to one frame. Whatever changed is listed in `memory_changes`; the pipeline goes back
    to its normal profile afterwards, so one unlucky request does not slow down everybody after it.

    Every retry starts after its `except` block has ended: inside it, the traceback keeps the failed attempt's frames
    (and their GPU tensors) alive, so the retry would run with that memory still taken, and emptying the cache there
    frees nothing.

    `sampler` replaces `denoise` (same arguments but the feature cache's; `image` is whatever it takes), e.g. the
    keyframes sampler.
    """
    sampler = sampler or partial(denoise, cache_interval=cache_interval, cache_branch=cache_branch)
    changes: list[str] = []
    timings: dict[str, float] = {}
    cache_stats: list[dict[str, int]] = []  # the successful attempt's is the last
    normal_profile = loaded.current_profile
    try:
        start = time.perf_counter()
        latents = _attempt(sampler, loaded, image, params, progress=progress, cancel=cancel, cache_stats=cache_stats,
                           preview=preview)
        if latents is None:  # out of memory while denoising
            lower = step_down(loaded.current_profile)
            if lower is None:
                raise OutOfMemory("Out of GPU memory even with the smallest memory profile ('minimal'). Lower the "
                                  "resolution or the number of frames.")
            free_memory(loaded.device)
            changes.append(f"Out of GPU memory while denoising: retried with the '{lower}' memory profile "
                           f"instead of '{loaded.current_profile}'.")
            cache.use_profile(loaded, lower)
            start = time.perf_counter()
            try:
                latents = sampler(loaded, image, params, progress=progress, cancel=cancel, cache_stats=cache_stats,
                                  preview=preview)
            except Exception as exc:
                if _is_oom(exc):
                    raise OutOfMemory(f"Out of GPU memory while denoising, also with the '{lower}' memory profile. "
                                      "Lower the resolution or the number of frames, or start the app with "
                                      "--memory-profile minimal.") from exc
                raise
        timings["denoise_s"] = time.perf_counter() - start

        chunk = decode_chunk(params.decode_chunk_size, loaded.plan, params.num_frames)
        if progress is not None:
            progress(0.92, f"Decoding {params.num_frames} frames, {chunk} at a time")
        start = time.perf_counter()
        while (float_frames := _attempt(decode, loaded, latents, params.num_frames, chunk, progress=progress,
                                        cancel=cancel)) is None:
            if chunk == 1:
                raise OutOfMemory("Out of GPU memory while decoding even one frame at a time. Lower the "
                                  "resolution.")
            free_memory(loaded.device)
            smaller = (chunk + 1) // 2  # 8 -> 4 -> 2 -> 1, and 3 -> 2 -> 1: no size is skipped on the way to 1
            changes.append(f"Out of GPU memory while decoding {chunk} frames at once: retried with {smaller}.")
            chunk = smaller
        timings["decode_s"] = time.perf_counter() - start
        profile_used = loaded.current_profile
    finally:
        if loaded.current_profile != normal_profile:
            cache.use_profile(loaded, normal_profile)
    note = pixel_note(profile_used, loaded.quantize)
    return Frames(frames=to_uint8(float_frames), memory_profile=profile_used, decode_chunk_size=chunk,
                  memory_changes=changes, timings=timings, notes=[note] if note else [],
                  feature_cache=cache_stats[-1] if cache_stats else None)


def _attempt(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """`fn(*args, **kwargs)`, or None when it ran out of GPU memory; other errors pass through.

    Returning (rather than retrying from within an `except` block) drops the traceback, and with it the failed
    attempt's tensors, before the caller frees memory and tries again.
    """
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        if not _is_oom(exc):
            raise
    return None
