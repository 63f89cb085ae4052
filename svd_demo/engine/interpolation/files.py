"""Interpolation of files: a video file or a folder of images in, a video (.mp4/.webm/.gif) or PNG folder out.

Input is read with the caps of `files.video_input`, output written through `files.media` (video) or as PNG
frames, each under a temporary name renamed at the end (`media.atomic_write`). Decoding, computing and encoding
overlap: at most 2 decoded frames are read ahead and 3 finished frames wait for the encoder.
"""

from __future__ import annotations

import os
import pathlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import cv2
import numpy as np

from svd_demo.core import waiting
from svd_demo.core.errors import InputError, VideoError
from svd_demo.engine.interpolation.backends import InterpolationBackend
from svd_demo.engine.interpolation.engine import FrameInterpolator, ProgressCallback
from svd_demo.engine.interpolation.timing import MAX_OUTPUT_FRAMES, rate_step
from svd_demo.files.media import VideoInfo, atomic_write, open_video_writer
from svd_demo.files.video_input import open_frames

MAX_VIDEO_FPS = 240.0
"""Largest playback rate of a written video (the shared encoder's limit); use slow_motion above it."""
VIDEO_SUFFIXES = (".mp4", ".webm", ".gif")
X264_PRESET = "ultrafast"
"""x264 preset of .mp4 outputs. The shared default (veryfast) took ~0.35 s of CPU for 29 frames of 1024x576, a
quarter of a whole ``flow`` run; ultrafast took ~0.19 s at nearly the same fidelity (crf 18: 41.9 instead of 42.2 dB
PSNR against the frames it was given) in a file 2.6x larger (BENCHMARKS.md, "Frame interpolation")."""

PNG_OPTIONS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
"""PNG frames: fast deflate with one row filter. libpng's default tries all five filters on every row: at 640x360 that
takes 17-21 ms a frame (a quarter of the CPU time of a 33-frame command), the "up" filter alone 8-12 ms for files of
the same size, 163-199 KiB (BENCHMARKS.md, "Interpolation on real footage")."""


@dataclass(frozen=True)
class InterpolationResult:
    output_path: pathlib.Path
    kind: str  # "video" or "folder"
    input_frames: int
    output_frames: int
    source_fps: float
    output_fps: float
    width: int
    height: int
    backend: str
    seconds: float
    cut_pairs: int = 0
    copied_pairs: int = 0
    flow_failed_pairs: int = 0
    notes: tuple[str, ...] = ()
    video_info: VideoInfo | None = field(default=None, repr=False)

    @property
    def duration_s(self) -> float:
        """Playback length of the output."""
        return self.output_frames / self.output_fps


def _output_kind(output_path: pathlib.Path) -> str:
    if output_path.is_dir():
        return "folder"
    suffix = output_path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix == "":
        return "folder"
    raise InputError(f"Cannot write {output_path.name!r}: the output must end in "
                     f"{', '.join(VIDEO_SUFFIXES)} (a video) or be a folder (PNG frames).")


class _Prefetch(Iterator[np.ndarray]):
    """Reads ``source`` in a background thread, at most ``depth`` items ahead (decoding overlaps computing)."""

    _END = object()

    def __init__(self, source: Iterator[np.ndarray], depth: int = 2) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(source,), name="svd-interp-reader", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source: Iterator[np.ndarray]) -> None:
        try:
            for item in source:
                if not self._put((item, None)):
                    return
            self._put((self._END, None))
        except BaseException as exc:  # handed to the consumer, raised there
            self._put((None, exc))

    def __next__(self) -> np.ndarray:
        if self._done:
            raise StopIteration
        item, exc = waiting.next_item(self._queue)
        if exc is not None:
            self._done = True
            raise exc
        if item is self._END:
            self._done = True
            raise StopIteration
        return item

    def close(self) -> None:
        self._done = True
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.05)


def _drain(frames: Iterator[np.ndarray], write: Callable[[np.ndarray], object], depth: int = 3) -> int:
    """Pass every frame to ``write`` in one background thread (encoding overlaps computing); returns the count."""
    pending: deque = deque()
    count = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="svd-interp-writer") as pool:
        try:
            for frame in frames:
                while len(pending) >= depth:
                    waiting.result(pending.popleft())
                pending.append(pool.submit(write, frame))
                count += 1
            while pending:
                waiting.result(pending.popleft())
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return count


