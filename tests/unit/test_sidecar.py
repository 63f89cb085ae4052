"""Sidecar records: one builder per kind, read back through typed objects (no model needed here)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from svd_demo.core.params import ImageParams, VideoParams
from svd_demo.studio import sidecar
from svd_demo.studio.sidecar import ModelUsed, Runtime, Sidecar

LOADED = SimpleNamespace(revision="abc", random_weights=True, device="cuda:0", dtype="torch.float16",
                         current_profile="balanced", quantize="none")
FRAMES = SimpleNamespace(memory_profile="low", decode_chunk_size=4, memory_changes=["retried with 'low'"],
                         feature_cache=None)
ORIGINAL = SimpleNamespace(original_size=(400, 300), notices=("converted",))
PREPARED = SimpleNamespace(image=SimpleNamespace(size=(256, 144)), notices=("cropped",))
VIDEO = {"model_ref": "svd", "loaded": LOADED, "frames": FRAMES, "original": ORIGINAL, "prepared": PREPARED,
         "timings": {"denoise_s": 1.23456}}
PARAMS = VideoParams(seed=7, num_frames=4, fps=7)
STILL = ImageParams(prompt="a boat", seed=3)


def _written(record: dict) -> Sidecar:
    """The record as a file holds it (JSON), read back."""
    return Sidecar.from_record(json.loads(json.dumps(record, default=str)))


def test_image_to_video_reads_back_typed():
    record = sidecar.image_to_video(PARAMS, **VIDEO, interpolation={"target_fps": 24})
    done = _written(record)
    assert (done.kind, done.parameters["seed"], done.parameters["model"]) == ("image_to_video", 7, "svd")
    assert done.model == ModelUsed(id="svd", revision="abc", random_weights=True)
    assert done.runtime == Runtime(device="cuda:0", dtype="float16", memory_profile="low", decode_chunk_size=4,
                                   unet_weights="fp8")
    assert done.memory_changes == ("retried with 'low'",) and done.timings == {"denoise_s": 1.235}
    assert record["input"] == {"original_size": [400, 300], "size": [256, 144], "notices": ["converted", "cropped"]}
    assert record["interpolation"] == {"target_fps": 24} and record["versions"]["svd-demo"]


def test_text_to_video_adds_the_still_stage_under_the_videos_own_values():
    record = sidecar.text_to_video(STILL, "sdxl", "x.still.png", 2.5, params=PARAMS, **VIDEO)
    done = _written(record)
    assert done.kind == "text_to_video" and done.timings["sdxl_s"] == 2.5
    assert done.parameters["prompt"] == "a boat" and done.parameters["sdxl_model"] == "sdxl"
    assert done.parameters["still"] == "x.still.png" and done.parameters["seed"] == 7  # the video's seed wins


def test_extend_video_keeps_the_segment_and_records_the_source():
    segment = sidecar.image_to_video(PARAMS, **VIDEO)
    record = sidecar.extend_video(segment, VideoParams(loop="ping-pong", extra_formats=("gif",)), source_name="a.mp4",
                                  source_frames=4, fps=7.0, width=256, height=144, added_frames=3)
    done = _written(record)
    assert done.kind == "extend_video" and done.model == ModelUsed("svd", "abc", True)
    assert (done.parameters["loop"], done.parameters["extra_formats"]) == ("ping-pong", ["gif"])
    assert record["source"] == {"name": "a.mp4", "frames": 4, "fps": 7.0, "width": 256, "height": 144}
    assert segment["kind"] == "image_to_video" and "source" not in segment  # the segment's own record is untouched


def test_text_to_image_and_interpolate():
    record = sidecar.text_to_image(STILL, model_ref="sdxl", loaded=LOADED, notices=["long prompt"],
                                   timings={"sdxl_s": 1.0}, png=Path("/x/still.png"), size=(256, 144))
    done = _written(record)
    assert (done.kind, done.runtime.memory_profile, done.runtime.decode_chunk_size) == ("text_to_image", "balanced",
                                                                                        None)
    assert record["files"] == {"png": "still.png"} and record["image"] == {"width": 256, "height": 144}
    assert done.parameters == {**STILL.to_dict(), "sdxl_model": "sdxl"}
    result = SimpleNamespace(input_frames=4, source_fps=7.0, output_frames=10, output_fps=21.0, width=256, height=144,
                             cut_pairs=0, copied_pairs=1, notes=("n",), seconds=0.5)
    done = _written(sidecar.interpolate({"factor": 3}, source_name="a.mp4", result=result))
    assert (done.kind, done.parameters, done.timings, done.model) == ("interpolate", {"factor": 3},
                                                                     {"total_s": 0.5}, None)


@pytest.mark.parametrize("content", ["[]", '{"kind": "other"}', '{"parameters": {}}', "not json",
                                     '{"kind": "image_to_video", "parameters": []}',
                                     '{"kind": "image_to_video", "runtime": {"dtype": "fp16"}}'])
def test_anything_else_is_not_a_sidecar(tmp_path, content):
    path = tmp_path / "x.json"
    path.write_text(content)
    with pytest.raises(ValueError):
        Sidecar.read(path)


def test_the_sweeps_section_reads_back():
    record = {**sidecar.image_to_video(PARAMS, **VIDEO), "sweep": {"id": "abc", "memory_kind": "process_peak_rss",
                                                                   "peak_memory_mb": 812.5, "image": "a.png"}}
    assert _written(record).sweep.peak_memory_mb == 812.5
