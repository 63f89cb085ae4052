"""Loading user images safely and fitting them to the video frame size SVD expects.

Nothing here imports torch, gradio or diffusers: the UI imports this module at start-up.
"""

from __future__ import annotations

import io
import math
import operator
import os
import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image, ImageColor, ImageOps, UnidentifiedImageError

from svd_demo.core.errors import InputError
from svd_demo.core.params import ASPECT_MODES, SPECS

DEFAULT_MAX_PIXELS = 25_000_000  # a 6000x4000 DSLR photo fits; a 36 MP decompression bomb does not
MIN_SIDE = 16  # smaller images carry no usable content and break resampling maths
TRAINED_ASPECT = 16 / 9  # SVD was trained at 1024x576
MAX_NATIVE_ASPECT = 3.0  # native mode clamps to between 1:3 and 3:1; SVD degrades badly beyond that
MIN_RESOLUTION = int(SPECS["resolution"].minimum)  # one range for the slider, the CLI, the API and this check
MAX_RESOLUTION = int(SPECS["resolution"].maximum)
MIN_SHORT_SIDE = 64
_SNAP_TOLERANCE = 0.03  # a multiple of 64 is preferred only if it bends the aspect ratio by at most 3%
_NOTICE_CUT = 0.005  # crops below half a percent are only rounding, not worth telling the user about
# reduce() by an integer factor first, then LANCZOS over at least 2x: a 6000x4000 photo to 1024x576 takes about
# 0.1 s instead of 0.23 s on one core, and the difference is invisible at video scale.
_REDUCING_GAP = 2.0

ImageSource = str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image
Color = tuple[int, int, int] | str

_FORMATS_HINT = "PNG, JPEG, WebP, GIF, BMP, TIFF"
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_ANIMATED_FORMATS = ("GIF", "PNG", "WEBP", "AVIF")
_BOMB_SIZE = re.compile(r"Image size \((\d+) pixels\)")
_BOMB_LIMIT = re.compile(r"exceeds limit of (\d+) pixels")


@dataclass(frozen=True)
class LoadedImage:
    """A decoded, upright RGB image plus what was changed to get it there."""

    image: Image.Image  # mode "RGB", upright, fully loaded, owns its pixels
    notices: tuple[str, ...]  # sentences for the user, e.g. "The image is animated; its first frame was used."
    original_size: tuple[int, int]  # (width, height) of the upright image as decoded (equals image.size)


@dataclass(frozen=True)
class PreparedImage:
    """An RGB image of exactly the video frame size, plus what was done to fit it."""

    image: Image.Image
    notices: tuple[str, ...]


# ---------------------------------------------------------------------------------------------------------------
# Loading


def load_image(
    source: ImageSource | None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    background: Color = (255, 255, 255),
    min_side: int | None = None,
) -> LoadedImage:
    """Decode a path, bytes or PIL image into an upright RGB image; InputError if it is unusable.

    The pixel cap is enforced from the header before any pixel is decoded. Transparent areas are
    composited onto ``background``. A PIL input is never modified; the result is always a new image.
    With ``min_side`` (the video's long side), a large JPEG is decoded at 1/2, 1/4 or 1/8 scale in the DCT
    domain, several times faster, as long as both of its sides stay at least ``min_side``: every crop and
    resize afterwards still shrinks, never enlarges.
    """
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < MIN_SIDE * MIN_SIDE:
        raise ValueError(f"max_pixels must be an int >= {MIN_SIDE * MIN_SIDE}, got {max_pixels!r}")
    bg = _parse_color(background, "background")
    if isinstance(source, Image.Image):
        return _decode(source, _describe(source), max_pixels, bg, owned=False)
    with _open(source, max_pixels) as (im, what):
        return _decode(im, what, max_pixels, bg, owned=True, min_side=min_side)


def read_image_header(source: ImageSource | None) -> tuple[int, int, str]:
    """Return (width, height, format) from the header only, without decoding pixels.

    The size is the upright size (EXIF rotation applied), i.e. what ``load_image(...).image.size`` gives.
    The format is Pillow's name ("PNG", "JPEG", "WEBP", "GIF", ...); multi-picture JPEGs (MPO) report "JPEG".
    """
    if isinstance(source, Image.Image):
        w, h = _upright_size(source)
        return w, h, _format_name(source)
    with _open(source, None) as (im, _what):
        w, h = _upright_size(im)
        return w, h, _format_name(im)


