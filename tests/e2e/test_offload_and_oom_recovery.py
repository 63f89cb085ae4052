"""The GPU-only generation paths, run on the CPU: offload profiles and out-of-memory recovery.

The stand-in gives the offload hooks the execution device "cpu:0": `apply_plan` then takes its CUDA branches, and
every move of a weight between "cpu" and "cpu:0" is a real copy, as a move between CPU and GPU is.
"""

from __future__ import annotations

import dataclasses
import weakref

import numpy as np
import pytest
import torch
from helpers import FAST, STAND_IN

from svd_demo.core.errors import OutOfMemory
from svd_demo.core.params import VideoParams
from svd_demo.engine.image_to_video import generate_frames
from svd_demo.engine.pipelines import PipelineCache


@pytest.fixture
def stand_in(tiny_settings, tmp_path) -> PipelineCache:
    """A pipeline cache whose offload hooks (model offload, group offload) run the CUDA code paths on the CPU."""
    settings = dataclasses.replace(tiny_settings, dtype="fp32", memory_profile="low", output_dir=tmp_path)
    return PipelineCache(settings, device=STAND_IN)


PARAMS = VideoParams.from_raw(FAST).resolved(num_frames=4, fps=7)


def _weights(pipe) -> dict[str, torch.Tensor]:
    return {f"{name}.{key}": value.detach().clone() for name in ("image_encoder", "unet", "vae")
            for key, value in getattr(pipe, name).state_dict().items()}


def _raise_oom(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.fixture
def before_forward():
    """Run a function before each forward of a module: a forward pre-hook, which outlives the offload hooks
    (they replace `module.forward` itself, and a profile switch restores the one they found)."""
    handles = []

    def hook(fn):
        def pre_hook(module, args):
            fn()  # a pre-hook that returns something replaces the inputs: return nothing

        return pre_hook

    yield lambda module, fn: handles.append(module.register_forward_pre_hook(hook(fn)))
    for handle in handles:
        handle.remove()


def test_a_profile_cycle_runs_in_every_profile_and_ends_with_the_same_weights(stand_in, image):
    loaded = stand_in.get("svd", stand_in.settings.svd_model)
    assert loaded.current_profile == "low"
    stand_in.use_profile(loaded, "high")  # loaded in `low`, whose weights are fp8 (restored for `high`)
    before = _weights(loaded.pipe)
    frames = {}
    for profile in ("high", "balanced", "low", "minimal", "high"):
        stand_in.use_profile(loaded, profile)
        result = stand_in.run(lambda: generate_frames(stand_in, loaded, image, PARAMS))
        assert result.memory_profile == profile and result.frames.shape == (4, 144, 256, 3)
        frames[profile] = result.frames
    after = _weights(loaded.pipe)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(p.is_inference() for p in loaded.pipe.unet.parameters())
    # Offloading moves weights, it does not change what they compute.
    assert np.array_equal(frames["high"], frames["balanced"])


def test_out_of_memory_under_low_steps_down_to_minimal_and_the_next_request_works(stand_in, image, before_forward):
    loaded = stand_in.get("svd", stand_in.settings.svd_model)
    calls = []
    before_forward(loaded.pipe.unet, lambda: calls.append(1) or len(calls) == 1 and _raise_oom())
    result = stand_in.run(lambda: generate_frames(stand_in, loaded, image, PARAMS))
    assert result.memory_profile == "minimal" and result.frames.shape == (4, 144, 256, 3)
    assert "'minimal' memory profile instead of 'low'" in result.memory_changes[0]
    assert loaded.current_profile == "low"  # restored for the next request
    again = stand_in.run(lambda: generate_frames(stand_in, loaded, image, PARAMS))
    assert again.memory_profile == "low" and not again.memory_changes


def test_two_out_of_memory_errors_in_a_row_reach_the_caller_as_the_apps_error(stand_in, image, before_forward):
    loaded = stand_in.get("svd", stand_in.settings.svd_model)
    failing = [True]
    before_forward(loaded.pipe.unet, lambda: failing[0] and _raise_oom())
    with pytest.raises(OutOfMemory, match="also with the 'minimal' memory profile") as caught:
        stand_in.run(lambda: generate_frames(stand_in, loaded, image, PARAMS))
    assert isinstance(caught.value.__cause__, torch.OutOfMemoryError)
    assert loaded.current_profile == "low"
    failing[0] = False
    assert stand_in.run(lambda: generate_frames(stand_in, loaded, image, PARAMS)).frames.shape[0] == 4


def test_the_retry_starts_after_the_failed_attempt_is_freed(stand_in, image, before_forward):
    """Retried inside the `except` block, the traceback keeps the failed attempt's tensors alive."""
    loaded = stand_in.get("svd", stand_in.settings.svd_model)
    held: list[weakref.ref] = []
    alive_at_retry: list[bool] = []

    def step():
        if not held:
            activations = torch.ones(1024, 1024)  # what a failed step leaves in its frames
            held.append(weakref.ref(activations))
            _raise_oom()
        if not alive_at_retry:
            alive_at_retry.append(held[0]() is not None)

    before_forward(loaded.pipe.unet, step)
    stand_in.run(lambda: generate_frames(stand_in, loaded, image, PARAMS))
    assert alive_at_retry == [False]
