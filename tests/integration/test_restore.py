"""Restoring settings from a file this app wrote: an MP4 (its `comment` metadata) or a .json sidecar."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import FAST

from svd_demo.core.errors import InputError
from svd_demo.core.params import ImageParams, VideoParams
from svd_demo.files.media import write_video
from svd_demo.studio.restore import read_settings


@pytest.fixture(scope="module")
def made(studio, tmp_path_factory):
    """A generated clip (image to video) and a text-to-video clip, with their sidecars."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("made")
    photo = folder / "photo.png"
    Image.new("RGB", (320, 240), (200, 120, 40)).save(photo)
    clip = studio.image_to_video(photo, VideoParams.from_raw({**FAST, "seed": 7, "motion_bucket_id": 40,
                                                              "aspect_mode": "native", "extra_formats": ["gif"]}),
                                 out_stem=folder / "clip")
    still, text = studio.text_to_video(
        ImageParams.from_raw({"prompt": "a lighthouse at dusk", "negative_prompt": "blurry", "sdxl_steps": 2,
                              "orientation": "portrait", "seed": 3, "randomize_seed": False, "resolution": 256}),
        VideoParams.from_raw({"num_frames": 4, "num_inference_steps": 2, "fps": 9}), out_stem=folder / "text")
    return clip, text


def test_an_mp4_and_its_sidecar_restore_the_same_settings(made, studio):
    clip, _ = made
    from_mp4, from_json = read_settings(clip.files.video), read_settings(clip.files.sidecar)
    assert from_mp4.video == from_json.video
    assert from_mp4.kind == "image_to_video" and from_mp4.prompt is None
    video = from_mp4.video
    assert (video.seed, video.randomize_seed, video.motion_bucket_id, video.aspect_mode) == (7, False, 40, "native")
    assert (video.resolution, video.num_frames, video.num_inference_steps) == (256, 4, 2)
    assert video.extra_formats == ("gif",)
    assert from_mp4.svd_model == studio.settings.svd_model
    # What was made can be made again: the restored parameters are the ones the clip was generated with.
    written = json.loads(clip.files.sidecar.read_text())["parameters"]
    assert video == VideoParams.from_raw({k: v for k, v in written.items() if k != "model"})


def test_a_text_to_video_clip_restores_its_prompt_and_still_settings(made, studio):
    _, text = made
    restored = read_settings(text.files.video)
    assert restored.kind == "text_to_video"
    assert restored.still.prompt == "a lighthouse at dusk" and restored.still.negative_prompt == "blurry"
    assert (restored.still.sdxl_steps, restored.still.orientation, restored.still.seed) == (2, "portrait", 3)
    assert restored.video.fps == 9 and restored.video.seed == 3
    assert restored.sdxl_model == studio.settings.sdxl_model


def test_files_without_our_settings_are_refused_with_a_clear_note(tmp_path):
    plain = write_video(np.zeros((3, 64, 64, 3), np.uint8), tmp_path / "plain.mp4", 8).path
    with pytest.raises(InputError, match=r"plain\.mp4 has no svd-demo settings"):
        read_settings(plain)
    other = tmp_path / "other.json"
    other.write_text('{"name": "not ours"}')
    with pytest.raises(InputError, match=r"other\.json is not an svd-demo sidecar"):
        read_settings(other)
    broken = tmp_path / "broken.json"
    broken.write_text('{"kind": "image_to_vid')
    with pytest.raises(InputError, match=r"broken\.json is not an svd-demo sidecar"):
        read_settings(broken)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00" * 1000)
    with pytest.raises(InputError, match=r"garbage\.mp4 has no svd-demo settings"):
        read_settings(garbage)
    with pytest.raises(InputError, match=r"`settings_from` must be a \.mp4, \.webm or \.json file"):
        read_settings(tmp_path / "photo.png")


