"""Upscaling (Real-ESRGAN-class networks) of generated and uploaded videos and stills.

* `networks`: SRVGGNetCompact and RRDBNet, and which of them a checkpoint's weights describe (`detect`).
* `loading`: loading, with errors that name the model page, and the cache (the presets and the checks of a
  reference are core's: `svd_demo.core.models`).
* `tiles`: one frame in overlapping, cross-faded tiles; the output size cap (`MAX_OUTPUT_LONG_SIDE`).
* `files`: videos streamed frame by frame into the project's encoder, stills into PNG (`upscale_file`).

Importing this package imports no torch; `networks` does.
"""

from svd_demo.core.models import DEFAULT_UPSCALER, UPSCALER_PRESETS, check_upscaler_ref, upscaler_page
from svd_demo.engine.upscale.loading import LoadedUpscaler, UpscalerCache, load_upscaler
from svd_demo.engine.upscale.tiles import (
    DEFAULT_TILE,
    MAX_OUTPUT_LONG_SIDE,
    MAX_OUTPUT_PIXELS,
    UPSCALE_FACTORS,
    check_output_size,
    factor_of,
    upscale_frame,
)

__all__ = [
    "DEFAULT_TILE", "DEFAULT_UPSCALER", "MAX_OUTPUT_LONG_SIDE", "MAX_OUTPUT_PIXELS", "UPSCALER_PRESETS",
    "UPSCALE_FACTORS", "LoadedUpscaler", "UpscalerCache", "check_output_size", "check_upscaler_ref", "factor_of",
    "load_upscaler", "upscale_frame", "upscaler_page",
]
