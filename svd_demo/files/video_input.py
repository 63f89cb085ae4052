"""Reading frames from a video file or a folder of images, as a stream, with size and length caps.

``open_frames(path)`` returns a :class:`VideoSource` whose ``frames`` iterator yields one HxWx3 uint8 RGB frame at a
time, so a long 1080p clip is never held in memory as a whole.

* Video files (mp4, webm, mov, mkv, avi, gif, ...) are decoded by the ffmpeg binary shipped with ``imageio-ffmpeg``
  (``imageio_ffmpeg.read_frames``, not moviepy's reader: see ``_start_decoder``). Audio and subtitle streams are
  ignored. Every decoded frame is delivered once
  (``-fps_mode passthrough``: no frame is dropped or duplicated by ffmpeg).
* Frame rate: the container's *average* frame rate is used (ffmpeg's ``fps`` field, i.e. ``avg_frame_rate``). For a
  variable-frame-rate (VFR) file the frames are treated as evenly spaced at that average rate; they are not
  resampled by their timestamps. ``VideoSource.variable_frame_rate`` is set and ``notes`` says so, so callers can
  show it. Pass ``fps=`` to override the rate.
* Folders: every image file in the folder (png, jpg, jpeg, webp, bmp, tif, tiff), sorted naturally (``frame2``
  before ``frame10``); all images must have the same size; the rate is ``fps=`` (default ``DEFAULT_FOLDER_FPS``).

Caps (module constants, quoted in the error messages): frames at most ``MAX_WIDTH`` x ``MAX_HEIGHT`` (either
orientation) and at least ``MIN_SIDE`` pixels on each side, at most ``MAX_INPUT_FRAMES`` frames and
``MAX_DURATION_S`` seconds. Every problem is reported as :class:`svd_demo.core.errors.VideoInputError` (an
:class:`svd_demo.core.errors.InputError`).

Headers are not trusted further than it takes to refuse them: a 35-byte GIF can claim 16000x16000 pixels, and a
decoder started on it allocates for the claim (1.7 GB). So a video is read in three steps, each only after the one
before passed every cap: its header alone (``-find_stream_info 0``: nothing decoded), then a count of its packets
(stream copy, no decoding), then the decoder. Both ffmpeg runs that may decode are also capped by ffmpeg itself
(``-max_pixels``, ``-max_alloc``), for streams whose header says nothing of their size. Images in a folder are
checked the same way: size from the header, then decoded. ``probe_input`` is the same check without the decoder.
ffmpeg's reports are read by the one parser, ``svd_demo.files.media.parse_ffmpeg_log``.

Nothing heavy is imported here (no torch): numpy, Pillow and imageio-ffmpeg only.
"""

from __future__ import annotations

import math
import os
import pathlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from svd_demo.core.errors import InputError, VideoInputError
from svd_demo.files.media import VideoInfo, ffmpeg_failure, parse_ffmpeg_log, run_ffmpeg

MAX_WIDTH = 3840
"""Largest accepted frame width (or height, for portrait input)."""
MAX_HEIGHT = 2160
"""Largest accepted frame height (or width, for portrait input)."""
MIN_SIDE = 16
"""Smallest accepted frame side in pixels."""
MAX_INPUT_FRAMES = 2000
"""Largest accepted number of input frames."""
MAX_DURATION_S = 600.0
"""Longest accepted input video, in seconds."""
DEFAULT_FOLDER_FPS = 8.0
"""Frame rate assumed for a folder of images when no ``fps`` is given."""
MAX_SOURCE_FPS = 1000.0
"""Largest frame rate accepted as a source rate (from the container or the ``fps`` argument)."""
VFR_TOLERANCE = 0.02
"""Relative gap between the average rate and ffmpeg's base rate (``tbr``) above which a file is reported as VFR."""
VFR_MEASURED_TOLERANCE = 0.1
"""Relative gap between the header rate and frames/duration (files without audio) above which a file is VFR."""
MAX_FRAMES_IN_MEMORY_BYTES = 1_000_000_000
"""Largest clip ``frames_of`` holds in memory, decoded (400 frames of 1024x576 are 0.7 GB)."""
MAX_FFMPEG_ALLOC_BYTES = 256 * 1024 * 1024
"""Largest single allocation ffmpeg may make while reading an input (a 3840x2160 RGB frame is 25 MB)."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".avi", ".gif", ".m4v", ".mpg", ".mpeg", ".ts", ".wmv", ".flv")

_PROBE_TIMEOUT_S = 120


@dataclass(frozen=True)
class VideoSource:
    """An opened input: its geometry and rate, and a one-shot iterator over its frames (HxWx3 uint8 RGB).

    ``num_frames`` is exact for folders and, for videos, the number of video packets in the container (equal to
    the number of frames for all common codecs); ``None`` when it could not be counted. Consumers must not rely on
    it for correctness, only for progress totals. Call :meth:`close` (or exhaust ``frames``) to stop the decoder
    early; the source is also a context manager.
    """

    path: pathlib.Path
    fps: float
    width: int
    height: int
    num_frames: int | None
    frames: Iterator[np.ndarray] = field(repr=False, compare=False)
    kind: str = "video"  # "video" or "folder"
    variable_frame_rate: bool = False
    has_audio: bool = False
    notes: tuple[str, ...] = ()

    def close(self) -> None:
        close = getattr(self.frames, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def natural_key(name: str) -> list:
    """Sort key that orders embedded numbers by value: ``frame2`` < ``frame10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _caps_text() -> str:
    return (
        f"the limits are {MAX_WIDTH}x{MAX_HEIGHT} pixels (either orientation), at least {MIN_SIDE} pixels per side, "
        f"{MAX_INPUT_FRAMES} frames and {MAX_DURATION_S:g} seconds"
    )


