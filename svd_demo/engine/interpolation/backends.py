"""Interpolation backends: each makes the in-between frames for one pair of neighbouring frames.

``BACKENDS`` maps a name to a factory; a neural RIFE-class backend plugs in by adding one there, callers do not
change. Cut and still-frame handling happen before a backend is asked (`svd_demo.engine.interpolation.cuts`).

* ``flow`` (default): dense optical flow in both directions (OpenCV DIS at reduced resolution), flows splatted
  forward to the wanted time t, both neighbours warped to t (``cv2.remap``) and blended with occlusion-aware weights
  (forward-backward and photometric consistency); where the two warps disagree more than the still frames differ
  (a missed or torn flow, an object leaving), the result leans towards the plain cross-fade
  (:func:`fall_back_where_warps_disagree`). Any t in (0, 1), not only midpoints. CPU only, no weights.
* ``flow-hq``: the same with flow at up to 512x288 instead of 320x180: sharper on fast small objects, ~2x slower.
* ``blend``: plain cross-fade, the baseline.

The flow backend treats a pair as a cut when its flow fails: for more than ``FLOW_FAIL_FRACTION`` of the pixels
(in both directions, on average) the colour at the flow's target differs too much (photometric consistency below
0.5: a grey-level difference above about 8 after a 3x3 box blur, on the splat grid, once the global contrast of the
two frames and the still background's brightness are matched, so fades and exposure changes do not count). Real
footage at SVD-like gaps leaves up to 71% of the pixels unexplained (a handheld close-up, 8 frames apart; a person
crossing a room in 0.8 s: 41%) and still interpolates better than a copy; unrelated frames leave all of them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from svd_demo.core.errors import InputError

FLOW_FAIL_FRACTION = 0.85
CUT_CONFIRM_FRACTION = 0.75
"""A pair the thumbnails call a cut stays one only if its flow leaves more than this fraction unexplained: a car
entering an empty road changes the thumbnails as much as a cut does (measured: a real one, 8 frames apart, left
14% unexplained; a handheld close-up 71%)."""
VISIBILITY_FLOOR = 0.2
"""Weight each side keeps however occluded it looks: the occlusion estimate is itself often wrong at large gaps."""
TIME_POWER = 2.0
"""The neighbours' weights go as (1-t)^p and t^p: at t = 1/8 the nearer frame gets 98% instead of 88%, which errs
less at large gaps, where the farther frame's warp is the less certain; at t = 1/2 it changes nothing."""
DISAGREEMENT_WINDOW = 31
"""Box (pixels) over which the two warps' disagreement and the still frames' difference are averaged."""
DISAGREEMENT_GAIN = 1.5
"""How much more the warps' disagreement counts than the still frames' difference (tuned on real footage)."""
MAX_WORKERS = 8
"""Most pairs interpolated at once (on as many threads): each one in flight holds its frames in memory."""


