"""Upscaling files: a video (or a folder of frames) streamed frame by frame into an MP4, or a still into a PNG.

A video is read one frame at a time (`files.video_input`, whose caps are checked from the header), each frame is
upscaled and handed to the encoder (`svd_demo.files.media`) before the next one is read, so neither the clip nor its
upscaled copy is ever in memory as a whole. The output size is checked against `tiles.MAX_OUTPUT_LONG_SIDE` from
the header, before anything is decoded. Outputs appear whole at their name or not at all (`media.atomic_write`);
a cancel stops at the next frame and leaves nothing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from svd_demo.core.errors import GenerationCancelled, InputError
from svd_demo.engine.upscale.loading import LoadedUpscaler
from svd_demo.engine.upscale.tiles import DEFAULT_TILE, check_output_size, upscale_frame
from svd_demo.files.images import DEFAULT_MAX_PIXELS, load_image, read_image_header
from svd_demo.files.media import VideoInfo, open_video_writer, parameters_tag
from svd_demo.files.outputs import write_png
from svd_demo.files.video_input import open_frames, probe_input

STILL_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
ProgressCallback = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class UpscaleResult:
    output_path: Path
    kind: str  # "video" or "still"
    frames: int
    width: int
    height: int
    out_width: int
    out_height: int
    factor: int
    fps: float | None
    seconds: float
    notes: tuple[str, ...] = ()
    video_info: VideoInfo | None = field(default=None, repr=False)


def upscaled_frames(frames: Iterable[np.ndarray], upscaler: LoadedUpscaler, factor: int, *,
                    tile: int = DEFAULT_TILE, cancel: threading.Event | None = None,
                    progress: ProgressCallback | None = None, total: int | None = None) -> Iterator[np.ndarray]:
    """Each frame upscaled as it is asked for; once `cancel` is set, the next frame raises GenerationCancelled."""
    for done, frame in enumerate(frames, start=1):
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled("Cancelled.")
        yield upscale_frame(upscaler, frame, factor, tile=tile)
        if progress is not None:
            progress(done, total)


class UpscaledClip:
    """A clip in memory, upscaled lazily each time it is iterated (the MP4, then each extra format): the upscaled
    frames are never all held at once. `len()` is the clip's frame count."""

    def __init__(self, frames: np.ndarray, upscaler: LoadedUpscaler, factor: int, *, tile: int = DEFAULT_TILE,
                 cancel: threading.Event | None = None) -> None:
        self.frames, self.upscaler, self.factor, self.tile, self.cancel = frames, upscaler, factor, tile, cancel

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[np.ndarray]:
        return upscaled_frames(self.frames, self.upscaler, self.factor, tile=self.tile, cancel=self.cancel)


def check_input(input_path: str | os.PathLike, factor: int, name: str = "upscale") -> None:
    """Everything about an input that can be refused without the network, from headers only (nothing decoded):
    the caps of `files.video_input` and `files.images`, and the output size. Callers run it before loading
    an upscaler, so a bad upload never waits for (or downloads) a model. `name` is the factor's parameter name in
    the messages."""
    source = Path(input_path).expanduser()
    if source.is_dir():
        return  # a folder's images are checked one by one as they are read (`upscale_file`)
    if source.suffix.lower() in STILL_SUFFIXES:

        # The output cap (8.3 megapixels) bounds the input far below `max_image_pixels`, from the header alone.
        width, height, _ = read_image_header(str(source))
        check_output_size(width, height, factor, name)
        return

    probe_input(source, lambda width, height, count: check_output_size(width, height, factor, name)
                if width and height else None)


def upscale_file(input_path: str | os.PathLike, output_path: str | os.PathLike, upscaler: LoadedUpscaler,
                 factor: int, *, tile: int = DEFAULT_TILE, progress: ProgressCallback | None = None,
                 cancel: threading.Event | None = None, parameters: dict | None = None,
                 max_image_pixels: int | None = None) -> UpscaleResult:
    """Upscale a video or folder of frames into a video (.mp4/.webm/.gif), or a still into a .png.

    The output's playback rate is the input's; `parameters` go into the video's `comment` tag or the PNG's text chunk
    (as JSON), as with generated files.
    """
    started = time.perf_counter()
    source, out = Path(input_path).expanduser(), Path(output_path).expanduser()
    if source.suffix.lower() in STILL_SUFFIXES and not source.is_dir():
        return _upscale_still(source, out, upscaler, factor, tile, parameters, max_image_pixels, started, cancel)

    def admit(width: int | None, height: int | None, count: int | None) -> None:
        if width and height:
            check_output_size(width, height, factor)

    src = open_frames(source, admit=admit)
    with src:
        if out.resolve() == src.path.resolve():
            raise InputError("The output path is the input path; choose a different output.")
        out_w, out_h = check_output_size(src.width, src.height, factor)
        with open_video_writer(out, src.fps, metadata=parameters_tag(parameters or {})) as writer:
            for frame in upscaled_frames(src.frames, upscaler, factor, tile=tile, cancel=cancel, progress=progress,
                                         total=src.num_frames):
                writer.write(frame)
    info = writer.info
    assert info is not None
    return UpscaleResult(output_path=out, kind="video", frames=info.num_frames or 0, width=src.width,
                         height=src.height, out_width=out_w, out_height=out_h, factor=factor, fps=src.fps,
                         seconds=time.perf_counter() - started, notes=src.notes, video_info=info)


def _upscale_still(source: Path, out: Path, upscaler: LoadedUpscaler, factor: int, tile: int,
                   parameters: dict | None, max_image_pixels: int | None, started: float,
                   cancel: threading.Event | None) -> UpscaleResult:
    from PIL import Image


    if out.suffix.lower() != ".png":
        raise InputError(f"An upscaled still is written as PNG: the output must end in .png (got {out.name}).")
    width, height, _ = read_image_header(str(source))  # the cap, from the header, before decoding
    check_output_size(width, height, factor)
    loaded = load_image(str(source), max_pixels=max_image_pixels or DEFAULT_MAX_PIXELS)
    width, height = loaded.image.size
    out_w, out_h = check_output_size(width, height, factor)
    if cancel is not None and cancel.is_set():
        raise GenerationCancelled("Cancelled.")
    result = upscale_frame(upscaler, np.asarray(loaded.image), factor, tile=tile)
    write_png(Image.fromarray(result), out, dict(parameters or {}))
    return UpscaleResult(output_path=out, kind="still", frames=1, width=width, height=height, out_width=out_w,
                         out_height=out_h, factor=factor, fps=None, seconds=time.perf_counter() - started,
                         notes=loaded.notices)
