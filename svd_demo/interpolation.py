"""Frame interpolation: raise a clip's frame rate (factor k or an exact target fps) with motion-compensated frames.

Backends (``BACKENDS``; a neural RIFE-class backend plugs in by adding a factory there, callers do not change):

* ``flow`` (default): dense optical flow in both directions (OpenCV DIS at reduced resolution), flows splatted
  forward to the wanted time t, both neighbours warped to t (``cv2.remap``) and blended with occlusion-aware weights
  (forward-backward and photometric consistency). Any t in (0, 1), not only midpoints. CPU only, no weights.
* ``flow-hq``: the same with flow at up to 512x288 instead of 320x180: sharper on fast small objects, ~2x slower.
* ``blend``: plain cross-fade, the baseline.

Timing model: input frame i sits at position i (input-frame units). Factor k puts outputs at positions j/k, so N
inputs give (N-1)*k+1 outputs and every k-th output is an input frame, copied exactly. A target fps F for a source
at S fps puts outputs at j*S/F for every j with j*S/F <= N-1. Output frames are played at k*S (or F) fps, or at S fps
with ``slow_motion=True`` (same frames, the clip plays k (or F/S) times longer).

Scene cuts and still frames (decided per pair of neighbours, before the backend is asked, so every backend gets it):

* A pair is a **cut** when its 32x32 thumbnails differ by at least ``CUT_MIN_DIFF`` (mean abs difference, 0..255)
  and that difference is either >= ``CUT_ABS_DIFF`` or >= ``CUT_REL_FACTOR`` times the clip's recent level (median
  of the last ``CUT_HISTORY`` non-cut pairs, at least ``CUT_BASELINE_FLOOR``; ``CUT_FIRST_BASELINE`` before any
  pair was seen), **and** their colour histograms (16 bins per channel) differ by a total-variation distance of at
  least ``CUT_MIN_HIST`` (0..1). Outputs between the two frames of a cut repeat the nearer frame: no ghosting.
* The flow backend also treats a pair as a cut when its flow fails: for more than ``FLOW_FAIL_FRACTION`` of the
  pixels (in both directions, on average) the colour at the flow's target differs too much (photometric
  consistency below 0.5: a grey-level difference above about 5 after a 3x3 box blur, on the splat grid, once the
  global brightness and contrast of the two frames are matched, so fades do not count).
* A pair is **near-identical** when, on every 4th pixel, the mean abs difference is below ``COPY_MAX_MEAN_DIFF``
  and fewer than ``COPY_MAX_PEAK_FRACTION`` of the samples differ by more than ``COPY_PEAK_DIFF``; its outputs copy
  the nearer frame (nothing is interpolated).

Streaming: frames are read one at a time; up to one pair per CPU core (at most ``MAX_WORKERS``) is interpolated at
once on worker threads, and only those pairs' frames are kept (plus at most 2 decoded frames read ahead and 3
finished frames waiting for the encoder in ``interpolate_file``), so memory does not grow with the clip.
Nothing heavy is imported (numpy and OpenCV only; no torch), so ``python -m svd_demo.interpolation`` starts fast.
"""

from __future__ import annotations

import math
import os
import pathlib
import queue
import shutil
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from svd_demo.errors import GenerationCancelled, InputError
from svd_demo.params import MAX_FACTOR, MAX_TARGET_FPS, MIN_FACTOR

MAX_OUTPUT_FRAMES = 20000
"""Largest number of frames one interpolation may produce (input frames x factor)."""
MAX_VIDEO_FPS = 240.0
"""Largest playback rate of a written video (the shared encoder's limit); use slow_motion above it."""
VIDEO_SUFFIXES = (".mp4", ".webm", ".gif")
X264_PRESET = "ultrafast"
"""x264 preset of .mp4 outputs. The shared default (veryfast) took ~0.35 s of CPU for 29 frames of 1024x576, a
quarter of a whole ``flow`` run; ultrafast took ~0.19 s at nearly the same fidelity (crf 18: 41.9 instead of 42.2 dB
PSNR against the frames it was given) in a file 2.6x larger (see notes/interpolation_bench.md)."""

# Scene-cut detection (see the module docstring).
CUT_THUMB = 32
CUT_MIN_DIFF = 12.0
CUT_ABS_DIFF = 40.0
CUT_REL_FACTOR = 3.0
CUT_HISTORY = 9
CUT_BASELINE_FLOOR = 2.0
CUT_FIRST_BASELINE = 8.0
CUT_MIN_HIST = 0.2
CUT_HIST_BINS = 16
# Near-identical frames.
COPY_MAX_MEAN_DIFF = 0.5
COPY_PEAK_DIFF = 8
COPY_MAX_PEAK_FRACTION = 0.001
# Flow failure.
FLOW_FAIL_FRACTION = 0.6
MAX_WORKERS = 8
"""Most pairs interpolated at once (on as many threads): each one in flight holds its frames in memory."""

ProgressCallback = Callable[[int, "int | None"], None]


# ------------------------------------------------------------------------------------------------------- backends


