"""Generation parameters: every default, range and help text declared once, read by the UI, the CLI and the API.

`VideoParams.from_raw` is the single gate for numbers coming from outside (a slider, a CLI flag, an API call): it
coerces, checks ranges and finiteness, and raises `InputError` with a message that names the value and its range.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from svd_demo.core.errors import InputError
from svd_demo.core.lora_refs import LoraSpec, parse_loras

ASPECT_MODES = ("crop", "pad", "native")
LOOP_MODES = ("none", "ping-pong")
EXTRA_FORMATS = ("gif", "webm")  # MP4 is always written
UPSCALE_CHOICES = ("none", "2x", "4x")  # the factors of `svd_demo.engine.upscale.UPSCALE_FACTORS`, or none
MAX_SEED = 2**32 - 1  # torch.Generator takes 64 bits; 32 keep seeds short enough to read out and type
MAX_COMPARE_SEEDS = 8  # the "compare seeds" gallery: each seed is a full generation holding the GPU queue


@dataclass(frozen=True)
class Spec:
    """Range, step and help of one parameter; `default` None means "follow the chosen model"."""

    name: str
    label: str
    help: str
    default: Any
    kind: type = float
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[str, ...] | None = None


SPECS: dict[str, Spec] = {s.name: s for s in [
    Spec("seed", "Seed", "Same seed, same image and settings: the same video.", 42, int, 0, MAX_SEED, 1),
    Spec("randomize_seed", "Randomize seed", "Pick a new seed for every run; the seed used is shown.", True, bool),
    Spec("resolution", "Resolution (long side, px)",
         "The video's long side, a multiple of 8 (diffusers needs it). 1024 is the trained size; smaller is faster "
         "and needs less memory.", 1024, int, 64, 2048, 8),
    Spec("aspect_mode", "Aspect", "crop: 16:9 like the trained 1024x576, centre crop. pad: fit inside 16:9 with "
         "bars. native: keep the photo's shape (portrait stays portrait).", "crop", str, choices=ASPECT_MODES),
    Spec("num_frames", "Frames", "Frames to generate. SVD was trained on 14, SVD-XT on 25; memory grows with it.",
         None, int, 2, 50, 1),
    Spec("num_inference_steps", "Steps", "Denoising steps: more is slower and a little sharper.", 25, int, 1, 100, 1),
    Spec("motion_bucket_id", "Motion amount (motion_bucket_id)",
         "How much the scene moves: low values are calm, high values lively (trained on 1-255).",
         127, int, 1, 255, 1),
    Spec("fps", "Conditioning fps (motion hint)",
         "The frame rate the model is told the clip has: lower means more motion between frames. Not the file's "
         "playback rate.", None, int, 2, 30, 1),
    Spec("noise_aug_strength", "Noise augmentation",
         "Noise added to the input image: more lets the video drift further from it.", 0.02, float, 0.0, 1.0, 0.01),
    Spec("min_guidance_scale", "Min guidance", "Guidance for the first frame; it rises linearly to the max for "
         "the last.", 1.0, float, 0.0, 20.0, 0.1),
    Spec("max_guidance_scale", "Max guidance", "Guidance for the last frame.", 3.0, float, 0.0, 20.0, 0.1),
    Spec("decode_chunk_size", "Decode chunk size",
         "Frames decoded at once: lower needs less memory and changes the pixels slightly. 0 = set by the memory "
         "profile.", 0, int, 0, 50, 1),
    Spec("playback_fps", "Playback fps", "The frame rate of the written file. 0 = the conditioning fps.",
         0, float, 0, 60, 1),
    Spec("loop", "Loop", "ping-pong plays the clip forward then backward, so it loops without a jump.", "none",
         str, choices=LOOP_MODES),
    Spec("interpolate_fps", "Interpolate to fps", "After generating, add motion-compensated in-between frames up "
         "to this frame rate (e.g. 24 or 30) at the same duration. 0 = off.", 0, float, 0, 60, 1),
    Spec("upscale", "Upscale", "After generating (and interpolating), make every frame 2x or 4x larger with a "
         "Real-ESRGAN network (the upscale model setting). Output is at most 3840 pixels on the long side: 4x "
         "fits videos of up to 960 pixels.", "none", str, choices=UPSCALE_CHOICES),
    Spec("feature_cache", "Faster, slightly softer", "Reuse the model's deep features between full denoising "
         "steps (DeepCache feature caching; the server sets how often and how deep): fewer computations per clip, "
         "slightly softer detail. The same seed still gives the same video.", False, bool),
]}


# A CPU, or tiny random-weight models, would take an hour over the GPU defaults (1024 px, 25 steps): there the page
# and the CLI start from these, where a run finishes in seconds. Every control stays free to raise.
QUICK_DEFAULTS: dict[str, int] = {"resolution": 256, "num_frames": 6, "num_inference_steps": 4, "sdxl_steps": 2}


def quick_defaults(device: str, *, random_weights: bool) -> dict[str, int]:
    """The starting values that replace the defaults on `device` (a resolved one: "cpu", "cuda:1", "mps"), or none."""
    return dict(QUICK_DEFAULTS) if device == "cpu" or random_weights else {}


def describe_quick(values: Mapping[str, int]) -> str:
    """The quick settings in words, for the banner and the CLI's note."""
    return (f"resolution {values['resolution']}, {values['num_frames']} frames, {values['num_inference_steps']} "
            f"steps ({values['sdxl_steps']} for a still)")


