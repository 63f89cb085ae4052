"""Shared fixtures: tiny random-weight pipelines saved once per session, and studios that load them through the
app's own loading code (`from_pretrained` on a folder, exactly as with a hub model). Helpers that test modules
import (`free_port`, `launched`, ...) live in helpers.py."""

from __future__ import annotations

import dataclasses
import os
import pathlib
import signal
import time
from typing import Any

import numpy as np
import pytest
from optional_deps import require
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the suite may reach for the hub
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    # A suite started in the background of a script (`pytest &`) inherits SIGINT ignored, and so would every
    # process it starts: the tests that press Ctrl-C on the CLI would see nothing happen. A handled signal is reset
    # to its default in a started process, so handling it here gives them the terminal's behaviour.
    signal.signal(signal.SIGINT, signal.default_int_handler)

from dockerfile_parser import DOCKERFILE, parse_dockerfile  # noqa: E402
from fake_hub import RATE, StandInHub  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from helpers import STAND_IN, keyframe_photo, launched  # noqa: E402
from hostile_calls import many_frames_video, upload, video_file  # noqa: E402
from sweep_cases import GRID  # noqa: E402

from svd_demo.core.settings import Settings  # noqa: E402
from svd_demo_testing.tiny_models import save_tiny_models  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory) -> pathlib.Path:
    """A dir holding ``svd/`` and ``sdxl/`` tiny pipelines, written once per test session."""
    directory = tmp_path_factory.mktemp("tiny_models")
    save_tiny_models(directory)
    return directory


@pytest.fixture(scope="module")
def pipe(tiny_models_dir):
    """The tiny SVD pipeline loaded straight with diffusers, one per test module: tests change its plan and hooks,
    so no module sees another's changes."""
    from diffusers import StableVideoDiffusionPipeline

    pipe = StableVideoDiffusionPipeline.from_pretrained(tiny_models_dir / "svd")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def tiny_settings(tiny_models_dir, tmp_path_factory) -> Settings:
    return Settings(svd_model=str(tiny_models_dir / "svd"), sdxl_model=str(tiny_models_dir / "sdxl"),
                    output_dir=tmp_path_factory.mktemp("outputs"),
                    device="cpu")


@pytest.fixture(scope="session")
def studio(tiny_settings):
    """One studio for the session, so the tiny pipeline is loaded once (as in the app)."""
    from svd_demo.studio.studio import Studio

    return Studio(tiny_settings)


@pytest.fixture
def stand_in_cache(tiny_settings, tmp_path):
    """A pipeline cache (fp32, `high`) whose offload hooks run their CUDA code paths on the CPU (helpers.STAND_IN)."""
    from svd_demo.engine.pipelines import PipelineCache

    settings = dataclasses.replace(tiny_settings, dtype="fp32", memory_profile="high", output_dir=tmp_path)
    return PipelineCache(settings, device=STAND_IN)