def check_frame_size(width: int, height: int, what: str) -> None:
    """Raise InputError when ``width`` x ``height`` is outside the caps."""
    long_side, short_side = max(width, height), min(width, height)
    if long_side > MAX_WIDTH or short_side > MAX_HEIGHT:
        raise VideoInputError(
            f"{what} is {width}x{height} pixels, larger than the maximum of {MAX_WIDTH}x{MAX_HEIGHT} "
            f"(either orientation; {_caps_text()}). Downscale it first (for example to 1920x1080) and try again."
        )
    if short_side < MIN_SIDE:
        raise VideoInputError(
            f"{what} is {width}x{height} pixels; frames must be at least {MIN_SIDE} pixels on each side. "
            "Use a larger video or images."
        )


def check_frame_count(num_frames: int, what: str) -> None:
    """Raise InputError when ``num_frames`` is above ``MAX_INPUT_FRAMES``."""
    if num_frames > MAX_INPUT_FRAMES:
        raise VideoInputError(
            f"{what} has more than {MAX_INPUT_FRAMES} frames, the maximum ({_caps_text()}). "
            "Trim it to a shorter clip (or split it into parts) and try again."
        )


def _check_fps(fps: float, what: str) -> float:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise VideoInputError(f"{what} must be a number of frames per second, got {fps!r}.") from None
    if not math.isfinite(value) or value <= 0 or value > MAX_SOURCE_FPS:
        raise VideoInputError(f"{what} must be a finite number in (0, {MAX_SOURCE_FPS:g}], got {fps!r}.")
    return value


Admit = Callable[[int | None, int | None, int | None], None]
"""A caller's own limit: called with (width, height, frame count) from the header, each None where unknown, before
anything is decoded; it raises an InputError to refuse the input."""


def open_frames(path: str | os.PathLike, *, fps: float | None = None, admit: Admit | None = None) -> VideoSource:
    """Open a video file or a folder of images for streaming; see the module docstring for the rules.

    ``fps`` overrides the frame rate (for folders it defaults to ``DEFAULT_FOLDER_FPS``). ``admit`` adds the
    caller's own limits, checked with the module's caps before the first frame is decoded.
    Raises VideoInputError for a missing, unreadable, empty or oversized input.
    """
    if fps is not None:
        fps = _check_fps(fps, "The frame rate (fps)")
    p = _given_path(path)
    if p.is_dir():
        return _open_folder(p, fps, admit)
    p = _input_file(p)
    if p.suffix.lower() in IMAGE_SUFFIXES:
        raise VideoInputError(
            f"{p.name!r} is a single image; interpolation needs at least 2 frames. "
            "Give a video file or a folder that holds the frames as images."
        )
    return _open_video(p, probe_input(p, admit), fps)


def _given_path(path: str | os.PathLike | None) -> pathlib.Path:
    if path is None or (isinstance(path, str) and not path.strip()):
        raise VideoInputError("No input was given: choose a video file or a folder of images.")
    return pathlib.Path(path).expanduser()


def _input_file(path: str | os.PathLike | None) -> pathlib.Path:
    """``path`` as an existing, non-empty file; raises VideoInputError saying what is wrong with it."""
    p = _given_path(path)
    if not p.exists():
        raise VideoInputError(f"The input {str(p)!r} does not exist. Check the path and try again.")
    if p.is_dir():
        raise VideoInputError(f"The input {str(p)!r} is a folder; choose a video file.")
    if not p.is_file():
        raise VideoInputError(f"The input {str(p)!r} is neither a file nor a folder.")
    if p.stat().st_size == 0:
        raise VideoInputError(f"The file {p.name!r} is empty (0 bytes). Choose a real video file.")
    return p