def quick_for_unset(quick: Mapping[str, int], names: Collection[str],
                    given: Collection[str]) -> tuple[dict[str, int], str]:
    """The quick values of the parameters in `names` that the command line did not give, and the note that says so
    (empty when none applies): `generate` and friends, and `sweep`, start from these on a CPU or random weights."""
    used = {name: value for name, value in quick.items() if name in names and name not in given}
    note = (f"note: quick settings for this machine ({describe_quick(quick)}) where no flag says otherwise; pass "
            "--resolution, --num-frames, --num-inference-steps or --sdxl-steps to raise them.") if used else ""
    return used, note


NUM_SEEDS = Spec("num_seeds", "Seeds", "Starting from the seed in the settings (or a random one when Randomize is "
                 "on).", 4, int, 2, MAX_COMPARE_SEEDS, 1)

# --- Frame interpolation (the interpolation tab and `python -m svd_demo interpolate`) ------------------------------

MIN_FACTOR = 2
MAX_FACTOR = 16
MAX_TARGET_FPS = 240  # the fastest playback rate a written video may have
INTERPOLATION_BACKENDS = ("blend", "flow", "flow-hq")  # the names of `svd_demo.engine.interpolation.BACKENDS`

INTERPOLATION_SPECS: dict[str, Spec] = {s.name: s for s in [
    Spec("factor", "Factor", "Frames per source frame; used when target fps is 0.", 2, int, MIN_FACTOR, MAX_FACTOR,
         1),
    Spec("target_fps", "Target fps", "An exact output rate (e.g. 24 or 30); 0 = use the factor.", 0, float, 0,
         MAX_TARGET_FPS, 1),
    Spec("slow_motion", "Slow motion", "Keep the source rate: the clip plays longer instead of smoother.", False,
         bool),
    Spec("backend", "Method", "flow (default), flow-hq (sharper, about 2x slower), blend (cross-fade).", "flow", str,
         choices=INTERPOLATION_BACKENDS),
]}


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` for a message, cut to ``limit`` characters: a value sent to the API can be megabytes long."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_TRUE_WORDS = ("true", "yes", "1")
_FALSE_WORDS = ("false", "no", "0")


def parse_bool(value: Any, name: str) -> bool:
    """A bool, or its usual spellings as text ("false", "no", "0": JSON callers and form fields send those).

    Anything else is refused: `bool("false")` is True, which is how a string "false" once turned an option on.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS + _FALSE_WORDS:
        return value.strip().lower() in _TRUE_WORDS
    raise InputError(f"`{name}` must be true or false; got {shown(value)}.")



def finite_number(value: Any, what: str, qualifier: str = "") -> float:
    """`value` as a finite float, or an InputError naming `what` (booleans and None are not numbers here)."""
    wanted = f"a number {qualifier}".rstrip()
    if isinstance(value, bool) or value is None:
        raise InputError(f"{what} must be {wanted}; got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be {wanted}; got {value!r}.") from None
    if not math.isfinite(number):
        raise InputError(f"{what} must be a finite {wanted.removeprefix('a ')}; got {value!r}.")
    return number

def _coerce(spec: Spec, value: Any) -> Any:
    """One raw value to its declared type, within its range; raises InputError naming the parameter."""
    rng = f"between {spec.minimum:g} and {spec.maximum:g}" if spec.minimum is not None else ""
    if spec.kind is bool:
        return parse_bool(value, spec.name)
    if spec.kind is str:
        if not isinstance(value, str) or value not in (spec.choices or ()):
            raise InputError(f"`{spec.name}` must be one of {', '.join(spec.choices or ())}; got {value!r}.")
        return value
    number = finite_number(value, f"`{spec.name}`", rng)
    if spec.kind is int:
        if number != int(number):
            raise InputError(f"`{spec.name}` must be a whole number {rng}; got {value!r}.")
        number = int(number)
        if spec.step and spec.step > 1 and number % spec.step:  # the slider's step is a rule (resolution: 8)
            raise InputError(f"`{spec.name}` must be a multiple of {spec.step:g} {rng}; got {value!r}.")
    if (spec.minimum is not None and number < spec.minimum) or (spec.maximum is not None and number > spec.maximum):
        raise InputError(f"`{spec.name}` must be {rng}; got {value!r}.")
    return number


@dataclass(frozen=True)
class VideoParams:
    """Everything that decides an image-to-video result. `None` for frames/fps means the model's own default."""

    seed: int = SPECS["seed"].default
    randomize_seed: bool = SPECS["randomize_seed"].default
    resolution: int = SPECS["resolution"].default
    aspect_mode: str = SPECS["aspect_mode"].default
    num_frames: int | None = SPECS["num_frames"].default
    num_inference_steps: int = SPECS["num_inference_steps"].default
    motion_bucket_id: int = SPECS["motion_bucket_id"].default
    fps: int | None = SPECS["fps"].default
    noise_aug_strength: float = SPECS["noise_aug_strength"].default
    min_guidance_scale: float = SPECS["min_guidance_scale"].default
    max_guidance_scale: float = SPECS["max_guidance_scale"].default
    decode_chunk_size: int = SPECS["decode_chunk_size"].default
    playback_fps: float = SPECS["playback_fps"].default
    loop: str = SPECS["loop"].default
    interpolate_fps: float = SPECS["interpolate_fps"].default
    upscale: str = SPECS["upscale"].default
    feature_cache: bool = SPECS["feature_cache"].default
    extra_formats: tuple[str, ...] = ()

    @classmethod
    def from_raw(cls, values: Mapping[str, Any]) -> VideoParams:
        """Validate raw values (strings, floats from sliders, JSON from the API); unknown keys are an error."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise InputError(f"Unknown parameter(s): {', '.join(unknown)}. Known: {', '.join(sorted(names))}.")
        clean: dict[str, Any] = {}
        for name, value in values.items():
            if name == "extra_formats":
                clean[name] = parse_formats(value)
            elif value is None and SPECS[name].default is None:
                clean[name] = None  # follow the model
            else:
                clean[name] = _coerce(SPECS[name], value)
        params = cls(**clean)
        if params.min_guidance_scale > params.max_guidance_scale:
            raise InputError(f"`min_guidance_scale` ({params.min_guidance_scale:g}) must not be larger than "
                             f"`max_guidance_scale` ({params.max_guidance_scale:g}).")
        return params

    def resolved(self, *, num_frames: int, fps: int) -> VideoParams:
        """Fill model-dependent defaults and draw a seed if asked; the result fully describes a run."""
        seed = random.SystemRandom().randint(0, MAX_SEED) if self.randomize_seed else self.seed
        return VideoParams(**{**asdict(self), "seed": seed, "randomize_seed": False,
                              "num_frames": self.num_frames or num_frames, "fps": self.fps or fps})

    @property
    def effective_playback_fps(self) -> float:
        """The written file's frame rate: the playback control, or the conditioning fps when it is 0."""
        return float(self.playback_fps or self.fps or 7)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "extra_formats": list(self.extra_formats)}


def parse_formats(value: Any) -> tuple[str, ...]:
    """Extra output formats from a list or a comma-separated string; MP4 is always written and may be named."""
    if value is None or value == "":
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise InputError(f"`extra_formats` must be a list of {', '.join(EXTRA_FORMATS)}; got {value!r}.")
    out = []
    for item in items:
        name = str(item).strip().lower().lstrip(".")
        if name == "mp4" or not name:
            continue
        if name not in EXTRA_FORMATS:
            raise InputError(f"Unknown output format {item!r}: choose from mp4 (always written), "
                             f"{', '.join(EXTRA_FORMATS)}.")
        if name not in out:
            out.append(name)
    return tuple(out)


# --- Text to image (the SDXL stage) -----------------------------------------------------------------------------

ORIENTATIONS = ("landscape", "portrait", "square")
MAX_PROMPT_CHARS = 2000  # CLIP reads 77 tokens (~300 characters); far longer text is a mistake or an attack

IMAGE_SPECS: dict[str, Spec] = {s.name: s for s in [
    Spec("sdxl_steps", "Image steps", "Denoising steps for the still. SDXL-Turbo needs only 1-4.", 30, int, 1, 100, 1),
    Spec("sdxl_guidance_scale", "Image guidance", "How closely the still follows the prompt. SDXL-Turbo uses 0.",
         5.0, float, 0.0, 20.0, 0.5),
    Spec("orientation", "Orientation", "The still is rendered straight at the video size for this orientation, so "
         "nothing is cropped afterwards.", "landscape", str, choices=ORIENTATIONS),
]}
# --- Upscaling (the Upscale tab, `/upscale` and `python -m svd_demo upscale`; `upscale` itself is in SPECS) --------

UPSCALE_SPECS: dict[str, Spec] = {s.name: s for s in [
    Spec("upscale_factor", "Factor", "How much larger: 4x is the networks' own scale, 2x resizes the 4x result "
         "with a Lanczos filter, as Real-ESRGAN does. Output is at most 3840 pixels on the long side.", "2x", str,
         choices=UPSCALE_CHOICES[1:]),
    Spec("upscale_tile", "Tile size (px)", "The frame is upscaled in tiles of this many input pixels (overlapping "
         "and cross-faded): smaller needs less GPU memory. 0 = the whole frame at once.", 512, int, 0, 2048, 64),
]}
# LoRAs on the image stage: a list, parsed and checked by `svd_demo.core.lora_refs.parse_loras` (not by `_coerce`).
LORAS = Spec("loras", "LoRAs", "SDXL LoRAs for the still, one per line: a hub id or a .safetensors file, with an "
             "optional weight after a colon (owner/name:0.8). Weight 0 = no effect, 1 = as trained; -2 to 2.", "",
             str)
# Not a generation parameter (it changes nothing in the result): whether a run streams rough previews. Off for API
# calls unless asked; the page turns it on (its checkbox starts ticked).
LIVE_PREVIEW = Spec("live_preview", "Live preview", "Show a rough preview of the frames every few denoising steps "
                    "(the model's current prediction of the finished clip, a fixed colour projection without a "
                    "VAE pass), to cancel a run that is going wrong.", False, bool)
# --- Keyframes to video (the Keyframes tab, `/keyframes_to_video` and `python -m svd_demo keyframes`) -------------
# The method's own settings; every other one is the video settings' (`SPECS`). Guidance 1 in both directions is the
# ViBiDSampler authors' default for SVD-XT.
KEYFRAME_SPECS: dict[str, Spec] = {s.name: s for s in [
    Spec("keyframe_guidance", "Keyframe guidance", "How strongly each direction follows its photo (the same in "
         "both directions). 1 is the method's default; higher follows the photos more closely, with less motion.",
         1.0, float, 0.0, 10.0, 0.1),
    Spec("loop_to_start", "Loop back to the start", "Use the start photo as the end photo too: the clip comes back "
         "to its first frame and loops without a jump.", False, bool),
]}
# Every parameter the app takes from outside, by name (the names are unique across the tables).
ALL_SPECS: dict[str, Spec] = {**SPECS, **IMAGE_SPECS, **INTERPOLATION_SPECS, **UPSCALE_SPECS, **KEYFRAME_SPECS,
                              NUM_SEEDS.name: NUM_SEEDS, LORAS.name: LORAS, LIVE_PREVIEW.name: LIVE_PREVIEW}


def clean_prompt(text: Any, name: str = "prompt", *, required: bool = True) -> str:
    """A prompt as the model should get it: control characters removed, length checked; empty refused if required."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise InputError(f"`{name}` must be text, got {type(text).__name__}.")
    if len(text) > MAX_PROMPT_CHARS:
        raise InputError(f"The {name.replace('_', ' ')} is {len(text)} characters long; the limit is "
                         f"{MAX_PROMPT_CHARS} (the text encoder reads only about 300). Please shorten it.")
    cleaned = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text).strip()
    if required and not cleaned:
        raise InputError("Please write a prompt: describe the scene you want to see.")
    return cleaned


@dataclass(frozen=True)
class ImageParams:
    """Everything that decides an SDXL still. `seed`/`randomize_seed`/`resolution` are shared with the video."""

    prompt: str
    negative_prompt: str = ""
    sdxl_steps: int = IMAGE_SPECS["sdxl_steps"].default
    sdxl_guidance_scale: float = IMAGE_SPECS["sdxl_guidance_scale"].default
    orientation: str = IMAGE_SPECS["orientation"].default
    seed: int = SPECS["seed"].default
    randomize_seed: bool = SPECS["randomize_seed"].default
    resolution: int = SPECS["resolution"].default
    loras: tuple[LoraSpec, ...] = ()

    @classmethod
    def from_raw(cls, values: Mapping[str, Any], check_lora: Callable[[str], str] | None = None) -> ImageParams:
        """Checked parameters; `check_lora` accepts or refuses each LoRA reference (default `lora.check_ref`)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise InputError(f"Unknown parameter(s): {', '.join(unknown)}. Known: {', '.join(sorted(names))}.")
        clean: dict[str, Any] = {"prompt": clean_prompt(values.get("prompt")),
                                 "negative_prompt": clean_prompt(values.get("negative_prompt"), "negative_prompt",
                                                                 required=False)}
        for name, value in values.items():
            if name in clean:
                continue
            if name == LORAS.name:
                clean[name] = parse_loras(value, check_lora) if check_lora else parse_loras(value)
                continue
            spec = IMAGE_SPECS.get(name) or SPECS[name]
            clean[name] = _coerce(spec, value)
        return cls(**clean)

    def resolved(self) -> ImageParams:
        seed = random.SystemRandom().randint(0, MAX_SEED) if self.randomize_seed else self.seed
        return replace(self, seed=seed, randomize_seed=False)  # not asdict: it would turn the LoRAs into dicts

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "loras": [asdict(lora) for lora in self.loras]}



def checked(name: str, value: Any) -> Any:
    """One raw value of the parameter `name` (any table), coerced and range-checked; InputError naming it."""
    return _coerce(ALL_SPECS[name], value)
