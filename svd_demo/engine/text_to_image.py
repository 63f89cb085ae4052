"""Text to image with SDXL: a still rendered straight at the size SVD will animate, so nothing is cropped later."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from PIL import Image

from svd_demo.core.params import ImageParams
from svd_demo.engine.image_to_video import ProgressFn, step_callback, to_uint8
from svd_demo.engine.memory import pixel_note
from svd_demo.engine.pipelines import LoadedPipeline
from svd_demo.files.images import output_size


def still_size(resolution: int, orientation: str) -> tuple[int, int]:
    """(width, height) of the still: SVD's own video size for that orientation (1024 -> 1024x576, 576x1024, 768x768).

    Square keeps the pixel count of 16:9 (768x768 has as many pixels as 1024x576), so it costs the same to animate.
    """
    if orientation == "landscape":
        return output_size(16, 9, resolution, "native")
    if orientation == "portrait":
        return output_size(9, 16, resolution, "native")
    side = output_size(16, 9, resolution, "native")
    square = max(64, round((side[0] * side[1]) ** 0.5 / 64) * 64)
    return square, square


def truncation_notice(pipe: object, prompt: str, name: str = "prompt") -> str | None:
    """A sentence for the user when the text encoder will not read the whole prompt (CLIP reads 77 tokens)."""
    tokenizer = getattr(pipe, "tokenizer", None)
    if tokenizer is None or not prompt:
        return None
    ids = tokenizer(prompt, truncation=False, verbose=False)["input_ids"]  # counting, not encoding: no warning
    limit = tokenizer.model_max_length
    if len(ids) <= limit:
        return None
    kept = tokenizer.decode(ids[1:limit - 1], skip_special_tokens=True)
    return (f"The {name} is {len(ids) - 2} tokens long; the text encoder reads {limit} tokens, the first "
            f"{limit - 2} of the {name}'s between its start and end markers, so the rest was ignored. It read: "
            f"\u201c{kept}\u201d")


@dataclass
class Still:
    image: Image.Image
    notices: list[str] = field(default_factory=list)
    seconds: float = 0.0


def generate_still(loaded: LoadedPipeline, params: ImageParams, *, progress: ProgressFn | None = None,
                   cancel: threading.Event | None = None) -> Still:
    """Render the still; raises on NaN (a black image) instead of passing it on to the video stage."""
    import torch

    width, height = still_size(params.resolution, params.orientation)
    notices = [n for n in (truncation_notice(loaded.pipe, params.prompt),
                           truncation_notice(loaded.pipe, params.negative_prompt, "negative prompt")) if n]
    start = time.perf_counter()
    generator = torch.Generator(device="cpu").manual_seed(params.seed)
    with torch.no_grad():  # not inference_mode: it poisons offloaded weights (image_to_video.py)
        images = loaded.pipe(
            prompt=params.prompt,
            negative_prompt=params.negative_prompt or None,
            width=width,
            height=height,
            num_inference_steps=params.sdxl_steps,
            guidance_scale=params.sdxl_guidance_scale,
            generator=generator,
            output_type="np",
            callback_on_step_end=step_callback(params.sdxl_steps, progress, cancel),
        ).images
    frame = to_uint8(images)[0]
    note = pixel_note(loaded.current_profile, loaded.quantize)  # fp8/int8 weights: said, as for videos
    return Still(image=Image.fromarray(frame), notices=[*notices, *([note] if note else [])],
                 seconds=time.perf_counter() - start)
