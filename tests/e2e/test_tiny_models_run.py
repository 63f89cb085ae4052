"""Tiny random-weight models run: SVD frames of the right shape, finite and deterministic, and the
`svd-demo tiny-models` command in a subprocess."""

from __future__ import annotations

import numpy as np
import torch
from helpers import HEIGHT, WIDTH
from PIL import Image


def _image() -> Image.Image:
    return Image.fromarray(np.random.RandomState(0).randint(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))


def _svd(pipe, *, num_frames: int = 4, seed: int = 0) -> np.ndarray:
    out = pipe(
        _image(),
        height=HEIGHT,
        width=WIDTH,
        num_frames=num_frames,
        num_inference_steps=2,
        decode_chunk_size=2,
        output_type="np",
        generator=torch.Generator().manual_seed(seed),
    )
    return np.asarray(out.frames)


def test_svd_frames_shape_finite_deterministic(pipe):
    frames = _svd(pipe, num_frames=4)
    assert frames.shape == (1, 4, HEIGHT, WIDTH, 3)
    assert np.isfinite(frames).all()
    np.testing.assert_array_equal(frames, _svd(pipe, num_frames=4))
    assert not np.array_equal(frames, _svd(pipe, num_frames=4, seed=1))


def test_the_command_writes_an_upscaler_too_and_prints_no_library_noise(tmp_path):
    """`svd-demo tiny-models DIR` gives everything the offline quickstart runs on, the Upscale tab included, and says
    only what it wrote: library warnings (transformers' "requires torchvision", read as errors by newcomers) and
    save progress bars stay out."""
    import subprocess
    import sys

    from svd_demo.engine.upscale import load_upscaler

    done = subprocess.run([sys.executable, "-m", "svd_demo", "tiny-models", str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert load_upscaler(str(tmp_path / "upscaler.pth")).scale == 4
    assert f"--upscale-model {tmp_path / 'upscaler.pth'}" in done.stdout
    said = done.stdout + done.stderr
    assert "torchvision" not in said and "Writing model shards" not in said, said
