"""The flow backend on what real footage shows most: objects moving over a still background, with occlusions.

Small synthetic frames with an exact ground truth: a textured object slides over a textured still background, so
the background it uncovers is visible only in the later frame and the background it covers only in the earlier one.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from svd_demo.engine.interpolation import FlowBackend


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _texture(h: int, w: int, seed: int, lo: float = 40, hi: float = 215) -> np.ndarray:
    rng = np.random.default_rng(seed)
    acc = np.zeros((h, w), np.float32)
    for cell, amp in ((24, 1.0), (6, 0.5)):
        small = rng.normal(0, 1, (h // cell + 3, w // cell + 3)).astype(np.float32)
        acc += amp * cv2.resize(small, (w + 3 * cell, h + 3 * cell), interpolation=cv2.INTER_CUBIC)[:h, :w]
    acc = (acc - acc.min()) / (acc.max() - acc.min())
    grey = lo + (hi - lo) * acc
    return np.stack([grey, grey * 0.8 + 20, grey * 0.6 + 40], axis=2).clip(0, 255).astype(np.uint8)


def _scene(x: int, *, size: int = 40, h: int = 180, w: int = 320, y: int = 70, offset: int = 0) -> np.ndarray:
    """The still background (its brightness raised by ``offset``) with the object's left edge at column x."""
    frame = np.clip(_texture(h, w, seed=1).astype(np.int16) + offset, 0, 255).astype(np.uint8)
    frame[y:y + size, x:x + size] = _texture(size, size, seed=2, lo=0, hi=90)  # a darker object
    return frame


def test_a_fast_object_over_a_still_background_lands_where_it_is_at_the_midpoint():
    # 40 px in one step at the flow's own resolution (320x180): beyond the reach of a three-level DIS pyramid
    # (which 8 px patches give at this size: 19.5 dB here), within a four-level one's (7 px patches: 28.7 dB).
    f0, f1, mid = _scene(60), _scene(100), _scene(80)
    out = FlowBackend().interpolate(f0, f1, [0.5])[0]
    box = np.s_[60:120, 50:150]  # the object's path, with the background it covers and uncovers
    assert _psnr(out[box], mid[box]) > 24.0
    assert _psnr(out[box], mid[box]) > _psnr(cv2.addWeighted(f0, 0.5, f1, 0.5, 0)[box], mid[box]) + 6.0


def test_uncovered_background_comes_from_the_frame_that_shows_it():
    f0, f1, mid = _scene(60, size=40), _scene(84, size=40), _scene(72, size=40)
    out = FlowBackend().interpolate(f0, f1, [0.5])[0]
    ghost = cv2.addWeighted(f0, 0.5, f1, 0.5, 0)  # what a blend shows there: half object, half background
    # Columns 60-71 are object in f0 and background at t=0.5 and in f1; columns 100-111 are background in f0 and
    # at t=0.5, object in f1. Each must be the background, taken from the frame that shows it.
    for box in (np.s_[74:106, 62:70], np.s_[74:106, 102:110]):
        assert _psnr(out[box], mid[box]) > max(25.0, _psnr(ghost[box], mid[box]) + 8.0), box


def test_an_exposure_change_with_a_moving_object_is_interpolated_not_counted_as_a_failed_flow():
    # Real cameras re-expose as a dark subject crosses the frame: the still background brightens by 8 levels.
    f0, f1 = _scene(60, size=60), _scene(96, size=60, offset=8)
    mid = _scene(78, size=60, offset=4)
    backend = FlowBackend()
    out = backend.interpolate(f0, f1, [0.5])[0]
    assert backend.failed_pairs == 0
    assert _psnr(out, mid) > max(_psnr(f0, mid), _psnr(f1, mid)) + 3.0


def test_where_the_warps_disagree_the_still_frames_are_blended_instead():
    from svd_demo.engine.interpolation.backends import fall_back_where_warps_disagree

    rng = np.random.default_rng(0)
    frame0 = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frame1 = frame0.copy()
    warp0, warp1 = frame0.copy(), frame0.copy()
    warp1[:, 32:] = 255 - warp1[:, 32:]  # right half: the flow is wrong (its warps disagree), the scene is still
    motion = cv2.addWeighted(warp0, 0.5, warp1, 0.5, 0)
    out = fall_back_where_warps_disagree(frame0, frame1, warp0, warp1, motion, 0.5)
    assert np.abs(out[:, :24].astype(int) - motion[:, :24]).max() <= 1  # the warps agree: motion-compensated
    assert np.abs(out[:, 40:].astype(int) - frame0[:, 40:]).mean() < 3.0  # they disagree: the still frames
    # A pan: the frames differ everywhere and the warps nearly agree (a few levels of resampling error): motion.
    moved = np.roll(frame0, 8, axis=1)
    warp1 = np.clip(warp0.astype(np.int16) + rng.integers(-6, 7, warp0.shape), 0, 255).astype(np.uint8)
    motion = cv2.addWeighted(warp0, 0.5, warp1, 0.5, 0)
    out = fall_back_where_warps_disagree(frame0, moved, warp0, warp1, motion, 0.5)
    fade = cv2.addWeighted(frame0, 0.5, moved, 0.5, 0)
    assert np.abs(out.astype(int) - motion).mean() < 0.1 * np.abs(fade.astype(int) - motion).mean()


def test_a_large_object_entering_a_still_scene_is_motion_not_a_scene_cut():
    # A car drives into an empty road between two frames 8 apart: the thumbnails differ as much as at a cut
    # (a quarter of the picture changes by ~150 levels), but the road, three quarters of it, is explained.
    from svd_demo.engine import interpolation as interp

    road = _texture(180, 320, seed=1, lo=20, hi=100)
    car = road.copy()
    car[30:150, 110:230] = _texture(120, 120, seed=2, lo=170, hi=250)
    engine = interp.FrameInterpolator([road, car], 8.0, factor=4)
    out = list(engine)
    assert engine.stats.cut_pairs == 0 and engine.stats.interpolated_frames == 3
    middle = out[2]
    assert not np.array_equal(middle, road) and not np.array_equal(middle, car)
    outside = np.s_[:, :100]  # the road away from the car stays the road
    assert _psnr(middle[outside], road[outside]) > 40.0


def test_a_pair_the_flow_explains_has_its_flows_computed_once():
    # The cut test asks the backend (`explains`) before the pair is interpolated: both need the same flows.
    from svd_demo.engine import interpolation as interp

    class Counting(FlowBackend):
        calls = 0

        def _flows(self, g0, g1):
            Counting.calls += 1
            return super()._flows(g0, g1)

    road = _texture(180, 320, seed=1, lo=20, hi=100)
    car = road.copy()
    car[30:150, 110:230] = _texture(120, 120, seed=2, lo=170, hi=250)
    for workers in (1, 2):  # asked on the caller's thread, interpolated on a worker's
        Counting.calls = 0
        engine = interp.FrameInterpolator([road, car, car[:, ::-1].copy()], 8.0, factor=4, backend=Counting(),
                                          workers=workers)
        out = list(engine)
        assert len(out) == 9 and engine.stats.interpolated_frames == 6
        assert Counting.calls == 2  # one per pair

def test_the_residual_median_equals_numpys():
    from svd_demo.engine.interpolation.backends import _median

    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 120 * 213):  # odd and even counts, and the splat grid's size
        values = (rng.normal(size=(n, 1)) * 9).astype(np.float32)
        assert _median(values) == float(np.median(values))
