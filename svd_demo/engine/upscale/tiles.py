"""One frame through an upscaler, in overlapping tiles, and the size cap of what may come out.

Tiles bound the memory of one network call: RealESRGAN_x4plus on a whole 1024x576 frame holds 64-channel
activations at 4096x2304 (fp16: over 1 GB per tensor, several alive at once), so 4K output would not fit a consumer
card. Each tile is run with `TILE_PAD` pixels of context that are cut off again (a border without context looks
different), and neighbouring tiles overlap by `TILE_OVERLAP` pixels, cross-faded linearly so no seam can show.

Two steps follow Real-ESRGAN's own inference (`RealESRGANer.enhance`): a frame whose sides are not multiples of what
the network needs (RRDBNet x2: 2, x1: 4, for its pixel-unshuffle) is reflect-padded at the right and bottom first
and the result cropped after, tiles included; and a factor below the network's scale (2x from a x4 network) is the
network's 8-bit result resized with OpenCV's Lanczos filter (`INTER_LANCZOS4`, its `outscale` path).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from svd_demo.core.errors import InputError

if TYPE_CHECKING:
    from svd_demo.engine.upscale.loading import LoadedUpscaler

UPSCALE_FACTORS = {"2x": 2, "4x": 4}
MAX_OUTPUT_LONG_SIDE = 3840
"""Largest output side in pixels: 4K UHD (3840x2160). 4x of SVD's 1024x576 (4096x2304) is refused: use 2x."""
MAX_OUTPUT_PIXELS = 3840 * 2160
DEFAULT_TILE = 512
"""Tile side in input pixels; 0 runs the whole frame at once."""
TILE_PAD = 16
"""Context around each tile, in input pixels, run through the network and then cut off."""
TILE_OVERLAP = 16
"""Overlap of neighbouring tiles, in input pixels, cross-faded."""


def output_size(width: int, height: int, factor: int) -> tuple[int, int]:
    return width * factor, height * factor


def check_output_size(width: int, height: int, factor: int, name: str = "upscale") -> tuple[int, int]:
    """The output size of `factor` x (width, height); InputError naming parameter `name` above the cap."""
    out_w, out_h = output_size(width, height, factor)
    if max(out_w, out_h) > MAX_OUTPUT_LONG_SIDE or out_w * out_h > MAX_OUTPUT_PIXELS:
        largest = MAX_OUTPUT_LONG_SIDE // factor
        raise InputError(f"`{name}` {factor}x would make {out_w}x{out_h} frames from {width}x{height}; the largest "
                         f"output is {MAX_OUTPUT_LONG_SIDE} pixels on the long side ({MAX_OUTPUT_LONG_SIDE}x2160). "
                         f"Choose a smaller factor, or an input of at most {largest} pixels on its long side.")
    return out_w, out_h


def factor_of(upscale: str | int, name: str = "upscale") -> int:
    """2 or 4 from "2x"/"4x" (or the number itself); InputError naming `name` otherwise."""
    if isinstance(upscale, str) and upscale in UPSCALE_FACTORS:
        return UPSCALE_FACTORS[upscale]
    if not isinstance(upscale, bool) and upscale in UPSCALE_FACTORS.values():
        return int(upscale)
    raise InputError(f"`{name}` must be one of {', '.join(UPSCALE_FACTORS)}; got {upscale!r}.")


