"""The models the app offers, and the defaults that follow each of them."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from svd_demo.errors import InputError


@dataclass(frozen=True)
class ModelPreset:
    """A known model: where it lives and the settings it was trained with."""

    label: str
    model_id: str
    num_frames: int
    fps: int


SVD_PRESETS: tuple[ModelPreset, ...] = (
    ModelPreset("SVD (14 frames)", "stabilityai/stable-video-diffusion-img2vid", 14, 7),
    ModelPreset("SVD-XT (25 frames)", "stabilityai/stable-video-diffusion-img2vid-xt", 25, 7),
    # SVD-XT 1.1 was fine-tuned at a fixed 6 fps and motion bucket 127: other values stray from its training.
    ModelPreset("SVD-XT 1.1 (25 frames)", "stabilityai/stable-video-diffusion-img2vid-xt-1-1", 25, 6),
)
DEFAULT_SVD_MODEL = "stabilityai/stable-video-diffusion-img2vid-xt"


TINY_MARKER = "svd_demo_tiny.json"
"""File that `svd_demo.tiny_models` writes into each tiny pipeline folder; the app shows a "random weights" banner
when it sees it. Read here, so that the app never imports the builder (and torch) to ask."""


def is_tiny_model(path: str | os.PathLike) -> bool:
    """True when ``path`` is a pipeline folder written by ``save_tiny_models`` (it holds ``TINY_MARKER``)."""
    try:
        return (Path(path) / TINY_MARKER).is_file()
    except (OSError, TypeError, ValueError):
        return False


MAX_MODEL_REF = 255  # hub ids are far shorter; a longer "path" is a mistake or an attack


def check_model_ref(value: object, what: str = "model") -> str | None:
    """A model reference from outside (UI, API, CLI): a hub id or a folder, or None for the default."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InputError(f"The {what} must be a hub id or a folder name, got {type(value).__name__}.")
    if len(value) > MAX_MODEL_REF or not value.isprintable():
        raise InputError(f"The {what} name is not valid: use a hub id like "
                         f"{DEFAULT_SVD_MODEL} or a local folder (at most {MAX_MODEL_REF} characters).")
    return value.strip()


def _is_local(model_ref: str) -> bool:
    try:
        return Path(model_ref).exists()
    except (OSError, ValueError):  # e.g. a name too long for the file system
        return False


def model_page(model_ref: str) -> str:
    """Where a person accepts a licence or checks a hub id (empty for local folders)."""
    return "" if _is_local(model_ref) else f"https://huggingface.co/{model_ref}"


def svd_defaults(model_ref: str) -> tuple[int, int]:
    """(num_frames, fps) the model was trained for: a preset's, or a local folder's UNet config, else SVD's 14/7."""
    for preset in SVD_PRESETS:
        if preset.model_id == model_ref:
            return preset.num_frames, preset.fps
    config = Path(model_ref) / "unet" / "config.json"
    if _is_local(model_ref) and config.is_file():
        try:
            return int(json.loads(config.read_text()).get("num_frames") or 14), 7
        except (ValueError, OSError):
            pass  # an unreadable config shows up as a clear load error later; the defaults only fill the form
    return 14, 7


def model_choices(presets: tuple[ModelPreset, ...] | tuple[ImageModelPreset, ...],
                  extra: str | None = None) -> list[tuple[str, str]]:
    """(label, model reference) pairs for a model picker; a model given on the command line comes first."""
    choices = [(p.label, p.model_id) for p in presets]
    if extra and extra not in {ref for _, ref in choices}:
        choices.insert(0, (f"{Path(extra).name or extra} (from settings)", extra))
    return choices


@dataclass(frozen=True)
class ImageModelPreset:
    """A known text-to-image model and the settings it wants."""

    label: str
    model_id: str
    steps: int
    guidance_scale: float


SDXL_PRESETS: tuple[ImageModelPreset, ...] = (
    ImageModelPreset("SDXL base 1.0", "stabilityai/stable-diffusion-xl-base-1.0", 30, 5.0),
    # Turbo is distilled for 1-4 steps without classifier-free guidance: guidance must be 0.
    ImageModelPreset("SDXL-Turbo (1-4 steps)", "stabilityai/sdxl-turbo", 4, 0.0),
)
DEFAULT_SDXL_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"


def sdxl_defaults(model_ref: str) -> tuple[int, float]:
    """(steps, guidance) for an SDXL model: a preset's, or SDXL base's for anything else."""
    for preset in SDXL_PRESETS:
        if preset.model_id == model_ref:
            return preset.steps, preset.guidance_scale
    return SDXL_PRESETS[0].steps, SDXL_PRESETS[0].guidance_scale

