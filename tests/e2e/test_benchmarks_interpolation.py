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
