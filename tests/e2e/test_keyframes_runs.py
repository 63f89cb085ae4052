"""Keyframes to video on the tiny models, several clips a test: the studio's runs repeat per seed and a cancelled
one leaves nothing; every memory profile runs the sampler, and offloading changes no pixel."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from helpers import FAST, keyframe_params

from svd_demo.core.errors import GenerationCancelled
from svd_demo.core.params import VideoParams
from svd_demo.engine.image_to_video import generate_frames
from svd_demo.engine.keyframes import denoise_keyframes


def test_studio_runs_are_deterministic_per_seed_and_cancel_leaves_nothing(studio, keyframe_photos, tmp_path):
    from helpers import read_frames

    start, end = keyframe_photos
    a = studio.keyframes_to_video(start, end, VideoParams.from_raw({**FAST, "seed": 5}), out_stem=tmp_path / "a")
    b = studio.keyframes_to_video(start, end, VideoParams.from_raw({**FAST, "seed": 5}), out_stem=tmp_path / "b")
    c = studio.keyframes_to_video(start, None, VideoParams.from_raw({**FAST, "seed": 5}), loop_to_start=True,
                                  out_stem=tmp_path / "c")
    assert np.array_equal(read_frames(a.files.video), read_frames(b.files.video))
    assert not np.array_equal(read_frames(a.files.video), read_frames(c.files.video))
    assert c.record["parameters"]["end_sha256"] == c.record["parameters"]["start_sha256"]
    cancel = threading.Event()

    def cancel_after_first_step(fraction: float, text: str) -> None:
        if text.startswith("Step 1/"):
            cancel.set()

    with pytest.raises(GenerationCancelled):
        studio.keyframes_to_video(start, end, VideoParams.from_raw(FAST), progress=cancel_after_first_step,
                                  cancel=cancel, out_stem=tmp_path / "cancelled")
    assert not list(tmp_path.glob("cancelled*"))


def test_every_memory_profile_runs_keyframes_and_offloading_changes_no_pixel(tiny_settings, tmp_path, keyframes):
    """The offload hooks' CUDA code paths on the CPU (helpers.STAND_IN): model offload (balanced), group offload
    with fp8 storage (low), leaf offload with a one-frame decode (minimal)."""
    import dataclasses

    from helpers import STAND_IN

    from svd_demo.engine.pipelines import PipelineCache

    cache = PipelineCache(dataclasses.replace(tiny_settings, dtype="fp32", memory_profile="high",
                                              output_dir=tmp_path), device=STAND_IN)
    loaded = cache.get("svd", tiny_settings.svd_model)
    frames = {}
    for profile in ("high", "balanced", "low", "minimal"):
        cache.use_profile(loaded, profile)
        result = cache.run(lambda: generate_frames(cache, loaded, keyframes, keyframe_params(),
                                                   sampler=denoise_keyframes))
        assert result.memory_profile == profile and result.frames.shape == (4, 144, 256, 3)
        frames[profile] = result.frames
    cache.use_profile(loaded, "high")
    assert np.array_equal(frames["high"], frames["balanced"])
    assert not any(p.is_inference() for p in loaded.pipe.unet.parameters())