def frames_of(path: str | os.PathLike, max_frames: int, what: str) -> tuple[list[np.ndarray], float]:
    """Every frame of a short video (or folder) in memory, and its frame rate.

    Refused from the header, before decoding, above ``max_frames`` frames or ``MAX_FRAMES_IN_MEMORY_BYTES`` decoded;
    ``what`` (e.g. "Extending") names the task in the messages.
    """
    name = pathlib.Path(path).name if path else ""
    if name and pathlib.Path(path).suffix.lower() in IMAGE_SUFFIXES and not pathlib.Path(path).is_dir():
        raise VideoInputError(f"{name!r} is a single image; {what} continues a video, so it needs a video file (or a "
                              "folder of frames). To animate a still image, use Image to video (/image_to_video).")

    def admit(width: int | None, height: int | None, count: int | None, more: str = "") -> None:
        if count is None:
            return
        if count > max_frames:
            raise VideoInputError(f"{what} works on clips of up to {max_frames} frames; {name!r} has {more}{count}. "
                                  "Trim it first.")
        if width and height and count * width * height * 3 > MAX_FRAMES_IN_MEMORY_BYTES:
            raise VideoInputError(
                f"{what} holds the whole clip in memory: {more}{count} frames of {width}x{height} are "
                f"{_bytes_text(count * width * height * 3)} decoded, over the limit of "
                f"{_bytes_text(MAX_FRAMES_IN_MEMORY_BYTES)}. Use a shorter or smaller clip (e.g. 1024x576).")

    with open_frames(path, admit=admit) as src:
        frames: list[np.ndarray] = []
        for frame in src.frames:  # a header's count can be missing or wrong: the caps hold while decoding too
            admit(src.width, src.height, len(frames) + 1, "at least ")
            frames.append(frame)
    if not frames:
        raise VideoInputError(f"{src.path.name!r} holds no frames.")
    return frames, src.fps


def _bytes_text(count: int) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e9 else f"{count / 1e6:.1f} MB"


# ----------------------------------------------------------------------------------------------------------- folders


def _list_images(folder: pathlib.Path) -> list[pathlib.Path]:
    files = [
        f for f in folder.iterdir()
        if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES and not f.name.startswith(".")
    ]
    return sorted(files, key=lambda f: natural_key(f.name))


