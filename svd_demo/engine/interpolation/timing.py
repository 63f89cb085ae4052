"""The timestamp model of interpolation, and the checks of its options.

Input frame i sits at position i (input-frame units). Factor k puts outputs at positions j/k, so N inputs give
(N-1)*k+1 outputs and every k-th output is an input frame, copied exactly. A target fps F for a source at S fps puts
outputs at j*S/F for every j with j*S/F <= N-1. Output frames are played at k*S (or F) fps, or at S fps with
``slow_motion=True`` (same frames, the clip plays k (or F/S) times longer).

`OutputClock` is the one place that says where outputs sit: `output_timestamps` lists them, the streaming engine
takes them pair by pair.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from svd_demo.core.errors import InputError
from svd_demo.core.params import MAX_FACTOR, MAX_TARGET_FPS, MIN_FACTOR, finite_number

MAX_OUTPUT_FRAMES = 20000
"""Largest number of frames one interpolation may produce (input frames x factor)."""


def _check_source_fps(source_fps) -> float:
    fps = finite_number(source_fps, "The source frame rate")
    if fps <= 0 or fps > 1000:
        raise InputError(f"The source frame rate must be in (0, 1000] fps, got {source_fps!r}.")
    return fps


def rate_step(source_fps, factor, target_fps, slow_motion) -> tuple[Fraction, float]:
    """(distance between outputs in input-frame units, output fps). Validates the options."""
    fps = _check_source_fps(source_fps)
    if (factor is None) == (target_fps is None):
        raise InputError("Give exactly one of factor (2-16) or target fps, not both and not neither.")
    if factor is not None:
        k = finite_number(factor, "The interpolation factor")
        if k != int(k) or not MIN_FACTOR <= k <= MAX_FACTOR:
            raise InputError(f"The interpolation factor must be a whole number from {MIN_FACTOR} to {MAX_FACTOR}, "
                             f"got {factor!r}.")
        step = Fraction(1, int(k))
        out_fps = fps * int(k)
    else:
        target = finite_number(target_fps, "The target frame rate")
        if target <= 0 or target > MAX_TARGET_FPS:
            raise InputError(f"The target frame rate must be above 0 and at most {MAX_TARGET_FPS:g} fps, "
                             f"got {target_fps!r}.")
        step = Fraction(fps).limit_denominator(100_000) / Fraction(target).limit_denominator(100_000)
        out_fps = target
    return step, (fps if slow_motion else out_fps)


class OutputClock:
    """Hands out the output positions j*step (input-frame units) in order, for a stream that does not know its
    length: the outputs before each next input frame, then the one on the last input frame, if any."""

    def __init__(self, step: Fraction) -> None:
        self.step = step
        self.taken = 0  # outputs handed out so far

    def take_before(self, end: int) -> list[Fraction]:
        """Positions of the outputs not handed out yet that lie before input position `end`."""
        positions = []
        while self.taken * self.step < end:
            positions.append(self.taken * self.step)
            self.taken += 1
        return positions

    def take_at(self, position: int) -> bool:
        """Hand out the output that sits exactly on input position `position` (the last frame), if there is one."""
        if self.taken * self.step != position:
            return False
        self.taken += 1
        return True

    @staticmethod
    def count(num_input: int, step: Fraction) -> int:
        """How many outputs `num_input` frames give (what the clock hands out for them, in closed form)."""
        return math.floor((num_input - 1) / step) + 1



def output_timestamps(
    num_input: int,
    source_fps: float,
    *,
    factor: int | None = None,
    target_fps: float | None = None,
    slow_motion: bool = False,
) -> tuple[list[float], float]:
    """Output positions in input-frame units (0 .. num_input-1) and the output fps (see the module docstring)."""
    step, out_fps = rate_step(source_fps, factor, target_fps, slow_motion)
    if isinstance(num_input, bool) or not isinstance(num_input, (int, np.integer)):
        raise InputError(f"The number of input frames must be a whole number, got {num_input!r}.")
    if num_input < 2:
        raise InputError(f"Interpolation needs at least 2 input frames, got {num_input}.")
    check_output_count(OutputClock.count(int(num_input), step))
    clock = OutputClock(step)
    positions = clock.take_before(num_input - 1)
    if clock.take_at(num_input - 1):
        positions.append(Fraction(num_input - 1))
    return [float(p) for p in positions], out_fps


def check_output_count(count: int) -> None:
    """Refuse a run that would make more than ``MAX_OUTPUT_FRAMES`` frames."""
    if count > MAX_OUTPUT_FRAMES:
        raise InputError(f"This would make {count} frames, more than the maximum of {MAX_OUTPUT_FRAMES}. "
                         "Use a smaller factor or target fps, or a shorter clip.")