@contextmanager
def _open(source: ImageSource | None, max_pixels: int | None) -> Iterator[tuple[Image.Image, str]]:
    """Open ``source`` lazily (header only) and close the file afterwards; Pillow errors become InputError."""
    what, fp = _resolve_source(source)
    try:
        with Image.open(fp) as im:
            yield im, what
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow refuses (or, under -W error, warns about) images beyond its own limit before we see the size.
        raise _too_large_from_pillow(what, exc, max_pixels) from exc
    except UnidentifiedImageError as exc:
        raise _unreadable(what, None, _sniff_unsupported(fp)) from exc
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        # Pillow reports corrupt and truncated data with any of these, at open() or at load().
        raise _unreadable(what, exc, None) from exc


def _resolve_source(source: ImageSource | None) -> tuple[str, str | io.BytesIO]:
    """Validate the source and return (description for messages, what to hand to Image.open)."""
    if source is None:
        raise InputError(f"No image was given. Please upload an image ({_FORMATS_HINT}).")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise InputError("The uploaded image is empty (0 bytes). Please upload the image again.")
        return "The uploaded file", io.BytesIO(data)
    if isinstance(source, (str, os.PathLike)):
        path_str = os.fspath(source)
        if not path_str:
            raise InputError(f"No image was given. Please upload an image ({_FORMATS_HINT}).")
        path = Path(path_str)
        what = f"The image file '{path.name}'"
        if not path.exists():
            raise InputError(f"{what} does not exist ({path}). Please choose the image again.")
        if path.is_dir():
            raise InputError(f"'{path}' is a folder, not an image file. Please choose an image file.")
        if path.stat().st_size == 0:
            raise InputError(f"{what} is empty (0 bytes). Please choose another file or upload it again.")
        return what, path_str
    raise TypeError(f"load_image expects a path, bytes or a PIL image, not {type(source).__name__}")


def _decode(
    im: Image.Image,
    what: str,
    max_pixels: int,
    background: tuple[int, int, int],
    *,
    owned: bool,
    min_side: int | None = None,
) -> LoadedImage:
    """Check the header size, decode the first frame, make it upright and convert it to RGB."""
    w, h = im.size
    _check_size(what, w, h, max_pixels)
    notices: list[str] = []
    frame = im.tell()
    try:
        n_frames = _n_frames(im)
        if n_frames > 1:
            im.seek(0)
            if _format_name(im) in _ANIMATED_FORMATS:
                notices.append("The image is animated; its first frame was used.")
            elif _format_name(im) != "JPEG":  # MPO: frame 0 is the photo, the rest are previews/depth maps
                notices.append(f"The file holds {n_frames} images; the first one was used.")
        if im.size != (w, h):  # a first frame bigger than the header announced must not dodge the cap
            _check_size(what, *im.size, max_pixels)
        reduced_16 = _has_16_bit_samples(im)
        original_size = _upright_size(im)
        if min_side and _format_name(im) == "JPEG" and min(im.size) >= 2 * min_side:
            scale = min_side / min(im.size)
            im.draft(im.mode, (math.ceil(im.width * scale), math.ceil(im.height * scale)))
        im.load()
        upright = _exif_transpose(im, notices)  # always a new image, so the caller's PIL input is never touched
        rgb = _to_rgb(upright, background, notices, reduced_16=reduced_16)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise _too_large_from_pillow(what, exc, max_pixels) from exc
    except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
        raise _unreadable(what, exc, None) from exc
    finally:
        if not owned and im.tell() != frame:
            im.seek(frame)  # leave the caller's image on the frame it was on
    return LoadedImage(image=rgb, notices=tuple(notices), original_size=original_size)


def _n_frames(im: Image.Image) -> int:
    return int(getattr(im, "n_frames", 1))


def _check_size(what: str, w: int, h: int, max_pixels: int) -> None:
    if w * h > max_pixels:
        raise InputError(
            f"{what} is {w}x{h} ({w * h / 1e6:.1f} megapixels); the limit is {max_pixels / 1e6:.1f} megapixels. "
            "Please use a smaller image."
        )
    if w < MIN_SIDE or h < MIN_SIDE:
        raise InputError(
            f"{what} is only {w}x{h} pixels; both sides must be at least {MIN_SIDE} pixels. Please use a larger image."
        )


