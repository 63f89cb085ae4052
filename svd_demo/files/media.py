"""Video files in and out: the one layer between the app and ffmpeg (the binary that imageio-ffmpeg ships).

* Writing: `open_video_writer` / `write_video` stream RGB frames into moviepy's `FFMPEG_VideoWriter` (.mp4 H.264,
  .webm VP9, .gif with one palette per clip). moviepy 2.2 guards against none of its own traps, so this module does:
  it writes yuv444p for odd sizes (browsers refuse it) and, forced to yuv420p, leaves a 0-byte file without raising
  (ffmpeg exits with an error that moviepy never reads). Here odd sizes are made even, `-pix_fmt yuv420p
  -movflags +faststart` are always passed, ffmpeg's exit code is checked, and the file is probed (codec, pixel
  format, frame count, size > 0) before it is renamed into place.
* Probing: `parse_ffmpeg_log` is the one parser of ffmpeg's stream report, for the files written here
  (`probe_video`) and for untrusted input (`svd_demo.files.video_input`, which reads frames under its caps).
* `atomic_write(path)`: every file or folder the app writes appears whole at its name, or not at all.
* `VideoError` (and `VideoInputError` for input that cannot be used): the message names the file and the reason.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType

import numpy as np

from svd_demo.core.errors import VideoError

VIDEO_FORMATS = ("mp4", "webm", "gif")
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
"""Speed presets of libx264 (faster = larger file at the same quality); .mp4 uses veryfast unless told otherwise."""
MP4_PRESET = "veryfast"
MIN_FPS = 0.01
"""Slowest playback rate a file can be written at: moviepy passes the rate to ffmpeg as "%.2f"."""
MAX_FPS = 240.0


@dataclass(frozen=True)
class _Format:
    codec: str
    params: tuple[str, ...]
    expect: tuple[str, str | None]  # (codec, pixel format) that ffmpeg must report for the written file


# What each container needs so that Chrome, Firefox and Safari play it: H.264 and VP9 must be yuv420p, and
# faststart puts the MP4 index first so playback begins before the whole file has arrived.
_FORMATS: dict[str, _Format] = {
    "mp4": _Format("libx264", ("-crf", "18", "-pix_fmt", "yuv420p", "-movflags", "+faststart"), ("h264", "yuv420p")),
    "webm": _Format("libvpx-vp9", ("-crf", "32", "-b:v", "0", "-row-mt", "1", "-deadline", "good", "-cpu-used", "5",
                                   "-pix_fmt", "yuv420p"), ("vp9", "yuv420p")),
    # One palette for the whole clip: far better colour than ffmpeg's default fixed palette.
    "gif": _Format("gif", ("-filter_complex",
                           "[0:v]split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=sierra2_4a",
                           "-loop", "0"), ("gif", None)),
}


@dataclass(frozen=True)
class VideoInfo:
    """What ffmpeg reports about a video file; None where its report does not say."""

    path: Path
    codec: str | None = None
    pix_fmt: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    """The stream's average frame rate (ffmpeg's "fps")."""
    tbr: float | None = None
    """ffmpeg's guess of the base rate ("tbr"); it differs from ``fps`` for a variable frame rate."""
    duration: float | None = None
    """The container's duration in seconds (its header's claim)."""
    num_frames: int | None = None
    """Video packets counted by a stream copy (one per frame for all common codecs); None where not counted."""
    has_audio: bool = False
    size_bytes: int = 0


# ------------------------------------------------------------------------------------------------------- files


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary name beside `path` to write a file or a folder to: renamed to `path` when the block ends
    normally, removed when it raises (cancellation included), so `path` never holds half a result.

    The parent folder is created; an existing file (or empty folder) at `path` is replaced in one step.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VideoError(f"Cannot create the output folder {path.parent}: {exc.strerror}.") from exc
    tmp = path.with_name(f".{path.stem}.partial-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        yield tmp
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise VideoError(f"Could not move the finished {path.name} into {path.parent}: {exc.strerror}.") from exc
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):  # the folder itself is gone or unusable: nothing to clean up
                tmp.unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------------------ ffmpeg


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped by imageio-ffmpeg (no system ffmpeg needed); moviepy uses the same one."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def run_ffmpeg(args: list[str], what: str, *, timeout_s: float, error: type[VideoError] = VideoError
               ) -> tuple[int, str]:
    """(exit code, log) of one ffmpeg run that reads a file; a run past `timeout_s` raises `error` naming `what`."""
    try:
        proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", *args], capture_output=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise error(f"Reading {what} took longer than {timeout_s:g} s; the file may be damaged.") from None
    return proc.returncode, proc.stderr.decode("utf-8", errors="replace")


