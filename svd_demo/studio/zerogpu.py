"""Hugging Face ZeroGPU: a GPU is lent per call, for a duration the call must announce before it starts.

`spaces.GPU` is an exact no-op elsewhere, but it is imported only on ZeroGPU (the package exists only on Spaces).
There, `import spaces` must come before anything touches CUDA, and in the main process nothing may use CUDA at all
(no `mem_get_info`, no `empty_cache`): weights are moved "to cuda" at start-up, which ZeroGPU records, and are
really placed on the lent GPU inside each decorated call (`start`, `ZeroGPUStudio`).
Each call's duration is estimated from its size; a job that cannot fit the Space's limit is cut down (fewer steps,
down to a floor) or refused before it starts, with a message saying which, instead of being killed half-way.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from svd_demo.core.errors import InputError
from svd_demo.core.models import svd_defaults
from svd_demo.core.params import ImageParams, VideoParams
from svd_demo.core.settings import Settings
from svd_demo.engine.text_to_image import still_size
from svd_demo.files.images import output_size, read_image_header
from svd_demo.files.video_input import probe_input
from svd_demo.studio.studio import Studio

F = TypeVar("F", bound=Callable[..., Any])

# Seconds on the ZeroGPU card for the reference job (SVD-XT, 25 frames, 1024x576): per denoising step, per decoded
# frame, and a fixed part for moving weights onto the card. Other jobs scale with frames x pixels.
REF_PIXELS = 1024 * 576
REF_FRAMES = 25
SVD_STEP_S = 1.2
SVD_DECODE_FRAME_S = 0.12
SDXL_STEP_S = 0.12  # one 1024x576 SDXL step
FIXED_S = 8.0
MIN_STEPS = 12  # below this SVD's motion falls apart: refuse rather than cut further
SAFETY = 1.25  # estimates are estimates: ask for a quarter more than expected


def on_zerogpu(environ: Mapping[str, str] | None = None) -> bool:
    """True on a ZeroGPU Space (the platform sets SPACES_ZERO_GPU)."""
    environ = os.environ if environ is None else environ
    return environ.get("SPACES_ZERO_GPU", "").lower() in {"1", "true", "yes"}


def video_seconds(params: VideoParams, width: int, height: int) -> float:
    """Estimated GPU seconds for one SVD clip of this size."""
    scale = (params.num_frames or REF_FRAMES) / REF_FRAMES * (width * height) / REF_PIXELS
    return FIXED_S + params.num_inference_steps * SVD_STEP_S * scale + (
        (params.num_frames or REF_FRAMES) * SVD_DECODE_FRAME_S * (width * height) / REF_PIXELS)


def still_seconds(params: ImageParams, width: int, height: int) -> float:
    return FIXED_S + params.sdxl_steps * SDXL_STEP_S * (width * height) / REF_PIXELS


def fit_video(params: VideoParams, width: int, height: int, limit_s: float,
              extra_s: float = 0.0) -> tuple[VideoParams, str | None]:
    """Cut the steps so the clip fits `limit_s` (with `extra_s` already spent, e.g. on a still), or refuse."""
    if (video_seconds(params, width, height) + extra_s) * SAFETY <= limit_s:
        return params, None
    for steps in range(params.num_inference_steps - 1, MIN_STEPS - 1, -1):
        cut = replace(params, num_inference_steps=steps)
        if (video_seconds(cut, width, height) + extra_s) * SAFETY <= limit_s:
            return cut, (f"To fit this Space's {limit_s:.0f} s GPU limit, the video uses {steps} denoising steps "
                         f"instead of {params.num_inference_steps}.")
    raise InputError(f"This clip ({params.num_frames} frames at {width}x{height}) needs more GPU time than this "
                     f"Space allows ({limit_s:.0f} s per request) even with {MIN_STEPS} steps. Lower the resolution "
                     "or the number of frames, or run the app on your own GPU.")


def duration_for(seconds: float, limit_s: float) -> int:
    """What to ask `spaces.GPU` for: the estimate with its margin, within the limit."""
    return int(min(limit_s, math.ceil(seconds * SAFETY)))


def start(settings: Settings) -> Settings:
    """The settings to run with, and on ZeroGPU the `spaces` import, which must precede any use of CUDA.

    ZeroGPU lends a GPU per call: weights load on the CPU at start-up and move over whole, so the profile is `high`
    (offload hooks would fight the per-call hand-over, and compilation is unsupported there), the device `cuda`, and
    the model preloads (the main process never runs a model, so the first visitor would wait inside a GPU call).
    """
    if not on_zerogpu():
        return settings
    import spaces  # noqa: F401 - patches torch: CUDA reports available and `.to("cuda")` is recorded

    return replace(settings, preload=True, memory_profile="high", device="cuda")


def gpu(fn: F, duration: Callable[..., int]) -> F:
    """`spaces.GPU(duration=...)(fn)` on ZeroGPU; `fn` itself everywhere else."""
    if not on_zerogpu():
        return fn
    import spaces  # only on Spaces; an ImportError here means the Space lacks the `spaces` package

    return spaces.GPU(duration=duration)(fn)


class ZeroGPUStudio(Studio):
    """The studio on ZeroGPU: each GPU entry point (image to video, keyframes, a still, upscaling) runs as one
    `spaces.GPU` call that asks for its own duration. The runs these make of one another (Compare seeds, Extend,
    Prompt to video) go through them too, as they are methods of this class.

    The wrapped call runs in a worker process: progress callbacks and cancel flags cannot cross into it, so the UI
    passes none there (see `web.runs.gpu_kwargs`).
    """

    def __init__(self, settings: Settings, limit_s: float) -> None:
        super().__init__(settings)
        self.limit_s = limit_s
        # Decorated once, at start-up: ZeroGPU wants its GPU functions before the first request.
        self._on_gpu: dict[str, Callable[..., Any]] = {
            "image_to_video": gpu(super().image_to_video, self._video_duration),
            "keyframes_to_video": gpu(super().keyframes_to_video, self._keyframes_duration),
            "text_to_image": gpu(super().text_to_image, self._still_duration),
            # Upscaling has no time model yet (no GPU has measured it): it asks for the whole limit.
            "upscale": gpu(super().upscale, lambda *args, **kwargs: int(limit_s)),
        }

    def image_to_video(self, *args: Any, **kwargs: Any) -> Any:
        return self._on_gpu["image_to_video"](*args, **kwargs)

    def keyframes_to_video(self, *args: Any, **kwargs: Any) -> Any:
        return self._on_gpu["keyframes_to_video"](*args, **kwargs)

    def text_to_image(self, *args: Any, **kwargs: Any) -> Any:
        return self._on_gpu["text_to_image"](*args, **kwargs)

    def upscale(self, *args: Any, **kwargs: Any) -> Any:
        return self._on_gpu["upscale"](*args, **kwargs)

    def _video_duration(self, source: Any, params: VideoParams, *args: Any, model_ref: str | None = None,
                        **kwargs: Any) -> int:
        frames, _ = svd_defaults(self.access.model("svd", model_ref)[1])
        return duration_for(video_seconds(replace(params, num_frames=params.num_frames or frames),
                                          *video_size(source, params)), self.limit_s)

    def _still_duration(self, params: ImageParams, *args: Any, **kwargs: Any) -> int:
        return duration_for(still_seconds(params, *still_size(params.resolution, params.orientation)), self.limit_s)

    def _keyframes_duration(self, start: Any, end: Any, params: VideoParams, *args: Any,
                            model_ref: str | None = None, **kwargs: Any) -> int:
        # Two guided UNet passes a step (forward and backward): image to video's time with twice the steps.
        frames, _ = svd_defaults(model_ref or self.settings.svd_model)
        doubled = replace(params, num_frames=params.num_frames or frames,
                          num_inference_steps=2 * params.num_inference_steps)
        return duration_for(video_seconds(doubled, *video_size(start, params)), self.limit_s)


def make_studio(settings: Settings) -> Studio:
    """The studio for these settings: on ZeroGPU a `ZeroGPUStudio` (within `settings.zerogpu_seconds` a call), the
    plain `Studio` everywhere else."""
    return ZeroGPUStudio(settings, settings.zerogpu_seconds) if on_zerogpu() else Studio(settings)


def prepare(studio: Any, source: Any, params: VideoParams, model_ref: str | None, limit_s: float,
            size: tuple[int, int] | None = None) -> tuple[VideoParams, str | None]:
    """Before a ZeroGPU call: the parameters that fit the limit, and a sentence for the user if they were cut."""

    frames, _ = svd_defaults(studio.access.model("svd", model_ref)[1])
    params = replace(params, num_frames=params.num_frames or frames)
    return fit_video(params, *(size or video_size(source, params)), limit_s)


def video_size(source: Any, params: VideoParams) -> tuple[int, int]:
    """The video's size for this image, from its header only: sizing a job must not decode the image again."""

    width, height, _ = read_image_header(source)
    return output_size(width, height, params.resolution, params.aspect_mode)


def clip_size(video: Any, params: VideoParams) -> tuple[int, int]:
    """The size of the part that extends `video` (`Studio.extend_video`): its shape at the chosen resolution.

    The video is an upload: it is checked against the input caps from its header first, before anything is decoded.
    """

    info = probe_input(video)
    return output_size(info.width, info.height, params.resolution, "native")
