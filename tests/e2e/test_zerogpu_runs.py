"""ZeroGPU end to end: the studio's GPU entry points as GPU calls with their durations, and an app started under
ZeroGPU's rules (no CUDA at start-up) serving requests inside GPU calls."""

from __future__ import annotations

import dataclasses
import pathlib
import sys
import types

import pytest
import torch
from helpers import FAST, free_port

from svd_demo.core.params import ImageParams, VideoParams
from svd_demo.files import images
from svd_demo.studio import zerogpu
from svd_demo.studio.studio import Studio


def test_on_zerogpu_the_studio_runs_each_gpu_entry_point_as_a_call_with_its_duration(tiny_settings, photo,
                                                                                      monkeypatch):
    asked = []
    fake = types.ModuleType("spaces")

    def GPU(duration):  # noqa: N802 - the real decorator's name
        def wrap(fn):
            def call(*args, **kwargs):
                asked.append(duration(*args, **kwargs))
                return fn(*args, **kwargs)
            return call
        return wrap

    fake.GPU = GPU
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    studio = zerogpu.make_studio(tiny_settings)  # a studio of its own: the session's is left as it is
    assert isinstance(studio, zerogpu.ZeroGPUStudio) and studio.limit_s == tiny_settings.zerogpu_seconds
    studio.limit_s = 120
    decodes = []
    real_decode = images._decode
    monkeypatch.setattr(images, "_decode", lambda *a, **k: decodes.append(1) or real_decode(*a, **k))
    params = VideoParams.from_raw(FAST)
    fitted, notice = zerogpu.prepare(studio, photo, params, None, 120)  # what the UI does before the call
    video = studio.image_to_video(photo, fitted)
    assert notice is None and len(decodes) == 1  # sized from the header; decoded once, by the run itself
    still = studio.text_to_image(ImageParams.from_raw({"prompt": "a cat", "resolution": 256, "sdxl_steps": 2}))
    assert video.files.info.num_frames == 4 and still.image.size == (256, 144)
    assert len(asked) == 2 and all(zerogpu.FIXED_S <= a <= 120 for a in asked)
    compared = studio.compare_seeds(photo, fitted, [1, 2])  # the studio's own runs of image to video are calls too
    assert len(compared) == 2 and len(asked) == 4
    monkeypatch.delenv("SPACES_ZERO_GPU")
    assert type(zerogpu.make_studio(tiny_settings)) is Studio  # elsewhere, the plain studio


@pytest.fixture
def zerogpu_space(monkeypatch):
    """A ZeroGPU Space: SPACES_ZERO_GPU is set, and `import spaces` finds a strict stand-in (tests/fakes/spaces.py)
    that makes any CUDA call in the main process an error, as ZeroGPU does."""
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.syspath_prepend(str(pathlib.Path(__file__).parents[1] / "fakes"))
    monkeypatch.delitem(sys.modules, "spaces", raising=False)
    yield
    fake = sys.modules.pop("spaces", None)
    if fake is not None:
        fake.restore()


def test_start_up_on_zerogpu_uses_no_cuda_and_requests_run_inside_gpu_calls(zerogpu_space, tiny_settings, tmp_path,
                                                                              photo):
    from gradio_client import Client, handle_file

    import app

    assert not torch.cuda.is_available()  # ZeroGPU's main process, before `spaces` is imported
    settings = zerogpu.start(dataclasses.replace(tiny_settings, device="auto", output_dir=tmp_path))
    spaces = sys.modules["spaces"]
    assert (settings.device, settings.memory_profile, settings.preload) == ("cuda", "high", True)
    with pytest.raises(spaces.ZeroGPUError):  # the fake enforces the rule the app must keep
        torch.cuda.mem_get_info("cuda")
    demo = app.create_app(settings)  # preloads the model, as app.py does there
    try:
        _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_port=free_port())
        client = Client(url, verbose=False)
        video, *_ = client.predict(image=handle_file(str(photo)), **FAST, api_name="/image_to_video")
        still, *_ = client.predict(prompt="a cat", sdxl_steps=2, resolution=256, randomize_seed=False,
                                   api_name="/text_to_image")
    finally:
        demo.close()
    assert pathlib.Path(video).stat().st_size > 0 and pathlib.Path(still).stat().st_size > 0
    assert len(spaces.durations) == 2 and all(zerogpu.FIXED_S <= d <= settings.zerogpu_seconds
                                              for d in spaces.durations)