@runtime_checkable
class InterpolationBackend(Protocol):
    """Makes in-between frames for one pair of neighbours.

    ``frame0`` and ``frame1`` are HxWx3 uint8 RGB arrays of the same size; ``times`` are positions strictly between
    them (0 < t < 1, increasing). Returns one HxWx3 uint8 RGB frame per time. Backends may keep caches between
    calls but must not keep references to earlier frames beyond the current pair. Cut and still-frame handling
    happen before a backend is called. Optional: a ``failed_pairs`` int attribute, counted in the stats,
    ``max_workers``: how many pairs it may be given at once from different threads (without it: one at a time,
    e.g. a backend holding one GPU model), and ``explains(frame0, frame1) -> bool``: asked about a pair the
    thumbnails call a cut, True when its motion accounts for the change (then it is interpolated after all).
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
    to at most ``flow_pixels`` (default 320x180 for 16:9; 7 px patches give DIS four pyramid levels there, which
    reach about 40 px of motion, where 8 px patches give three), resampled to a coarser "splat" grid (at most
    ``splat_pixels``, default 213x120) where each pixel gets a confidence in [0, 1]: the larger of its
    forward-backward consistency and its photometric consistency (a pixel whose flow is unreliable or that is
    occluded in the other frame scores low).
    Per output time t: both flows are splatted forward to t (nearest-pixel splatting weighted by confidence**4, so the
    surface that stays visible wins where layers overlap), holes are filled from their surroundings, the flow at t
    is upscaled to full size, both frames are warped to t (``cv2.remap``) and blended with weights ((1-t)^2, t^2) times
    each side's visibility: a side whose sample is occluded in the other frame, or falls outside the picture, gets
    less weight (down to ``VISIBILITY_FLOOR`` of it: the occlusion estimate is itself often wrong at large gaps).
    Last, :func:`fall_back_where_warps_disagree`. Tuned on the interpolation benchmarks (BENCHMARKS.md, "Frame
    interpolation" and "Interpolation on real footage").
    """

    name = "flow"
    max_workers = MAX_WORKERS  # thread-safe: each thread has its own DIS object

    def __init__(
        self,
        *,
        flow_pixels: int = 57_600,
        splat_pixels: int = 25_600,
        finest_scale: int = 0,
        patch_size: int = 7,
        patch_stride: int = 4,
        gd_iters: int = 25,
        var_iters: int = 5,
        occlusion_sigma: float = 1.0,
        occlusion_rel: float = 0.05,
        photo_sigma: float = 10.0,
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
        self._explained: tuple[np.ndarray, np.ndarray, dict] | None = None
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
        residual = wf - gain * af
        # Occluded pixels err by a lot and mostly one way (a dark subject over a light wall), which drags the means:
        # the residual's median is the still background's own brightness change, e.g. a camera re-exposing.
        residual -= _median(residual)
        perr = cv2.blur(np.abs(residual), (3, 3))
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
        # What every output time of the pair splats: the same weights and motions, only moved by a different
        # fraction of the flow (at gap 8, seven times).
        weights = np.power(1e-3 + np.concatenate([c0.ravel(), c1.ravel()]), self.splat_power)
        motion_u = np.concatenate([f01[..., 0].ravel(), -f10[..., 0].ravel()])
        motion_v = np.concatenate([f01[..., 1].ravel(), -f10[..., 1].ravel()])
        return {"f01": f01, "f10": f10, "c0": c0, "c1": c1, "size": (w, h), "ssize": (sw, sh),
                "unexplained": (bad0 + bad1) / 2, "splat_w": weights, "splat_wu": weights * motion_u,
                "splat_wv": weights * motion_v, "still_difference": None}

    def _splat(self, state: dict, t: float) -> np.ndarray:
        """Motion (0->1, in splat pixels) of the surface seen at time t, per splat pixel."""
        sw, sh = state["ssize"]
        xs, ys = self._grid(sw, sh)
        n = sw * sh
        idx_parts = []
        # Frame-0 pixels move by t*f01 (their motion is f01), frame-1 pixels by (1-t)*f10 (their motion is -f10).
        for flow, frac in ((state["f01"], t), (state["f10"], 1.0 - t)):
            cx = np.rint((xs + frac * flow[..., 0]).ravel()).astype(np.int64)
            cy = np.rint((ys + frac * flow[..., 1]).ravel()).astype(np.int64)
            inside = (cx >= 0) & (cx < sw) & (cy >= 0) & (cy < sh)
            idx_parts.append(np.where(inside, cy * sw + cx, n))
        idx = np.concatenate(idx_parts)
        acc_w = np.bincount(idx, state["splat_w"], minlength=n + 1)[:n]
        acc_u = np.bincount(idx, state["splat_wu"], minlength=n + 1)[:n]
        acc_v = np.bincount(idx, state["splat_wv"], minlength=n + 1)[:n]
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
        w0 = (1.0 - t) ** TIME_POWER * (vis0 + VISIBILITY_FLOOR)
        w1 = t**TIME_POWER * (vis1 + VISIBILITY_FLOOR)
        alpha1 = (w1 / (w0 + w1)).astype(np.float32)
        alpha0 = 1.0 - alpha1
        doubt = 1.0 - np.minimum(c0, c1)  # where both sides' flows check out, the fallback stays out
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
            doubt = cv2.resize(doubt, (w, h), interpolation=cv2.INTER_LINEAR)
        warp0 = cv2.remap(frame0, map0, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        warp1 = cv2.remap(frame1, map1, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        motion = cv2.blendLinear(warp0, warp1, alpha0, alpha1)
        if state["still_difference"] is None:  # the same for every time of the pair
            state["still_difference"] = _difference(frame0, frame1)
        return fall_back_where_warps_disagree(frame0, frame1, warp0, warp1, motion, t, doubt,
                                              state["still_difference"])

    def explains(self, frame0: np.ndarray, frame1: np.ndarray) -> bool:
        """Whether the flow accounts for a change the cut test flagged (see ``CUT_CONFIRM_FRACTION``).

        A pair it explains is interpolated next, maybe on another thread: its flows are kept for that call.
        """
        state = self.prepare(frame0, frame1)
        explained = state["unexplained"] <= CUT_CONFIRM_FRACTION
        with self._lock:
            self._explained = (frame0, frame1, state) if explained else None
        return explained

    def _prepared(self, frame0: np.ndarray, frame1: np.ndarray) -> dict:
        """:meth:`prepare`'s result for the pair, the one :meth:`explains` kept if it is this pair (same arrays)."""
        with self._lock:
            kept = self._explained
            if kept is not None and kept[0] is frame0 and kept[1] is frame1:
                self._explained = None
                return kept[2]
        return self.prepare(frame0, frame1)

    def interpolate(self, frame0: np.ndarray, frame1: np.ndarray, times: Sequence[float]) -> list[np.ndarray]:
        if not times:
            return []
        state = self._prepared(frame0, frame1)
        if state["unexplained"] > FLOW_FAIL_FRACTION:
            with self._lock:
                self.failed_pairs += 1
            return [(frame0 if t < 0.5 else frame1).copy() for t in times]
        return [self.render(frame0, frame1, state, float(t)) for t in times]


def _difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Grey-level difference of two frames averaged over ``DISAGREEMENT_WINDOW`` pixels, at a quarter of the size.

    The differences are averaged over a wide box anyway: area-averaged to a quarter of the size, then a box of a
    quarter of the window. At 1024x576 on one thread this takes 5 ms instead of 9 at full size.
    """
    h, w = a.shape[:2]
    small = (max(1, round(w / 4)), max(1, round(h / 4)))
    box = (max(1, round(DISAGREEMENT_WINDOW / 4)),) * 2
    grey = cv2.absdiff(cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b, cv2.COLOR_RGB2GRAY))
    return cv2.blur(cv2.resize(grey, small, interpolation=cv2.INTER_AREA).astype(np.float32), box)


def fall_back_where_warps_disagree(
    frame0: np.ndarray, frame1: np.ndarray, warp0: np.ndarray, warp1: np.ndarray, motion: np.ndarray, t: float,
    doubt: np.ndarray | None = None, still: np.ndarray | None = None,
) -> np.ndarray:
    """The motion-compensated frame, mixed towards the plain cross-fade where the two warps disagree more than the
    two frames themselves differ.

    Where both neighbours warped to t show the same thing, the flow is right and ``motion`` stays. Where they
    disagree (a wrong or torn flow, an occlusion seen from the wrong side) but the unwarped frames agree, the
    content is still there (the background behind a person who walked on), so the cross-fade is right. Where both
    differ (fast motion the flow missed), the mix is an average of two uncertain guesses, which errs less than
    either. Weight of the cross-fade: g*d_warp / (g*d_warp + d_still + 4), with g ``DISAGREEMENT_GAIN`` and the
    grey-level differences averaged over ``DISAGREEMENT_WINDOW`` pixels, times ``doubt`` (HxW in [0, 1]) where
    given: how little the flows' own consistency checks vouch for each pixel. Without it a pan over fine texture,
    whose warps differ by a few levels of resampling error, would be softened by the cross-fade. ``still``:
    the still frames' ``_difference`` where the caller has it already (it is the same for every t).
    """
    h, w = frame0.shape[:2]
    d_warp = DISAGREEMENT_GAIN * _difference(warp0, warp1)
    d_still = _difference(frame0, frame1) if still is None else still
    weight = cv2.resize((d_warp / (d_warp + d_still + 4.0)).astype(np.float32), (w, h),
                        interpolation=cv2.INTER_LINEAR)
    if doubt is not None:
        weight *= doubt
    fade = cv2.addWeighted(frame0, 1.0 - float(t), frame1, float(t), 0.0)
    return cv2.blendLinear(fade, motion, weight, 1.0 - weight)


def _median(values: np.ndarray) -> float:
    """np.median of a float array, without the NaN check that imports numpy's masked arrays (40 ms of start-up, a
    few percent of a short clip's run); the values here are never NaN."""
    flat = values.ravel()
    mid = flat.size // 2
    if flat.size % 2:
        return float(np.partition(flat, mid)[mid])
    low, high = np.partition(flat, (mid - 1, mid))[mid - 1:mid + 1]
    return float((low + high) / 2)


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
