"""The models the app offers, and the defaults that follow each of them."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from svd_demo.core.errors import InputError
from svd_demo.core.params import SPECS


@dataclass(frozen=True)
class ModelPreset:
    """A known model: where it lives and the settings it was trained with."""

    label: str
    model_id: str
    num_frames: int
    fps: int
    # A few-step model's sampling settings; None: the parameter's own default (params.SPECS).
    num_inference_steps: int | None = None
    min_guidance_scale: float | None = None
    max_guidance_scale: float | None = None
    motion_bucket_id: int | None = None
    # The frame rate its authors write files at, where it is not the conditioning fps; None: the parameter's default.
    playback_fps: float | None = None


SVD_PRESETS: tuple[ModelPreset, ...] = (
    ModelPreset("SVD (14 frames)", "stabilityai/stable-video-diffusion-img2vid", 14, 7),
    ModelPreset("SVD-XT (25 frames)", "stabilityai/stable-video-diffusion-img2vid-xt", 25, 7),
    # SVD-XT 1.1 was fine-tuned at a fixed 6 fps and motion bucket 127: other values stray from its training.
    ModelPreset("SVD-XT 1.1 (25 frames)", "stabilityai/stable-video-diffusion-img2vid-xt-1-1", 25, 6),
    # SVD-XT's UNet distilled with consistency learning (engine/animatelcm.py): 4-8 steps and no classifier-free
    # guidance (guidance 1 runs one UNet pass per step instead of two: 25 x 2 / 4 = 12.5x less UNet work, as its
    # model card says; the authors' README: "just setting it to 1 to reduce the inference cost", though their demo's
    # slider starts at 1.2). Their demo calls the pipeline with its default fps 7 (the UNet sees 6) and motion
    # bucket 80, and writes the file at 8 fps. Both distilled files they publish load into SVD-XT's pipeline.
    ModelPreset("AnimateLCM-SVD-xt (25 frames, 4 steps)", "wangfuyun/AnimateLCM-SVD-xt", 25, 7,
                num_inference_steps=4, min_guidance_scale=1.0, max_guidance_scale=1.0, motion_bucket_id=80,
                playback_fps=8),
    ModelPreset("AnimateLCM-SVD-xt 1.1 (25 frames, 4 steps)",
                "wangfuyun/AnimateLCM-SVD-xt/AnimateLCM-SVD-xt-1.1.safetensors", 25, 7, num_inference_steps=4,
                min_guidance_scale=1.0, max_guidance_scale=1.0, motion_bucket_id=80, playback_fps=8),
)
DEFAULT_SVD_MODEL = "stabilityai/stable-video-diffusion-img2vid-xt"


TINY_MARKER = "svd_demo_tiny.json"
"""File that `svd_demo_testing` writes into each tiny pipeline folder; the app shows a "random weights" banner
when it sees it. Read here, so that the app never imports the builder (and torch) to ask."""


def is_tiny_model(path: str | os.PathLike) -> bool:
    """True when ``path`` is a pipeline folder written by ``save_tiny_models`` (it holds ``TINY_MARKER``)."""
    try:
        return (Path(path) / TINY_MARKER).is_file()
    except (OSError, TypeError, ValueError):
        return False


MAX_MODEL_REF = 255  # hub ids are far shorter; a longer "path" is a mistake or an attack


def check_model_ref(value: object, what: str = "model", example: str = DEFAULT_SVD_MODEL) -> str | None:
    """A model reference from outside (UI, API, CLI): a hub id or a folder, or None for the default. `example` is
    the reference a refusal suggests (one of the kind asked for)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InputError(f"The {what} must be a hub id or a folder name, got {type(value).__name__}.")
    if len(value) > MAX_MODEL_REF or not value.isprintable():
        raise InputError(f"The {what} name is not valid: use a hub id like {example} or a local path (at most "
                         f"{MAX_MODEL_REF} characters).")
    return value.strip()


def _is_local(model_ref: str) -> bool:
    try:
        return Path(model_ref).exists()
    except (OSError, ValueError):  # e.g. a name too long for the file system
        return False


def model_page(model_ref: str) -> str:
    """Where a person accepts a licence or checks a hub id (empty for local folders); a hub file's repo page."""
    return "" if _is_local(model_ref) else f"https://huggingface.co/{'/'.join(model_ref.split('/')[:2])}"


def _preset(model_ref: str) -> ModelPreset | None:
    """The preset of a hub id; a local AnimateLCM folder (it holds a distilled UNet's file) counts as that one."""
    found = next((p for p in SVD_PRESETS if p.model_id == model_ref), None)
    if found is None and is_animatelcm(model_ref):
        found = next(p for p in SVD_PRESETS if p.model_id == HUB_ID)  # the AnimateLCM presets' settings are alike
    return found


def svd_defaults(model_ref: str) -> tuple[int, int]:
    """(num_frames, fps) the model was trained for: a preset's, or a local folder's UNet config, else SVD's 14/7."""
    preset = _preset(model_ref)
    if preset is not None:
        return preset.num_frames, preset.fps
    config = Path(model_ref) / "unet" / "config.json"
    if _is_local(model_ref) and config.is_file():
        try:
            return int(json.loads(config.read_text()).get("num_frames") or 14), 7
        except (ValueError, OSError):
            pass  # an unreadable config shows up as a clear load error later; the defaults only fill the form
    return 14, 7


# The settings a model picker sets besides frames and fps: a preset's own, else the parameters' defaults (the
# playback rate too: a preset whose authors write files at another rate than they condition on brings both).
SAMPLING_SETTINGS = ("num_inference_steps", "min_guidance_scale", "max_guidance_scale", "motion_bucket_id",
                     "playback_fps")