def _read_image(file: pathlib.Path, admit: Admit | None = None) -> np.ndarray:
    """One image as RGB; its size is checked from the header (and by ``admit``) before it is decoded."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(file) as img:
            check_frame_size(*img.size, f"The image {file.name!r}")
            if admit is not None:
                admit(*img.size, None)
            img = ImageOps.exif_transpose(img)
            if img.mode != "RGB":
                if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                    rgba = img.convert("RGBA")
                    canvas = Image.new("RGB", rgba.size, (0, 0, 0))
                    canvas.paste(rgba, mask=rgba.getchannel("A"))
                    img = canvas
                else:
                    img = img.convert("RGB")
            return np.asarray(img, dtype=np.uint8).copy()
    except Image.DecompressionBombError:  # Pillow's own header check, at twice its MAX_IMAGE_PIXELS
        raise VideoInputError(f"The image {file.name!r} is far larger than the maximum of {MAX_WIDTH}x{MAX_HEIGHT} "
                              f"pixels ({_caps_text()}). Downscale it first and try again.") from None
    except InputError:  # ours, or the caller's `admit`
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise VideoInputError(
            f"The image {file.name!r} cannot be read ({exc}). Remove or replace it and try again."
        ) from None


def _open_folder(folder: pathlib.Path, fps: float | None, admit: Admit | None) -> VideoSource:
    files = _list_images(folder)
    if not files:
        raise VideoInputError(
            f"The folder {str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)}). "
            "Put the frames there as numbered image files."
        )
    check_frame_count(len(files), f"The folder {folder.name!r}")
    first = _read_image(files[0], None if admit is None else lambda w, h, _: admit(w, h, len(files)))
    height, width = first.shape[:2]

    def frames() -> Iterator[np.ndarray]:
        yield first
        for file in files[1:]:
            frame = _read_image(file)
            if frame.shape[:2] != (height, width):
                raise VideoInputError(
                    f"The image {file.name!r} is {frame.shape[1]}x{frame.shape[0]} pixels but {files[0].name!r} is "
                    f"{width}x{height}; all frames in a folder must have the same size."
                )
            yield frame

    rate = fps if fps is not None else DEFAULT_FOLDER_FPS
    notes = () if fps is not None else (f"A folder of images has no frame rate; {rate:g} fps is assumed.",)
    return VideoSource(
        path=folder, fps=rate, width=width, height=height, num_frames=len(files), frames=frames(), kind="folder",
        notes=notes,
    )


# ------------------------------------------------------------------------------------------------------------ videos


class _FrameStream(Iterator[np.ndarray]):
    """Iterator over decoded frames whose ``close()`` also stops the ffmpeg process, even before the first frame."""

    def __init__(self, frames: Iterator[np.ndarray], decoder) -> None:
        self._frames = frames
        self._decoder = decoder

    def __next__(self) -> np.ndarray:
        try:
            return next(self._frames)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._frames.close()
        self._decoder.close()


def _guards() -> list[str]:
    """ffmpeg's own limits, for a run that may decode: no frame above the caps' pixels, no huge single allocation."""
    return ["-max_alloc", str(MAX_FFMPEG_ALLOC_BYTES), "-max_pixels", str(MAX_WIDTH * MAX_HEIGHT)]


# The probes below are direct ffmpeg runs: moviepy's `ffmpeg_parse_infos` runs `ffmpeg -i` with no guards and no
# way to add them, lets ffmpeg's stream analysis decode before anything is checked (or, by default, decodes the
# whole file to measure it), and cannot count packets without decoding.


def _probe_header(path: pathlib.Path) -> VideoInfo | None:
    """What the container's header claims (streams, size, rates, duration), read without decoding anything.

    ``-find_stream_info 0`` keeps ffmpeg from reading and decoding frames to fill in what the header leaves out.
    None when the header names no video stream: some formats (MPEG-TS, raw streams) only tell by their packets.
    """
    _, log = run_ffmpeg([*_guards(), "-find_stream_info", "0", "-i", str(path)], repr(path.name),
                        timeout_s=_PROBE_TIMEOUT_S, error=VideoInputError)
    return parse_ffmpeg_log(log, path, path.stat().st_size)


def _probe(path: pathlib.Path) -> VideoInfo:
    """Header (streams, size, rates, duration) and the number of video packets, in one ffmpeg run.

    The packets are counted by a stream copy to the null muxer (no decoding: fast); the count stops past the caps.
    ffmpeg's stream analysis may decode a frame or two to fill in the header: call it only once the header alone
    passed the caps (`_probe_header`). An unreadable, video-less or cut-off file is a VideoInputError.
    """
    _, log = run_ffmpeg(
        [*_guards(), "-i", str(path), "-map", "0:v:0?", "-c", "copy", "-t", f"{MAX_DURATION_S + 1:g}",
         "-frames:v", str(MAX_INPUT_FRAMES + 1), "-f", "null", "-"],
        repr(path.name), timeout_s=_PROBE_TIMEOUT_S, error=VideoInputError,
    )
    info = parse_ffmpeg_log(log, path, path.stat().st_size)
    if info is None:
        if "Stream #" in log:
            raise VideoInputError(f"{path.name!r} has no video stream (only audio or other data). Choose a video "
                                  "file.")
        failure = ffmpeg_failure(log)
        raise VideoInputError(
            f"{path.name!r} is not a readable video file{f' (ffmpeg: {failure})' if failure else ''}. It may be "
            "damaged or in an unsupported format; re-export it as MP4 (H.264) or give a folder of images."
        )
    if "partial file" in log:  # the index promises frames the data does not hold: cut off
        raise VideoInputError(f"{path.name!r} is cut off: the file ends before its last frame (an upload or "
                              "download that did not finish?). Please use the complete file.")
    return info


_HEADER_COUNT_TOLERANCE = 1.05  # duration x rate is an estimate: refuse on it only when clearly past the cap


def _check_probe(info: VideoInfo, what: str) -> None:
    if info.duration is not None and info.duration > MAX_DURATION_S:
        raise VideoInputError(
            f"{what} is {info.duration:.0f} s long, more than the maximum of {MAX_DURATION_S:g} s "
            f"({_caps_text()}). Trim it to a shorter clip and try again."
        )
    if info.width is not None and info.height is not None:
        check_frame_size(info.width, info.height, what)
    if info.num_frames is not None:
        check_frame_count(info.num_frames, what)
    elif info.duration and info.fps and not info.has_audio:  # audio can outlast the video: no estimate
        estimate = info.duration * info.fps
        if estimate > MAX_INPUT_FRAMES * _HEADER_COUNT_TOLERANCE:
            raise VideoInputError(
                f"{what} has more than {MAX_INPUT_FRAMES} frames by its header ({info.duration:g} s at "
                f"{info.fps:g} fps: about {estimate:.0f}), the maximum ({_caps_text()}). Trim it to a shorter "
                "clip and try again."
            )


def probe_input(path: str | os.PathLike, admit: Admit | None = None) -> VideoInfo:
    """A video file given as input, checked against the caps (and ``admit``) from its header before anything is
    decoded, then from a count of its packets: size, rates, duration and frame count. Raises VideoInputError."""
    p = _input_file(path)
    what = f"The video {p.name!r}"
    # One step after another, each only once the one before passed every cap: see the module docstring.
    header = _probe_header(p)
    if header is not None:
        _check_probe(header, what)
        if admit is not None:
            admit(header.width, header.height, None)
    info = _probe(p)
    _check_probe(info, what)
    if admit is not None:
        admit(info.width, info.height, info.num_frames)
    return info


def _start_decoder(path: pathlib.Path):
    """``imageio_ffmpeg.read_frames`` with every decoded frame delivered once; returns (generator, meta).

    Not moviepy's ``FFMPEG_VideoReader``: its constructor probes the file itself, unguarded (and by default decodes
    all of it); its command has no place for ``-max_pixels`` before ``-i``; it converts to a constant rate (a
    12-frame variable-rate clip came out as 24 frames); at the end it repeats the last frame with a warning instead
    of stopping; and it never drains ffmpeg's error pipe, which a damaged file can fill until ffmpeg blocks.
    """
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(
        str(path), pix_fmt="rgb24", input_params=_guards(),
        output_params=["-map", "0:v:0", "-an", "-sn", "-dn", "-fps_mode", "passthrough"],
    )
    try:
        return gen, next(gen)
    except BaseException:
        gen.close()
        raise


def _open_video(path: pathlib.Path, info: VideoInfo, fps: float | None) -> VideoSource:
    """The decoder on a file that `probe_input` passed; the rate from ``fps`` or from the file."""
    what = f"The video {path.name!r}"
    try:
        gen, meta = _start_decoder(path)
    except (OSError, RuntimeError, StopIteration, IndexError, AttributeError, KeyError) as exc:
        raise VideoInputError(
            f"{what} cannot be decoded ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}). "
            "It may be damaged; re-export it as MP4 (H.264) or give a folder of images."
        ) from None
    count = info.num_frames
    notes: list[str] = []
    vfr = False
    if fps is None:
        # Frames per second of the file as a whole; only trusted without audio (audio can outlast the video).
        measured = count / info.duration if count and info.duration and not info.has_audio else None
        rate = info.fps or info.tbr or measured
        if rate is None:
            gen.close()
            raise VideoInputError(f"{what} has no readable frame rate. Give the rate explicitly (fps) and try "
                                  "again.")
        if info.fps and info.tbr and abs(info.fps - info.tbr) > VFR_TOLERANCE * info.tbr:
            vfr = True
        elif measured and abs(measured - rate) > VFR_MEASURED_TOLERANCE * rate:
            vfr, rate = True, measured
        try:
            rate = _check_fps(rate, f"The frame rate of {path.name!r}")
        except InputError:
            gen.close()
            raise
        if vfr:
            notes.append(
                f"{path.name!r} has a variable frame rate; its frames are treated as evenly spaced at the average "
                f"rate of {rate:.3f} fps (not resampled by timestamp)."
            )
    else:
        rate = fps
    if info.has_audio:
        notes.append(f"The audio of {path.name!r} is ignored.")
    width, height = (int(v) for v in meta["size"])
    try:
        check_frame_size(width, height, what)
    except InputError:
        gen.close()
        raise

    def frames() -> Iterator[np.ndarray]:
        index = 0
        while True:
            try:
                raw = next(gen)
            except StopIteration:
                return
            except (RuntimeError, OSError) as exc:
                raise VideoInputError(
                    f"{what} is damaged: frame {index + 1} cannot be decoded "
                    f"({str(exc).splitlines()[0]}). Re-export the video and try again."
                ) from None
            index += 1
            if index > MAX_INPUT_FRAMES:
                check_frame_count(index, what)
            yield np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)

    return VideoSource(
        path=path, fps=rate, width=width, height=height, num_frames=count, frames=_FrameStream(frames(), gen),
        kind="video", variable_frame_rate=vfr, has_audio=info.has_audio, notes=tuple(notes),
    )