def _has_16_bit_samples(im: Image.Image) -> bool:
    """True if the file stores 16-bit samples that Pillow silently reduces to 8 bits (e.g. 48-bit RGB PNG)."""
    if im.mode in _SIXTEEN_BIT_MODES or im.mode in ("I", "F"):
        return False  # these keep their depth; _to_rgb scales them and says so
    for tile in getattr(im, "tile", None) or ():
        args = tile[3] if len(tile) > 3 else None
        rawmode = args if isinstance(args, str) else (args[0] if isinstance(args, tuple) and args else None)
        if isinstance(rawmode, str) and ";16" in rawmode:
            return True
    return False


def _exif_transpose(im: Image.Image, notices: list[str]) -> Image.Image:
    """Rotate/flip by the EXIF orientation tag so phone photos come out upright; always returns a new image."""
    try:
        out = ImageOps.exif_transpose(im)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError, struct.error) as exc:
        # A mangled EXIF block should not make an otherwise fine photo unusable, but the user must know.
        notices.append(
            f"The photo's orientation tag could not be read ({exc}), so it was used as stored; "
            "if it looks sideways, rotate it before uploading."
        )
        out = im.copy()
    assert out is not None  # in_place=False always returns an image
    return out


def _to_rgb(im: Image.Image, background: tuple[int, int, int], notices: list[str], *, reduced_16: bool) -> Image.Image:
    """Convert any Pillow mode to RGB without clipping high-depth data or blackening transparent areas."""
    mode = im.mode
    if mode in _SIXTEEN_BIT_MODES or mode in ("I", "F"):
        return _high_depth_to_rgb(im, notices)
    if reduced_16:
        notices.append("The image has 16 bits per channel; it was converted to 8 bits.")
    if im.has_transparency_data:
        try:
            rgba = im.convert("RGBA")
        except ValueError as exc:
            raise _unsupported_mode(mode) from exc
        alpha = rgba.getchannel("A")
        lowest_alpha, _ = alpha.getextrema()
        if lowest_alpha == 255:  # an alpha channel that is fully opaque changes nothing
            return rgba.convert("RGB")
        out = Image.new("RGB", rgba.size, background)
        out.paste(rgba.convert("RGB"), (0, 0), alpha)
        notices.append(f"The image has transparent areas; they were filled with {_color_name(background)}.")
        return out
    if mode == "RGB":
        return im
    if mode == "CMYK":
        notices.append("The image uses CMYK (print) colours; it was converted to RGB, so colours may shift slightly.")
    try:
        return im.convert("RGB")
    except ValueError as exc:
        raise _unsupported_mode(mode) from exc


def _high_depth_to_rgb(im: Image.Image, notices: list[str]) -> Image.Image:
    """Scale 16-bit, 32-bit integer and float greyscale to 0-255 by their real range (convert() would clip)."""
    arr = np.asarray(im)
    if im.mode in _SIXTEEN_BIT_MODES:
        scaled = arr.astype(np.float32) / 257.0
        notices.append("The image has 16 bits per channel; it was converted to 8 bits.")
    elif im.mode == "I":
        lo, hi = int(arr.min()), int(arr.max())
        if lo >= 0 and hi <= 255:
            scaled = arr.astype(np.float32)  # 8-bit values in a 32-bit container: nothing to scale
        elif lo >= 0 and hi <= 65535:
            scaled = arr.astype(np.float32) / 257.0
            notices.append("The image has 16 bits per channel; it was converted to 8 bits.")
        else:
            scaled = (arr.astype(np.float64) - lo) * (255.0 / (hi - lo))
            notices.append(f"The image's pixel values range from {lo} to {hi}; they were scaled to 0-255.")
    else:  # "F"
        finite = np.isfinite(arr)
        if not finite.any():
            raise InputError(
                "The image has no valid pixel values (all are NaN or infinite). Please use another image."
            )
        if not finite.all():
            notices.append(f"{int((~finite).sum())} pixels were not numbers (NaN or infinite) and were set to black.")
        values = arr[finite]
        lo, hi = float(values.min()), float(values.max())
        clean = np.where(finite, arr, lo).astype(np.float32)
        if lo >= 0.0 and hi <= 1.0:
            scaled = clean * 255.0
            notices.append("The image has floating-point pixels from 0 to 1; they were scaled to 0-255.")
        elif hi > lo:
            scaled = (clean - lo) * (255.0 / (hi - lo))
            notices.append(f"The image has floating-point pixels from {lo:g} to {hi:g}; they were scaled to 0-255.")
        else:
            scaled = np.full_like(clean, min(max(lo, 0.0), 255.0))
            notices.append(f"The image has floating-point pixels that are all {lo:g}; it was made a flat grey.")
        scaled = np.where(finite, scaled, 0.0)
    out = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(out).convert("RGB")


