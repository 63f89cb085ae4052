"""Tiny random-weight pipelines: saved once per session, loaded back with the real ``from_pretrained`` code."""

from __future__ import annotations

import hashlib
import json
import logging
import pathlib

import numpy as np
import pytest
import torch
from helpers import HEIGHT, WIDTH

from svd_demo.core.models import TINY_MARKER, is_tiny_model
from svd_demo_testing.tiny_models import build_tiny_sdxl, save_tiny_models


@pytest.fixture(scope="module")
def sdxl_pipe(tiny_models_dir):
    from diffusers import StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline.from_pretrained(tiny_models_dir / "sdxl")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _sdxl(pipe, prompt: str = "a cat", *, seed: int = 0, **kwargs) -> np.ndarray:
    out = pipe(
        prompt,
        height=HEIGHT,
        width=WIDTH,
        num_inference_steps=2,
        output_type="np",
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )
    return np.asarray(out.images)


def _digest(directory: pathlib.Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_marker_and_is_tiny_model(tiny_models_dir, tmp_path):
    for kind in ("svd", "sdxl"):
        path = tiny_models_dir / kind
        marker = json.loads((path / TINY_MARKER).read_text(encoding="utf-8"))
        assert marker["kind"] == kind
        assert "random weights" in marker["note"]
        assert is_tiny_model(path)
        assert is_tiny_model(str(path))
        assert (path / "model_index.json").is_file()
    assert not is_tiny_model(tmp_path)
    assert not is_tiny_model(tmp_path / "does-not-exist")
    assert not is_tiny_model(tiny_models_dir)
    assert not [p.name for p in tiny_models_dir.iterdir() if p.name.startswith(".")]  # no leftover temp dirs


def test_save_is_idempotent_and_reproducible(tiny_models_dir, tmp_path):
    first = save_tiny_models(tmp_path, which=("sdxl",))
    assert first == {"sdxl": tmp_path / "sdxl"}
    before = _digest(first["sdxl"])
    second = save_tiny_models(tmp_path, which="sdxl")
    assert second == first
    assert _digest(second["sdxl"]) == before  # same seed, same weights
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sdxl"]  # temp and old dirs are gone
    assert _digest(tiny_models_dir / "sdxl") == before  # the session copy was built the same way


def test_save_rejects_unknown_kind(tmp_path):
    with pytest.raises(ValueError, match="unknown tiny model"):
        save_tiny_models(tmp_path, which=("sd15",))
    assert list(tmp_path.iterdir()) == []


def test_build_does_not_touch_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_tiny_sdxl()
    assert torch.equal(torch.rand(3), expected)


def test_svd_geometry(pipe):
    assert pipe.vae_scale_factor == 8
    assert pipe.unet.config.num_frames == 14
    assert pipe.unet.dtype == torch.float32


def test_sdxl_geometry(sdxl_pipe):
    assert sdxl_pipe.vae_scale_factor == 8
    assert sdxl_pipe.vae.config.force_upcast is True
    assert sdxl_pipe.config.force_zeros_for_empty_prompt is True
    assert sdxl_pipe.tokenizer.model_max_length == 77
    assert len(sdxl_pipe.tokenizer) == 514


def test_sdxl_image_shape_finite_deterministic(sdxl_pipe):
    image = _sdxl(sdxl_pipe)
    assert image.shape == (1, HEIGHT, WIDTH, 3)
    assert np.isfinite(image).all()
    np.testing.assert_array_equal(image, _sdxl(sdxl_pipe))
    assert not np.array_equal(image, _sdxl(sdxl_pipe, seed=1))


def test_sdxl_long_prompt_truncates(sdxl_pipe, caplog):
    long_prompt = " ".join(f"word{i}" for i in range(200))
    diffusers_logger = logging.getLogger("diffusers")  # does not propagate to the root logger: listen on it directly
    diffusers_logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="diffusers"):
            image = _sdxl(sdxl_pipe, long_prompt)
    finally:
        diffusers_logger.removeHandler(caplog.handler)
    assert "truncated" in caplog.text
    assert image.shape == (1, HEIGHT, WIDTH, 3)
    assert np.isfinite(image).all()


def test_sdxl_turbo_path_without_guidance(sdxl_pipe):
    image = _sdxl(sdxl_pipe, guidance_scale=0.0)
    assert image.shape == (1, HEIGHT, WIDTH, 3)
    assert np.isfinite(image).all()
