"""The streaming engine: frames in, interpolated frames out, one pair of neighbours at a time.

Frames are read one at a time; up to one pair per CPU core (at most ``MAX_WORKERS``) is interpolated at once on
worker threads, and only those pairs' frames are kept, so memory does not grow with the clip; a pair with many
in-between frames is made in parts (``PART_BYTES``), so it does not grow with the factor or the frame size either.
Every pair is first checked for a cut or a still (`cuts`); outputs sit where `timing.OutputClock` puts them.
Nothing heavy is imported (numpy and OpenCV only; no torch).
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from svd_demo.core import waiting
from svd_demo.core.errors import GenerationCancelled, InputError
from svd_demo.engine.interpolation.backends import MAX_WORKERS, InterpolationBackend, make_backend
from svd_demo.engine.interpolation.cuts import CutDetector, near_identical, thumbnail
from svd_demo.engine.interpolation.timing import MAX_OUTPUT_FRAMES, OutputClock, check_output_count, rate_step

ProgressCallback = Callable[[int, "int | None"], None]
PART_BYTES = 16 * 1024 * 1024
"""Most output bytes one backend call makes: a pair with more in-between frames (60x of a 1024x576 pair: 106 MB)
is given to the backend in parts of its times, so the frames in flight stay under (workers + 1) x PART_BYTES."""


def _parts(times: list[float], frame_bytes: int) -> list[list[float]]:
    """`times` cut into runs of at most PART_BYTES of output frames (at least one time each)."""
    size = max(1, PART_BYTES // max(1, frame_bytes))
    return [times[i:i + size] for i in range(0, len(times), size)]


def _as_rgb(frame, index: int) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(f"Frame {index} has shape {arr.shape}; frames must be HxWx3 RGB images.")
    if arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = np.nan_to_num(arr) * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


@dataclass
class InterpolationStats:
    """Counters filled while frames stream through :class:`FrameInterpolator`."""

    input_frames: int = 0
    output_frames: int = 0
    interpolated_frames: int = 0
    cut_pairs: int = 0
    copied_pairs: int = 0
    flow_failed_pairs: int = 0


def _worker_count(backend: InterpolationBackend, workers: int | None) -> int:
    """Pairs made at once: what was asked (default: one per CPU core), within the backend's own limit."""
    wanted = (os.cpu_count() or 1) if workers is None else int(workers)
    return max(1, min(wanted, int(getattr(backend, "max_workers", 1) or 1), MAX_WORKERS))


