"""App settings: each one a command-line option with an environment variable, so Spaces and Docker can set it.

Precedence: command line > environment > default. `python app.py --help` lists every option with its variable.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from svd_demo.memory import QUANTIZE
from svd_demo.models import DEFAULT_SDXL_MODEL, DEFAULT_SVD_MODEL

DTYPES = ("auto", "fp16", "bf16", "fp32")
MEMORY_PROFILES = ("auto", "fast", "high", "balanced", "low", "minimal")


@dataclass(frozen=True)
class Settings:
    """How the app runs (not what one generation does: that is `params.VideoParams`)."""

    svd_model: str = DEFAULT_SVD_MODEL
    sdxl_model: str = DEFAULT_SDXL_MODEL
    sdxl_vae: str = ""
    device: str = "auto"
    dtype: str = "auto"
    memory_profile: str = "auto"
    quantize: str = "none"
    output_dir: Path = Path(tempfile.gettempdir()) / "svd-demo-outputs"
    output_ttl: int = 3600
    max_image_pixels: int = 25_000_000
    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False
    queue_size: int = 20
    max_file_size: str = "50mb"
    preload: bool = False
    auth: str = ""
    zerogpu_seconds: int = 120
    upscale_model: str = "realesr-animevideov3"
    budgets: str = ""


# option -> (environment variable, help). Gradio's own variables are reused where Gradio already reads them.
_OPTIONS: dict[str, tuple[str, str]] = {
    "svd_model": ("SVD_DEMO_SVD_MODEL", "SVD model: a hub id or a local folder (e.g. one written by "
                  "`python -m svd_demo tiny-models DIR`, then DIR/svd). Offered first in the model picker."),
    "sdxl_model": ("SVD_DEMO_SDXL_MODEL", "Text-to-image model for the text tab: a hub id or a local folder "
                   "(e.g. DIR/sdxl from `python -m svd_demo tiny-models DIR`)."),
    "sdxl_vae": ("SVD_DEMO_SDXL_VAE", "Optional replacement SDXL VAE (hub id or folder), e.g. an fp16-safe one such "
                 "as madebyollin/sdxl-vae-fp16-fix; empty uses the model's own (upcast to fp32 to decode)."),
    "device": ("SVD_DEMO_DEVICE", "Where to run: auto picks cuda, then mps, then cpu. Several GPUs: a list such "
               "as cuda:0,cuda:1 (one job at a time on each)."),
    "dtype": ("SVD_DEMO_DTYPE", "Weights precision: auto is fp16 on CUDA/MPS and fp32 on CPU; bf16 is an option."),
    "memory_profile": ("SVD_DEMO_MEMORY_PROFILE", "GPU memory profile; auto picks from the GPU's memory "
                       "(thresholds in README). fast = high + torch.compile of the UNet's blocks (the first run at "
                       "each size compiles)."),
    "quantize": ("SVD_DEMO_QUANTIZE", "Load the video/image model's UNet in int8 (weight-only, through torchao: pip "
                 "install torchao) for 6 GB cards; lossy, like the fp8 storage of the low/minimal profiles."),
    "output_dir": ("SVD_DEMO_OUTPUT_DIR", "Folder for generated files."),
    "output_ttl": ("SVD_DEMO_OUTPUT_TTL", "Seconds before generated files are deleted (0 keeps them)."),
    "max_image_pixels": ("SVD_DEMO_MAX_IMAGE_PIXELS", "Largest input image, in pixels, checked before decoding."),
    "host": ("GRADIO_SERVER_NAME", "Address to listen on; 0.0.0.0 for Docker and Spaces."),
    "port": ("GRADIO_SERVER_PORT", "Port to listen on."),
    "share": ("SVD_DEMO_SHARE", "Create a public gradio.live link."),
    "queue_size": ("SVD_DEMO_QUEUE_SIZE", "Requests that may wait in the queue; more get a 'busy' message."),
    "max_file_size": ("SVD_DEMO_MAX_FILE_SIZE", "Largest upload (e.g. 50mb); larger ones get HTTP 413."),
    "preload": ("SVD_DEMO_PRELOAD", "Load the SVD pipeline at start-up instead of on the first request."),
    "zerogpu_seconds": ("SVD_DEMO_ZEROGPU_SECONDS", "On a ZeroGPU Space: the most GPU seconds one request may "
                        "ask for; longer jobs are cut down (fewer steps) or refused before they start."),
    "upscale_model": ("SVD_DEMO_UPSCALE_MODEL", "Upscaler for the `upscale` option and the Upscale tab: "
                      "realesr-animevideov3 (fast), RealESRGAN_x4plus (quality), a local .pth/.safetensors file, "
                      "or a hub file OWNER/REPO/FILE.pth."),
    "budgets": ("SVD_DEMO_BUDGETS", "Override single work budgets of a request, checked before it queues, as "
                "NAME=VALUE,... (denoise_frame_steps, output_frames, encoded_megapixels, interpolated_megapixels, "
                "upscaled_megapixels; defaults and sizing in README, \"Hosting publicly\")."),
    "auth": ("SVD_DEMO_AUTH", "Require a login, as USER:PASSWORD. Prefer the environment variable: a command line "
             "is visible to every user of the machine."),
}
_CHOICES = {"dtype": DTYPES, "memory_profile": MEMORY_PROFILES, "quantize": QUANTIZE}


def _parse_bool(text: str) -> bool:
    if text.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if text.strip().lower() in {"0", "false", "no", "off", ""}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


MODEL_SETTINGS = ("svd_model", "sdxl_model", "sdxl_vae", "device", "dtype", "memory_profile", "quantize",
                  "max_image_pixels", "upscale_model")  # what a CLI run needs


def add_settings_arguments(parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None,
                           only: Sequence[str] | None = None) -> None:
    """Add one option per setting (or those in `only`), defaulting to its environment variable when set."""
    environ = os.environ if environ is None else environ
    defaults = Settings()
    for field in fields(Settings):
        if only is not None and field.name not in only:
            continue
        env, help_text = _OPTIONS[field.name]
        default = getattr(defaults, field.name)
        kind = Path if isinstance(default, Path) else {bool: _parse_bool, int: int}.get(type(default), str)
        if env in environ:
            try:
                default = kind(environ[env])
            except (ValueError, argparse.ArgumentTypeError) as exc:
                parser.error(f"environment variable {env}={environ[env]!r} is not valid: {exc}")
        flag = "--" + field.name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, type=_parse_bool, nargs="?", const=True, default=default,
                                help=f"{help_text} [env {env}; default {default}]")
        else:
            parser.add_argument(flag, type=kind, default=default, choices=_CHOICES.get(field.name),
                                help=f"{help_text} [env {env}; default {default}]")


def login(settings: Settings) -> tuple[str, str] | None:
    """(user, password) from the auth setting, or None when the app is open."""
    if not settings.auth:
        return None
    user, sep, password = settings.auth.partition(":")
    if not sep or not user or not password:
        raise ValueError("SVD_DEMO_AUTH must look like USER:PASSWORD.")
    return user, password


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from parsed options; settings the parser did not offer keep their defaults."""
    return Settings(**{f.name: getattr(args, f.name) for f in fields(Settings) if hasattr(args, f.name)})


def parse_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
                   prog: str = "app.py") -> Settings:
    """Settings from the command line and environment, as `python app.py` reads them."""
    parser = argparse.ArgumentParser(prog=prog, description="svd-demo: a browser studio for Stable Video Diffusion.")
    add_settings_arguments(parser, environ)
    return settings_from_args(parser.parse_args(argv))