def _upright_size(im: Image.Image) -> tuple[int, int]:
    w, h = im.size
    return (h, w) if _orientation(im) in (5, 6, 7, 8) else (w, h)


def _orientation(im: Image.Image) -> int:
    """EXIF orientation from metadata only (1 if absent)."""
    if _format_name(im) == "PNG" and "exif" not in im.info:
        return 1  # PNG's getexif() would decode the whole image looking for a late eXIf chunk
    try:
        return int(im.getexif().get(ExifTags.Base.Orientation, 1))
    except (OSError, SyntaxError, ValueError, KeyError, TypeError, struct.error):
        return 1  # same as load_image: an unreadable tag means the image is used as stored


def _format_name(im: Image.Image) -> str:
    fmt = im.format or ""
    return "JPEG" if fmt == "MPO" else fmt


def _describe(im: Image.Image) -> str:
    name = getattr(im, "filename", "") or ""
    return f"The image file '{Path(name).name}'" if name else "The image"


def _sniff_unsupported(fp: str | io.BytesIO) -> str | None:
    """Name well-known formats Pillow cannot read, so the message can say what to do."""
    try:
        if isinstance(fp, io.BytesIO):
            head = fp.getvalue()[:512]
        else:
            with open(fp, "rb") as f:
                head = f.read(512)
    except OSError:
        return None
    text = head.lstrip().lower()
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in text):
        return "SVG is a vector drawing format and is not supported; please export it as PNG first."
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"heim", b"heis"):
        return "HEIC/HEIF photos are not supported; please export or convert it to JPEG or PNG first."
    if head.startswith(b"%PDF"):
        return "PDF documents are not supported; please export the page as PNG or JPEG first."
    video = _video_container(head)
    if video:
        return (f"it is a video ({video}), not a still image. Give a photo here; a video can be continued with "
                "Extend (/extend_video) or smoothed with Frame interpolation (/interpolate).")
    return None


def _video_container(head: bytes) -> str | None:
    """The container a file's first bytes announce, for the common video formats (None for anything else)."""
    if head[4:8] == b"ftyp":
        return "MP4 or MOV"  # HEIC shares the box layout and is caught before this
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "WebM or MKV"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "AVI"
    if head.startswith(b"YUV4MPEG2"):
        return "raw YUV4MPEG2"
    return None


def _unreadable(what: str, exc: BaseException | None, hint: str | None) -> InputError:
    if hint:
        return InputError(f"{what} could not be read as an image: {hint}")
    detail = str(exc) if exc is not None else ""
    if "truncated" in detail.lower():
        reason = " It seems to be cut off (truncated), e.g. by an interrupted download or copy."
    elif detail:
        reason = f" The decoder said: {detail}."
    else:
        reason = ""
    return InputError(
        f"{what} could not be read as an image ({_FORMATS_HINT}, ...).{reason} "
        "It may be damaged or not an image at all; please re-save it or choose another file."
    )


def _too_large_from_pillow(what: str, exc: BaseException, max_pixels: int | None) -> InputError:
    match = _BOMB_SIZE.search(str(exc))
    size = f" ({int(match.group(1)) / 1e6:.1f} megapixels)" if match else ""
    # Pillow's message carries its limit (MAX_IMAGE_PIXELS, or twice that for the hard error); quote the stricter.
    pillow_limit = _BOMB_LIMIT.search(str(exc))
    limit = max_pixels or DEFAULT_MAX_PIXELS
    if pillow_limit:
        limit = min(limit, int(pillow_limit.group(1)))
    return InputError(
        f"{what} is too large{size}; the limit is {limit / 1e6:.1f} megapixels. Please use a smaller image."
    )


def _unsupported_mode(mode: str) -> InputError:
    return InputError(
        f"The image uses the colour mode '{mode}', which is not supported. Please save it as an ordinary RGB "
        "PNG or JPEG and try again."
    )


def _parse_color(value: Any, what: str) -> tuple[int, int, int]:
    """Accept (r, g, b) or a CSS colour string ('#ff8800', 'white', 'rgba(0,0,0,1)' from a colour picker)."""
    if isinstance(value, str):
        try:
            rgb = ImageColor.getrgb(value.strip())
        except ValueError as exc:
            raise InputError(f"'{value}' is not a colour the {what} can use; use e.g. '#000000' or 'white'.") from exc
        return int(rgb[0]), int(rgb[1]), int(rgb[2])
    if (
        isinstance(value, (tuple, list))
        and len(value) == 3
        and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value)
    ):
        return int(value[0]), int(value[1]), int(value[2])
    raise InputError(f"The {what} colour must be three numbers from 0 to 255 (red, green, blue); got {value!r}.")


