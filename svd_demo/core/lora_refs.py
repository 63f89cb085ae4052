"""LoRA references as callers give them (UI, API, CLI, sidecars): parsed and checked before anything loads.

A LoRA is a hub id (a repository holding one LoRA `.safetensors`), a local `.safetensors` file, or a folder that
diffusers' `save_lora_weights` wrote. Only safetensors: pickle-based `.bin`/`.ckpt` files can run code when loaded.
Loading them onto a pipeline is the engine's (`svd_demo.engine.lora`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from svd_demo.core.errors import InputError

MAX_LORAS = 4  # each adapter adds its weights to every attention layer's forward: more is slower and rarely useful
MIN_WEIGHT, MAX_WEIGHT = -2.0, 2.0  # past about +-1.5 most LoRAs burn the image; negative weights steer away
MAX_LORAS_CHARS = 2000  # the text form: 4 references of at most 255 characters and their weights fit easily
LORA_FILE_NAME = "pytorch_lora_weights.safetensors"  # what `save_lora_weights` writes into a folder
PARAM = "`loras`"


@dataclass(frozen=True)
class LoraSpec:
    """One LoRA and the weight its adapter gets (1 = as trained, 0 = no effect)."""

    ref: str
    weight: float = 1.0


def _weight(ref: str, text: Any) -> float:
    try:
        weight = float(text)
    except (TypeError, ValueError):
        weight = math.nan
        if not isinstance(text, str):
            raise InputError(f"{PARAM}: the weight of {ref!r} must be a number; got {text!r}.") from None
    if not math.isfinite(weight):
        raise InputError(f"{PARAM}: the weight of {ref!r} must be a finite number between {MIN_WEIGHT:g} and "
                         f"{MAX_WEIGHT:g}; got {text!r}.")
    if not MIN_WEIGHT <= weight <= MAX_WEIGHT:
        raise InputError(f"{PARAM}: the weight of {ref!r} must be between {MIN_WEIGHT:g} and {MAX_WEIGHT:g}; "
                         f"got {text!r}.")
    return weight


def looks_local(ref: str) -> bool:
    return ref.endswith((".safetensors", ".bin", ".ckpt", ".pt", ".pth")) or ref.startswith((".", "/", "~")) or \
        Path(ref).expanduser().exists()


def _check_file(path: Path, ref: str) -> None:
    """A readable safetensors file (only its header is read)."""
    from safetensors import safe_open

    if path.suffix != ".safetensors":
        raise InputError(f"{PARAM}: '{ref}' must be a .safetensors file (pickle-based .bin, .ckpt and .pt files can "
                         "run code when loaded).")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            handle.keys()
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise InputError(f"{PARAM}: '{ref}' is not a valid safetensors file ({type(exc).__name__}).") from None


def check_ref(ref: str) -> str:
    """A LoRA reference as given, once it is known to be a readable local safetensors file or folder, or a hub id."""
    ref = ref.strip()
    if not ref or len(ref) > 255 or not ref.isprintable():
        raise InputError(f"{PARAM}: {ref[:80]!r} is not a LoRA: give a hub id (owner/name) or a .safetensors file.")
    if looks_local(ref):
        path = Path(ref).expanduser()
        if not path.exists():
            raise InputError(f"{PARAM}: the LoRA file '{ref}' does not exist on this machine.")
        if path.is_dir():
            if not (path / LORA_FILE_NAME).is_file():
                raise InputError(f"{PARAM}: the folder '{ref}' holds no {LORA_FILE_NAME}: pass the LoRA's "
                                 ".safetensors file itself.")
            path = path / LORA_FILE_NAME
        _check_file(path, ref)
        return ref
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(ref)
    except HFValidationError:
        raise InputError(f"{PARAM}: {ref!r} is neither a hub id (owner/name) nor a .safetensors file on this "
                         "machine.") from None
    return ref


def parse_lora(item: Any, check: Callable[[str], str] = check_ref) -> LoraSpec:
    """`ID_OR_FILE[:WEIGHT]` text, a (ref, weight) pair or a {"ref", "weight"} mapping (as a sidecar records it).

    `check` accepts or refuses the reference (`access.Access.lora_ref` in the app: public mode takes names only).
    """
    if isinstance(item, dict):
        ref, weight = item.get("ref"), item.get("weight", 1.0)
    elif isinstance(item, (list, tuple)) and len(item) == 2:
        ref, weight = item
    elif isinstance(item, str):
        ref, sep, weight = item.strip().rpartition(":")
        if not sep or not ref or "/" in weight or "\\" in weight:  # no weight given (a ":" of a Windows path)
            ref, weight = item.strip(), 1.0
    else:
        raise InputError(f"{PARAM} must be LoRA references with optional weights (ID_OR_FILE[:WEIGHT]); got "
                         f"{type(item).__name__}.")
    if not isinstance(ref, str):
        raise InputError(f"{PARAM}: a LoRA reference must be text; got {type(ref).__name__}.")
    return LoraSpec(check(ref), _weight(ref.strip(), weight))


def parse_loras(value: Any, check: Callable[[str], str] = check_ref) -> tuple[LoraSpec, ...]:
    """The LoRAs to apply, in order: None or "" for none, text with one per line, or a list of items."""
    if value is None or value == "":
        return ()
    if isinstance(value, str) and len(value) > MAX_LORAS_CHARS:
        raise InputError(f"{PARAM}: the list of loras is {len(value)} characters long; the limit is "
                         f"{MAX_LORAS_CHARS} (at most {MAX_LORAS} LoRAs, one per line).")
    items: Sequence[Any] = [line for line in value.splitlines() if line.strip()] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise InputError(f"{PARAM} must be a list of LoRAs (ID_OR_FILE[:WEIGHT]); got {type(value).__name__}.")
    if len(items) > MAX_LORAS:
        raise InputError(f"{PARAM}: at most {MAX_LORAS} LoRAs at once; got {len(items)}.")
    specs = tuple(parse_lora(item, check) for item in items)
    refs = [spec.ref for spec in specs]
    if len(set(refs)) != len(refs):
        twice = next(ref for ref in refs if refs.count(ref) > 1)
        raise InputError(f"{PARAM}: {twice!r} is given more than once; give each LoRA once, with one weight.")
    return specs


def loras_text(loras: Sequence[LoraSpec]) -> str:
    """LoRAs as the text `parse_loras` reads (and the page's box shows): one `ref:weight` a line."""
    return "\n".join(f"{spec.ref}:{spec.weight:g}" for spec in loras)