def _write_folder(frames: Iterator[np.ndarray], output_path: pathlib.Path, total: int | None) -> int:
    if output_path.exists() and not output_path.is_dir():
        raise InputError(f"The output {str(output_path)!r} is an existing file; give a folder name or a path ending "
                         f"in {', '.join(VIDEO_SUFFIXES)}.")
    if output_path.exists() and any(output_path.iterdir()):
        raise InputError(f"The output folder {str(output_path)!r} is not empty. Choose a new or empty folder.")
    digits = max(5, len(str(total or 0)))
    index = iter(range(MAX_OUTPUT_FRAMES + 1))
    with atomic_write(output_path) as tmp:
        tmp.mkdir()

        def write(frame: np.ndarray) -> None:
            name = tmp / f"frame_{next(index):0{digits}d}.png"
            if not cv2.imwrite(str(name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), PNG_OPTIONS):
                raise VideoError(f"Could not write {name.name} into {str(output_path.parent)!r}; "
                                 "check that the folder is writable and the disk is not full.")

        return _drain(frames, write)


def interpolate_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    factor: int | None = None,
    target_fps: float | None = None,
    slow_motion: bool = False,
    backend: str | InterpolationBackend = "flow",
    progress: ProgressCallback | None = None,
    metadata: dict | None = None,
    input_fps: float | None = None,
    cancel: threading.Event | None = None,
) -> InterpolationResult:
    """Interpolate a video file or image folder into a video (.mp4/.webm/.gif) or a folder of PNG frames.

    Folder output holds every frame (originals included) as ``frame_00000.png``, ``frame_00001.png``, ...
    MP4 output is H.264 yuv420p crf 18 with x264's ``X264_PRESET`` (faster than the shared encoder's default).
    ``input_fps`` overrides the input's rate (for folders it defaults to 8 fps). Outputs are written under a
    temporary name and renamed at the end; on any error nothing is left behind. Once ``cancel`` is set, the run
    stops at the next output frame (GenerationCancelled), leaving nothing either.
    """
    started = time.perf_counter()
    out = pathlib.Path(output_path).expanduser()
    kind = _output_kind(out)
    rate_step(input_fps or 1.0, factor, target_fps, slow_motion)  # validate options before opening anything
    src = open_frames(input_path, fps=input_fps)
    frames = _Prefetch(src.frames)
    with src:
        try:
            if out.resolve() == src.path.resolve():
                raise InputError("The output path is the input path; choose a different output.")
            if src.num_frames is not None and src.num_frames < 2:
                raise InputError(f"The input has {src.num_frames} frame(s); interpolation needs at least 2 frames.")
            engine = FrameInterpolator(frames, src.fps, factor=factor, target_fps=target_fps,
                                       slow_motion=slow_motion, backend=backend, num_frames=src.num_frames,
                                       progress=progress, cancel=cancel)
            info = None
            if kind == "video":
                if engine.output_fps > MAX_VIDEO_FPS:
                    raise InputError(f"The output would play at {engine.output_fps:g} fps, above the maximum of "
                                     f"{MAX_VIDEO_FPS:g} for a video file. Use a smaller factor, a target fps, "
                                     "slow motion, or a folder output.")
                tags = {str(k): str(v) for k, v in (metadata or {}).items()}
                with open_video_writer(out, engine.output_fps, metadata=tags or None,
                                       x264_preset=X264_PRESET) as writer:
                    _drain(engine, writer.write)
                info = writer.info
            else:
                _write_folder(engine, out, engine.total)
        finally:
            frames.close()
            src.close()
    stats = engine.stats
    notes = list(src.notes)
    if engine.step > 1:  # a target below the source rate: fewer frames out than in, nothing blended in between
        notes.append(f"The target of {float(target_fps):g} fps is below the source's {src.fps:g} fps, so the clip "
                     f"was thinned out, not smoothed: {stats.input_frames - stats.output_frames} of its "
                     f"{stats.input_frames} frames were dropped. For smoother motion choose a target above "
                     f"{src.fps:g} fps, or a factor.")
    return InterpolationResult(
        output_path=out, kind=kind, input_frames=stats.input_frames, output_frames=stats.output_frames,
        source_fps=src.fps, output_fps=engine.output_fps, width=src.width, height=src.height,
        backend=engine.backend.name, seconds=time.perf_counter() - started, cut_pairs=stats.cut_pairs,
        copied_pairs=stats.copied_pairs, flow_failed_pairs=stats.flow_failed_pairs, notes=tuple(notes),
        video_info=info,
    )
