"""Scene cuts and still frames, decided per pair of neighbours before any backend is asked.

* A pair is a **cut** when its 32x32 thumbnails differ by at least ``CUT_MIN_DIFF`` (mean abs difference, 0..255)
  and that difference is either >= ``CUT_ABS_DIFF`` or >= ``CUT_REL_FACTOR`` times the clip's recent level (median
  of the last ``CUT_HISTORY`` non-cut pairs, at least ``CUT_BASELINE_FLOOR``; ``CUT_FIRST_BASELINE`` before any
  pair was seen), **and** their colour histograms (16 bins per channel) differ by a total-variation distance of at
  least ``CUT_MIN_HIST`` (0..1). Outputs between the two frames of a cut repeat the nearer frame: no ghosting.
  A backend that can tell (``flow``: its ``explains``) overrules the thumbnails where its motion accounts for the
  change, as when a large object enters a still scene.
* A pair is **near-identical** when, on every 4th pixel, the mean abs difference is below ``COPY_MAX_MEAN_DIFF``
  and fewer than ``COPY_MAX_PEAK_FRACTION`` of the samples differ by more than ``COPY_PEAK_DIFF``; its outputs copy
  the nearer frame (nothing is interpolated).
"""

from __future__ import annotations

import statistics
from collections import deque

import cv2
import numpy as np

CUT_THUMB = 32
CUT_MIN_DIFF = 12.0
CUT_ABS_DIFF = 40.0
CUT_REL_FACTOR = 3.0
CUT_HISTORY = 9
CUT_BASELINE_FLOOR = 2.0
CUT_FIRST_BASELINE = 8.0
CUT_MIN_HIST = 0.2
CUT_HIST_BINS = 16

COPY_MAX_MEAN_DIFF = 0.5
COPY_PEAK_DIFF = 8
COPY_MAX_PEAK_FRACTION = 0.001


def thumbnail(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the cut test compares: a 32x32 float thumbnail and per-channel colour histograms (sum 1)."""
    small = cv2.resize(frame, (CUT_THUMB, CUT_THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)
    mid = cv2.resize(frame, (64, 64), interpolation=cv2.INTER_AREA)
    hist = np.stack([np.bincount(mid[..., c].ravel() // (256 // CUT_HIST_BINS), minlength=CUT_HIST_BINS)
                     for c in range(3)]).astype(np.float32)
    return small, hist / hist.sum(axis=1, keepdims=True)


def near_identical(a: np.ndarray, b: np.ndarray) -> bool:
    """True when the two frames differ too little to interpolate (see the module docstring)."""
    diff = cv2.absdiff(a[::4, ::4], b[::4, ::4])
    if float(diff.mean()) >= COPY_MAX_MEAN_DIFF:
        return False
    return float(np.count_nonzero(diff > COPY_PEAK_DIFF)) < COPY_MAX_PEAK_FRACTION * diff.size


class CutDetector:
    """Says whether each next pair of thumbnails is a cut, against the clip's recent level."""

    def __init__(self) -> None:
        self.history: deque[float] = deque(maxlen=CUT_HISTORY)
        self.last_diff = 0.0
        self.last_hist = 0.0

    def is_cut(self, thumb0, thumb1) -> bool:
        (s0, h0), (s1, h1) = thumb0, thumb1
        diff = float(np.abs(s0 - s1).mean())
        hist = float(0.5 * np.abs(h0 - h1).sum(axis=1).mean())
        baseline = max(CUT_BASELINE_FLOOR, statistics.median(self.history)) if self.history else CUT_FIRST_BASELINE
        cut = diff >= CUT_MIN_DIFF and (diff >= CUT_ABS_DIFF or diff >= CUT_REL_FACTOR * baseline) \
            and hist >= CUT_MIN_HIST
        if not cut:
            self.history.append(diff)
        self.last_diff, self.last_hist = diff, hist
        return cut
