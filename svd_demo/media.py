"""Video files: encode frames to MP4 / WebM / GIF that browsers play, probe what was written, read its metadata.

We drive the ffmpeg binary that imageio-ffmpeg ships directly instead of going through moviepy: moviepy 2.2 writes
yuv444p for odd sizes (browsers refuse it) and, forced to yuv420p, leaves a 0-byte file without raising. Here every
file is written under a temporary name, probed, and only then renamed into place, so a failed encode leaves nothing.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from svd_demo.errors import EncodeError

VIDEO_FORMATS = ("mp4", "webm", "gif")

# What each container needs so that Chrome, Firefox and Safari play it: H.264 must be yuv420p, and faststart puts
# the index first so playback begins before the whole file has arrived.
_CODEC_ARGS: dict[str, list[str]] = {
    "mp4": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-movflags", "+faststart"],
    "webm": ["-c:v", "libvpx-vp9", "-crf", "32", "-b:v", "0", "-row-mt", "1", "-deadline", "good", "-cpu-used", "5",
             "-pix_fmt", "yuv420p"],
    # One palette for the whole clip: far better colour than ffmpeg's default fixed palette.
    "gif": ["-filter_complex", "[0:v]split[a][b];[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=sierra2_4a",
            "-loop", "0"],
}
_EXPECTED_CODEC = {"mp4": ("h264", "yuv420p"), "webm": ("vp9", "yuv420p"), "gif": ("gif", None)}
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
"""Speed presets of libx264 (faster = larger file at the same quality); .mp4 uses veryfast unless told otherwise."""


@dataclass(frozen=True)
class VideoInfo:
    """What a written (or uploaded) video file holds, as ffmpeg reports it."""

    path: Path
    codec: str
    pix_fmt: str | None
    width: int
    height: int
    fps: float
    num_frames: int
    duration: float
    size_bytes: int


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped by imageio-ffmpeg (no system ffmpeg needed)."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def video_format(path: str | os.PathLike) -> str:
    """The container for a path from its suffix; raises for anything we cannot write."""
    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in VIDEO_FORMATS:
        raise EncodeError(f"Cannot write '{Path(path).name}': the file must end in one of "
                          f"{', '.join('.' + f for f in VIDEO_FORMATS)}.")
    return fmt


class VideoWriter:
    """Streams RGB frames into ffmpeg; use through `open_video_writer` as a context manager.

    Frames are written as they come, so a long clip is never held in memory. Odd sizes are made even by repeating
    the last row/column (yuv420p needs even sizes; a repeated edge is invisible, a black bar is not).
    """

    def __init__(self, path: str | os.PathLike, fps: float, metadata: Mapping[str, str] | None = None, *,
                 x264_preset: str | None = None) -> None:
        if not (isinstance(fps, (int, float)) and np.isfinite(fps) and 0 < fps <= 240):
            raise EncodeError(f"Playback fps must be between 0 and 240, got {fps!r}.")
        if x264_preset is not None and x264_preset not in X264_PRESETS:
            raise ValueError(f"x264_preset must be one of {', '.join(X264_PRESETS)}, got {x264_preset!r}.")
        self.path = Path(path)
        self.format = video_format(self.path)
        self.fps = float(fps)
        self.metadata = dict(metadata or {})
        self.x264_preset = x264_preset  # .mp4 only: WebM and GIF are not encoded with x264
        self.info: VideoInfo | None = None
        self._tmp = self.path.with_name(f".{self.path.stem}.partial-{uuid.uuid4().hex[:8]}.{self.format}")
        self._proc: subprocess.Popen[bytes] | None = None
        self._size: tuple[int, int] | None = None  # (width, height) after making it even
        self._count = 0

    def __enter__(self) -> VideoWriter:
        return self

    def _start(self, width: int, height: int) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EncodeError(f"Cannot create the output folder {self.path.parent}: {exc.strerror}.") from exc
        cmd = [ffmpeg_exe(), "-y", "-hide_banner", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-framerate", f"{self.fps:g}", "-i", "-", *_CODEC_ARGS[self.format]]
        if self.format == "mp4" and self.x264_preset is not None:
            cmd[cmd.index("-preset") + 1] = self.x264_preset
        for key, value in self.metadata.items():
            cmd += ["-metadata", f"{key}={value}"]
        cmd += ["-f", self.format, str(self._tmp)]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._size = (width, height)

    def write(self, frame: np.ndarray) -> None:
        """Append one HxWx3 uint8 RGB frame; every frame must have the size of the first."""
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"Frames must be HxWx3 uint8 RGB arrays, got {frame.dtype} {frame.shape}.")
        h, w = frame.shape[:2]
        if h % 2 or w % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        if self._proc is None:
            self._start(frame.shape[1], frame.shape[0])
        elif (frame.shape[1], frame.shape[0]) != self._size:
            raise ValueError(f"Frame {self._count} is {w}x{h}; earlier frames were {self._size[0]}x{self._size[1]}.")
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        except (BrokenPipeError, OSError) as exc:
            raise EncodeError(f"Writing {self.path.name} failed: {self._ffmpeg_error()}") from exc
        self._count += 1

    def _ffmpeg_error(self) -> str:
        assert self._proc is not None
        if self._proc.stdin and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except OSError:
                pass  # the pipe is already broken; the reason is in stderr
        err = self._proc.stderr.read().decode(errors="replace").strip() if self._proc.stderr else ""
        self._proc.wait()
        if "No space left" in err:
            return "the disk is full."
        if "Permission denied" in err or "Read-only file system" in err:
            return f"the folder {self.path.parent} is not writable."
        return err.splitlines()[-1] if err else f"ffmpeg exited with code {self._proc.returncode}."

    def _finish(self) -> VideoInfo:
        if self._proc is None:
            raise EncodeError(f"No frames were given for {self.path.name}.")
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.close()
        except OSError as exc:
            raise EncodeError(f"Writing {self.path.name} failed: {self._ffmpeg_error()}") from exc
        err = self._proc.stderr.read().decode(errors="replace").strip() if self._proc.stderr else ""
        if self._proc.wait() != 0:
            reason = "the disk is full." if "No space left" in err else (err.splitlines()[-1] if err else "unknown")
            raise EncodeError(f"Encoding {self.path.name} failed: {reason}")
        info = probe_video(self._tmp)
        codec, pix_fmt = _EXPECTED_CODEC[self.format]
        problems = []
        if info.codec != codec or (pix_fmt and info.pix_fmt != pix_fmt):
            problems.append(f"it holds {info.codec}/{info.pix_fmt} instead of {codec}/{pix_fmt}")
        if info.num_frames != self._count:
            problems.append(f"it holds {info.num_frames} frames instead of {self._count}")
        if info.size_bytes == 0:
            problems.append("it is empty")
        if problems:
            raise EncodeError(f"The encoded {self.path.name} is not right: {'; '.join(problems)}.")
        try:
            os.replace(self._tmp, self.path)
        except OSError as exc:
            raise EncodeError(f"Could not move the finished video to {self.path}: {exc.strerror}.") from exc
        return VideoInfo(**{**info.__dict__, "path": self.path})

    def _abort(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._proc is not None and self._proc.stderr:
            self._proc.stderr.close()
        try:
            self._tmp.unlink(missing_ok=True)
        except OSError:
            pass  # the folder itself is missing or unusable: there is nothing to clean up

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self._abort()
            return
        try:
            self.info = self._finish()
        finally:
            self._abort()  # no-op after a clean finish; removes the temporary file after a failed one


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


_STREAM_RE = re.compile(r"Stream #\S+.*?: Video: (\w+)[^,]*(?:, (\w+)(?:\([^)]*\))?)?, (\d+)x(\d+)")
_FPS_RE = re.compile(r"([\d.]+) (?:fps|tbr)")
_DURATION_RE = re.compile(r"Duration: (\d+):(\d+):([\d.]+)")
_FRAMES_RE = re.compile(r"frame=\s*(\d+)")


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Codec, pixel format, size, fps and frame count of a video file (one ffmpeg run, no decoding)."""
    path = Path(path)
    size = path.stat().st_size if path.exists() else 0
    # Stream copy counts the packets (one per frame here) without decoding: a tenth of the time for long clips.
    proc = subprocess.run([ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy",
                           "-f", "null", "-"], capture_output=True, text=True, errors="replace", timeout=600)
    log = proc.stderr
    stream = _STREAM_RE.search(log)
    if proc.returncode != 0 or stream is None:
        last = log.strip().splitlines()[-1] if log.strip() else "no output"
        raise EncodeError(f"'{path.name}' is not a readable video ({last}).")
    header = log[stream.start():].splitlines()[0]
    fps_match = _FPS_RE.search(header)
    dur = _DURATION_RE.search(log)
    frames = _FRAMES_RE.findall(log)
    return VideoInfo(
        path=path,
        codec=stream.group(1),
        pix_fmt=stream.group(2),
        width=int(stream.group(3)),
        height=int(stream.group(4)),
        fps=float(fps_match.group(1)) if fps_match else 0.0,
        num_frames=int(frames[-1]) if frames else 0,
        duration=int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else 0.0,
        size_bytes=size,
    )


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The container's global metadata tags (e.g. the `comment` that holds our parameters as JSON)."""
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