def _color_name(color: tuple[int, int, int]) -> str:
    names = {(255, 255, 255): "white", (0, 0, 0): "black"}
    return names.get(color, "the colour #{:02x}{:02x}{:02x}".format(*color))


# ---------------------------------------------------------------------------------------------------------------
# Video frame size


def output_size(width: int, height: int, resolution: int, aspect_mode: str) -> tuple[int, int]:
    """(width, height) of the video for a photo of ``width`` x ``height``.

    ``resolution`` is the long side. "crop" and "pad" give 16:9 landscape like SVD's 1024x576; "native" keeps
    the photo's shape and orientation, clamped to between 1:3 and 3:1. Both sides are multiples of 8.
    """
    width = _as_int(width, "image width")
    height = _as_int(height, "image height")
    if width < 1 or height < 1:
        raise InputError(f"The image size {width}x{height} is not valid; both sides must be at least 1 pixel.")
    resolution = _check_resolution(resolution)
    mode = _check_mode(aspect_mode)
    if mode != "native":
        return resolution, _snap_short_side(resolution, TRAINED_ASPECT)
    aspect = _clamp_aspect(width / height)
    if aspect >= 1.0:
        return resolution, _snap_short_side(resolution, aspect)
    return _snap_short_side(resolution, 1.0 / aspect), resolution


def _snap_short_side(long_side: int, ratio: float) -> int:
    """Short side for ``long_side`` at ``ratio`` (>= 1): a multiple of 64 if within 3% of the aspect, else of 8."""
    exact = long_side / ratio
    by_64 = min(long_side - long_side % 64, max(MIN_SHORT_SIDE, 64 * math.floor(exact / 64 + 0.5)))
    if by_64 >= MIN_SHORT_SIDE and abs(long_side / by_64 - ratio) / ratio <= _SNAP_TOLERANCE:
        return by_64
    return min(long_side, max(MIN_SHORT_SIDE, 8 * math.floor(exact / 8 + 0.5)))


def _clamp_aspect(aspect: float) -> float:
    return min(MAX_NATIVE_ASPECT, max(1.0 / MAX_NATIVE_ASPECT, aspect))


def _check_resolution(resolution: Any) -> int:
    value = _as_int(resolution, "resolution")
    if value % 8 or not MIN_RESOLUTION <= value <= MAX_RESOLUTION:
        raise InputError(
            f"The resolution must be a multiple of 8 from {MIN_RESOLUTION} to {MAX_RESOLUTION} pixels "
            f"(e.g. 1024, 768 or 512); got {resolution}."
        )
    return value


def _check_mode(aspect_mode: Any) -> str:
    if aspect_mode not in ASPECT_MODES:
        raise InputError(f"Unknown aspect mode {aspect_mode!r}; choose one of: {', '.join(ASPECT_MODES)}.")
    return str(aspect_mode)


def _as_int(value: Any, what: str) -> int:
    """Accept ints and integral floats (UI sliders send 1024.0); refuse anything else with a clear message."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, bool):
        try:
            return operator.index(value)
        except TypeError:
            pass  # falls through to the error below
    raise InputError(f"The {what} must be a whole number; got {value!r}.")


# ---------------------------------------------------------------------------------------------------------------
# Fitting the image to the frame


def prepare_image(
    image: Image.Image,
    resolution: int,
    aspect_mode: str,
    *,
    pad_color: Color = (0, 0, 0),
) -> PreparedImage:
    """Crop, pad or resize ``image`` to exactly ``output_size(...)`` with LANCZOS; notices say what happened.

    crop: cover the frame and centre-crop. pad: fit inside and letterbox with ``pad_color``.
    native: centre-crop only what the 1:3..3:1 clamp and size rounding require, then resize.
    A non-RGB input is converted first (transparent areas become white), with a notice.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"prepare_image expects a PIL image, not {type(image).__name__}")
    mode = _check_mode(aspect_mode)
    color = _parse_color(pad_color, "padding")
    target = output_size(image.width, image.height, resolution, mode)
    notices: list[str] = []
    rgb = image
    if image.mode != "RGB":
        try:
            rgb = _to_rgb(image, (255, 255, 255), notices, reduced_16=False)
        except (OSError, SyntaxError, ValueError, struct.error, EOFError) as exc:
            raise _unreadable(_describe(image), exc, None) from exc
    out = _pad(rgb, target, color, notices) if mode == "pad" else _crop(rgb, target, mode, notices)
    if out is image:
        out = out.copy()  # never hand back (and let callers mutate) the caller's object
    return PreparedImage(image=out, notices=tuple(notices))


