"""Frame interpolation: timestamps, motion, cuts, still frames, files, streaming and clear errors."""

from __future__ import annotations

import itertools
import json
import math
import threading

import cv2
import numpy as np
import pytest
from helpers import save_frames
from PIL import Image

from svd_demo.core.errors import InputError
from svd_demo.engine import interpolation as interp
from svd_demo.engine.interpolation import (
    BACKENDS,
    FlowBackend,
    InterpolationBackend,
    interpolate_file,
    interpolate_frames,
    output_timestamps,
)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _texture(h: int, w: int, seed: int = 0, tint=(1.0, 0.8, 0.6)) -> np.ndarray:
    """A smooth but detailed colour texture (noise at several scales), like a photo at a glance."""
    rng = np.random.default_rng(seed)
    acc = np.zeros((h, w), np.float32)
    for cell, amp in ((32, 90), (8, 50), (3, 25)):
        small = rng.normal(0, 1, (h // cell + 3, w // cell + 3)).astype(np.float32)
        acc += amp * cv2.resize(small, (w + 3 * cell, h + 3 * cell), interpolation=cv2.INTER_CUBIC)[:h, :w]
    grey = np.clip(128 + acc, 0, 255)
    return np.clip(np.stack([grey * t for t in tint], axis=2), 0, 255).astype(np.uint8)


def _moving(n: int, h: int = 72, w: int = 96, step: int = 4, seed: int = 0) -> list[np.ndarray]:
    base = _texture(h, w + step * n, seed)
    return [np.ascontiguousarray(base[:, step * (n - i):step * (n - i) + w]) for i in range(n)]


def _equals_one_of(frame: np.ndarray, *candidates: np.ndarray) -> bool:
    return any(np.array_equal(frame, c) for c in candidates)


# ----------------------------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize("factor", [2, 3, 4, 8, 16])
def test_factor_gives_n_minus_1_times_k_plus_1_frames(factor):
    times, fps = output_timestamps(5, 7.0, factor=factor)
    assert len(times) == 4 * factor + 1
    assert times == pytest.approx([j / factor for j in range(4 * factor + 1)])
    assert fps == 7.0 * factor
    assert output_timestamps(5, 7.0, factor=factor, slow_motion=True)[1] == 7.0


@pytest.mark.parametrize(("src", "dst", "n", "count"), [(7, 24, 14, 45), (6, 30, 14, 66), (25, 24, 25, 24),
                                                        (8, 8, 14, 14), (6, 24, 25, 97), (30000 / 1001, 60, 10, 19)])
def test_target_fps_timestamps(src, dst, n, count):
    times, fps = output_timestamps(n, src, target_fps=dst)
    assert fps == dst
    assert len(times) == count
    step = src / dst
    assert times == pytest.approx([j * step for j in range(count)], abs=1e-6)
    assert times[0] == 0.0 and times[-1] <= n - 1
    # playback length stays the source's (to within one output frame)
    assert abs(count / dst - n / src) <= 1 / dst + 1 / src
    assert output_timestamps(n, src, target_fps=dst, slow_motion=True) == (times, src)


@pytest.mark.parametrize("kwargs", [
    {"factor": 0}, {"factor": 1}, {"factor": -2}, {"factor": 17}, {"factor": 2.5}, {"factor": float("nan")},
    {"factor": float("inf")}, {"factor": "two"}, {"target_fps": 0}, {"target_fps": -24}, {"target_fps": 241},
    {"target_fps": float("nan")}, {"target_fps": float("inf")}, {}, {"factor": 2, "target_fps": 24},
])
def test_bad_rate_options_are_input_errors(kwargs):
    with pytest.raises(InputError):
        output_timestamps(5, 8.0, **kwargs)
    with pytest.raises(InputError):
        interpolate_frames([], 8.0, **kwargs)


@pytest.mark.parametrize("src", [0, -1, float("nan"), float("inf")])
def test_bad_source_fps_is_an_input_error(src):
    with pytest.raises(InputError, match="source frame rate"):
        output_timestamps(5, src, factor=2)


def test_timestamps_need_two_frames():
    for n in (0, 1):
        with pytest.raises(InputError, match="at least 2"):
            output_timestamps(n, 8.0, factor=2)


# ------------------------------------------------------------------------------------------------ streaming


@pytest.mark.parametrize("backend", ["flow", "blend"])
@pytest.mark.parametrize(("kwargs", "n"), [({"factor": 3}, 5), ({"target_fps": 24}, 8), ({"target_fps": 20}, 7)])
def test_counts_match_timestamps_and_originals_are_exact_copies(backend, kwargs, n):
    frames = _moving(n)
    times, _ = output_timestamps(n, 8.0, **kwargs)
    out = list(interpolate_frames(frames, 8.0, backend=backend, **kwargs))
    assert len(out) == len(times)
    for t, frame in zip(times, out, strict=True):
        assert frame.shape == frames[0].shape and frame.dtype == np.uint8
        if t == int(t):  # identity at t = 0 and t = 1: the input frame itself, bit for bit
            np.testing.assert_array_equal(frame, frames[int(t)])


def test_same_fps_target_returns_the_input():
    frames = _moving(4)
    out = list(interpolate_frames(frames, 8.0, target_fps=8))
    assert len(out) == 4 and all(np.array_equal(a, b) for a, b in zip(out, frames, strict=True))


def test_synthetic_shift_is_recovered_at_the_midpoint_and_at_a_quarter():
    h, w = 144, 192
    base = _texture(h, w + 32, seed=3)
    f0 = np.ascontiguousarray(base[:, 16:16 + w])
    f1 = np.ascontiguousarray(base[:, 8:8 + w])  # content moved 8 px right
    mid_truth = base[:, 12:12 + w]
    quarter_truth = base[:, 14:14 + w]
    quarter, mid = FlowBackend().interpolate(f0, f1, [0.25, 0.5])
    blend = BACKENDS["blend"]().interpolate(f0, f1, [0.5])[0]
    inner = np.s_[12:-12, 12:-12]
    p_mid = _psnr(mid[inner], mid_truth[inner])
    p_blend = _psnr(blend[inner], mid_truth[inner])
    assert p_mid >= 30.0, p_mid
    assert p_mid >= p_blend + 8.0, (p_mid, p_blend)
    assert _psnr(quarter[inner], quarter_truth[inner]) >= 30.0


def test_pairs_made_in_parallel_equal_pairs_made_one_after_the_other():
    shot = _moving(5, h=96, w=128, step=5)
    other = [np.ascontiguousarray(f[::-1, ::-1]) // 3 for f in _moving(3, h=96, w=128, seed=7)]
    clip = [*shot, shot[-1].copy(), *other]  # motion, a still pair and a hard cut
    runs = {}
    for workers in (1, 4):
        engine = interp.FrameInterpolator(iter(clip), 8.0, factor=3, workers=workers)
        runs[workers] = (list(engine), engine.stats)
    assert interp.FrameInterpolator(clip, 8.0, factor=3, workers=4).workers == 4
    assert interp.FrameInterpolator(clip, 8.0, factor=3, workers=99).workers == interp.MAX_WORKERS
    (serial, serial_stats), (parallel, parallel_stats) = runs[1], runs[4]
    assert len(serial) == len(parallel) == (len(clip) - 1) * 3 + 1
    assert all(np.array_equal(a, b) for a, b in zip(serial, parallel, strict=True))
    assert serial_stats == parallel_stats
    assert (serial_stats.cut_pairs, serial_stats.copied_pairs, serial_stats.interpolated_frames) == (1, 1, 6 * 2)


def test_a_failing_pair_in_parallel_stops_the_run_and_its_threads():
    class Breaks:
        name = "breaks"
        max_workers = 4

        def __init__(self):
            self.calls = itertools.count(1)  # next() on it is atomic: the calls come from several threads

        def interpolate(self, frame0, frame1, times):
            if next(self.calls) == 3:
                raise RuntimeError("pair 3 broke")
            return [cv2.addWeighted(frame0, 0.5, frame1, 0.5, 0) for _ in times]

    before = {t.name for t in threading.enumerate()}
    engine = interp.FrameInterpolator(iter(_moving(10)), 8.0, factor=2, backend=Breaks(), workers=4)
    with pytest.raises(RuntimeError, match="pair 3 broke"):
        list(engine)
    assert not [t for t in threading.enumerate() if t.name.startswith("svd-interp") and t.name not in before]


def test_flows_in_both_directions():
    f0, f1 = _moving(2, h=96, w=128, step=5)
    g0, g1 = (cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (f0, f1))
    f01, f10 = FlowBackend()._flows(g0, g1)
    assert np.median(f01[..., 0]) == pytest.approx(5, abs=0.5)  # _moving moves the content 5 px right per frame
    assert np.median(f10[..., 0]) == pytest.approx(-5, abs=0.5)


def test_hard_cut_never_blends_the_two_shots():
    a = _moving(3, seed=1)
    b = [np.ascontiguousarray(f[:, ::-1, ::-1]) for f in _moving(3, seed=7)]  # another scene: other colours/layout
    b = [np.clip(f.astype(np.int16) // 2 + 20, 0, 255).astype(np.uint8) for f in b]
    clip = a + b
    for backend in ("flow", "blend"):
        engine = interp.FrameInterpolator(clip, 8.0, factor=4, backend=backend)
        out = list(engine)
        assert len(out) == 5 * 4 + 1
        between = out[2 * 4 + 1:3 * 4]  # the three frames between a[2] and b[0]
        assert all(_equals_one_of(f, a[2], b[0]) for f in between), backend
        assert engine.stats.cut_pairs == 1
        # the nearer frame is repeated
        assert np.array_equal(between[0], a[2]) and np.array_equal(between[-1], b[0])


def test_near_identical_frames_are_copied():
    f0 = _texture(64, 80, seed=2)
    f1 = f0.copy()
    f1[10, 10] += 1
    f1[30, 40] -= 1
    engine = interp.FrameInterpolator([f0, f1], 8.0, factor=4)
    out = list(engine)
    assert len(out) == 5 and all(_equals_one_of(f, f0, f1) for f in out)
    assert engine.stats.copied_pairs == 1 and engine.stats.interpolated_frames == 0


def test_flow_failure_falls_back_to_the_nearest_frame():
    rng = np.random.default_rng(5)
    f0 = rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)
    f1 = rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)  # unrelated noise: no flow can explain it
    backend = FlowBackend()
    out = backend.interpolate(f0, f1, [0.25, 0.75])
    assert np.array_equal(out[0], f0) and np.array_equal(out[1], f1)
    assert backend.failed_pairs == 1


def test_frames_are_streamed_two_at_a_time_with_progress():
    pulled = []

    def source():
        for i, frame in enumerate(_moving(6)):
            pulled.append(i)
            yield frame

    calls = []
    stream = interpolate_frames(source(), 8.0, factor=2, num_frames=6, progress=lambda d, t: calls.append((d, t)))
    assert pulled == []  # lazy
    next(stream)
    assert len(pulled) <= 2
    rest = list(stream)
    assert len(rest) + 1 == 11
    assert calls == [(i, 11) for i in range(1, 12)]
    unknown = []
    list(interpolate_frames(_moving(3), 8.0, factor=2, progress=lambda d, t: unknown.append(t)))
    assert unknown == [None] * 5


def test_zero_one_and_mismatched_frames_are_input_errors():
    with pytest.raises(InputError, match="no frames"):
        list(interpolate_frames([], 8.0, factor=2))
    with pytest.raises(InputError, match="only 1 frame"):
        list(interpolate_frames(_moving(1), 8.0, factor=2))
    with pytest.raises(InputError, match="same size"):
        list(interpolate_frames([_texture(32, 32), _texture(32, 40)], 8.0, factor=2))
    with pytest.raises(InputError, match="backend"):
        interpolate_frames(_moving(2), 8.0, factor=2, backend="nope")


def test_odd_sizes_and_grey_frames_work():
    frames = _moving(3, h=37, w=53)
    out = list(interpolate_frames(frames, 8.0, factor=3))
    assert len(out) == 7 and out[1].shape == (37, 53, 3)
    grey = [f[..., 0] for f in frames]
    assert list(interpolate_frames(grey, 8.0, factor=2))[1].shape == (37, 53, 3)


def test_a_new_backend_plugs_in_by_name(monkeypatch):
    class Half:
        name = "half"

        def interpolate(self, frame0, frame1, times):
            return [np.full_like(frame0, int(255 * t)) for t in times]

    assert isinstance(Half(), InterpolationBackend)
    monkeypatch.setitem(BACKENDS, "half", Half)
    out = list(interpolate_frames(_moving(2), 8.0, factor=4, backend="half"))
    assert [int(f[0, 0, 0]) for f in out[1:4]] == [63, 127, 191]
    # Without a max_workers attribute a backend gets its pairs one at a time, from one thread.
    assert interp.FrameInterpolator(_moving(2), 8.0, factor=2, backend="half", workers=8).workers == 1


# ---------------------------------------------------------------------------------------------------- files


def _save_folder(folder, frames):
    return save_frames(folder, frames, first=1)


def test_folder_to_folder_gives_2n_minus_1_zero_padded_pngs(tmp_path):
    frames = _moving(11)
    src = _save_folder(tmp_path / "in", frames)  # frame1 .. frame11: natural order matters
    calls = []
    result = interpolate_file(src, tmp_path / "out", factor=2, progress=lambda d, t: calls.append((d, t)))
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == [f"frame_{i:05d}.png" for i in range(21)]
    assert (result.input_frames, result.output_frames, result.kind) == (11, 21, "folder")
    assert result.source_fps == 8.0 and result.output_fps == 16.0
    assert calls[-1] == (21, 21)
    for i in (0, 2, 10, 20):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / names[i])), frames[i // 2])
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_video_round_trip_and_slow_motion(tmp_path):
    from svd_demo.files.media import probe_video, write_video

    frames = _moving(6, h=64, w=96)
    write_video(frames, tmp_path / "in.mp4", fps=7)
    result = interpolate_file(tmp_path / "in.mp4", tmp_path / "out.mp4", target_fps=24,
                              metadata={"comment": "interpolated"})
    info = probe_video(tmp_path / "out.mp4")
    assert info.num_frames == result.output_frames == len(output_timestamps(6, 7.0, target_fps=24)[0])
    assert info.fps == pytest.approx(24) and (info.width, info.height) == (96, 64)
    slow = interpolate_file(tmp_path / "in.mp4", tmp_path / "slow.webm", factor=2, slow_motion=True)
    info = probe_video(tmp_path / "slow.webm")
    assert (info.num_frames, slow.output_fps) == (11, 7.0) and info.fps == pytest.approx(7)


def test_odd_sized_video_and_gif_output(tmp_path):
    from svd_demo.files.media import probe_video

    frames = _moving(3, h=37, w=53)
    src = _save_folder(tmp_path / "in", frames)
    interpolate_file(src, tmp_path / "out.gif", factor=2, input_fps=5)
    assert probe_video(tmp_path / "out.gif").num_frames == 5
    interpolate_file(src, tmp_path / "out.mp4", factor=2)
    assert probe_video(tmp_path / "out.mp4").num_frames == 5


def test_mp4_output_uses_the_fast_x264_preset_and_the_shared_default_is_unchanged(tmp_path):
    from svd_demo.files.media import write_video

    frames = _moving(3, h=64, w=96)
    write_video(frames, tmp_path / "in.mp4", fps=8)
    interpolate_file(tmp_path / "in.mp4", tmp_path / "out.mp4", factor=2)
    # x264 writes its settings into the stream: subme=0 only with ultrafast, subme=2 with veryfast
    assert interp.X264_PRESET == "ultrafast"
    assert b" subme=0 " in (tmp_path / "out.mp4").read_bytes()
    assert b" subme=2 " in (tmp_path / "in.mp4").read_bytes()
    with pytest.raises(ValueError, match="x264_preset"):
        write_video(frames, tmp_path / "bad.mp4", fps=8, x264_preset="warp-speed")
    assert not (tmp_path / "bad.mp4").exists()


def _no_leftovers(folder) -> bool:
    return not [p for p in folder.iterdir() if "partial" in p.name]


@pytest.mark.parametrize("out_name", ["out.mp4", "out_frames"])
def test_error_midway_leaves_no_output(tmp_path, out_name):
    frames = _moving(5)
    src = _save_folder(tmp_path / "in", frames)
    (src / "frame4.png").write_bytes(b"this is not a png")
    with pytest.raises(InputError, match="frame4.png"):
        interpolate_file(src, tmp_path / out_name, factor=2)
    assert not (tmp_path / out_name).exists()
    assert _no_leftovers(tmp_path)


def test_bad_files_are_input_errors(tmp_path):
    (tmp_path / "text.mp4").write_text("just some text\n" * 10)
    (tmp_path / "noise.webm").write_bytes(np.random.default_rng(0).integers(0, 255, 5000, dtype=np.uint8).tobytes())
    for name in ("text.mp4", "noise.webm"):
        with pytest.raises(InputError, match=name):
            interpolate_file(tmp_path / name, tmp_path / "o.mp4", factor=2)
    one = _save_folder(tmp_path / "one", _moving(1))
    with pytest.raises(InputError, match="at least 2"):
        interpolate_file(one, tmp_path / "o.mp4", factor=2)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        interpolate_file(tmp_path / "empty", tmp_path / "o.mp4", factor=2)
    big = tmp_path / "big"
    big.mkdir()
    Image.new("RGB", (3900, 16)).save(big / "1.png")
    Image.new("RGB", (3900, 16)).save(big / "2.png")
    with pytest.raises(InputError, match="3840x2160"):
        interpolate_file(big, tmp_path / "o.mp4", factor=2)
    ok = _save_folder(tmp_path / "ok", _moving(2))
    with pytest.raises(InputError, match="must end in"):
        interpolate_file(ok, tmp_path / "o.avi", factor=2)
    with pytest.raises(InputError, match="240"):
        interpolate_file(ok, tmp_path / "o.mp4", factor=16, input_fps=30)
    with pytest.raises(InputError):
        interpolate_file(ok, tmp_path / "o.mp4", factor=float("nan"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        interpolate_file(ok, tmp_path / "full", factor=2)
    assert not (tmp_path / "o.mp4").exists() and _no_leftovers(tmp_path)


def test_cli_entry_point(tmp_path, capsys):
    from svd_demo.cli.commands import main  # `python -m svd_demo interpolate ...`

    src = _save_folder(tmp_path / "in", _moving(3))
    assert main(["interpolate", str(src), "--factor", "2", "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert len(list((tmp_path / "out").iterdir())) == 5
    # The tab's record, beside what was written (a folder of frames: beside the folder, not among its frames).
    record = json.loads((tmp_path / "out.json").read_text())
    assert record["kind"] == "interpolate" and record["parameters"]["factor"] == 2
    assert (record["source"]["frames"], record["output"]["frames"]) == (3, 5)
    assert main(["interpolate", str(src), "--factor", "2", "--out", str(tmp_path / "o.mp4"), "--quiet"]) == 0
    assert json.loads((tmp_path / "o.json").read_text())["output"]["frames"] == 5
    assert main(["interpolate", str(tmp_path / "missing"), "--fps", "24", "--out", str(tmp_path / "o.mp4")]) == 2
    assert "does not exist" in capsys.readouterr().err
