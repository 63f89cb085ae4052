"""Shared fixtures: tiny random-weight pipelines saved once per session, and studios that load them through the
app's own loading code (`from_pretrained` on a folder, exactly as with a hub model). Helpers that test modules
import (`free_port`, `launched`, ...) live in helpers.py."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest
from optional_deps import require
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the suite may reach for the hub
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from svd_demo.core.settings import Settings  # noqa: E402
from svd_demo_testing.tiny_models import save_tiny_models  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> pathlib.Path:
    """A dir holding ``svd/`` and ``sdxl/`` tiny pipelines, written once per test session."""
    directory = tmp_path_factory.mktemp("tiny_models")
    save_tiny_models(directory)
    return directory


@pytest.fixture(scope="module")
def pipe(tiny_models_dir):
    """The tiny SVD pipeline loaded straight with diffusers, one per test module: tests change its plan and hooks,
    so no module sees another's changes."""
    from diffusers import StableVideoDiffusionPipeline

    pipe = StableVideoDiffusionPipeline.from_pretrained(tiny_models_dir / "svd")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def tiny_settings(tiny_models_dir, tmp_path_factory) -> Settings:
    return Settings(svd_model=str(tiny_models_dir / "svd"), sdxl_model=str(tiny_models_dir / "sdxl"),
                    output_dir=tmp_path_factory.mktemp("outputs"),
                    device="cpu")


@pytest.fixture(scope="session")
def studio(tiny_settings):
    """One studio for the session, so the tiny pipeline is loaded once (as in the app)."""
    from svd_demo.studio.studio import Studio

    return Studio(tiny_settings)


@pytest.fixture
def image() -> Image.Image:
    """A 256x144 gradient, already at the tiny generation size (FAST): what generate_frames takes directly."""
    y, x = np.mgrid[0:144, 0:256]
    return Image.fromarray(np.stack([x % 256, y * 255 // 144, np.full_like(x, 90)], -1).astype(np.uint8))


@pytest.fixture
def photo(tmp_path) -> pathlib.Path:
    """A 4:3 landscape photo-like PNG with structure (a gradient and a square), not noise."""
    y, x = np.mgrid[0:300, 0:400]
    rgb = np.stack([x * 255 // 400, y * 255 // 300, np.full_like(x, 90)], axis=-1).astype(np.uint8)
    rgb[100:200, 150:250] = (250, 240, 30)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    return path


@pytest.fixture(scope="session")
def tiny_loras(tiny_models_dir, tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    """Two different tiny LoRAs for the tiny SDXL UNet, saved as diffusers writes them."""
    require("peft", "pip install -r requirements.txt")
    from svd_demo_testing.tiny_models import save_tiny_lora

    folder = tmp_path_factory.mktemp("loras")
    return (save_tiny_lora(tiny_models_dir / "sdxl", folder / "one", seed=1),
            save_tiny_lora(tiny_models_dir / "sdxl", folder / "two", seed=2))