def test_a_tampered_value_is_refused_naming_the_parameter(made, tmp_path):
    clip, _ = made
    record = json.loads(clip.files.sidecar.read_text())
    record["parameters"]["num_frames"] = 500
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(record))
    with pytest.raises(InputError, match=r"tampered\.json.*`num_frames` must be"):
        read_settings(tampered)
    huge = tmp_path / "huge.json"
    huge.write_text(" " * (2 * 1024 * 1024) + "{}")
    with pytest.raises(InputError, match="too large"):
        read_settings(huge)


def test_an_interpolated_clip_has_no_generation_settings(made, studio, tmp_path):
    clip, _ = made
    result = studio.interpolate(clip.files.video, factor=2)
    with pytest.raises(InputError, match="frame interpolation"):
        read_settings(result.output_path.with_suffix(".json"))


def test_the_page_restores_every_control_and_opens_the_right_tab(made, studio, tmp_path):
    from svd_demo.core.params import KEYFRAME_SPECS
    from svd_demo.web.handlers import TEXT_INPUTS, VIDEO_INPUTS, restore_settings

    clip, text = made
    *controls, tabs, note = restore_settings(str(text.files.video))
    by_name = dict(zip([*VIDEO_INPUTS, *TEXT_INPUTS, *KEYFRAME_SPECS], controls, strict=True))
    assert by_name["prompt"]["value"] == "a lighthouse at dusk" and by_name["orientation"]["value"] == "portrait"
    assert by_name["sdxl_model"]["value"] == studio.settings.sdxl_model
    assert (by_name["fps"]["value"], by_name["seed"]["value"], by_name["randomize_seed"]["value"]) == (9, 3, False)
    assert tabs.selected == "text_to_video" and "Restored the settings of text.mp4" in note

    *controls, tabs, note = restore_settings(str(clip.files.sidecar))
    by_name = dict(zip([*VIDEO_INPUTS, *TEXT_INPUTS, *KEYFRAME_SPECS], controls, strict=True))
    assert by_name["motion_bucket_id"]["value"] == 40 and by_name["extra_formats"]["value"] == ["gif"]
    assert by_name["svd_model"]["value"] == studio.settings.svd_model
    assert by_name["prompt"] == {"__type__": "update"}  # a photo's clip leaves the prompt as it is
    assert tabs.selected == "image_to_video"

    plain = write_video(np.zeros((3, 64, 64, 3), np.uint8), tmp_path / "plain.mp4", 8).path
    *controls, tabs, note = restore_settings(str(plain))
    assert all(update == {"__type__": "update"} for update in controls) and tabs.selected is None
    assert "plain.mp4 has no svd-demo settings" in note


def test_a_restored_prompt_clip_passes_the_checks_of_the_button_the_note_names(made, studio, tiny_loras):
    """Restored into the page, a prompt's clip is accepted by *Prompt to video* as it stands (its LoRAs as the text the
    box takes), and the shared framing is left as the person set it: the video stage of a prompt's clip always runs
    on the still as it is (aspect native), which says nothing about how they frame photos."""
    from svd_demo.core.params import KEYFRAME_SPECS
    from svd_demo.web.handlers import TEXT_INPUTS, VIDEO_INPUTS, restore_settings, text_problems, video_problems

    lora = tiny_loras[0]
    still, text = studio.text_to_video(
        ImageParams.from_raw({"prompt": "a kite", "sdxl_steps": 1, "seed": 4, "randomize_seed": False,
                              "resolution": 256, "loras": f"{lora}:0.5"}),
        VideoParams.from_raw({"num_frames": 2, "num_inference_steps": 1}),
        out_stem=made[1].files.video.parent / "kite")
    for source in (made[1].files.video, text.files.video):
        *controls, _, note = restore_settings(str(source))
        by_name = dict(zip([*VIDEO_INPUTS, *TEXT_INPUTS, *KEYFRAME_SPECS], controls, strict=True))
        values = {name: update["value"] for name, update in by_name.items() if "value" in update}
        assert text_problems(values) == {} and video_problems(values) == {}
        assert isinstance(values["loras"], str) and "value" not in by_name["aspect_mode"]
    assert values["loras"] == f"{lora}:0.5"
    assert ImageParams.from_raw({"prompt": "a kite", "loras": values["loras"]}).loras == still.params.loras
