"""Work budgets: what one request may cost, estimated from its parameters and its input's header before it queues.

A request's work is counted in five measures an operator can size (`Budgets`); each is checked before the request
waits for the GPU, and a refusal names the parameter to lower and the largest value that fits:

* `denoise_frame_steps`: frames x steps x (pixels / 1024x576), all seeds of a request together. SVD-XT at its
  trained 1024x576 with 25 frames and 25 steps is 625.
* `output_frames`: frames in one written video, after `loop` and interpolation.
* `encoded_megapixels`: frames x megapixels written, over every file of the request (each extra format counts).
* `interpolated_megapixels`: frames made by interpolation x their megapixels.
* `upscaled_megapixels`: frames upscaled x their megapixels before upscaling (each frame is upscaled once).

Two sets of defaults: `PRIVATE` allows everything the parameters' own ranges allow, `PUBLIC` (a server strangers can
call) keeps one request to minutes on a GPU. `budgets(public, overrides)` picks one; `--budgets` /
`SVD_DEMO_BUDGETS` ("output_frames=3000,upscaled_megapixels=500") overrides single measures of either.

Besides the budgets, an upscale tile below `MIN_UPSCALE_TILE` is refused in every mode: each tile carries 16 px of
context on every side, so 64-px tiles run the network on 2.25x the pixels, in 16x the calls of 256-px ones.
Nothing here imports torch or decodes a frame: headers only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

from svd_demo.core.errors import InputError
from svd_demo.core.models import SVD_PRESETS, svd_defaults
from svd_demo.core.params import MAX_TARGET_FPS, VideoParams
from svd_demo.engine.interpolation.timing import OutputClock, rate_step
from svd_demo.engine.text_to_image import still_size
from svd_demo.engine.upscale.files import STILL_SUFFIXES
from svd_demo.files.images import output_size, read_image_header
from svd_demo.files.video_input import DEFAULT_FOLDER_FPS, IMAGE_SUFFIXES, probe_input

REFERENCE_PIXELS = 1024 * 576
"""The frame size `denoise_frame_steps` counts in: SVD's trained size."""
MIN_UPSCALE_TILE = 128
"""Smallest upscale tile (0 = the whole frame): smaller ones cost several times the work for the same frame."""


@dataclass(frozen=True)
class Budgets:
    """The most one request may cost, in each measure (see the module docstring)."""

    denoise_frame_steps: float
    output_frames: int
    encoded_megapixels: float
    interpolated_megapixels: float
    upscaled_megapixels: float


PRIVATE = Budgets(
    # The parameters' own ranges: 50 frames x 100 steps at 2048x1152 (4x the reference), 8 seeds.
    denoise_frame_steps=50 * 100 * 4 * 8,
    output_frames=20_000,  # the interpolation engine's own cap
    encoded_megapixels=20_000 * 8.3 * 3,  # 20,000 4K frames in three formats
    interpolated_megapixels=20_000 * 8.3,
    upscaled_megapixels=2_000 * 8.3,  # the longest input (2,000 frames) at the largest (4K)
)
PUBLIC = Budgets(
    denoise_frame_steps=25 * 25 * 4,  # SVD-XT's defaults (25 frames, 25 steps at 1024x576) for 4 seeds
    output_frames=1_800,  # one minute at 30 fps
    encoded_megapixels=1_500.0,  # e.g. 1,800 frames at 1024x576 once, or 600 with gif and webm as well
    interpolated_megapixels=750.0,  # e.g. 1,300 in-between frames at 1024x576
    upscaled_megapixels=120.0,  # e.g. 400 frames of 512x288, or 230 of 960x540
)