def _crop(im: Image.Image, target: tuple[int, int], mode: str, notices: list[str]) -> Image.Image:
    w, h = im.size
    tw, th = target
    box, axis, cut = _cover_box(w, h, tw / th)
    if cut >= _NOTICE_CUT:
        if mode == "crop":
            shape = "16:9"
        elif _clamp_aspect(w / h) != w / h:
            shape = "3:1" if w > h else "1:3"
        else:
            shape = ""
        if shape:
            extra = ", the most extreme shape supported" if mode == "native" else ""
            notices.append(f"Cropped to {shape} ({tw}x{th}){extra}: {_percent(cut)} of the {axis} was cut.")
        else:
            notices.append(f"Cropped slightly to fit {tw}x{th}: {_percent(cut)} of the {axis} was cut.")
    elif (w, h) != (tw, th):
        notices.append(f"Resized to {tw}x{th}.")
    if (w, h) == (tw, th):
        return im
    return im.resize((tw, th), Image.Resampling.LANCZOS, box=box, reducing_gap=_REDUCING_GAP)


def _cover_box(w: int, h: int, ratio: float) -> tuple[tuple[float, float, float, float], str, float]:
    """Centred box of the given aspect covering as much of a w x h image as possible, the cut axis and fraction."""
    if w / h > ratio:
        keep = h * ratio
        x0 = (w - keep) / 2
        return (x0, 0.0, x0 + keep, float(h)), "width", 1.0 - keep / w
    keep = w / ratio
    y0 = (h - keep) / 2
    return (0.0, y0, float(w), y0 + keep), "height", 1.0 - keep / h


def _pad(im: Image.Image, target: tuple[int, int], color: tuple[int, int, int], notices: list[str]) -> Image.Image:
    w, h = im.size
    tw, th = target
    scale = min(tw / w, th / h)
    nw = min(tw, max(1, round(w * scale)))
    nh = min(th, max(1, round(h * scale)))
    if (nw, nh) == (w, h):
        fitted = im
    else:
        fitted = im.resize((nw, nh), Image.Resampling.LANCZOS, reducing_gap=_REDUCING_GAP)
    if (nw, nh) == (tw, th):
        if (w, h) != (tw, th):
            notices.append(f"Resized to {tw}x{th}.")
        return fitted
    canvas = Image.new("RGB", (tw, th), color)
    canvas.paste(fitted, ((tw - nw) // 2, (th - nh) // 2))
    sides = "left and right" if nw < tw else "top and bottom"
    notices.append(f"Padded to 16:9 ({tw}x{th}) with bars on the {sides}.")
    return canvas


def _percent(fraction: float) -> str:
    if fraction > 0.99:
        return "more than 99%"
    if fraction < 0.01:
        return "less than 1%"
    return f"{round(fraction * 100)}%"


def frame_to_size(image: Image.Image, size: tuple[int, int], aspect_mode: str, *,
                  pad_color: Color = (0, 0, 0)) -> PreparedImage:
    """``image`` fitted to exactly ``size`` (another photo's frame) with ``aspect_mode``: pad letterboxes; crop and
    native cover the frame and centre-crop (native keeps the first photo's shape, which this one must take)."""
    if not isinstance(image, Image.Image):
        raise TypeError(f"frame_to_size expects a PIL image, not {type(image).__name__}")
    mode = _check_mode(aspect_mode)
    color = _parse_color(pad_color, "padding")
    notices: list[str] = []
    rgb = image if image.mode == "RGB" else _to_rgb(image, (255, 255, 255), notices, reduced_16=False)
    if mode == "pad":
        return PreparedImage(image=_pad(rgb, size, color, notices).copy(), notices=tuple(notices))
    w, h = rgb.size
    _, axis, cut = _cover_box(w, h, size[0] / size[1])
    if cut >= _NOTICE_CUT:
        notices.append(f"Cropped to the frame {size[0]}x{size[1]}: {_percent(cut)} of the {axis} was cut.")
    elif (w, h) != size:
        notices.append(f"Resized to {size[0]}x{size[1]}.")
    return PreparedImage(image=_crop(rgb, size, mode, []).copy(), notices=tuple(notices))
