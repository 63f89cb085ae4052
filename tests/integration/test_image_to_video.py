"""Image to video on tiny pipelines loaded through the app's own cache: a playable clip and its record, the frames'
type and size, seeds compared, and bad input that never reaches the model. What needs several clips a test
(determinism, caching, concurrency, out-of-memory recovery, cancel) is end to end
(tests/e2e/test_image_to_video_runs.py).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import FAST, fast_video
from PIL import Image

from svd_demo.core.errors import InputError, UserFacingError
from svd_demo.core.params import MAX_COMPARE_SEEDS, VideoParams
from svd_demo.core.settings import Settings
from svd_demo.engine.image_to_video import generate_frames, to_uint8
from svd_demo.files.media import probe_video, read_metadata
from svd_demo.studio.studio import Studio


def test_generates_a_playable_video_with_sidecar(studio, photo):
    result = fast_video(studio, photo, seed=7)
    info = probe_video(result.files.video)
    assert (info.codec, info.pix_fmt, info.width, info.height, info.num_frames) == ("h264", "yuv420p", 256, 144, 4)
    assert result.seed == 7
    record = json.loads(result.files.sidecar.read_text())
    assert record["parameters"]["seed"] == 7 and record["parameters"]["num_frames"] == 4
    assert record["model"]["random_weights"] is True
    assert {"denoise_s", "decode_s", "encode_s", "total_s"} <= set(record["timings"])
    assert record["versions"]["diffusers"]
    # The same parameters travel inside the MP4 itself.
    assert json.loads(read_metadata(result.files.video)["comment"])["seed"] == 7


def test_frames_are_finite_uint8_of_the_prepared_size(studio, photo):
    loaded = studio.cache.get("svd", studio.settings.svd_model)
    params = VideoParams.from_raw({**FAST, "seed": 1}).resolved(num_frames=14, fps=7)
    prepared, _ = studio.prepare(photo, 256, "crop")
    frames = generate_frames(studio.cache, loaded, prepared.image, params)
    assert frames.frames.shape == (4, 144, 256, 3) and frames.frames.dtype == np.uint8
    assert frames.frames.std() > 0  # not a constant (black) video


def test_progress_says_a_local_model_is_loaded_not_downloaded(studio, photo):
    said: list[str] = []
    studio.image_to_video(photo, VideoParams.from_raw(FAST), progress=lambda fraction, text: said.append(text))
    assert "Loading the video model from its folder" in said and not any("download" in text for text in said)


def test_nan_frames_are_refused_not_written_black():
    frames = np.zeros((3, 8, 8, 3), np.float32)
    frames[1, 2, 2, 0] = np.nan
    with pytest.raises(UserFacingError, match="NaN"):
        to_uint8(frames)


@pytest.mark.parametrize("content", [None, b"", b"not an image", "1x1"])
def test_bad_images_are_refused_before_any_model_loads(tmp_path, content):
    path = tmp_path / "in.png"
    if content == "1x1":
        Image.new("RGB", (1, 1)).save(path)
    elif content is not None:
        path.write_bytes(content)
    studio = Studio(Settings(svd_model=str(tmp_path / "no-such-model"), output_dir=tmp_path / "out"))
    with pytest.raises(InputError):
        fast_video(studio, None if content is None else path)
    assert studio.cache.loads == 0 and studio.cache.loaded("svd") is None


def test_a_header_claiming_20000x20000_is_refused_without_decoding(tmp_path):
    import struct
    import zlib

    path = tmp_path / "bomb.png"
    Image.new("RGB", (16, 16)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", 20000, 20000)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))
    studio = Studio(Settings(svd_model=str(tmp_path / "none"), output_dir=tmp_path / "out"))
    with pytest.raises(InputError, match="megapixels"):
        fast_video(studio, path)


def test_unknown_devices_are_clear_errors(tiny_settings):
    from dataclasses import replace

    for device in ("tpu", "cuda:x", "cuda:7"):
        with pytest.raises(ValueError, match="device|Device"):
            Studio(replace(tiny_settings, device=device))


def test_compare_seeds_runs_one_video_per_seed_in_order(studio, photo):
    fractions: list[float] = []
    results = studio.compare_seeds(photo, VideoParams.from_raw({**FAST, "randomize_seed": True}), ["5", 6, 5],
                                    progress=lambda fraction, text: fractions.append(fraction))
    assert [r.seed for r in results] == [5, 6]
    assert all(r.files.video.is_file() and r.record["parameters"]["seed"] == r.seed for r in results)
    # Never back (0.92 + 0.03 after the last decoded chunk is 0.9500000000000001, then "Encoding" says 0.95).
    assert all(later >= earlier - 1e-9 for earlier, later in zip(fractions, fractions[1:], strict=False))
    assert 0.5 <= fractions[-1] <= 1
    with pytest.raises(InputError, match="`seed`"):
        studio.compare_seeds(photo, VideoParams(), [1, -2])
    with pytest.raises(InputError, match=f"at most {MAX_COMPARE_SEEDS} seeds"):
        studio.compare_seeds(photo, VideoParams(), range(MAX_COMPARE_SEEDS + 1))