_TOP_LEVEL_COMMA = re.compile(r",(?![^(]*\))")  # "yuv420p(tv, progressive)" is one field
_SIZE = re.compile(r"(\d{1,6})x(\d{1,6})(?:\s|$)")
_RATE = re.compile(r"([0-9.]+k?) (fps|tbr)")
_PIX_FMT = re.compile(r"([a-z][a-z0-9_]*)(?:\(.*\))?")
_DURATION = re.compile(r"  Duration: (\d+):(\d\d):(\d\d(?:\.\d+)?)")
_PACKETS = re.compile(r"frame=\s*(\d+)")
_FAILURES = ("Invalid data", "moov atom not found", "Error opening input")


def _rate(text: str) -> float | None:
    try:
        value = float(text.rstrip("k")) * (1000.0 if text.endswith("k") else 1.0)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def parse_ffmpeg_log(log: str, path: str | os.PathLike, size_bytes: int = 0) -> VideoInfo | None:
    """The first video stream of the input in ffmpeg's log (`ffmpeg -i FILE ...`), or None when it names none.

    Attached pictures (cover art) are not video. `num_frames` is the last progress count (`frame=`) of a stream
    copy, None without one (a header-only run). Only the input's part of the log counts: ffmpeg describes its
    outputs after "Stream mapping:" in the same words. A file's own tags cannot forge what is read here: ffmpeg
    prints them indented, and every line read starts where only ffmpeg itself writes.
    """
    lines = log.replace("\r", "\n").splitlines()
    end = next((i for i, line in enumerate(lines) if line.startswith(("Stream mapping:", "Output #"))), len(lines))
    streams = [line.strip() for line in lines[:end] if line.lstrip().startswith("Stream #")]
    video = [s for s in streams if ": Video: " in s and "(attached pic)" not in s]
    if not video:
        return None
    # e.g. "h264 (High) (avc1 / 0x31637661), yuv420p(progressive), 64x48 [SAR 1:1 DAR 4:3], 8 fps, 8 tbr, ..."
    fields = [f.strip() for f in _TOP_LEVEL_COMMA.split(video[0].split(": Video: ", 1)[1])]
    pix = _PIX_FMT.fullmatch(fields[1]) if len(fields) > 1 else None
    width = height = fps = tbr = duration = None
    for field in fields[1:]:
        if (size := _SIZE.match(field)) and width is None and int(size.group(1)) and int(size.group(2)):
            width, height = int(size.group(1)), int(size.group(2))  # 0x0: not known from the header
        elif rate := _RATE.fullmatch(field):
            if rate.group(2) == "fps":
                fps = _rate(rate.group(1))
            else:
                tbr = _rate(rate.group(1))
    if match := next((m for line in lines[:end] if (m := _DURATION.match(line))), None):
        duration = int(match.group(1)) * 3600 + int(match.group(2)) * 60 + float(match.group(3))
    packets = [m.group(1) for line in lines[end:] if (m := _PACKETS.match(line))]
    return VideoInfo(
        path=Path(path), codec=fields[0].split(" ", 1)[0] or None,
        pix_fmt=pix.group(1) if pix and pix.group(1) != "none" else None, width=width, height=height, fps=fps,
        tbr=tbr, duration=duration, num_frames=int(packets[-1]) if packets else None,
        has_audio=any(": Audio: " in s for s in streams), size_bytes=size_bytes,
    )


def ffmpeg_failure(log: str) -> str:
    """The line of ffmpeg's log that says why it could not read a file, or its last line."""
    lines = [line.strip() for line in log.replace("\r", "\n").splitlines() if line.strip()]
    for line in lines:
        if any(failure in line for failure in _FAILURES):
            return line.split("]", 1)[-1].strip()
    return lines[-1] if lines else "no output"


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Codec, pixel format, size, rate and frame count of a video file this app wrote (one ffmpeg run, no decoding).

    For an upload use `svd_demo.files.video_input.probe_input`, which refuses it from its header before counting.
    """
    path = Path(path)
    size = path.stat().st_size if path.exists() else 0
    # Stream copy counts the packets (one per frame here) without decoding: a tenth of the time for long clips.
    code, log = run_ffmpeg(["-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-"], repr(path.name),
                           timeout_s=600)
    info = parse_ffmpeg_log(log, path, size)
    if code != 0 or info is None:
        raise VideoError(f"'{path.name}' is not a readable video ({ffmpeg_failure(log)}).")
    return info


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The container's global metadata tags (e.g. the `comment` that holds our parameters as JSON).

    ffmpeg's own ffmetadata format, not the stream report: it escapes what the report would print loosely.
    """
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-f", "ffmetadata", "-"],
                          capture_output=True, text=True, errors="replace", timeout=60)
    tags: dict[str, str] = {}
    key = None
    for line in proc.stdout.splitlines():
        if line.startswith(";") or line.startswith("["):
            continue
        if key is not None and tags[key].endswith("\\"):  # ffmetadata continues escaped newlines
            tags[key] = tags[key][:-1] + "\n" + line
            continue
        if "=" in line:
            key, _, value = line.partition("=")
            tags[key] = value
    return {k: re.sub(r"\\([=;#\\\n])", r"\1", v) for k, v in tags.items()}