def _spans(length: int, tile: int, overlap: int, multiple: int = 1) -> list[tuple[int, int]]:
    """As few windows of at most `tile` as cover `length` with neighbours overlapping by at least `overlap`, all of
    one size (1024 in 512-px tiles: three of 352, not 512 + 512 + a third that is almost all overlap). With
    `multiple` (which divides `length`), every start and size is a multiple of it."""
    if multiple > 1:
        units = _spans(length // multiple, max(1, tile // multiple), math.ceil(overlap / multiple))
        return [(start * multiple, end * multiple) for start, end in units]
    if length <= tile:
        return [(0, length)]
    count = math.ceil((length - overlap) / (tile - overlap))
    size = math.ceil((length + (count - 1) * overlap) / count)
    starts = [round(i * (length - size) / (count - 1)) for i in range(count)]
    return [(start, start + size) for start in starts]


def _padded(x, multiple: int):
    """`x` (1, C, H, W) reflect-padded at the right and bottom to multiples of `multiple`, as RealESRGANer pads
    (edge pixels repeated instead where a side is too short to reflect)."""
    import torch.nn.functional as F

    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not pad_h and not pad_w:
        return x
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def _ramp(size: int, fade_in: int, fade_out: int, xp):
    """Blend weights along one axis of a tile: rising over `fade_in`, falling over `fade_out`, 1 between."""
    weights = xp.ones(size)
    if fade_in:
        weights[:fade_in] = (xp.arange(fade_in) + 0.5) / fade_in
    if fade_out:
        falling = (xp.arange(fade_out, 0, -1) - 0.5) / fade_out
        weights[size - fade_out:] = xp.minimum(weights[size - fade_out:], falling)
    return weights


def _tiled(net, x, scale: int, tile: int, overlap: int, pad: int, multiple: int):
    """`net` over `x` (1, 3, H, W) in overlapping tiles, cross-faded: (3, H*scale, W*scale) float32.

    The tiles form a grid, so the sum of their blend weights at a pixel is the product of the sums along each axis:
    two vectors instead of a full-size weight map.
    """
    import torch

    full_h, full_w = x.shape[-2:]
    out = torch.zeros((3, full_h * scale, full_w * scale), dtype=torch.float32, device=x.device)
    overlap = max(0, min(overlap, tile // 2))
    pad = math.ceil(pad / multiple) * multiple  # context that keeps every tile's sides multiples too
    fade = overlap * scale
    rows, cols = _spans(full_h, tile, overlap, multiple), _spans(full_w, tile, overlap, multiple)
    row_sum = torch.zeros(full_h * scale, device=x.device)
    col_sum = torch.zeros(full_w * scale, device=x.device)
    for y0, y1 in rows:
        wy = _ramp((y1 - y0) * scale, fade if y0 > 0 else 0, fade if y1 < full_h else 0, torch).to(x.device)
        row_sum[y0 * scale:y1 * scale] += wy
        for x0, x1 in cols:
            wx = _ramp((x1 - x0) * scale, fade if x0 > 0 else 0, fade if x1 < full_w else 0, torch).to(x.device)
            py0, py1 = max(0, y0 - pad), min(full_h, y1 + pad)
            px0, px1 = max(0, x0 - pad), min(full_w, x1 + pad)
            piece = net(x[..., py0:py1, px0:px1])[0]
            piece = piece[:, (y0 - py0) * scale:(y1 - py0) * scale, (x0 - px0) * scale:(x1 - px0) * scale]
            out[:, y0 * scale:y1 * scale, x0 * scale:x1 * scale].addcmul_(piece.float(), wy[:, None] * wx[None, :])
            del piece
    for x0, x1 in cols:
        col_sum[x0 * scale:x1 * scale] += _ramp((x1 - x0) * scale, fade if x0 > 0 else 0,
                                                fade if x1 < full_w else 0, torch).to(x.device)
    return out.div_(row_sum[:, None]).div_(col_sum[None, :])


def upscale_frame(upscaler: LoadedUpscaler, frame: np.ndarray, factor: int, *, tile: int = DEFAULT_TILE,
                  overlap: int = TILE_OVERLAP, pad: int = TILE_PAD) -> np.ndarray:
    """`frame` (HxWx3 uint8 RGB) made `factor` times larger (HxWx3 uint8).

    The network runs at its own scale; a smaller `factor` (2x from a x4 network) resizes its 8-bit result with
    OpenCV's Lanczos filter, as Real-ESRGAN's `outscale` does. A larger one is refused. `tile` 0 runs the whole frame
    at once. Sides that are not multiples of what the network takes are reflect-padded and cropped again.
    """
    import torch

    scale = upscaler.scale
    if factor > scale or scale % factor:
        raise InputError(f"`upscale` {factor}x needs a network that upscales {factor}x or a multiple of it; "
                         f"'{upscaler.ref}' upscales {scale}x.")
    height, width = frame.shape[:2]
    net = upscaler.network
    multiple = upscaler.architecture.input_multiple
    with torch.no_grad():  # not inference_mode: see FACTS.md on inference tensors
        # Decoded frames can be read-only views of ffmpeg's buffer; torch wants memory it may write.
        frame = np.ascontiguousarray(frame) if frame.flags.writeable else np.array(frame)
        x = torch.from_numpy(frame).to(upscaler.device)
        x = _padded(x.permute(2, 0, 1)[None].to(upscaler.dtype) / 255.0, multiple)
        full_h, full_w = x.shape[-2:]  # padded: tiles are cut from the padded frame, as the reference tiles it
        if tile <= 0 or (full_h <= tile and full_w <= tile):
            out = net(x).float()[0]
        else:
            out = _tiled(net, x, scale, tile, overlap, pad, multiple)
        # In place from here, and one uint8 copy: at 4x a 1024x576 frame's float result is 113 MB.
        out = out[:, :height * scale, :width * scale].nan_to_num_().clamp_(0.0, 1.0).mul_(255.0).round_()
        result = torch.empty((height * scale, width * scale, 3), dtype=torch.uint8)
        result.copy_(out.permute(1, 2, 0))
        del out
        result = result.numpy()
    if factor < scale:
        import cv2

        result = cv2.resize(result, (width * factor, height * factor), interpolation=cv2.INTER_LANCZOS4)
    return result
