"""Text to image to video: the SDXL still at the video size, the hand-off to SVD, and prompts. That a second
request loads nothing again is end to end (tests/e2e/test_text_to_video_runs.py)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from helpers import FAST, FAST_STILL
from PIL import Image

from svd_demo.core.errors import InputError
from svd_demo.core.models import sdxl_defaults
from svd_demo.core.params import MAX_PROMPT_CHARS, ImageParams, VideoParams, clean_prompt
from svd_demo.engine.text_to_image import still_size
from svd_demo.files.media import read_metadata


def still(studio, **overrides):
    return studio.text_to_image(ImageParams.from_raw({"prompt": "a lighthouse at dusk", **FAST_STILL, **overrides}))


@pytest.mark.parametrize(("orientation", "size"), [("landscape", (256, 144)), ("portrait", (144, 256)),
                                                   ("square", (192, 192))])
def test_still_is_rendered_at_the_video_size(studio, orientation, size):
    result = still(studio, orientation=orientation)
    assert result.image.size == size
    assert Image.open(result.path).size == size
    assert json.loads(result.sidecar.read_text())["parameters"]["orientation"] == orientation


def test_still_sizes_at_the_trained_resolution():
    assert still_size(1024, "landscape") == (1024, 576)
    assert still_size(1024, "portrait") == (576, 1024)
    assert still_size(1024, "square") == (768, 768)


def test_same_seed_same_still_other_seed_other_still(studio):
    a = np.asarray(still(studio, seed=1).image)
    b = np.asarray(still(studio, seed=1).image)
    c = np.asarray(still(studio, seed=2).image)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_turbo_preset_runs_without_guidance(studio):
    steps, guidance = sdxl_defaults("stabilityai/sdxl-turbo")
    assert (steps, guidance) == (4, 0.0)
    result = still(studio, sdxl_steps=steps, sdxl_guidance_scale=guidance)
    assert np.isfinite(np.asarray(result.image)).all()


def test_prompt_to_video_hands_the_still_to_svd(studio):
    image_params = ImageParams.from_raw({"prompt": "waves <b>crash</b>", "negative_prompt": "blur", **FAST_STILL,
                                         "seed": 5, "orientation": "portrait"})
    still_result, video = studio.text_to_video(image_params, VideoParams.from_raw(
        {k: v for k, v in FAST.items() if k not in ("resolution", "randomize_seed")}))
    assert (video.files.info.width, video.files.info.height) == still_result.image.size == (144, 256)
    assert video.seed == still_result.seed == 5
    record = json.loads(video.files.sidecar.read_text())
    assert record["kind"] == "text_to_video"
    assert record["parameters"]["prompt"] == "waves <b>crash</b>"
    assert record["parameters"]["negative_prompt"] == "blur"
    assert record["parameters"]["still"] == still_result.path.name
    assert {"sdxl_s", "denoise_s", "decode_s", "encode_s"} <= set(record["timings"])
    assert json.loads(read_metadata(video.files.video)["comment"])["sdxl_steps"] == 2


@pytest.mark.parametrize("bad", ["", "   \n\t ", None, "x" * (MAX_PROMPT_CHARS + 1), 42])
def test_bad_prompts_are_refused(bad):
    with pytest.raises(InputError):
        ImageParams.from_raw({"prompt": bad})


def test_control_characters_are_removed_and_html_kept_as_text():
    assert clean_prompt("a\x00cat\x1b[31m <script>") == "a cat [31m <script>"


def test_long_prompt_is_truncated_with_a_notice(studio):
    result = still(studio, prompt="a very long and winding description " * 20)
    notice = next(n for n in result.notices if "tokens long" in n)
    # The same numbers as docs/app.md: 77 tokens read, 75 of them the prompt's (two mark its start and end).
    assert re.fullmatch(r"The prompt is \d+ tokens long; the text encoder reads 77 tokens, the first 75 of the "
                        r"prompt's between its start and end markers, so the rest was ignored\. It read: “a very "
                        r"long .*”", notice), notice
