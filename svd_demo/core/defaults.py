"""The values a video run starts from, worked out in one place for the page, the API and the CLI.

Layers, each over the one before: the parameter's own default (`params.SPECS`) < the model's (its frames and fps,
and a few-step model's sampling settings: AnimateLCM runs 4 steps at guidance 1) < the quick settings of a CPU or
of random weights (`params.quick_defaults`) < settings restored from a file < what the caller gave.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from svd_demo.core.models import svd_settings
from svd_demo.core.params import SPECS


def model_start(model_ref: str, quick: Mapping[str, int]) -> dict[str, Any]:
    """What choosing `model_ref` sets (`svd_settings`), under the quick settings where they apply: their frames,
    and at most their steps (a 4-step model keeps its 4)."""
    values: dict[str, Any] = dict(svd_settings(model_ref))
    if "num_frames" in quick:
        values["num_frames"] = quick["num_frames"]
    if "num_inference_steps" in quick:
        values["num_inference_steps"] = min(values["num_inference_steps"], quick["num_inference_steps"])
    return values


def resolve_video(model_ref: str, *, quick: Mapping[str, int] | None = None,
                  restored: Mapping[str, Any] | None = None, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Every video parameter of a run of `model_ref`: spec < model < quick < restored < given (None in `given` or
    `restored` counts as not given)."""
    quick = quick or {}
    values: dict[str, Any] = {name: spec.default for name, spec in SPECS.items()}
    values.update({name: value for name, value in quick.items() if name in SPECS})
    values.update(model_start(model_ref, quick))
    for layer in (restored or {}, given or {}):
        values.update({name: value for name, value in layer.items() if name in SPECS and value is not None})
    return values


def not_defaults(values: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The values that differ from `defaults`: what an API caller gave. Gradio's clients fill every parameter left
    out with the endpoint's default, so a value equal to it is read as left out (and takes the model's own)."""
    return {name: value for name, value in values.items() if name not in defaults or value != defaults[name]}
