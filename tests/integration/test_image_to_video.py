"""Image to video on tiny pipelines loaded through the app's own cache: shapes, determinism, sizes, caching,
concurrency, out-of-memory recovery, cancel, and bad input that never reaches the model."""

from __future__ import annotations

import json
import logging
import threading

import numpy as np
import pytest
import torch
from helpers import FAST, read_frames
from PIL import Image

from svd_demo.core.errors import GenerationCancelled, InputError, UserFacingError, VideoError
from svd_demo.core.params import MAX_COMPARE_SEEDS, VideoParams
from svd_demo.core.settings import Settings
from svd_demo.engine.image_to_video import generate_frames, to_uint8
from svd_demo.files.media import probe_video, read_metadata
from svd_demo.studio.studio import Studio


def run(studio: Studio, image, **overrides):
    return studio.image_to_video(image, VideoParams.from_raw({**FAST, **overrides}))


def test_generates_a_playable_video_with_sidecar(studio, photo):
    result = run(studio, photo, seed=7)
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


@pytest.mark.slow
def test_same_seed_same_frames_other_seed_other_frames(studio, photo):
    a = read_frames(run(studio, photo, seed=3).files.video)
    b = read_frames(run(studio, photo, seed=3).files.video)
    c = read_frames(run(studio, photo, seed=4).files.video)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.slow
def test_randomized_seed_is_reported(studio, photo):
    result = run(studio, photo, randomize_seed=True)
    record = json.loads(result.files.sidecar.read_text())
    assert record["parameters"]["seed"] == result.seed
    assert record["parameters"]["randomize_seed"] is False  # the record replays exactly


@pytest.mark.slow
@pytest.mark.parametrize(("size", "mode", "expected"), [
    ((400, 300), "crop", (256, 144)),
    ((400, 300), "pad", (256, 144)),
    ((300, 400), "native", (192, 256)),  # portrait stays portrait
    ((400, 300), "native", (256, 192)),
])
def test_aspect_modes_give_the_expected_video_size(studio, tmp_path, size, mode, expected):
    path = tmp_path / "in.png"
    Image.new("RGB", size, (120, 60, 200)).save(path)
    info = run(studio, path, aspect_mode=mode).files.info
    assert (info.width, info.height) == expected


@pytest.mark.slow
def test_ping_pong_and_extra_formats(studio, photo):
    result = run(studio, photo, loop="ping-pong", extra_formats=["gif", "webm"], playback_fps=12)
    assert result.files.info.num_frames == 6  # 4 forward + 2 back (the ends are not repeated)
    assert result.files.info.fps == pytest.approx(12)
    assert probe_video(result.files.extras["gif"]).num_frames == 6
    assert probe_video(result.files.extras["webm"]).codec == "vp9"


@pytest.mark.slow
def test_the_pipeline_loads_once_across_many_calls(tiny_settings, photo, caplog, tmp_path):
    fresh = Studio(Settings(**{**tiny_settings.__dict__, "output_dir": tmp_path / "out"}))
    with caplog.at_level(logging.INFO, logger="svd_demo"):
        for seed in range(3):
            run(fresh, photo, seed=seed)
    assert fresh.cache.loads == 1
    assert sum(m.startswith("Loaded svd pipeline from") for m in caplog.messages) == 1


@pytest.mark.slow
def test_concurrent_calls_all_succeed(studio, photo):
    results, errors = [], []

    def worker(seed: int) -> None:
        try:
            results.append(run(studio, photo, seed=seed))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    assert sorted(r.seed for r in results) == [0, 1, 2, 3]
    assert len({r.files.video for r in results}) == 4  # unique names, nothing overwritten