class FrameInterpolator(Iterator[np.ndarray]):
    """The streaming engine behind :func:`interpolate_frames`; exposes ``stats``, ``output_fps`` and ``total``."""

    def __init__(self, frames: Iterable[np.ndarray], source_fps: float, *, factor=None, target_fps=None,
                 slow_motion: bool = False, backend: str | InterpolationBackend = "flow",
                 num_frames: int | None = None, progress: ProgressCallback | None = None,
                 workers: int | None = None, cancel: threading.Event | None = None) -> None:
        self.step, self.output_fps = rate_step(source_fps, factor, target_fps, slow_motion)
        self.source_fps = float(source_fps)
        self.backend = make_backend(backend)
        self.workers = _worker_count(self.backend, workers)
        self._failed_before = getattr(self.backend, "failed_pairs", 0)
        self.total: int | None = None
        if num_frames is not None and num_frames >= 2:
            self.total = OutputClock.count(int(num_frames), self.step)
            check_output_count(self.total)
        self.progress = progress
        self.cancel = cancel
        self.stats = InterpolationStats()
        self._gen = self._run(iter(frames))

    def __next__(self) -> np.ndarray:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()

    def _emit(self, frame: np.ndarray) -> np.ndarray:
        if self.cancel is not None and self.cancel.is_set():
            raise GenerationCancelled("Cancelled.")
        self.stats.output_frames += 1
        if self.stats.output_frames > MAX_OUTPUT_FRAMES:  # a stream of unknown length: counted as it goes
            raise InputError(f"This would make more than {MAX_OUTPUT_FRAMES} frames, the maximum. "
                             "Use a smaller factor or target fps, or a shorter clip.")
        if self.progress is not None:
            total = self.total if self.total is not None and self.total >= self.stats.output_frames else None
            self.progress(self.stats.output_frames, total)
        return frame

    def _interpolated(self, frame0: np.ndarray, frame1: np.ndarray, times: list[float], index: int) -> list:
        """The backend's frames for one pair, checked (runs on a worker thread when pairs are made in parallel)."""
        made = self.backend.interpolate(frame0, frame1, times)
        if len(made) != len(times):
            raise RuntimeError(f"backend {self.backend.name} returned {len(made)} frames for {len(times)} times")
        checked = [_as_rgb(frame, index) for frame in made]
        if any(frame.shape != frame0.shape for frame in checked):
            raise RuntimeError(f"backend {self.backend.name} returned a frame of another size than its inputs "
                               f"{frame0.shape}")
        return checked

    def _flush(self, pending: deque, keep: int) -> Iterator[np.ndarray]:
        """Yield the finished pairs at the head of ``pending``, in order; wait for the head while more than
        ``keep`` pairs are in flight."""
        while pending and (len(pending) > keep or not isinstance(pending[0], Future) or pending[0].done()):
            item = pending.popleft()
            frames = waiting.result(item) if isinstance(item, Future) else item
            self.stats.flow_failed_pairs = getattr(self.backend, "failed_pairs", 0) - self._failed_before
            for frame in frames:
                yield self._emit(frame)

    def _run(self, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        try:
            prev = next(frames)
        except StopIteration:
            raise InputError("The input has no frames. Give a video or folder with at least 2 frames.") from None
        prev = _as_rgb(prev, 0)
        self.stats.input_frames = 1
        prev_thumb = thumbnail(prev)
        cuts = CutDetector()
        clock = OutputClock(self.step)
        index = 0  # position of prev
        # Per pair, in order: its output frames, or the Future making them on a worker thread.
        pending: deque[list[np.ndarray] | Future] = deque()
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="svd-interp") if self.workers > 1 else None
        try:
            for cur in frames:
                cur = _as_rgb(cur, index + 1)
                if cur.shape != prev.shape:
                    raise InputError(f"Frame {index + 1} is {cur.shape[1]}x{cur.shape[0]} but frame 0 is "
                                     f"{prev.shape[1]}x{prev.shape[0]}; all frames must have the same size.")
                self.stats.input_frames += 1
                cur_thumb = thumbnail(cur)
                times = [float(position - index) for position in clock.take_before(index + 1)]
                is_cut = cuts.is_cut(prev_thumb, cur_thumb)
                if is_cut and times and callable(explains := getattr(self.backend, "explains", None)):
                    is_cut = not explains(prev, cur)
                if times and times[0] == 0.0:
                    pending.append([prev.copy()])
                    times = times[1:]
                if times and (is_cut or near_identical(prev, cur)):
                    if is_cut:
                        self.stats.cut_pairs += 1
                    else:
                        self.stats.copied_pairs += 1
                    pending.append([(prev if t < 0.5 else cur).copy() for t in times])
                elif times:
                    self.stats.interpolated_frames += len(times)
                    for part in _parts(times, prev.nbytes):
                        if pool is None:
                            pending.append(self._interpolated(prev, cur, part, index))
                        else:
                            pending.append(pool.submit(self._interpolated, prev, cur, part, index))
                        yield from self._flush(pending, self.workers)
                yield from self._flush(pending, self.workers)
                prev, prev_thumb = cur, cur_thumb
                index += 1
            if index == 0:
                raise InputError("The input has only 1 frame; interpolation needs at least 2 frames.")
            if clock.take_at(index):
                pending.append([prev.copy()])
            yield from self._flush(pending, 0)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


def interpolate_frames(
    frames: Iterable[np.ndarray],
    source_fps: float,
    *,
    factor: int | None = None,
    target_fps: float | None = None,
    slow_motion: bool = False,
    backend: str | InterpolationBackend = "flow",
    num_frames: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[np.ndarray]:
    """Stream the interpolated clip: yields HxWx3 uint8 RGB frames at the positions of :func:`output_timestamps`.

    Options are validated at call time (InputError); frames are consumed lazily, two at a time. ``num_frames`` (if
    known) only sets the progress total; ``progress(done, total)`` is called after each output frame. Once
    ``cancel`` is set, the next frame raises GenerationCancelled instead.
    """
    return FrameInterpolator(frames, source_fps, factor=factor, target_fps=target_fps, slow_motion=slow_motion,
                             backend=backend, num_frames=num_frames, progress=progress, cancel=cancel)