def budgets(public: bool, overrides: str = "") -> Budgets:
    """The public or private budgets, with `overrides` ("name=value,...") applied; ValueError naming a bad one."""
    chosen = PUBLIC if public else PRIVATE
    names = {f.name: f.type for f in fields(Budgets)}
    changes: dict[str, float | int] = {}
    for item in filter(None, (part.strip() for part in overrides.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in names:
            raise ValueError(f"budget {item!r} is not NAME=VALUE with NAME one of {', '.join(names)}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"budget {name} must be a number, got {value.strip()!r}") from None
        if not math.isfinite(number) or number <= 0:
            raise ValueError(f"budget {name} must be a positive number, got {value.strip()!r}")
        changes[name] = int(number) if name == "output_frames" else number
    return replace(chosen, **changes)


# ------------------------------------------------------------------------------------------------------ estimates


@dataclass(frozen=True)
class Work:
    """What one request will do, from its parameters and its input's header."""

    denoise_frame_steps: float = 0.0
    output_frames: int = 0
    encoded_megapixels: float = 0.0
    interpolated_megapixels: float = 0.0
    upscaled_megapixels: float = 0.0


def interpolated_count(num_frames: int, fps: float, target_fps: float) -> int:
    """Frames out of the interpolation engine for `num_frames` at `fps` smoothed to `target_fps` (its own count)."""

    step, _ = rate_step(fps, None, target_fps, False)
    return OutputClock.count(num_frames, step) if num_frames >= 2 else num_frames


def looped_count(num_frames: int, loop: str) -> int:
    return 2 * num_frames - 2 if loop == "ping-pong" and num_frames > 2 else num_frames


def _mp(width: int, height: int) -> float:
    return width * height / 1e6


def video_work(params: VideoParams, size: tuple[int, int], *, seeds: int = 1) -> Work:
    """A generation of `params` (frames and fps resolved) at `size`, its loop, interpolation, upscaling and files."""
    width, height = size
    frames = int(params.num_frames or 0)
    playback = params.effective_playback_fps
    out = looped_count(frames, params.loop)
    made = 0.0
    if params.interpolate_fps and params.interpolate_fps > playback:
        smooth = interpolated_count(out, playback, params.interpolate_fps)
        made, out = (smooth - out) * _mp(width, height), smooth
    factor = {"2x": 2, "4x": 4}.get(params.upscale, 1)
    return Work(
        denoise_frame_steps=frames * params.num_inference_steps * width * height / REFERENCE_PIXELS * seeds,
        output_frames=out,
        encoded_megapixels=out * _mp(width * factor, height * factor) * (1 + len(params.extra_formats)) * seeds,
        interpolated_megapixels=made * seeds,
        upscaled_megapixels=(out * _mp(width, height) if factor > 1 else 0.0) * seeds,
    )


# --------------------------------------------------------------------------------------------------------- checks


def _most(current: float, value: float, budget: float) -> int:
    """The largest whole value of a parameter, now `current`, that brings a linear cost `value` within `budget`."""
    return int(math.floor(current * budget / value)) if value else int(current)


def check_video(work: Work, params: VideoParams, limits: Budgets, *, size: tuple[int, int], seeds: int = 1,
                what: str = "This request") -> None:
    """Refuse a generation whose `work` exceeds `limits`, naming the parameter to lower and by how much."""
    width, height = size
    steps, frames = params.num_inference_steps, int(params.num_frames or 0)
    interpolating = bool(params.interpolate_fps and params.interpolate_fps > params.effective_playback_fps)
    if work.denoise_frame_steps > limits.denoise_frame_steps:
        times = f" x {seeds} seeds" if seeds > 1 else ""
        raise InputError(
            f"{what} would denoise {frames} frames x {steps} steps at {width}x{height}{times}: "
            f"{work.denoise_frame_steps:,.0f} frame-steps at 1024x576, over this server's budget of "
            f"{limits.denoise_frame_steps:,.0f}. Lower `num_inference_steps` to "
            f"{max(1, _most(steps, work.denoise_frame_steps, limits.denoise_frame_steps))}, or lower `num_frames`, "
            "`resolution` or the number of seeds.")
    if work.output_frames > limits.output_frames or work.interpolated_megapixels > limits.interpolated_megapixels:
        made = f"{work.output_frames:,} frames per file"
        if work.output_frames > limits.output_frames:
            over = f"{made}, more than this server's {limits.output_frames:,}"
        else:
            over = (f"{made}, {work.interpolated_megapixels:,.0f} megapixels of them interpolated, more than this "
                    f"server's {limits.interpolated_megapixels:,.0f}")
        advice = ["lower `num_frames`"]
        if interpolating:
            advice.insert(0, f"lower `interpolate_fps` to {_fitting_fps(params, size, limits)} or less (0 = off)")
        if params.loop == "ping-pong":
            advice.append("set `loop` to none (ping-pong doubles the clip)")
        raise InputError(f"{what} would write {over}. To fit, {', or '.join(advice)}.")
    if work.upscaled_megapixels > limits.upscaled_megapixels:
        raise InputError(
            f"{what} would upscale {work.output_frames:,} frames of {width}x{height} "
            f"({work.upscaled_megapixels:,.0f} megapixels), over this server's budget of "
            f"{limits.upscaled_megapixels:,.0f}. Set `upscale` to none (upscale the result later in the Upscale tab), "
            f"or lower `num_frames`{' or `interpolate_fps`' if interpolating else ''}.")
    if work.encoded_megapixels > limits.encoded_megapixels:
        advice = ["remove `extra_formats` (each is another encoding of every frame)"] if params.extra_formats else []
        if params.upscale != "none":
            advice.append("set `upscale` to none")
        if interpolating:
            advice.append("lower `interpolate_fps`")
        advice.append("lower `num_frames` or `resolution`")
        raise InputError(
            f"{what} would encode {work.encoded_megapixels:,.0f} megapixels of frames "
            f"({1 + len(params.extra_formats)} file(s) of {work.output_frames:,} frames), over this server's budget "
            f"of {limits.encoded_megapixels:,.0f}. To fit, {', or '.join(advice)}.")


def _fitting_fps(params: VideoParams, size: tuple[int, int], limits: Budgets) -> int:
    """The largest whole `interpolate_fps` that keeps a generation within the frame and interpolation budgets."""
    playback = params.effective_playback_fps
    looped = looped_count(int(params.num_frames or 0), params.loop)
    per_frame = _mp(*size)
    # outputs ~ (looped - 1) x target / playback + 1; in-between ones are outputs - looped.
    by_frames = (limits.output_frames - 1) / max(1, looped - 1) * playback
    by_made = (limits.interpolated_megapixels / per_frame + looped - 1) / max(1, looped - 1) * playback
    return max(0, int(math.floor(min(by_frames, by_made))))


def check_extend_rate(fps: float, name: str) -> None:
    """Extend makes its new part at the clip's own rate: refuse a clip faster than a video file may play."""
    if fps > MAX_TARGET_FPS:
        raise InputError(
            f"`video` ({name}) plays at {fps:g} fps; Extend makes the new part at the clip's own frame rate, and a "
            f"video plays at most {MAX_TARGET_FPS:g} fps. Re-encode the clip at {MAX_TARGET_FPS:g} fps or less "
            "first (e.g. with Frame interpolation, `target_fps` 30).")


def check_upscale_tile(tile: int, name: str = "upscale_tile") -> int:
    """`tile` if it is 0 (whole frames) or at least MIN_UPSCALE_TILE; else an InputError naming `name`."""
    if 0 < tile < MIN_UPSCALE_TILE:
        raise InputError(
            f"`{name}` {tile} makes upscaling several times slower (each tile carries 16 px of context on every "
            f"side, and there are many more network calls); use {MIN_UPSCALE_TILE} or more, or 0 for whole frames.")
    return tile


def check_interpolation(frames: int, fps: float, width: int, height: int, *, factor: int | None,
                        target_fps: float | None, limits: Budgets) -> None:
    """An interpolation of a clip (from its header) within `limits`."""

    step, _ = rate_step(fps, factor, target_fps, False)
    out = OutputClock.count(frames, step) if frames >= 2 else frames
    made = max(0, out - frames) * _mp(width, height)
    over = []
    if out > limits.output_frames:
        over.append(f"{out:,} frames, more than this server's {limits.output_frames:,}")
    if made > limits.interpolated_megapixels:
        over.append(f"{made:,.0f} megapixels of in-between frames, more than this server's "
                    f"{limits.interpolated_megapixels:,.0f}")
    if out * _mp(width, height) > limits.encoded_megapixels:
        over.append(f"{out * _mp(width, height):,.0f} megapixels to encode, more than this server's "
                    f"{limits.encoded_megapixels:,.0f}")
    if not over:
        return
    # Outputs grow linearly with the rate: the largest rate within every budget.
    fits = min(limits.output_frames / out, (limits.interpolated_megapixels / _mp(width, height) + frames) / out,
               limits.encoded_megapixels / (out * _mp(width, height)))
    rate = fps / float(step)
    if target_fps is not None:
        advice = f"lower `target_fps` to {max(1, int(rate * fits))} or less"
    else:
        advice = f"lower `factor` to {max(1, int(float(1 / step) * fits))} or less"
    raise InputError(f"Interpolating {frames} frames of {width}x{height} at {fps:g} fps to {rate:g} fps would make "
                     f"{'; and '.join(over)}. To fit, {advice}, or use a shorter or smaller clip.")


def check_upscale(frames: int, width: int, height: int, factor: int, limits: Budgets) -> None:
    """An upscale of `frames` frames of `width` x `height` (from the header) within `limits`."""
    upscaled = frames * _mp(width, height)
    encoded = upscaled * factor * factor
    if upscaled > limits.upscaled_megapixels:
        most = int(limits.upscaled_megapixels / _mp(width, height))
        raise InputError(f"Upscaling {frames:,} frames of {width}x{height} is {upscaled:,.0f} megapixels of "
                         f"network input, over this server's budget of {limits.upscaled_megapixels:,.0f}: send at "
                         f"most {most:,} frames of this size (trim the clip), or a smaller clip.")
    if encoded > limits.encoded_megapixels:
        raise InputError(f"Upscaling {frames:,} frames of {width}x{height} {factor}x would encode {encoded:,.0f} "
                         f"megapixels, over this server's budget of {limits.encoded_megapixels:,.0f}: lower "
                         "`upscale_factor` to 2x, or trim the clip.")


def header_of(path: str | Path) -> tuple[int, float, int, int]:
    """(frames, fps, width, height) of a video (or folder of frames) from its header and packet count, without
    decoding; the input caps of `svd_demo.files.video_input` are checked on the way."""

    source = Path(path)
    if source.is_dir():

        images = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            return 0, DEFAULT_FOLDER_FPS, 0, 0
        width, height, _ = read_image_header(str(images[0]))
        return len(images), DEFAULT_FOLDER_FPS, width, height
    info = probe_input(source)
    frames = info.num_frames or int(round((info.duration or 0) * (info.fps or 0)))
    return frames, float(info.fps or info.tbr or 0.0), int(info.width or 0), int(info.height or 0)


# ---------------------------------------------------------------------------------------------- requests, by kind


def _frames_and_fps(params: VideoParams, model_ref: str | None, default_model: str) -> VideoParams:
    """`params` with frames and fps filled as the run will fill them, without reading a caller's path: the
    configured model's or a preset's own, else SVD-XT's 25 frames (the most any preset makes)."""

    ref = model_ref or default_model
    known = ref == default_model or ref in {p.model_id for p in SVD_PRESETS}
    frames, fps = svd_defaults(ref) if known else (25, 7)
    return replace(params, num_frames=params.num_frames or frames, fps=params.fps or fps)


def check_image_to_video(limits: Budgets, image: object, params: VideoParams, *, model_ref: str | None,
                         default_model: str, seeds: int = 1, what: str = "This request") -> None:
    """A generation from `image` (a path or bytes; only its header is read) within `limits`."""

    width, height, _ = read_image_header(image)  # type: ignore[arg-type]
    size = output_size(width, height, params.resolution, params.aspect_mode)
    params = _frames_and_fps(params, model_ref, default_model)
    check_video(video_work(params, size, seeds=seeds), params, limits, size=size, seeds=seeds, what=what)


def check_text_to_video(limits: Budgets, params: VideoParams, orientation: str, *, model_ref: str | None,
                        default_model: str) -> None:
    """The video stage of text to video (the still is made at the video's size) within `limits`."""

    size = still_size(params.resolution, orientation)
    params = _frames_and_fps(params, model_ref, default_model)
    check_video(video_work(params, size), params, limits, size=size)


def check_extend(limits: Budgets, video: str | Path, params: VideoParams, *, model_ref: str | None,
                 default_model: str) -> None:
    """An extension of `video` (from its header): the new part's generation and interpolation, and the whole
    result's frames and files, within `limits`; a clip faster than a video may play is refused here too."""

    frames, fps, width, height = header_of(video)
    params = _frames_and_fps(params, model_ref, default_model)
    new = int(params.num_frames or 0)
    segment_size = output_size(width, height, params.resolution, "native")
    plays_at = float(params.fps or 7)
    made = 0.0
    if fps > plays_at:
        check_extend_rate(fps, Path(video).name)
        smooth = interpolated_count(new, plays_at, fps)
        made, new = (smooth - new) * _mp(*segment_size), smooth
    total = looped_count(frames + new - 1, params.loop)
    segment = replace(params, loop="none", interpolate_fps=0, upscale="none", extra_formats=())
    work = Work(
        denoise_frame_steps=video_work(segment, segment_size).denoise_frame_steps,
        output_frames=total,
        encoded_megapixels=total * _mp(width, height) * (1 + len(params.extra_formats)),
        interpolated_megapixels=made,
    )
    check_video(work, replace(params, interpolate_fps=0), limits, size=(width, height), what="This extension")


def check_interpolate(limits: Budgets, video: str | Path, *, factor: int | None, target_fps: float | None) -> None:
    """An interpolation of `video` (from its header) within `limits`."""
    frames, fps, width, height = header_of(video)
    if frames and fps and width and height:
        check_interpolation(frames, fps, width, height, factor=factor, target_fps=target_fps, limits=limits)


def check_upscale_request(limits: Budgets, media: str | Path, factor: int, tile: int) -> None:
    """An upscale of `media` (a still, a video or a folder; from its header) within `limits`, and its tile."""

    check_upscale_tile(tile)
    source = Path(media)
    if source.suffix.lower() in STILL_SUFFIXES and not source.is_dir():

        width, height, _ = read_image_header(str(source))
        frames = 1
    else:
        frames, _, width, height = header_of(source)
    check_upscale(frames, width, height, factor, limits)
