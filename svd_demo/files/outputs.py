"""Output files: unique names, loops, the extra formats, the JSON sidecar, and removal of old files.

Every run writes `<time>-<kind>-<seed>-<random>.mp4` (never a counter: two servers or two requests in the same
second cannot collide) plus a `.json` sidecar holding everything needed to reproduce it. The same parameters go into
the MP4's own metadata, so a file that travels alone still says how it was made.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import platform
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from svd_demo import __version__
from svd_demo.core.errors import GenerationCancelled
from svd_demo.files.media import VideoInfo, VideoWriter, atomic_write, open_video_writer, parameters_tag

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LIBRARIES = ("torch", "diffusers", "transformers", "accelerate", "gradio", "moviepy", "imageio-ffmpeg",
             "opencv-python-headless")


@dataclass
class OutputFiles:
    """What one run wrote."""

    video: Path
    info: VideoInfo
    sidecar: Path
    extras: dict[str, Path] = field(default_factory=dict)  # format -> path (gif, webm)


def output_stem(output_dir: Path, kind: str, seed: int | None = None) -> Path:
    """A unique path without suffix, e.g. .../20261121-101502-video-s42-3f9a1c0b."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    seed_part = f"-s{seed}" if seed is not None else ""
    return Path(output_dir) / f"{stamp}-{kind}{seed_part}-{uuid.uuid4().hex[:8]}"


OWNER_LOCK = ".owner.lock"
"""In each private folder: held locked (flock) by the process that made it while it runs. The kernel lets go of
the lock however the process ends, SIGKILL included, so a folder whose lock can be taken is abandoned."""
_held_locks: list[int] = []  # the open lock files' descriptors: a lock lasts while its descriptor is open


def private_output_dir(prefix: str = "svd-demo-outputs-") -> Path:
    """A new folder for this instance's files, readable by its user only, removed when the process exits: two
    instances on one machine neither serve nor sweep each other's files. Folders of this prefix that a killed
    instance left behind are removed first."""
    remove_abandoned_dirs(Path(tempfile.gettempdir()), prefix)
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if fcntl is not None:
        fd = os.open(folder / OWNER_LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _held_locks.append(fd)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def remove_abandoned_dirs(parent: Path, prefix: str) -> list[Path]:
    """Remove the folders `private_output_dir` made in `parent` whose process is gone (their lock is free); a folder
    without the lock file, another user's, or one still locked is left alone. Returns those removed."""
    if fcntl is None:  # no flock (Windows): nothing tells a running instance's folder from an abandoned one
        return []
    removed = []
    for folder in parent.glob(f"{prefix}*"):
        lock = folder / OWNER_LOCK
        try:
            if folder.is_symlink() or folder.stat().st_uid != os.getuid() or not lock.is_file():
                continue
            fd = os.open(lock, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # its instance still runs
        try:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        finally:
            os.close(fd)
    return removed


class LoopedClip(Sequence):
    """A clip and, for ping-pong, the same frames backwards after it, without copying a frame: frame i of the
    loop is looked up in the clip when it is asked for."""

    def __init__(self, frames: Sequence[np.ndarray], loop: str) -> None:
        self.frames = frames
        self.back = max(0, len(frames) - 2) if loop == "ping-pong" and len(frames) > 2 else 0

    def __len__(self) -> int:
        return len(self.frames) + self.back

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        count = len(self.frames)
        return self.frames[index if index < count else 2 * count - 2 - index]

    def __iter__(self) -> Iterator[np.ndarray]:
        yield from self.frames
        for index in range(len(self.frames) - 2, len(self.frames) - 2 - self.back, -1):
            yield self.frames[index]


def apply_loop(frames: Sequence[np.ndarray], loop: str) -> LoopedClip:
    """ping-pong appends the clip backwards without repeating the end frames, so it loops without a stutter; the
    backwards half is a view (`LoopedClip`), not a copy."""
    return LoopedClip(frames, loop)


@functools.cache  # read once: the installed packages do not change while the app runs
def library_versions() -> dict[str, str]:
    """Versions of what made the video, read from package metadata (nothing is imported)."""
    versions = {"svd-demo": __version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """`data` as indented JSON, written whole or not at all (`atomic_write`)."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))


def write_png(image: Image.Image, path: Path, parameters: dict[str, Any]) -> None:
    """A PNG with the parameters in a text chunk (as other SD tools do), written whole or not at all."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("parameters", json.dumps(parameters, sort_keys=True, default=str))
    with atomic_write(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)


def write_outputs(frames: Iterable[np.ndarray], stem: Path, fps: float, record: dict[str, Any], *,
                  extra_formats: tuple[str, ...] = (), started: float | None = None,
                  cancel: threading.Event | None = None) -> OutputFiles:
    """MP4 (always), the extra formats, and the sidecar; if any of them fails, none of them is left behind.

    `frames` is iterated once: each frame goes to every format's encoder as it comes, so a frame is made
    (interpolated, upscaled) once whatever the number of formats, and the clip is never held whole here.
    `record["timings"]` gains `encode_s`, and `total_s` counted from `started` (a `time.perf_counter()` value).
    Once `cancel` is set, encoding stops at the next frame with GenerationCancelled, and nothing is left either.
    """
    encode_start = time.perf_counter()
    tags = parameters_tag(record.get("parameters", {}))
    paths = {"mp4": stem.with_suffix(".mp4"), **{fmt: stem.with_suffix(f".{fmt}") for fmt in extra_formats}}
    writers: dict[str, VideoWriter] = {}
    sidecar = stem.with_suffix(".json")
    sidecar_written = False
    try:
        with ExitStack() as stack:
            for fmt, path in paths.items():
                writers[fmt] = stack.enter_context(open_video_writer(path, fps, metadata=tags))
            for frame in _unless_cancelled(frames, cancel):
                for writer in writers.values():
                    writer.write(frame)
        info = writers["mp4"].info
        assert info is not None
        extras = {fmt: paths[fmt] for fmt in extra_formats}
        timings = {**record.get("timings", {}), "encode_s": round(time.perf_counter() - encode_start, 3)}
        if started is not None:
            timings["total_s"] = round(time.perf_counter() - started, 3)
        record.update(
            timings=timings,
            files={"mp4": info.path.name, **{k: v.name for k, v in extras.items()}},
            video={"width": info.width, "height": info.height, "frames": info.num_frames, "fps": fps,
                   "codec": info.codec, "pix_fmt": info.pix_fmt},
        )
        write_json_atomic(sidecar, record)
        sidecar_written = True
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled("Cancelled.")
    except BaseException:
        # A writer that finished has renamed its file into place: the others failed, so it goes too.
        for writer in writers.values():
            if writer.info is not None:
                writer.path.unlink(missing_ok=True)
        if sidecar_written:
            sidecar.unlink(missing_ok=True)
        raise
    return OutputFiles(video=info.path, info=info, sidecar=sidecar, extras=extras)


def _unless_cancelled(frames: Iterable[np.ndarray], cancel: threading.Event | None) -> Iterator[np.ndarray]:
    for frame in frames:
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled("Cancelled.")
        yield frame


def remove_old_outputs(output_dir: Path, ttl_seconds: int, now: float | None = None) -> int:
    """Delete files in `output_dir` older than `ttl_seconds` (0 keeps everything); returns how many went."""
    if ttl_seconds <= 0 or not Path(output_dir).is_dir():
        return 0
    cutoff = (time.time() if now is None else now) - ttl_seconds
    removed = 0
    for path in Path(output_dir).iterdir():
        try:
            if path.name != OWNER_LOCK and path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            continue  # removed by another worker meanwhile, or not ours to remove
    return removed
