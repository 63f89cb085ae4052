"""App settings: each one a command-line option with an environment variable, so Spaces and Docker can set it.

Precedence: command line > environment > default. `python app.py --help` lists every option with its variable.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from svd_demo.core.models import DEFAULT_SDXL_MODEL, DEFAULT_SVD_MODEL

DTYPES = ("auto", "fp16", "bf16", "fp32")
MEMORY_PROFILES = ("auto", "fast", "high", "balanced", "low", "minimal")
QUANTIZE = ("none", "int8")  # `--quantize`: UNet weights as loaded; int8 is weight-only, through torchao
FEATURE_CACHE_INTERVAL = 3  # DeepCache's SVD setting: a full step, then two that reuse it
FEATURE_CACHE_BRANCH = 0  # DeepCache's SVD setting: the shallowest skip branch (the least recomputed on a reused step)


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
    output_dir: Path | None = None  # None: a private folder of this instance's own (see `private_output_dir`)
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
    feature_cache_interval: int = FEATURE_CACHE_INTERVAL
    feature_cache_branch: int = FEATURE_CACHE_BRANCH
    public: bool | None = None  # None: decided by where the app can be reached (`public_mode`)
    allow_model: tuple[str, ...] = ()  # KIND=REF, what public mode offers besides the presets
    allow_models_file: str = ""
    lora_dir: str = ""
    max_queued_per_client: int = 2
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
                       "(thresholds in docs/memory-and-speed.md). fast = high + torch.compile of the UNet's blocks "
                       "(the first run at each size compiles)."),
    "quantize": ("SVD_DEMO_QUANTIZE", "Load the video/image model's UNet in int8 (weight-only, through torchao: pip "
                 "install torchao) for 6 GB cards; lossy, like the fp8 storage of the low/minimal profiles."),
    "output_dir": ("SVD_DEMO_OUTPUT_DIR", "Folder for generated files; by default a new private folder for each "
                   "run of the app (removed when it exits), so that two instances never see each other's files."),
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
    "feature_cache_interval": ("SVD_DEMO_FEATURE_CACHE_INTERVAL", "Feature caching (the `feature_cache` option): "
                               "every this many denoising steps the whole UNet runs, the steps between reuse its deep "
                               "features (DeepCache's cache_interval; its SVD setting is 3)."),
    "feature_cache_branch": ("SVD_DEMO_FEATURE_CACHE_BRANCH", "Feature caching: how much of the UNet a reused step "
                             "still runs, as DeepCache's cache_branch (0 = the least and fastest, its SVD setting; "
                             "higher = more layers recomputed, closer to a plain run; SVD's UNet has 0-10)."),
    "public": ("SVD_DEMO_PUBLIC", "Public mode, for an app that strangers can reach: callers pick models and "
               "LoRAs only from the presets and the operator's lists (--allow-model, --lora-dir), never by path. "
               "Default: on for a Space (SPACE_ID set), with --share, or when listening beyond loopback; --public / "
               "--no-public decide explicitly."),
    "allow_model": ("SVD_DEMO_ALLOW_MODEL", "A model public mode offers besides the presets, as KIND=REF with KIND "
                    "video, image, upscale or lora and REF a hub id, a hub file (upscale) or a local folder or file; "
                    "repeat the option for more (the variable takes several, separated by spaces or commas)."),
    "allow_models_file": ("SVD_DEMO_ALLOW_MODELS_FILE", "A file of KIND=REF lines, as --allow-model takes them "
                          "(# starts a comment)."),
    "lora_dir": ("SVD_DEMO_LORA_DIR", "A folder of SDXL LoRAs (NAME.safetensors, or NAME/ holding "
                 "pytorch_lora_weights.safetensors), offered by NAME in every mode; read once at start-up."),
    "max_queued_per_client": ("SVD_DEMO_MAX_QUEUED_PER_CLIENT", "Public mode: requests one client (browser "
                              "session or IP address) may have waiting in the queue at once; 0 = no limit."),
    "budgets": ("SVD_DEMO_BUDGETS", "Override single work budgets of a request, checked before it queues, as "
                "NAME=VALUE,... (denoise_frame_steps, output_frames, encoded_megapixels, interpolated_megapixels, "
                "upscaled_megapixels; defaults and sizing in docs/hosting.md, \"Work budgets\")."),
    "auth": ("SVD_DEMO_AUTH", "Require a login, as USER:PASSWORD. Prefer the environment variable: a command line "
             "is visible to every user of the machine."),
}
_CHOICES = {"dtype": DTYPES, "memory_profile": MEMORY_PROFILES, "quantize": QUANTIZE}


def _whole(least: int):
    """An argparse type: a whole number of at least `least`."""

    def parse(text: str) -> int:
        value = int(text)
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value

    parse.__name__ = "int"  # argparse names the type in its messages
    return parse


def _parse_bool(text: str) -> bool:
    if text.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if text.strip().lower() in {"0", "false", "no", "off", ""}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


MODEL_SETTINGS = ("svd_model", "sdxl_model", "sdxl_vae", "device", "dtype", "memory_profile", "quantize",
                  "max_image_pixels", "upscale_model", "feature_cache_interval",
                  "feature_cache_branch")  # what a CLI run needs


def _split_list(text: str) -> tuple[str, ...]:
    return tuple(item for item in re.split(r"[\s,]+", text) if item)


_KINDS: dict[str, Any] = {"output_dir": Path, "public": _parse_bool, "allow_model": _split_list,
                          "feature_cache_interval": _whole(1), "feature_cache_branch": _whole(0)}


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
        kind = _KINDS.get(field.name) or {bool: _parse_bool, int: int}.get(type(default), str)
        if env in environ:
            try:
                default = kind(environ[env])
            except (ValueError, argparse.ArgumentTypeError) as exc:
                parser.error(f"environment variable {env}={environ[env]!r} is not valid: {exc}")
        flag = "--" + field.name.replace("_", "-")
        shown_default = "auto" if default is None else default
        help_text = f"{help_text} [env {env}; default {shown_default}]"
        if field.name == "public":  # --public / --no-public; neither: auto
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        elif field.name == "allow_model":  # repeatable; the environment's list comes first
            parser.add_argument(flag, action="extend", type=lambda text: [text], default=list(default),
                                metavar="KIND=REF", help=help_text)
        elif isinstance(default, bool):
            parser.add_argument(flag, type=_parse_bool, nargs="?", const=True, default=default, help=help_text)
        else:
            parser.add_argument(flag, type=kind, default=default, choices=_CHOICES.get(field.name), help=help_text)


def is_loopback(host: str) -> bool:
    """Whether `host` (a listen address) is reachable from this machine only."""
    if host.strip().lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def public_mode(settings: Settings, environ: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """Whether the app runs in public mode, and why (for the page and the log).

    --public / --no-public decide; otherwise public wherever strangers can reach the app: on a Space (SPACE_ID),
    through a share link, or listening on an address other than loopback.
    """
    environ = os.environ if environ is None else environ
    if settings.public is not None:
        return settings.public, "--public" if settings.public else "--no-public"
    if environ.get("SPACE_ID"):
        return True, "running on a Hugging Face Space (SPACE_ID is set)"
    if settings.share:
        return True, "a share link is on (--share)"
    if not is_loopback(settings.host):
        return True, f"listening on {settings.host}, beyond loopback"
    return False, f"listening on loopback ({settings.host}) only"


def is_public(settings: Settings) -> bool:
    """The public/private decision as a plain value: stricter defaults read it (see `public_mode`)."""
    return public_mode(settings)[0]


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
    values = {f.name: getattr(args, f.name) for f in fields(Settings) if hasattr(args, f.name)}
    if "allow_model" in values:
        values["allow_model"] = tuple(values["allow_model"])
    # A command that offers no --public (the CLI, a sweep) serves nobody: it runs for the person who typed it.
    values.setdefault("public", False)
    return Settings(**values)


def parse_settings(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
                   prog: str = "app.py") -> Settings:
    """Settings from the command line and environment, as `python app.py` reads them."""
    parser = argparse.ArgumentParser(prog=prog, description="svd-demo: a browser studio for Stable Video Diffusion.")
    add_settings_arguments(parser, environ)
    return settings_from_args(parser.parse_args(argv))