@runtime_checkable
class InterpolationBackend(Protocol):
    """Makes in-between frames for one pair of neighbours.

    ``frame0`` and ``frame1`` are HxWx3 uint8 RGB arrays of the same size; ``times`` are positions strictly between
    them (0 < t < 1, increasing). Returns one HxWx3 uint8 RGB frame per time. Backends may keep caches between
    calls but must not keep references to earlier frames beyond the current pair. Cut and still-frame handling
    happen before a backend is called. Optional: a ``failed_pairs`` int attribute, counted in the stats, and
    ``max_workers``: how many pairs it may be given at once from different threads (without it: one at a time,
    e.g. a backend holding one GPU model).
    """

    name: str

    def interpolate(self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float]) -> list[np.ndarray]: ...


class BlendBackend:
    """Cross-fade: (1-t)*frame0 + t*frame1. The baseline; ghosts on any motion."""

    name = "blend"
    max_workers = MAX_WORKERS

    def interpolate(self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float]) -> list[np.ndarray]:
        return [cv2.addWeighted(frame0, 1.0 - float(t), frame1, float(t), 0.0) for t in times]


class FlowBackend:
    """Motion-compensated interpolation from bidirectional DIS optical flow (see the module docstring).

    Per pair: DIS flow in both directions (0->1 and 1->0) on grey frames scaled
    to at most ``flow_pixels`` (default 320x180 for 16:9), resampled to a coarser "splat" grid (at most
    ``splat_pixels``, default 213x120) where each pixel gets a confidence in [0, 1]: the larger of its
    forward-backward consistency and its photometric consistency (a pixel whose flow is unreliable or that is
    occluded in the other frame scores low).
    Per output time t: both flows are splatted forward to t (nearest-pixel splatting weighted by confidence**4, so the
    surface that stays visible wins where layers overlap), holes are filled from their surroundings, the flow at t
    is upscaled to full size, both frames are warped to t (``cv2.remap``) and blended with weights (1-t, t) times
    each side's visibility: a side whose sample is occluded in the other frame, or falls outside the picture, gets
    (almost) no weight. Tuned on ``python -m svd_demo.interpolation_bench`` (see notes/interpolation_bench.md).
    """

    name = "flow"
    max_workers = MAX_WORKERS  # thread-safe: each thread has its own DIS object

    def __init__(
        self,
        *,
        flow_pixels: int = 57_600,
        splat_pixels: int = 25_600,
        finest_scale: int = 0,
        patch_size: int = 8,
        patch_stride: int = 4,
        gd_iters: int = 16,
        var_iters: int = 2,
        occlusion_sigma: float = 1.0,
        occlusion_rel: float = 0.05,
        photo_sigma: float = 6.0,
        splat_power: float = 4.0,
    ) -> None:
        self.flow_pixels = int(flow_pixels)
        self.splat_pixels = int(splat_pixels)
        self.dis_params = (finest_scale, patch_size, patch_stride, gd_iters, var_iters)
        self.occlusion_sigma = float(occlusion_sigma)
        self.occlusion_rel = float(occlusion_rel)
        self.photo_sigma = float(photo_sigma)
        self.splat_power = float(splat_power)
        self._local = threading.local()  # each worker thread's DIS object
        self._lock = threading.Lock()
        self._grids: dict[tuple, tuple] = {}
        self.failed_pairs = 0

    def _new_dis(self):
        finest, patch, stride, gd, var = self.dis_params
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        dis.setFinestScale(finest)
        dis.setPatchSize(patch)
        dis.setPatchStride(stride)
        dis.setGradientDescentIterations(gd)
        dis.setVariationalRefinementIterations(var)
        return dis

    def _flows(self, g0: np.ndarray, g1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """DIS flow 0->1 and 1->0, with this thread's own DIS object (one must not run two calls at once)."""
        dis = getattr(self._local, "dis", None)
        if dis is None:
            dis = self._local.dis = self._new_dis()
        return dis.calc(g0, g1, None), dis.calc(g1, g0, None)

    def _cached(self, key: tuple, make: Callable[[], tuple]) -> tuple:
        """Coordinate grids by size, shared by the worker threads (read-only once made)."""
        with self._lock:
            found = self._grids.get(key)
        if found is None:
            found = make()
            with self._lock:
                if len(self._grids) > 12:
                    self._grids.clear()
                self._grids[key] = found
        return found

    def _grid(self, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
        return self._cached((w, h), lambda: tuple(np.meshgrid(np.arange(w, dtype=np.float32),
                                                              np.arange(h, dtype=np.float32))))

    @staticmethod
    def _fit(w: int, h: int, pixels: int) -> tuple[int, int]:
        scale = min(1.0, math.sqrt(pixels / float(w * h)))
        return max(8, round(w * scale)), max(8, round(h * scale))

    def _confidence(
        self, a: np.ndarray, b: np.ndarray, f_ab: np.ndarray, f_ba: np.ndarray
    ) -> tuple[np.ndarray, float]:
        """Per pixel of a: max(forward-backward consistency, photometric consistency), in [0, 1]; and the fraction
        of pixels whose colour is not explained by the flow (photometric consistency below 0.5)."""
        h, w = f_ab.shape[:2]
        xs, ys = self._grid(w, h)
        ux, uy = cv2.split(f_ab)
        mx, my = xs + ux, ys + uy
        back = cv2.remap(f_ba, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        bx, by = cv2.split(back)
        # Squared lengths channel by channel: numpy's sum over a last axis of length 2 took 10x longer.
        err2 = np.square(ux + bx) + np.square(uy + by)
        mag2 = ux * ux + uy * uy + bx * bx + by * by
        fb = np.exp(-err2 / (self.occlusion_sigma**2 + self.occlusion_rel * mag2))
        warped = cv2.remap(b, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # A global gain/offset change (fade, exposure) is not a flow error: match means and contrasts first.
        af = a.astype(np.float32)
        wf = warped.astype(np.float32)
        af -= float(af.mean())
        wf -= float(wf.mean())
        gain = float(np.clip(math.sqrt(float(np.vdot(wf, wf)) / max(float(np.vdot(af, af)), 1e-6)), 0.5, 2.0))
        perr = cv2.blur(np.abs(wf - gain * af), (3, 3))
        photo = np.exp(-np.square(perr * (1.0 / self.photo_sigma)))
        unexplained = float(np.count_nonzero(photo < 0.5)) / photo.size
        return np.maximum(fb, photo).astype(np.float32), unexplained

    def prepare(self, frame0: np.ndarray, frame1: np.ndarray) -> dict:
        """Flows, confidences and sizes for one pair (everything the per-time rendering needs)."""
        h, w = frame0.shape[:2]
        fw, fh = self._fit(w, h, self.flow_pixels)
        sw, sh = self._fit(w, h, min(self.splat_pixels, self.flow_pixels))
        g0 = cv2.cvtColor(frame0, cv2.COLOR_RGB2GRAY)
        g1 = cv2.cvtColor(frame1, cv2.COLOR_RGB2GRAY)
        if (fw, fh) != (w, h):
            g0 = cv2.resize(g0, (fw, fh), interpolation=cv2.INTER_AREA)
            g1 = cv2.resize(g1, (fw, fh), interpolation=cv2.INTER_AREA)
        f01, f10 = self._flows(g0, g1)
        if (sw, sh) != (fw, fh):
            ratio = np.array([sw / fw, sh / fh], np.float32)
            f01 = cv2.resize(f01, (sw, sh), interpolation=cv2.INTER_AREA) * ratio
            f10 = cv2.resize(f10, (sw, sh), interpolation=cv2.INTER_AREA) * ratio
            g0 = cv2.resize(g0, (sw, sh), interpolation=cv2.INTER_AREA)
            g1 = cv2.resize(g1, (sw, sh), interpolation=cv2.INTER_AREA)
        c0, bad0 = self._confidence(g0, g1, f01, f10)
        c1, bad1 = self._confidence(g1, g0, f10, f01)
        return {"f01": f01, "f10": f10, "c0": c0, "c1": c1, "size": (w, h), "ssize": (sw, sh),
                "unexplained": (bad0 + bad1) / 2}

    def _splat(self, state: dict, t: float) -> np.ndarray:
        """Motion (0->1, in splat pixels) of the surface seen at time t, per splat pixel."""
        sw, sh = state["ssize"]
        xs, ys = self._grid(sw, sh)
        n = sw * sh
        idx_parts, w_parts, u_parts, v_parts = [], [], [], []
        sources = (
            (state["f01"], state["c0"], t, 1.0),  # frame-0 pixels move by t*f01; motion u = f01
            (state["f10"], state["c1"], 1.0 - t, -1.0),  # frame-1 pixels move by (1-t)*f10; motion u = -f10
        )
        for flow, conf, frac, sign in sources:
            px = (xs + frac * flow[..., 0]).ravel()
            py = (ys + frac * flow[..., 1]).ravel()
            base_w = np.power(1e-3 + conf.ravel(), self.splat_power)
            u = sign * flow[..., 0].ravel()
            v = sign * flow[..., 1].ravel()
            cx = np.rint(px).astype(np.int64)
            cy = np.rint(py).astype(np.int64)
            inside = (cx >= 0) & (cx < sw) & (cy >= 0) & (cy < sh)
            idx_parts.append(np.where(inside, cy * sw + cx, n))
            w_parts.append(base_w)
            u_parts.append(u)
            v_parts.append(v)
        idx = np.concatenate(idx_parts)
        wgt = np.concatenate(w_parts)
        acc_w = np.bincount(idx, wgt, minlength=n + 1)[:n]
        acc_u = np.bincount(idx, wgt * np.concatenate(u_parts), minlength=n + 1)[:n]
        acc_v = np.bincount(idx, wgt * np.concatenate(v_parts), minlength=n + 1)[:n]
        wsum = acc_w.reshape(sh, sw).astype(np.float32)
        num = np.stack([acc_u.reshape(sh, sw), acc_v.reshape(sh, sw)], axis=2).astype(np.float32)
        return _fill_holes(num, wsum)

    def _full_grid(self, w: int, h: int, sw: int, sh: int) -> tuple[np.ndarray, list]:
        """The splat grid in full-size pixel coordinates (2 channels), and the fixes for the border bands.

        A map built on the splat grid and upscaled with ``cv2.resize`` is exact inside the picture, but resize
        clamps within half a splat pixel of the edges; the returned (slice, correction) pairs undo that there.
        """

        def make() -> tuple[np.ndarray, list]:
            sx, sy = w / sw, h / sh
            xs = (np.arange(sw, dtype=np.float32) + 0.5) * sx - 0.5
            ys = (np.arange(sh, dtype=np.float32) + 0.5) * sy - 0.5
            low = np.dstack(np.meshgrid(xs, ys)).astype(np.float32)
            up = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
            gx, gy = self._grid(w, h)
            exact = np.dstack([gx, gy])
            bx, by = min(w, math.ceil(sx / 2) + 1), min(h, math.ceil(sy / 2) + 1)
            bands = [np.s_[:, :bx], np.s_[:, w - bx:], np.s_[:by, :], np.s_[h - by:, :]]
            return low, [(band, np.ascontiguousarray(exact[band] - up[band])) for band in bands]

        return self._cached(("full", w, h, sw, sh), make)

    def render(self, frame0: np.ndarray, frame1: np.ndarray, state: dict, t: float) -> np.ndarray:
        """One frame at time t (0 < t < 1) from a pair prepared by :meth:`prepare`."""
        w, h = state["size"]
        sw, sh = state["ssize"]
        u = self._splat(state, t)  # motion of the surface at time t, splat grid
        xs, ys = self._grid(sw, sh)
        m0x, m0y = xs - t * u[..., 0], ys - t * u[..., 1]
        m1x, m1y = xs + (1 - t) * u[..., 0], ys + (1 - t) * u[..., 1]
        c0 = cv2.remap(state["c0"], m0x, m0y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        c1 = cv2.remap(state["c1"], m1x, m1y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        margin = 0.5
        in0 = (m0x >= -margin) & (m0x <= sw - 1 + margin) & (m0y >= -margin) & (m0y <= sh - 1 + margin)
        in1 = (m1x >= -margin) & (m1x <= sw - 1 + margin) & (m1y >= -margin) & (m1y <= sh - 1 + margin)
        # Frame 0 lacks the content where the frame-1 sample is not seen in frame 0, and vice versa.
        vis0 = in0 * (1.0 - (1.0 - c1) * c0)
        vis1 = in1 * (1.0 - (1.0 - c0) * c1)
        w0 = (1.0 - t) * (vis0 + 1e-3)
        w1 = t * (vis1 + 1e-3)
        alpha1 = (w1 / (w0 + w1)).astype(np.float32)
        alpha0 = 1.0 - alpha1
        if (sw, sh) == (w, h):
            map0 = np.dstack([m0x, m0y])
            map1 = np.dstack([m1x, m1y])
        else:
            # Sampling maps in full-size pixels, built on the splat grid and upscaled in one pass each.
            low, fixes = self._full_grid(w, h, sw, sh)
            scale = np.array([w / sw, h / sh], np.float32)
            map0 = cv2.resize(low - (t * scale) * u, (w, h), interpolation=cv2.INTER_LINEAR)
            map1 = cv2.resize(low + ((1 - t) * scale) * u, (w, h), interpolation=cv2.INTER_LINEAR)
            for band, fix in fixes:
                map0[band] += fix
                map1[band] += fix
            alpha0 = cv2.resize(alpha0, (w, h), interpolation=cv2.INTER_LINEAR)
            alpha1 = cv2.resize(alpha1, (w, h), interpolation=cv2.INTER_LINEAR)
        warp0 = cv2.remap(frame0, map0, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        warp1 = cv2.remap(frame1, map1, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return cv2.blendLinear(warp0, warp1, alpha0, alpha1)

    def interpolate(self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float]) -> list[np.ndarray]:
        if not times:
            return []
        state = self.prepare(frame0, frame1)
        if state["unexplained"] > FLOW_FAIL_FRACTION:
            with self._lock:
                self.failed_pairs += 1
            return [(frame0 if t < 0.5 else frame1).copy() for t in times]
        return [self.render(frame0, frame1, state, float(t)) for t in times]


def _fill_holes(num: np.ndarray, wsum: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """num/wsum where wsum > eps; elsewhere filled from the surroundings (coarse-to-fine normalized averaging)."""
    holes = wsum <= eps
    safe = np.maximum(wsum, eps)
    out = num / safe[..., None]
    if not holes.any():
        return out
    # Build a pyramid of (weighted sum, weight) and fill each level's holes from the next coarser one.
    levels = [(num * (~holes)[..., None], np.where(holes, 0, wsum).astype(np.float32))]
    while min(levels[-1][1].shape) > 4:
        n, wgt = levels[-1]
        levels.append((cv2.pyrDown(n), cv2.pyrDown(wgt)))
    coarse = None
    for n, wgt in reversed(levels):
        est = n / np.maximum(wgt, eps)[..., None]
        if coarse is not None:
            up = cv2.resize(coarse, (wgt.shape[1], wgt.shape[0]), interpolation=cv2.INTER_LINEAR)
            fill = (wgt <= eps)[..., None]
            est = np.where(fill, up, est)
        coarse = est
    return np.where(holes[..., None], coarse, out).astype(np.float32)


def _flow_hq() -> FlowBackend:
    """Slower, sharper flow: DIS on up to 512x288 (about twice the time of ``flow``)."""
    backend = FlowBackend(flow_pixels=147_456, splat_pixels=36_864)
    backend.name = "flow-hq"
    return backend


BACKENDS: dict[str, Callable[[], InterpolationBackend]] = {
    "flow": FlowBackend,
    "flow-hq": _flow_hq,
    "blend": BlendBackend,
}
"""Backend name -> factory. Add a neural backend here (``BACKENDS["rife"] = make_rife``); callers pick it by name."""


def make_backend(backend: str | InterpolationBackend) -> InterpolationBackend:
    if not isinstance(backend, str):
        if not callable(getattr(backend, "interpolate", None)):
            raise InputError(f"{backend!r} is not an interpolation backend (it has no interpolate method).")
        return backend
    factory = BACKENDS.get(backend.strip().lower())
    if factory is None:
        raise InputError(f"Unknown interpolation backend {backend!r}; choose one of: {', '.join(sorted(BACKENDS))}.")
    return factory()


# ----------------------------------------------------------------------------------------------------- timestamps


def _check_number(value, what: str) -> float:
    if isinstance(value, bool):
        raise InputError(f"{what} must be a number, got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {value!r}.") from None
    if not math.isfinite(number):
        raise InputError(f"{what} must be a finite number, got {value!r}.")
    return number


def _check_source_fps(source_fps) -> float:
    fps = _check_number(source_fps, "The source frame rate")
    if fps <= 0 or fps > 1000:
        raise InputError(f"The source frame rate must be in (0, 1000] fps, got {source_fps!r}.")
    return fps


def _rate_step(source_fps, factor, target_fps, slow_motion) -> tuple[Fraction, float]:
    """(distance between outputs in input-frame units, output fps). Validates the options."""
    fps = _check_source_fps(source_fps)
    if (factor is None) == (target_fps is None):
        raise InputError("Give exactly one of factor (2-16) or target fps, not both and not neither.")
    if factor is not None:
        k = _check_number(factor, "The interpolation factor")
        if k != int(k) or not MIN_FACTOR <= k <= MAX_FACTOR:
            raise InputError(f"The interpolation factor must be a whole number from {MIN_FACTOR} to {MAX_FACTOR}, "
                             f"got {factor!r}.")
        step = Fraction(1, int(k))
        out_fps = fps * int(k)
    else:
        target = _check_number(target_fps, "The target frame rate")
        if target <= 0 or target > MAX_TARGET_FPS:
            raise InputError(f"The target frame rate must be above 0 and at most {MAX_TARGET_FPS:g} fps, "
                             f"got {target_fps!r}.")
        step = Fraction(fps).limit_denominator(100_000) / Fraction(target).limit_denominator(100_000)
        out_fps = target
    return step, (fps if slow_motion else out_fps)


def _count_outputs(num_input: int, step: Fraction) -> int:
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
    step, out_fps = _rate_step(source_fps, factor, target_fps, slow_motion)
    if isinstance(num_input, bool) or not isinstance(num_input, (int, np.integer)):
        raise InputError(f"The number of input frames must be a whole number, got {num_input!r}.")
    if num_input < 2:
        raise InputError(f"Interpolation needs at least 2 input frames, got {num_input}.")
    count = _count_outputs(int(num_input), step)
    if count > MAX_OUTPUT_FRAMES:
        raise InputError(f"This would make {count} frames, more than the maximum of {MAX_OUTPUT_FRAMES}. "
                         "Use a smaller factor or target fps, or a shorter clip.")
    return [float(j * step) for j in range(count)], out_fps


# ------------------------------------------------------------------------------------------------ pair analysis


def _thumb(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    small = cv2.resize(frame, (CUT_THUMB, CUT_THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)
    mid = cv2.resize(frame, (64, 64), interpolation=cv2.INTER_AREA)
    hist = np.stack([np.bincount(mid[..., c].ravel() // (256 // CUT_HIST_BINS), minlength=CUT_HIST_BINS)
                     for c in range(3)]).astype(np.float32)
    return small, hist / hist.sum(axis=1, keepdims=True)


def _near_identical(a: np.ndarray, b: np.ndarray) -> bool:
    diff = cv2.absdiff(a[::4, ::4], b[::4, ::4])
    if float(diff.mean()) >= COPY_MAX_MEAN_DIFF:
        return False
    return float(np.count_nonzero(diff > COPY_PEAK_DIFF)) < COPY_MAX_PEAK_FRACTION * diff.size


class _CutDetector:
    def __init__(self) -> None:
        self.history: deque[float] = deque(maxlen=CUT_HISTORY)
        self.last_diff = 0.0
        self.last_hist = 0.0

    def is_cut(self, thumb0, thumb1) -> bool:
        (s0, h0), (s1, h1) = thumb0, thumb1
        diff = float(np.abs(s0 - s1).mean())
        hist = float(0.5 * np.abs(h0 - h1).sum(axis=1).mean())
        baseline = max(CUT_BASELINE_FLOOR, float(np.median(self.history))) if self.history else CUT_FIRST_BASELINE
        cut = diff >= CUT_MIN_DIFF and (diff >= CUT_ABS_DIFF or diff >= CUT_REL_FACTOR * baseline) \
            and hist >= CUT_MIN_HIST
        if not cut:
            self.history.append(diff)
        self.last_diff, self.last_hist = diff, hist
        return cut


# ---------------------------------------------------------------------------------------------------- streaming


def _as_rgb(frame, index: int) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(f"Frame {index} has shape {arr.shape}; frames must be HxWx3 RGB images.")
    if arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and float(np.nanmax(arr)) <= 1.0:
            arr = np.nan_to_num(arr) * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


@dataclass
class InterpolationStats:
    """Counters filled while frames stream through :class:`FrameInterpolator`."""

    input_frames: int = 0
    output_frames: int = 0
    interpolated_frames: int = 0
    cut_pairs: int = 0
    copied_pairs: int = 0
    flow_failed_pairs: int = 0


def _worker_count(backend: InterpolationBackend, workers: int | None) -> int:
    """Pairs made at once: what was asked (default: one per CPU core), within the backend's own limit."""
    wanted = (os.cpu_count() or 1) if workers is None else int(workers)
    return max(1, min(wanted, int(getattr(backend, "max_workers", 1) or 1), MAX_WORKERS))


class FrameInterpolator(Iterator[np.ndarray]):
    """The streaming engine behind :func:`interpolate_frames`; exposes ``stats``, ``output_fps`` and ``total``."""

    def __init__(self, frames: Iterable[np.ndarray], source_fps: float, *, factor=None, target_fps=None,
                 slow_motion: bool = False, backend: str | InterpolationBackend = "flow",
                 num_frames: int | None = None, progress: ProgressCallback | None = None,
                 workers: int | None = None, cancel: threading.Event | None = None) -> None:
        self.step, self.output_fps = _rate_step(source_fps, factor, target_fps, slow_motion)
        self.source_fps = float(source_fps)
        self.backend = make_backend(backend)
        self.workers = _worker_count(self.backend, workers)
        self._failed_before = getattr(self.backend, "failed_pairs", 0)
        self.total: int | None = None
        if num_frames is not None and num_frames >= 2:
            self.total = _count_outputs(int(num_frames), self.step)
            if self.total > MAX_OUTPUT_FRAMES:
                raise InputError(f"This would make {self.total} frames, more than the maximum of {MAX_OUTPUT_FRAMES}."
                                 " Use a smaller factor or target fps, or a shorter clip.")
        self.progress = progress
        self.cancel = cancel
        self.stats = InterpolationStats()
        self._gen = self._run(iter(frames))

    def __next__(self) -> np.ndarray:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()

    def _emit(self, frame: np.ndarray) -> np.ndarray:
        if self.cancel is not None and self.cancel.is_set():
            raise GenerationCancelled("Cancelled.")
        self.stats.output_frames += 1
        if self.stats.output_frames > MAX_OUTPUT_FRAMES:
            raise InputError(f"This would make more than {MAX_OUTPUT_FRAMES} frames, the maximum. "
                             "Use a smaller factor or target fps, or a shorter clip.")
        if self.progress is not None:
            total = self.total if self.total is not None and self.total >= self.stats.output_frames else None
            self.progress(self.stats.output_frames, total)
        return frame

    def _interpolated(self, frame0: np.ndarray, frame1: np.ndarray, times: list[float], index: int) -> list:
        """The backend's frames for one pair, checked (runs on a worker thread when pairs are made in parallel)."""
        made = self.backend.interpolate(frame0, frame1, times)
        if len(made) != len(times):
            raise RuntimeError(f"backend {self.backend.name} returned {len(made)} frames for {len(times)} times")
        checked = [_as_rgb(frame, index) for frame in made]
        if any(frame.shape != frame0.shape for frame in checked):
            raise RuntimeError(f"backend {self.backend.name} returned a frame of another size than its inputs "
                               f"{frame0.shape}")
        return checked

    def _flush(self, pending: deque, keep: int) -> Iterator[np.ndarray]:
        """Yield the finished pairs at the head of ``pending``, in order; wait for the head while more than
        ``keep`` pairs are in flight."""
        while pending and (len(pending) > keep or not isinstance(pending[0], Future) or pending[0].done()):
            item = pending.popleft()
            frames = item.result() if isinstance(item, Future) else item
            self.stats.flow_failed_pairs = getattr(self.backend, "failed_pairs", 0) - self._failed_before
            for frame in frames:
                yield self._emit(frame)

    def _run(self, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        try:
            prev = next(frames)
        except StopIteration:
            raise InputError("The input has no frames. Give a video or folder with at least 2 frames.") from None
        prev = _as_rgb(prev, 0)
        self.stats.input_frames = 1
        prev_thumb = _thumb(prev)
        cuts = _CutDetector()
        step = self.step
        j = 0  # next output index; its position is j*step
        index = 0  # position of prev
        # Per pair, in order: its output frames, or the Future making them on a worker thread.
        pending: deque[list[np.ndarray] | Future] = deque()
        pool = ThreadPoolExecutor(self.workers, thread_name_prefix="svd-interp") if self.workers > 1 else None
        try:
            for cur in frames:
                cur = _as_rgb(cur, index + 1)
                if cur.shape != prev.shape:
                    raise InputError(f"Frame {index + 1} is {cur.shape[1]}x{cur.shape[0]} but frame 0 is "
                                     f"{prev.shape[1]}x{prev.shape[0]}; all frames must have the same size.")
                self.stats.input_frames += 1
                cur_thumb = _thumb(cur)
                is_cut = cuts.is_cut(prev_thumb, cur_thumb)
                times: list[float] = []
                while j * step < index + 1:
                    times.append(float(j * step - index))
                    j += 1
                if times and times[0] == 0.0:
                    pending.append([prev.copy()])
                    times = times[1:]
                if times and (is_cut or _near_identical(prev, cur)):
                    if is_cut:
                        self.stats.cut_pairs += 1
                    else:
                        self.stats.copied_pairs += 1
                    pending.append([(prev if t < 0.5 else cur).copy() for t in times])
                elif times:
                    self.stats.interpolated_frames += len(times)
                    if pool is None:
                        pending.append(self._interpolated(prev, cur, times, index))
                    else:
                        pending.append(pool.submit(self._interpolated, prev, cur, times, index))
                yield from self._flush(pending, self.workers)
                prev, prev_thumb = cur, cur_thumb
                index += 1
            if index == 0:
                raise InputError("The input has only 1 frame; interpolation needs at least 2 frames.")
            if j * step == index:
                pending.append([prev.copy()])
            yield from self._flush(pending, 0)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


def interpolate_frames(
    frames: Iterable[np.ndarray],
    source_fps: float,
    *,
    factor: int | None = None,
    target_fps: float | None = None,
    slow_motion: bool = False,
    backend: str | InterpolationBackend = "flow",
    num_frames: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> Iterator[np.ndarray]:
    """Stream the interpolated clip: yields HxWx3 uint8 RGB frames at the positions of :func:`output_timestamps`.

    Options are validated at call time (InputError); frames are consumed lazily, two at a time. ``num_frames`` (if
    known) only sets the progress total; ``progress(done, total)`` is called after each output frame. Once
    ``cancel`` is set, the next frame raises GenerationCancelled instead.
    """
    return FrameInterpolator(frames, source_fps, factor=factor, target_fps=target_fps, slow_motion=slow_motion,
                             backend=backend, num_frames=num_frames, progress=progress, cancel=cancel)


# ---------------------------------------------------------------------------------------------------------- files


@dataclass(frozen=True)
class InterpolationResult:
    output_path: pathlib.Path
    kind: str  # "video" or "folder"
    input_frames: int
    output_frames: int
    source_fps: float
    output_fps: float
    width: int
    height: int
    backend: str
    seconds: float
    cut_pairs: int = 0
    copied_pairs: int = 0
    flow_failed_pairs: int = 0
    notes: tuple[str, ...] = ()
    video_info: object | None = field(default=None, repr=False)

    @property
    def duration_s(self) -> float:
        """Playback length of the output."""
        return self.output_frames / self.output_fps


def _output_kind(output_path: pathlib.Path) -> str:
    if output_path.is_dir():
        return "folder"
    suffix = output_path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix == "":
        return "folder"
    raise InputError(f"Cannot write {output_path.name!r}: the output must end in "
                     f"{', '.join(VIDEO_SUFFIXES)} (a video) or be a folder (PNG frames).")


class _Prefetch(Iterator[np.ndarray]):
    """Reads ``source`` in a background thread, at most ``depth`` items ahead (decoding overlaps computing)."""

    _END = object()

    def __init__(self, source: Iterator[np.ndarray], depth: int = 2) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(source,), name="svd-interp-reader", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source: Iterator[np.ndarray]) -> None:
        try:
            for item in source:
                if not self._put((item, None)):
                    return
            self._put((self._END, None))
        except BaseException as exc:  # handed to the consumer, raised there
            self._put((None, exc))

    def __next__(self) -> np.ndarray:
        if self._done:
            raise StopIteration
        item, exc = self._queue.get()
        if exc is not None:
            self._done = True
            raise exc
        if item is self._END:
            self._done = True
            raise StopIteration
        return item

    def close(self) -> None:
        self._done = True
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(timeout=0.05)


def _drain(frames: Iterator[np.ndarray], write: Callable[[np.ndarray], object], depth: int = 3) -> int:
    """Pass every frame to ``write`` in one background thread (encoding overlaps computing); returns the count."""
    pending: deque = deque()
    count = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="svd-interp-writer") as pool:
        try:
            for frame in frames:
                while len(pending) >= depth:
                    pending.popleft().result()
                pending.append(pool.submit(write, frame))
                count += 1
            while pending:
                pending.popleft().result()
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return count


def _write_folder(frames: Iterator[np.ndarray], output_path: pathlib.Path, total: int | None) -> int:
    if output_path.exists() and not output_path.is_dir():
        raise InputError(f"The output {str(output_path)!r} is an existing file; give a folder name or a path ending "
                         f"in {', '.join(VIDEO_SUFFIXES)}.")
    if output_path.exists() and any(output_path.iterdir()):
        raise InputError(f"The output folder {str(output_path)!r} is not empty. Choose a new or empty folder.")
    digits = max(5, len(str(total or 0)))
    output_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_path.with_name(f".{output_path.name}.partial-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    index = iter(range(MAX_OUTPUT_FRAMES + 1))

    def write(frame: np.ndarray) -> None:
        name = tmp / f"frame_{next(index):0{digits}d}.png"
        if not cv2.imwrite(str(name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]):
            raise InputError(f"Could not write {name.name} into {str(output_path.parent)!r}; "
                             "check that the folder is writable and the disk is not full.")

    try:
        count = _drain(frames, write)
        if output_path.exists():
            output_path.rmdir()
        os.replace(tmp, output_path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return count


def interpolate_file(
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    *,
    factor: int | None = None,
    target_fps: float | None = None,
    slow_motion: bool = False,
    backend: str | InterpolationBackend = "flow",
    progress: ProgressCallback | None = None,
    metadata: dict | None = None,
    input_fps: float | None = None,
    cancel: threading.Event | None = None,
) -> InterpolationResult:
    """Interpolate a video file or image folder into a video (.mp4/.webm/.gif) or a folder of PNG frames.

    Folder output holds every frame (originals included) as ``frame_00000.png``, ``frame_00001.png``, ...
    MP4 output is H.264 yuv420p crf 18 with x264's ``X264_PRESET`` (faster than the shared encoder's default).
    ``input_fps`` overrides the input's rate (for folders it defaults to 8 fps). Outputs are written under a
    temporary name and renamed at the end; on any error nothing is left behind. Once ``cancel`` is set, the run
    stops at the next output frame (GenerationCancelled), leaving nothing either.
    """
    from svd_demo.video_input import open_frames

    started = time.perf_counter()
    out = pathlib.Path(output_path).expanduser()
    kind = _output_kind(out)
    _rate_step(input_fps or 1.0, factor, target_fps, slow_motion)  # validate options before opening anything
    src = open_frames(input_path, fps=input_fps)
    frames = _Prefetch(src.frames)
    with src:
        try:
            if out.resolve() == src.path.resolve():
                raise InputError("The output path is the input path; choose a different output.")
            if src.num_frames is not None and src.num_frames < 2:
                raise InputError(f"The input has {src.num_frames} frame(s); interpolation needs at least 2 frames.")
            engine = FrameInterpolator(frames, src.fps, factor=factor, target_fps=target_fps,
                                       slow_motion=slow_motion, backend=backend, num_frames=src.num_frames,
                                       progress=progress, cancel=cancel)
            info = None
            if kind == "video":
                if engine.output_fps > MAX_VIDEO_FPS:
                    raise InputError(f"The output would play at {engine.output_fps:g} fps, above the maximum of "
                                     f"{MAX_VIDEO_FPS:g} for a video file. Use a smaller factor, a target fps, "
                                     "slow motion, or a folder output.")
                from svd_demo.media import open_video_writer

                tags = {str(k): str(v) for k, v in (metadata or {}).items()}
                with open_video_writer(out, engine.output_fps, metadata=tags or None,
                                       x264_preset=X264_PRESET) as writer:
                    _drain(engine, writer.write)
                info = writer.info
            else:
                _write_folder(engine, out, engine.total)
        finally:
            frames.close()
            src.close()
    stats = engine.stats
    notes = list(src.notes)
    if engine.step > 1:  # a target below the source rate: fewer frames out than in, nothing blended in between
        notes.append(f"The target of {float(target_fps):g} fps is below the source's {src.fps:g} fps, so the clip "
                     f"was thinned out, not smoothed: {stats.input_frames - stats.output_frames} of its "
                     f"{stats.input_frames} frames were dropped. For smoother motion choose a target above "
                     f"{src.fps:g} fps, or a factor.")
    return InterpolationResult(
        output_path=out, kind=kind, input_frames=stats.input_frames, output_frames=stats.output_frames,
        source_fps=src.fps, output_fps=engine.output_fps, width=src.width, height=src.height,
        backend=engine.backend.name, seconds=time.perf_counter() - started, cut_pairs=stats.cut_pairs,
        copied_pairs=stats.copied_pairs, flow_failed_pairs=stats.flow_failed_pairs, notes=tuple(notes),
        video_info=info,
    )


# ------------------------------------------------------------------------------------------------------------ CLI


def add_cli_arguments(parser) -> None:
    """The interpolation options on an ``argparse`` parser (also used for ``python -m svd_demo interpolate``)."""
    parser.add_argument("input", help="video file (mp4, webm, mov, mkv, gif, ...) or folder of images")
    parser.add_argument("--out", required=True, help="output .mp4/.webm/.gif, or a folder for PNG frames")
    rate = parser.add_mutually_exclusive_group(required=True)
    rate.add_argument("--factor", type=int, help=f"output frames per input frame ({MIN_FACTOR}-{MAX_FACTOR})")
    rate.add_argument("--target-fps", "--fps", type=float, dest="target_fps",
                      help="exact output frame rate, e.g. 24 or 30")
    parser.add_argument("--slow-motion", action="store_true",
                        help="keep the source frame rate: the clip plays factor (or fps/source fps) times longer")
    parser.add_argument("--backend", default="flow", choices=sorted(BACKENDS),
                        help="flow (default), flow-hq (sharper, about 2x slower) or blend (cross-fade)")
    parser.add_argument("--input-fps", type=float, default=None,
                        help="override the input frame rate (a folder of images defaults to 8)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run_cli(args) -> int:
    """Run an interpolation from parsed :func:`add_cli_arguments` options (`python -m svd_demo interpolate`).

    Errors for the user propagate: `svd_demo.cli.main` prints them and exits with 2, as for every subcommand.
    """
    import sys

    def progress(done: int, total: int | None) -> None:
        print(f"\r{done}/{total if total else '?'} frames", end="", file=sys.stderr, flush=True)

    result = interpolate_file(args.input, args.out, factor=args.factor, target_fps=args.target_fps,
                              slow_motion=args.slow_motion, backend=args.backend, input_fps=args.input_fps,
                              progress=None if args.quiet else progress)
    if not args.quiet:
        print(file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{result.output_path}: {result.output_frames} frames at {result.output_fps:g} fps from "
          f"{result.input_frames} at {result.source_fps:g} fps ({result.width}x{result.height}, {result.backend}, "
          f"{result.cut_pairs} cuts, {result.copied_pairs} still pairs) in {result.seconds:.2f} s")
    return 0