def _raise_oom(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


@pytest.mark.slow
@pytest.mark.parametrize(("chunk", "tried"), [(4, [4, 2, 1]), (3, [3, 2, 1])])  # 3 // 2 would skip 2
def test_decode_out_of_memory_halves_the_chunk_down_to_one(studio, photo, monkeypatch, chunk, tried):
    vae = studio.cache.get("svd", studio.settings.svd_model).pipe.vae
    real_decode = vae.decode
    sizes = []

    def decode(latents, *args, **kwargs):
        sizes.append(latents.shape[0])
        if latents.shape[0] > 1:
            _raise_oom()
        return real_decode(latents, *args, **kwargs)

    monkeypatch.setattr(vae, "decode", decode)
    result = run(studio, photo, decode_chunk_size=chunk)
    assert sizes[:3] == tried
    assert result.files.info.num_frames == 4
    assert any(f"decoding {chunk} frames" in c for c in result.record["memory_changes"])
    assert json.loads(result.files.sidecar.read_text())["runtime"]["decode_chunk_size"] == 1


@pytest.mark.slow
def test_denoise_out_of_memory_steps_down_a_profile_once(studio, photo, monkeypatch):
    loaded = studio.cache.get("svd", studio.settings.svd_model)
    unet = loaded.pipe.unet
    real_forward = unet.forward
    calls = {"n": 0}

    def forward(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            _raise_oom()
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(unet, "forward", forward)
    result = run(studio, photo)
    assert result.record["runtime"]["memory_profile"] == "balanced"
    assert "'balanced' memory profile instead of 'high'" in result.record["memory_changes"][0]
    assert loaded.current_profile == "high"  # the next request starts from the normal profile


@pytest.mark.slow
def test_cancel_stops_within_a_step_and_frees_the_lock(studio, photo):
    cancel = threading.Event()
    steps = []

    def progress(fraction: float, text: str) -> None:
        steps.append(text)
        if text.startswith("Denoising step 1/"):
            cancel.set()

    with pytest.raises(GenerationCancelled):
        studio.image_to_video(photo, VideoParams.from_raw({**FAST, "num_inference_steps": 10}), progress=progress,
                              cancel=cancel)
    assert sum(s.startswith("Denoising") for s in steps) == 1
    assert studio.cache.gpu_lock.acquire(timeout=1)
    studio.cache.gpu_lock.release()
    assert run(studio, photo).files.info.num_frames == 4


@pytest.mark.slow
def test_cancel_while_decoding_stops_at_the_next_chunk(studio, photo, monkeypatch):
    """Decoding a long clip at full size takes seconds on a GPU: a cancel then must not wait for all of it."""
    vae = studio.cache.get("svd", studio.settings.svd_model).pipe.vae
    real_decode = vae.decode
    cancel = threading.Event()
    chunks = []

    def decode(latents, *args, **kwargs):
        chunks.append(latents.shape[0])
        cancel.set()  # the person gives up while the first chunk decodes
        return real_decode(latents, *args, **kwargs)

    monkeypatch.setattr(vae, "decode", decode)
    with pytest.raises(GenerationCancelled):
        studio.image_to_video(photo, VideoParams.from_raw({**FAST, "decode_chunk_size": 1}), cancel=cancel)
    assert chunks == [1]


@pytest.mark.slow
def test_decoding_chunk_by_chunk_gives_the_pipelines_own_frames(studio, photo):
    loaded = studio.cache.get("svd", studio.settings.svd_model)
    image = Image.open(photo).convert("RGB").resize((256, 144))
    kwargs = {"height": 144, "width": 256, "num_frames": 4, "num_inference_steps": 2, "decode_chunk_size": 3}
    plain = loaded.pipe(image, generator=torch.Generator().manual_seed(0), output_type="np", **kwargs).frames[0]
    params = VideoParams.from_raw({**FAST, "seed": 0, "decode_chunk_size": 3}).resolved(num_frames=4, fps=7)
    ours = generate_frames(studio.cache, loaded, image, params).frames
    assert np.abs(ours.astype(int) - to_uint8(np.asarray(plain)).astype(int)).max() <= 1


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
        run(studio, None if content is None else path)
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
        run(studio, path)


@pytest.mark.slow
def test_a_failed_encode_leaves_nothing(studio, photo, monkeypatch):
    import dataclasses

    import svd_demo.files.media as media

    monkeypatch.setitem(media._FORMATS, "mp4", dataclasses.replace(media._FORMATS["mp4"], codec="no-such-codec"))
    before = set(studio.settings.output_dir.iterdir())
    with pytest.raises(VideoError):
        run(studio, photo)
    assert set(studio.settings.output_dir.iterdir()) == before


@pytest.mark.slow
def test_generated_clip_can_be_interpolated_to_a_target_fps(studio, photo):
    result = run(studio, photo, interpolate_fps=21)  # 4 frames at 7 fps -> 10 frames at 21 fps, same duration
    assert (result.files.info.num_frames, result.files.info.fps) == (10, pytest.approx(21))
    record = json.loads(result.files.sidecar.read_text())
    assert record["interpolation"]["target_fps"] == 21 and "interpolate_s" in record["timings"]


@pytest.mark.slow
def test_a_second_device_is_a_setting(tiny_settings, photo, tmp_path):
    """Two devices (two CPUs here, two GPUs in production): two jobs run at once, each on its own pipelines."""
    from dataclasses import replace

    studio = Studio(replace(tiny_settings, device="cpu,cpu", output_dir=tmp_path / "out"))
    assert len(studio.caches) == 2
    held = []
    with studio.gpu() as first:
        held.append(first)
        result = run(studio, photo, seed=1)  # runs on the other device while the first is busy
    assert result.files.info.num_frames == 4
    assert [c.loads for c in studio.caches] == [0, 1] and held[0] is studio.caches[0]


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
