"""Text to image to video, twice in one studio: the second request loads neither pipeline again."""

from __future__ import annotations

from helpers import FAST, FAST_STILL

from svd_demo.core.params import ImageParams, VideoParams


def test_a_second_text_to_video_reloads_nothing(studio):
    image_params = ImageParams.from_raw({"prompt": "a forest", **FAST_STILL})
    video_params = VideoParams.from_raw({k: v for k, v in FAST.items() if k != "resolution"})
    studio.text_to_video(image_params, video_params)
    loads = studio.cache.loads
    studio.text_to_video(image_params, video_params)
    assert studio.cache.loads == loads