def parameters_tag(parameters: Mapping[str, object]) -> dict[str, str]:
    """Metadata tags that carry the generation parameters inside the video file itself."""
    return {"comment": json.dumps(parameters, sort_keys=True, default=str)}


# ----------------------------------------------------------------------------------------------------- writing


def video_format(path: str | os.PathLike) -> str:
    """The container for a path from its suffix; raises for anything we cannot write."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in VIDEO_FORMATS:
        raise VideoError(f"Cannot write '{Path(path).name}': the file must end in one of "
                         f"{', '.join('.' + f for f in VIDEO_FORMATS)}.")
    return fmt


def _ffmpeg_writer(tmp: Path, size: tuple[int, int], fps: float, fmt: str, preset: str, metadata: Mapping[str, str]):
    """moviepy's writer for `tmp` (it starts ffmpeg at once).

    Imported here, so that only a process that writes a video pays for it: moviepy loads all of itself on any import
    (0.10 s of CPU; 0.39 s where IPython is installed, which it imports too).
    """
    from moviepy.video.io.ffmpeg_writer import FFMPEG_VideoWriter

    spec = _FORMATS[fmt]
    tags = [arg for key, value in metadata.items() for arg in ("-metadata", f"{key}={value}")]
    # moviepy always passes -preset (only x264 reads it) and, for even-sized H.264, a trailing `-pix_fmt yuva420p`
    # that x264 cannot take, so ffmpeg falls back to yuv420p: the probe after writing checks what came out.
    return FFMPEG_VideoWriter(str(tmp), size, fps, codec=spec.codec, preset=preset,
                              ffmpeg_params=[*spec.params, *tags, "-f", fmt])


def _reason(ffmpeg_text: str, folder: Path) -> str:
    """What to tell the user about a failed ffmpeg write."""
    if "No space left" in ffmpeg_text:
        return "the disk is full."
    if "Permission denied" in ffmpeg_text or "Read-only file system" in ffmpeg_text:
        return f"the folder {folder} is not writable."
    lines = [line.strip() for line in ffmpeg_text.splitlines() if line.strip()]
    return lines[-1] if lines else "ffmpeg stopped without saying why."


class VideoWriter:
    """Streams RGB frames into ffmpeg through moviepy; use through `open_video_writer` as a context manager.

    Frames are written as they come, so a long clip is never held in memory. Odd sizes are made even by repeating
    the last row/column (yuv420p needs even sizes; a repeated edge is invisible, a black bar is not). The file is
    written under a temporary name (`atomic_write`), probed, and only then renamed to `path`; after a failure
    (or a cancellation raised between frames) nothing is left. The rate is written to 0.01 fps (moviepy passes
    "%.2f" to ffmpeg: 23.976 becomes 23.98).
    """

    def __init__(self, path: str | os.PathLike, fps: float, metadata: Mapping[str, str] | None = None, *,
                 x264_preset: str | None = None) -> None:
        if not (isinstance(fps, (int, float)) and np.isfinite(fps) and MIN_FPS <= fps <= MAX_FPS):
            raise VideoError(f"Playback fps must be between {MIN_FPS:g} and {MAX_FPS:g}, got {fps!r}.")
        if x264_preset is not None and x264_preset not in X264_PRESETS:
            raise ValueError(f"x264_preset must be one of {', '.join(X264_PRESETS)}, got {x264_preset!r}.")
        self.path = Path(path)
        self.format = video_format(self.path)
        self.fps = float(fps)
        self.metadata = dict(metadata or {})
        self.x264_preset = x264_preset or MP4_PRESET  # .mp4 only: WebM and GIF are not encoded with x264
        self.info: VideoInfo | None = None
        self._files = contextlib.ExitStack()
        self._tmp: Path | None = None
        self._ffmpeg = None  # moviepy's FFMPEG_VideoWriter, from the first frame on
        self._size: tuple[int, int] | None = None  # (width, height) after making it even
        self._count = 0

    def __enter__(self) -> VideoWriter:
        self._tmp = self._files.enter_context(atomic_write(self.path))
        self._files.callback(self._stop)  # runs first on the way out: ffmpeg ends before its file is removed
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one HxWx3 uint8 RGB frame; every frame must have the size of the first."""
        if self._tmp is None:
            raise RuntimeError("Use the writer as a context manager: `with open_video_writer(...) as writer:`.")
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"Frames must be HxWx3 uint8 RGB arrays, got {frame.dtype} {frame.shape}.")
        h, w = frame.shape[:2]
        frame = even_sized(frame)
        if self._ffmpeg is None:
            self._size = (frame.shape[1], frame.shape[0])
            self._ffmpeg = _ffmpeg_writer(self._tmp, self._size, self.fps, self.format, self.x264_preset,
                                          self.metadata)
        elif (frame.shape[1], frame.shape[0]) != self._size:
            raise ValueError(f"Frame {self._count} is {w}x{h}; earlier frames were {self._size[0]}x{self._size[1]}.")
        try:
            self._ffmpeg.write_frame(np.ascontiguousarray(frame))
        except OSError as exc:  # moviepy's text: "... while writing file NAME:\n\n FFMPEG'S ERROR[\n\nITS ADVICE]"
            said = str(exc).split(f"{self._tmp}:", 1)[-1].strip().split("\n\n")[0]
            raise VideoError(f"Writing {self.path.name} failed: {_reason(said, self.path.parent)}") from None
        self._count += 1

    def _finish(self) -> VideoInfo:
        """End ffmpeg, check its exit code and what it wrote (moviepy checks neither)."""
        if self._ffmpeg is None:
            raise VideoError(f"No frames were given for {self.path.name}.")
        proc = self._ffmpeg.proc
        try:
            proc.stdin.close()
        except OSError:
            pass  # ffmpeg is gone; its exit code and log below say why
        err = proc.stderr.read().decode(errors="replace")
        if proc.wait() != 0:
            raise VideoError(f"Encoding {self.path.name} failed: {_reason(err, self.path.parent)}")
        self._ffmpeg.close()
        self._ffmpeg = None
        assert self._tmp is not None
        info = probe_video(self._tmp)
        codec, pix_fmt = _FORMATS[self.format].expect
        problems = []
        if info.size_bytes == 0:
            problems.append("it is empty")
        if info.codec != codec or (pix_fmt and info.pix_fmt != pix_fmt):
            problems.append(f"it holds {info.codec}/{info.pix_fmt} instead of {codec}/{pix_fmt}")
        if info.num_frames != self._count:
            problems.append(f"it holds {info.num_frames} frames instead of {self._count}")
        if problems:
            raise VideoError(f"The encoded {self.path.name} is not right: {'; '.join(problems)}.")
        return replace(info, path=self.path)

    def _stop(self) -> None:
        """Stop ffmpeg if it still runs (after a failure); moviepy's own close would flush into a broken pipe."""
        writer, self._ffmpeg = self._ffmpeg, None
        if writer is None or writer.proc is None:
            return
        proc, writer.proc = writer.proc, None
        if proc.poll() is None:
            proc.kill()
        for pipe in (proc.stdin, proc.stderr):
            with contextlib.suppress(OSError):
                pipe.close()
        proc.wait()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if exc_type is None:
            try:
                self.info = self._finish()
            except BaseException:
                if not self._files.__exit__(*sys.exc_info()):
                    raise
                return False
        return self._files.__exit__(exc_type, exc, tb)


def even_sized(frame: np.ndarray) -> np.ndarray:
    """`frame` with its last row and/or column repeated where its height or width is odd (yuv420p needs even)."""
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return frame


def open_video_writer(path: str | os.PathLike, fps: float, *, metadata: Mapping[str, str] | None = None,
                      x264_preset: str | None = None) -> VideoWriter:
    """A streaming writer for `path` (.mp4 H.264 yuv420p, .webm VP9, .gif); see `VideoWriter`.

    ``x264_preset`` (one of `X264_PRESETS`) overrides the .mp4 encoder's speed preset (veryfast); other formats
    ignore it.
    """
    return VideoWriter(path, fps, metadata, x264_preset=x264_preset)


def write_video(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float, *,
                metadata: Mapping[str, str] | None = None, x264_preset: str | None = None) -> VideoInfo:
    """Encode all `frames` to `path` and return the probed result; nothing is left at `path` if it fails."""
    with open_video_writer(path, fps, metadata=metadata, x264_preset=x264_preset) as writer:
        for frame in frames:
            writer.write(frame)
    assert writer.info is not None
    return writer.info