@pytest.fixture
def image() -> Image.Image:
    """A 256x144 gradient, already at the tiny generation size (FAST): what generate_frames takes directly."""
    y, x = np.mgrid[0:144, 0:256]
    return Image.fromarray(np.stack([x % 256, y * 255 // 144, np.full_like(x, 90)], -1).astype(np.uint8))


@pytest.fixture
def photo(tmp_path) -> pathlib.Path:
    """A 4:3 landscape photo-like PNG with structure (a gradient and a square), not noise."""
    y, x = np.mgrid[0:300, 0:400]
    rgb = np.stack([x * 255 // 400, y * 255 // 300, np.full_like(x, 90)], axis=-1).astype(np.uint8)
    rgb[100:200, 150:250] = (250, 240, 30)
    path = tmp_path / "photo.png"
    Image.fromarray(rgb).save(path)
    return path


@pytest.fixture
def keyframes():
    """Start and end photos that differ, as keyframes to video takes them."""
    from svd_demo.engine.keyframes import Keyframes

    return Keyframes(start=keyframe_photo((0, 0, 40)), end=keyframe_photo((120, 0, 200)))


@pytest.fixture
def keyframe_photos(keyframes, tmp_path) -> tuple[pathlib.Path, pathlib.Path]:
    """The keyframes' start and end photos as PNG files."""
    start, end = tmp_path / "start.png", tmp_path / "end.png"
    keyframes.start.save(start)
    keyframes.end.save(end)
    return start, end


@pytest.fixture
def online(monkeypatch, tmp_path):
    """The hub library pointed at a stand-in hub (set by `serve`), with its own cache, online for this test only
    (the suite runs with HF_HUB_OFFLINE=1)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))

    def serve(repos, bytes_per_s=RATE) -> StandInHub:
        stand_in = StandInHub(repos, bytes_per_s)
        monkeypatch.setattr(constants, "ENDPOINT", stand_in.url)  # what HF_ENDPOINT sets when the library loads
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            stand_in.url + "/{repo_id}/resolve/{revision}/{filename}")
        return stand_in

    return serve


@pytest.fixture(scope="session")
def tiny_loras(tiny_models_dir, tmp_path_factory) -> tuple[pathlib.Path, pathlib.Path]:
    """Two different tiny LoRAs for the tiny SDXL UNet, saved as diffusers writes them."""
    require("peft", "pip install -r requirements.txt")
    from svd_demo_testing.tiny_models import save_tiny_lora

    folder = tmp_path_factory.mktemp("loras")
    return (save_tiny_lora(tiny_models_dir / "sdxl", folder / "one", seed=1),
            save_tiny_lora(tiny_models_dir / "sdxl", folder / "two", seed=2))


@pytest.fixture(scope="module")
def done_sweep(studio, tmp_path_factory):
    """A 2 seeds x 2 motion buckets sweep of one photo, run once per test module (tests copy it before changing)."""
    from svd_demo.batch.sweep import expand_grid, run_sweep

    photo = tmp_path_factory.mktemp("in") / "photo.png"
    Image.linear_gradient("L").resize((400, 300)).convert("RGB").save(photo)
    out = tmp_path_factory.mktemp("sweep")
    items = expand_grid([photo], GRID, model=studio.settings.svd_model)
    lines: list[str] = []
    started = time.perf_counter()
    report = run_sweep(studio, items, out, progress=lines.append)
    return out, items, report, lines, time.perf_counter() - started


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """The repository's Dockerfile, parsed: (INSTRUCTION, arguments) pairs."""
    return parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


# The app launched with the session's studio (a 1 MB upload limit), one per test module, as an API caller sees it
# (tests/integration/test_api.py, tests/e2e/test_api_runs.py).


@pytest.fixture(scope="module")
def api_gradio_dir(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("gradio")


@pytest.fixture(scope="module")
def api_server(studio, tiny_settings, api_gradio_dir):
    with launched(tiny_settings, studio, api_gradio_dir, max_file_size="1mb") as url:
        yield url


@pytest.fixture(scope="module")
def api_client(api_server) -> Client:
    return Client(api_server, verbose=False)


# The hostile-inputs app (tests/integration/test_hostile_inputs.py, tests/e2e/test_hostile_inputs_corpus.py): one
# demo per test module (tiny models, its own output and Gradio temp folders, a 2 MB upload limit), driven with
# gradio_client like a real API caller. The helpers that call it are in hostile_calls.py.


@pytest.fixture(scope="module")
def hostile_settings(tiny_models_dir, tmp_path_factory) -> Settings:
    return Settings(svd_model=str(tiny_models_dir / "svd"), sdxl_model=str(tiny_models_dir / "sdxl"),
                    output_dir=tmp_path_factory.mktemp("hostile_outputs"), device="cpu", max_file_size="2mb")


@pytest.fixture(scope="module")
def hostile_studio(hostile_settings):
    from svd_demo.studio.studio import Studio

    return Studio(hostile_settings)


@pytest.fixture(scope="module")
def hostile_server(hostile_settings, hostile_studio, tmp_path_factory):
    with launched(hostile_settings, hostile_studio, tmp_path_factory.mktemp("hostile_gradio")) as url:
        yield url


@pytest.fixture(scope="module")
def hostile_client(hostile_server, tmp_path_factory) -> Client:
    return Client(hostile_server, verbose=False, download_files=str(tmp_path_factory.mktemp("hostile_downloads")))


@pytest.fixture(scope="module")
def hostile_endpoints(hostile_client) -> dict[str, Any]:
    return hostile_client.view_api(print_info=False, return_format="dict")["named_endpoints"]


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("hostile_files")


@pytest.fixture(scope="module")
def good_image(hostile_files) -> pathlib.Path:
    path = hostile_files / "good.png"
    y, x = np.mgrid[0:150, 0:200]
    Image.fromarray(np.stack([x, y, np.full_like(x, 90)], axis=-1).astype(np.uint8)).save(path)
    return path


HEALTH_EVERY = 3  # cases between health checks (each costs ~0.2 s)


_cases_run = [0]


@pytest.fixture
def still_serving(hostile_client, good_image):
    """After every few cases a normal (cheap, CPU-only) request must still succeed: nothing is wedged or crashed."""
    yield
    _cases_run[0] += 1
    if _cases_run[0] % HEALTH_EVERY:
        return
    image, notes = hostile_client.predict(handle_file(str(good_image)), 256, "native", api_name="/prepare_image")
    assert image and "The video will be 256x192" in notes, notes


@pytest.fixture(scope="module")
def uploaded_image(hostile_server, good_image) -> dict[str, Any]:
    return upload(hostile_server, good_image)


@pytest.fixture(scope="module")
def uploaded_video(hostile_server, hostile_files) -> dict[str, Any]:
    return upload(hostile_server, video_file(hostile_files / "eight_frames.mp4", 8))


@pytest.fixture(scope="module")
def api_table(hostile_client) -> list[dict[str, Any]]:
    """One row per parameter of every public endpoint: api, name, kind and the component's props."""
    config = hostile_client.config
    components = {c["id"]: c for c in config["components"]}
    named = hostile_client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    rows = []
    for dep in config["dependencies"]:
        if not dep.get("api_name") or dep.get("api_visibility", "public") != "public":
            continue
        api = "/" + dep["api_name"]
        names = [p["parameter_name"] for p in named[api]["parameters"]]
        sent = [i for i in dep["inputs"] if components[i]["type"] != "state"]  # a session's state is no parameter
        for name, component_id in zip(names, sent, strict=True):
            component = components[component_id]
            props = component["props"]
            kind = {"slider": "number", "number": "number", "checkbox": "bool", "radio": "choice",
                    "checkboxgroup": "choices", "textbox": "text", "image": "image", "video": "video",
                    "file": "video",  # /upscale's media: a video, or a still (which it takes)
                    "dropdown": "model" if props.get("allow_custom_value") else "choice"}[component["type"]]
            if kind == "number" and props.get("precision") == 0:
                kind = "whole"
            rows.append({"api": api, "name": name, "kind": kind, "props": props})
    assert {r["api"] for r in rows} >= {"/image_to_video", "/extend_video", "/compare_seeds", "/text_to_image",
                                        "/text_to_video", "/interpolate", "/prepare_image",
                                        "/keyframes_to_video"}, rows
    return rows


@pytest.fixture(scope="module")
def hostile_uploads(hostile_server, hostile_files) -> dict[str, dict[str, Any]]:
    """Every hostile file, uploaded once: {case: file reference}."""
    from lying_headers import LYING_VIDEOS, gif_claiming, png_claiming

    made = {
        "image_15x15": lambda p: Image.new("RGB", (15, 15), (9, 9, 9)).save(p),
        "image_6000x6000": lambda p: Image.new("L", (6000, 6000), 0).save(p, optimize=True),
        "image_empty": lambda p: p.write_bytes(b""),
        "png_claiming_60000x60000": png_claiming,
        "gif_claiming_16000x16000": gif_claiming,
        "video_mp4": lambda p: video_file(p, 8),
        "video_14x14": lambda p: video_file(p, 3, (14, 14)),
        "video_2100_frames": many_frames_video,
        "video_empty": lambda p: p.write_bytes(b""),
        "still_png": lambda p: Image.new("RGB", (64, 48), (9, 99, 9)).save(p),
    }
    suffix = {"video_mp4": ".mp4", "video_14x14": ".mp4", "video_2100_frames": ".mp4", "video_empty": ".mp4",
              "gif_claiming_16000x16000": ".gif"}
    uploads = {}
    for case, make in made.items():
        path = hostile_files / f"hostile_{case}{suffix.get(case, '.png')}"
        make(path)
        uploads[case] = upload(hostile_server, path)
    for case, (name, make, _) in LYING_VIDEOS.items():
        uploads[case] = upload(hostile_server, make(hostile_files / f"lying_{name}"))
    return uploads
