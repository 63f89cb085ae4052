"""Upscaling: the two network classes loaded from checkpoint files by the real loader, tiles, files, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from svd_demo.core.errors import GenerationCancelled, InputError, ModelLoadError
from svd_demo.engine.upscale import UpscalerCache, check_output_size, load_upscaler, upscale_frame
from svd_demo.engine.upscale.files import upscale_file
from svd_demo.engine.upscale.networks import RRDBNet, SRVGGNetCompact, detect
from svd_demo.files.media import probe_video, write_video
from svd_demo_testing.tiny_models import save_tiny_upscalers


@pytest.fixture(scope="module")
def tiny_upscalers(tmp_path_factory):
    return save_tiny_upscalers(tmp_path_factory.mktemp("upscalers"))


@pytest.fixture(scope="module")
def loaded(tiny_upscalers):
    return {kind: load_upscaler(str(path)) for kind, path in tiny_upscalers.items()}


def _frame(height: int = 70, width: int = 90, seed: int = 0) -> np.ndarray:
    """A smooth gradient with a square and some noise: structure a network can change."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    frame = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 90)], axis=-1).astype(np.int32)
    frame[height // 4: height // 2, width // 4: width // 2] = (250, 240, 30)
    return np.clip(frame + rng.integers(-20, 20, frame.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", ["srvgg", "rrdb"])
@pytest.mark.parametrize("factor", [2, 4])
def test_shapes(loaded, kind, factor):
    out = upscale_frame(loaded[kind], _frame(), factor)
    assert out.shape == (70 * factor, 90 * factor, 3) and out.dtype == np.uint8
    assert out.std() > 5  # not a flat or clipped image


def test_loader_builds_the_class_the_checkpoint_holds(loaded):
    assert type(loaded["srvgg"].network) is SRVGGNetCompact and loaded["srvgg"].scale == 4
    assert type(loaded["rrdb"].network) is RRDBNet and loaded["rrdb"].scale == 4


def test_real_sizes_are_detected_from_their_weights():
    """The published configurations: realesr-animevideov3 (64 features, 16 convs, x4) and RealESRGAN_x4plus
    (64 features, 23 blocks, growth 32, x4; 16.7 M parameters), and the x2plus variant of RRDBNet."""
    compact = detect(SRVGGNetCompact().state_dict())
    assert (compact.name, compact.scale, compact.options["num_conv"], compact.options["num_feat"]) == (
        "SRVGGNetCompact", 4, 16, 64)
    rrdb = RRDBNet()
    arch = detect(rrdb.state_dict())
    assert (arch.name, arch.scale, arch.options["num_block"], arch.options["num_grow_ch"]) == ("RRDBNet", 4, 23, 32)
    assert sum(p.numel() for p in rrdb.parameters()) == 16_697_987
    assert detect(RRDBNet(scale=2, num_block=2).state_dict()).scale == 2


def test_two_x_is_the_four_x_result_resized_with_opencvs_lanczos(loaded):
    """Real-ESRGAN's `outscale` below the network's scale: cv2.resize of the 8-bit result with INTER_LANCZOS4."""
    import cv2

    frame = _frame(71, 93)  # odd sides
    four, two = upscale_frame(loaded["srvgg"], frame, 4), upscale_frame(loaded["srvgg"], frame, 2)
    assert two.shape == (142, 186, 3)
    np.testing.assert_array_equal(two, cv2.resize(four, (186, 142), interpolation=cv2.INTER_LANCZOS4))


@pytest.mark.parametrize("kind", ["srvgg", "rrdb"])
def test_tiles_equal_the_whole_frame(loaded, kind):
    frame = _frame(100, 150)
    whole = upscale_frame(loaded[kind], frame, 4, tile=0).astype(int)
    tiled = upscale_frame(loaded[kind], frame, 4, tile=48).astype(int)
    assert np.abs(whole - tiled).max() <= 1  # rounding only: the tiny networks see less than the 16 px context


def test_tiles_without_context_are_cross_faded_not_cut(loaded):
    """With no context at all, tile borders differ from the whole frame; the overlap fades them in, so the output
    has no step at a seam larger than the image's own neighbouring-pixel differences."""
    frame = _frame(96, 96)
    whole = upscale_frame(loaded["rrdb"], frame, 4, tile=0).astype(int)
    blended = upscale_frame(loaded["rrdb"], frame, 4, tile=48, pad=0, overlap=16).astype(int)
    cut = upscale_frame(loaded["rrdb"], frame, 4, tile=48, pad=0, overlap=0).astype(int)
    assert np.abs(whole - blended).mean() < np.abs(whole - cut).mean()


def test_too_large_output_is_refused_naming_the_parameter():
    assert check_output_size(1024, 576, 2) == (2048, 1152)
    assert check_output_size(960, 540, 4) == (3840, 2160)
    with pytest.raises(InputError, match=r"`upscale` 4x would make 4096x2304 .* 3840"):
        check_output_size(1024, 576, 4)


def test_cache_loads_once_and_switches(tiny_upscalers):
    cache = UpscalerCache()
    first = cache.get(str(tiny_upscalers["srvgg"]))
    assert cache.get(str(tiny_upscalers["srvgg"])) is first and cache.loads == 1
    assert type(cache.get(str(tiny_upscalers["rrdb"])).network) is RRDBNet and cache.loads == 2


def test_corrupt_checkpoint_is_a_clear_error(tmp_path, tiny_upscalers):
    broken = tmp_path / "broken.pth"
    broken.write_bytes(tiny_upscalers["srvgg"].read_bytes()[:500])
    with pytest.raises(ModelLoadError, match=r"'broken.pth' could not be loaded: it is damaged.*Download it again"):
        load_upscaler(str(broken))


def test_unknown_checkpoint_is_a_clear_error(tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(4, 4)}, other)
    with pytest.raises(ModelLoadError, match=r"'other.pth' is not a Real-ESRGAN network.*encoder.weight.*"
                                             r"SRVGGNetCompact or RRDBNet"):
        load_upscaler(str(other))


def test_shapes_that_do_not_fit_the_class_are_a_clear_error(tmp_path):
    state = SRVGGNetCompact(num_feat=8, num_conv=2).state_dict()
    state["body.2.weight"] = torch.zeros(8, 8, 5, 5)
    odd = tmp_path / "odd.pth"
    torch.save(state, odd)
    with pytest.raises(ModelLoadError, match=r"'odd.pth' could not be loaded"):
        load_upscaler(str(odd))


def test_a_preset_not_in_the_offline_cache_names_its_page(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match=r"realesr-animevideov3.*HF_HUB_OFFLINE.*github.com/xinntao/Real-ESRGAN"):
        load_upscaler("realesr-animevideov3")


@pytest.mark.parametrize("ref", ["no-such-upscaler", "owner/repo", "./missing.pth"])
def test_a_reference_that_means_nothing_is_refused(ref):
    with pytest.raises(InputError, match="upscale model"):
        load_upscaler(ref)


def _clip(path, frames=6, size=(48, 64)):
    write_video([_frame(*size, seed=i) for i in range(frames)], path, 8)
    return path


@pytest.mark.parametrize("factor", [2, 4])
def test_a_video_streams_through_into_a_playable_file(tmp_path, loaded, factor):
    source = _clip(tmp_path / "clip.mp4")
    seen = []
    result = upscale_file(source, tmp_path / "big.mp4", loaded["srvgg"], factor, tile=32,
                          progress=lambda done, total: seen.append((done, total)))
    info = probe_video(result.output_path)
    assert (info.codec, info.pix_fmt, info.width, info.height, info.num_frames) == (
        "h264", "yuv420p", 64 * factor, 48 * factor, 6)
    assert info.fps == pytest.approx(8)
    assert seen[-1] == (6, 6) and result.frames == 6


def test_a_folder_of_frames_becomes_a_video(tmp_path, loaded):
    from tests.helpers import save_frames

    folder = save_frames(tmp_path / "frames", [_frame(48, 64, seed=i) for i in range(3)])
    info = probe_video(upscale_file(folder, tmp_path / "out.mp4", loaded["rrdb"], 2).output_path)
    assert (info.width, info.height, info.num_frames) == (128, 96, 3)


def test_cancel_leaves_no_file(tmp_path, loaded):
    import threading

    source = _clip(tmp_path / "clip.mp4")
    cancel = threading.Event()
    out = tmp_path / "out" / "big.mp4"
    with pytest.raises(GenerationCancelled):
        upscale_file(source, out, loaded["srvgg"], 2, cancel=cancel,
                     progress=lambda done, total: cancel.set() if done == 2 else None)
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_a_too_large_video_is_refused_before_decoding(tmp_path, loaded):
    source = _clip(tmp_path / "clip.mp4", frames=2, size=(576, 1024))
    with pytest.raises(InputError, match="`upscale` 4x would make 4096x2304"):
        upscale_file(source, tmp_path / "big.mp4", loaded["srvgg"], 4)
    assert not (tmp_path / "big.mp4").exists()


def test_a_still_becomes_a_larger_png(tmp_path, loaded, photo):
    from PIL import Image

    result = upscale_file(photo, tmp_path / "big.png", loaded["srvgg"], 2, parameters={"upscale": "2x"})
    with Image.open(result.output_path) as image:
        assert image.size == (800, 600) and json.loads(image.text["parameters"]) == {"upscale": "2x"}
    assert (result.kind, result.frames) == ("still", 1)


def test_an_unreachable_hub_is_said_at_once_without_download_retries(monkeypatch, tmp_path):
    """Without HF_HUB_OFFLINE and without a network, the hub library retries for about half a minute before it gives
    up; the upscaler is refused at once instead, with what to do, and no request is made."""
    import socket

    import huggingface_hub
    from huggingface_hub import constants

    from svd_demo.core.errors import ModelLoadError
    from svd_demo.engine.upscale import loading

    with socket.socket() as closed:  # a port nothing listens on: the connection is refused at once
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    asked = []
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda *a, **k: asked.append(a) or 1 / 0)
    with pytest.raises(ModelLoadError, match=r"could not be reached.*realesr-animevideov3\.pth from https://"):
        loading.load_upscaler("realesr-animevideov3")
    assert asked == []
