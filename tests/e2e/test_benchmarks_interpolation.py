"""`python -m benchmarks.interpolation`: its scores mean what BENCHMARKS.md says (the run itself needs scikit-image
and minutes; its numbers are recorded there)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks import interpolation


def test_psnr_and_ssim_score_as_defined():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    assert interpolation.psnr(frame, frame) == float("inf")
    brighter = (frame.astype(np.int16) + 1).clip(0, 255).astype(np.uint8)
    assert interpolation.psnr(frame, brighter) == pytest.approx(48.13, abs=0.1)  # MSE just under 1 (clipped 255s)
    assert interpolation.ssim(frame, frame) == pytest.approx(1.0)
    assert interpolation.ssim(frame, rng.integers(0, 256, frame.shape, dtype=np.uint8)) < 0.1


def test_help_names_the_methods_and_the_clips(capsys):
    with pytest.raises(SystemExit) as exit_info:
        interpolation.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "python -m benchmarks.interpolation" in text and "minterpolate" in text and "objects" in text


def test_real_footage_keeps_every_gapth_frame_and_scores_the_rest():
    from benchmarks import interpolation_real as real

    used, kept, rebuilt = real.split(33, 8)
    assert (used, kept) == (33, [0, 8, 16, 24, 32]) and len(rebuilt) == 28 and 8 not in rebuilt
    used, kept, rebuilt = real.split(36, 4)  # the 3 frames after the last whole gap are left out
    assert used == 33 and kept[-1] == 32 and rebuilt[-1] == 31


def test_real_footage_needs_a_folder_of_videos(tmp_path, capsys):
    from benchmarks import interpolation_real as real

    with pytest.raises(SystemExit, match="no video files"):
        real.find_clips(tmp_path)
    (tmp_path / "b.mkv").write_bytes(b"")
    (tmp_path / "a.MP4").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("source")
    assert [p.name for p in real.find_clips(tmp_path)] == ["a.MP4", "b.mkv"]
    with pytest.raises(SystemExit):
        interpolation.main(["--out", str(tmp_path), "--clips", "objects", "nope"])
    assert "unknown clip 'nope'" in capsys.readouterr().err


def test_real_footage_table_gives_flows_margin_over_the_best_other_method():
    from benchmarks import interpolation_real as real

    rows = [{"clip": "walk", "gap": 8, "method": m, "psnr": p, "ssim": 0.9, "seconds": s}
            for m, p, s in (("flow", 30.0, 1.0), ("minterpolate", 29.5, 3.0), ("rife", 30.2, 20.0))]
    text = real.to_markdown(rows)
    assert "| walk | 8 | 30.00 / 0.9000 | 29.50 / 0.9000 | 30.20 / 0.9000 | -0.20 |" in text
    assert "mean -0.20 dB, worst clip -0.20 dB" in text and "minterpolate / flow 3.00x" in text


def test_learned_screens_cpu_splatting_moves_and_splits_pixels_as_the_cuda_kernel_does():
    torch = pytest.importorskip("torch")
    from benchmarks import interpolation_learned as learned

    x = torch.rand(1, 3, 6, 8)
    still = torch.zeros(1, 2, 6, 8)
    assert torch.allclose(learned.softsplat(x, still, torch.zeros(1, 1, 6, 8), "soft"), x, atol=1e-5)
    right = still.clone()
    right[:, 0] = 1.0
    moved = learned.splat_sum(x, right)
    assert torch.allclose(moved[..., 1:], x[..., :-1]) and moved[..., 0].abs().max() == 0  # the last column leaves
    half = torch.zeros(1, 2, 2, 4)
    half[:, 0] = 0.5
    halves = learned.splat_sum(torch.ones(1, 1, 2, 4), half)
    assert halves[0, 0, 0].tolist() == [0.5, 1.0, 1.0, 1.0]  # each pixel split between two targets, one falls off


def test_learned_screen_averages_frames_with_rounding():
    from benchmarks import interpolation_learned as learned

    a, b = np.full((2, 2, 3), 10, np.uint8), np.full((2, 2, 3), 21, np.uint8)
    assert learned.mix([([a], 0.5), ([b], 0.5)])[0].tolist() == np.full((2, 2, 3), 16, np.uint8).tolist()
