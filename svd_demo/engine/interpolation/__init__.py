"""Frame interpolation: raise a clip's frame rate (a factor k, or an exact target fps) with motion-compensated frames.

* `timing`: where output frames sit and at what rate they play (the one timestamp model), and the option checks.
* `backends`: what makes the in-between frames of one pair (``flow``, ``flow-hq``, ``blend``; ``BACKENDS``).
* `cuts`: scene cuts and still frames, decided per pair before any backend is asked.
* `engine`: the streaming engine (`FrameInterpolator`, `interpolate_frames`).
* `files`: video files and image folders in and out (`interpolate_file`).

The command line is `python -m svd_demo interpolate` (its parser is in `svd_demo.cli.commands`).
"""

from svd_demo.engine.interpolation.backends import (
    BACKENDS,
    MAX_WORKERS,
    BlendBackend,
    FlowBackend,
    InterpolationBackend,
    make_backend,
)
from svd_demo.engine.interpolation.engine import (
    FrameInterpolator,
    InterpolationStats,
    ProgressCallback,
    interpolate_frames,
)
from svd_demo.engine.interpolation.files import (
    MAX_VIDEO_FPS,
    VIDEO_SUFFIXES,
    X264_PRESET,
    InterpolationResult,
    interpolate_file,
)
from svd_demo.engine.interpolation.timing import (
    MAX_FACTOR,
    MAX_OUTPUT_FRAMES,
    MAX_TARGET_FPS,
    MIN_FACTOR,
    output_timestamps,
)

__all__ = [
    "BACKENDS", "MAX_FACTOR", "MAX_OUTPUT_FRAMES", "MAX_TARGET_FPS", "MAX_VIDEO_FPS", "MAX_WORKERS", "MIN_FACTOR",
    "VIDEO_SUFFIXES", "X264_PRESET", "BlendBackend", "FlowBackend", "FrameInterpolator", "InterpolationBackend",
    "InterpolationResult", "InterpolationStats", "ProgressCallback", "interpolate_file", "interpolate_frames",
    "make_backend", "output_timestamps",
]