def svd_settings(model_ref: str) -> dict[str, int | float]:
    """What picking `model_ref` sets: its frames and fps, and its sampling settings (a few-step model's own; the
    usual defaults for every other model, so that switching back from a few-step model undoes them)."""
    num_frames, fps = svd_defaults(model_ref)
    own = few_step_settings(model_ref)
    return {"num_frames": num_frames, "fps": fps, **{name: own.get(name, SPECS[name].default)
                                                       for name in SAMPLING_SETTINGS}}


def few_step_settings(model_ref: str) -> dict[str, int | float]:
    """A preset's own sampling settings (a few-step model's steps, guidance, motion and playback rate); empty for
    other models."""
    preset = _preset(model_ref)
    values = {name: getattr(preset, name, None) for name in SAMPLING_SETTINGS}
    return {name: value for name, value in values.items() if value is not None}


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


# --- AnimateLCM: which references name its distilled UNet (engine/animatelcm.py loads it) --------------------

HUB_ID = "wangfuyun/AnimateLCM-SVD-xt"
WEIGHTS_FILE = "AnimateLCM-SVD-xt.safetensors"  # distilled from SVD-XT
WEIGHTS_FILE_1_1 = "AnimateLCM-SVD-xt-1.1.safetensors"  # distilled from SVD-XT 1.1; the authors' demo default
WEIGHTS_FILES = (WEIGHTS_FILE, WEIGHTS_FILE_1_1)
HUB_ID_1_1 = f"{HUB_ID}/{WEIGHTS_FILE_1_1}"
BASE_MODEL = "stabilityai/stable-video-diffusion-img2vid-xt"  # the pipeline the authors' demo loads both files into


def animatelcm_folder(model_ref: str) -> Path | None:
    try:
        path = Path(model_ref).expanduser()
        return path if path.is_dir() else None
    except (OSError, ValueError):
        return None


def animatelcm_hub_file(model_ref: str) -> str | None:
    """The file a hub reference names: the repo alone means the first file."""
    if model_ref == HUB_ID:
        return WEIGHTS_FILE
    repo, _, name = model_ref.rpartition("/")
    return name if repo == HUB_ID and name in WEIGHTS_FILES else None


def animatelcm_local_file(folder: Path) -> Path | None:
    return next((folder / name for name in WEIGHTS_FILES if (folder / name).is_file()), None)


def is_animatelcm(model_ref: str) -> bool:
    """A hub reference to one of the distilled files, or a local folder that holds one."""
    folder = animatelcm_folder(model_ref)
    return animatelcm_hub_file(model_ref) is not None or (
        folder is not None and animatelcm_local_file(folder) is not None)


# --- Upscalers (engine/upscale loads them) ----------------------------------------------------------------------

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".safetensors")


@dataclass(frozen=True)
class UpscalerPreset:
    """A known upscaler: the hub file it is downloaded from, and the page that describes it."""

    name: str
    label: str
    repo_id: str
    filename: str
    page: str


# The official files are release assets of github.com/xinntao/Real-ESRGAN (BSD-3-Clause); the hub copies below are
# the ones other projects download (ai-forever/Real-ESRGAN holds both). Not fetched from this offline machine:
# any other copy works as OWNER/REPO/FILE or as a local file.
UPSCALER_PRESETS: tuple[UpscalerPreset, ...] = (
    UpscalerPreset("realesr-animevideov3", "Real-ESRGAN AnimeVideo v3 (fast, SRVGGNetCompact x4)",
                   "ai-forever/Real-ESRGAN", "realesr-animevideov3.pth",
                   "https://github.com/xinntao/Real-ESRGAN/blob/master/docs/anime_video_model.md"),
    UpscalerPreset("RealESRGAN_x4plus", "Real-ESRGAN x4plus (quality, RRDBNet x4)",
                   "ai-forever/Real-ESRGAN", "RealESRGAN_x4plus.pth",
                   "https://github.com/xinntao/Real-ESRGAN/blob/master/docs/model_zoo.md"),
)
DEFAULT_UPSCALER = UPSCALER_PRESETS[0].name


def upscaler_preset(ref: str) -> UpscalerPreset | None:
    return next((p for p in UPSCALER_PRESETS if p.name == ref), None)


def upscaler_page(ref: str) -> str:
    """Where a person reads about (or downloads) the upscaler `ref`: a preset's page or the hub repository's."""
    preset = upscaler_preset(ref)
    if preset is not None:
        return preset.page
    parts = ref.split("/")
    return f"https://huggingface.co/{parts[0]}/{parts[1]}" if len(parts) >= 3 and not Path(ref).exists() else ""


def check_upscaler_ref(value: object) -> str:
    """An upscaler reference from outside (UI, API, CLI, settings); empty means the default preset."""
    ref = check_model_ref(value, "upscale model", DEFAULT_UPSCALER) or DEFAULT_UPSCALER
    if upscaler_preset(ref) or Path(ref).expanduser().is_file():
        return ref
    if Path(ref).expanduser().exists():
        raise InputError(f"The upscale model '{ref}' could not be loaded: it is a folder. Give the checkpoint file "
                         "inside it (.pth or .safetensors).")
    parts = ref.split("/")
    if len(parts) >= 3 and ref.lower().endswith(CHECKPOINT_SUFFIXES) and not ref.startswith((".", "/", "~")):
        return ref
    names = ", ".join(p.name for p in UPSCALER_PRESETS)
    raise InputError(f"The upscale model '{ref}' is neither a preset ({names}), nor a checkpoint file on this "
                     "machine, nor a hub file written as OWNER/REPO/FILE.pth.")
