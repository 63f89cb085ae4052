"""Downloads from the stand-in hub on loopback (tests/fake_hub.py), end to end: the CLI's download in a subprocess
and a Ctrl+C that leaves it resumable, a hub LoRA and AnimateLCM with its base through the same path, and the page's
progress during a download."""

from __future__ import annotations

import os
import pathlib
import re
import signal
import subprocess
import sys
import time

from fake_hub import RATE, StandInHub


def _cli_env(stand_in: StandInHub, home) -> dict[str, str]:
    """The CLI's environment: online, pointed at the stand-in hub, with its own cache (this subprocess only)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE")}
    return {**env, "HF_ENDPOINT": stand_in.url, "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1"}


def test_cli_shows_the_download_and_ctrl_c_leaves_it_resumable(tiny_models_dir, tmp_path, image):
    """`generate` with a hub id: the progress line shows bytes, speed and time left; Ctrl-C stops it within
    seconds; the next run continues the download and writes the video."""
    image.save(tmp_path / "in.png")
    command = [sys.executable, "-m", "svd_demo", "generate", "--image", str(tmp_path / "in.png"), "--svd-model",
               "tiny/svd", "--device", "cpu", "--out", str(tmp_path / "out.mp4"), "--resolution", "256",
               "--num-frames", "4", "--num-inference-steps", "2"]
    with StandInHub({"tiny/svd": tiny_models_dir / "svd"}, bytes_per_s=RATE / 4) as stand_in:
        env = _cli_env(stand_in, tmp_path / "hf")
        process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, bufsize=0)
        seen = ""
        deadline = time.monotonic() + 120
        while "s left" not in seen and time.monotonic() < deadline and process.poll() is None:
            seen += process.stderr.read(1)
        assert re.search(r"Downloading tiny/svd: [\d.]+ of 9.5 MB at [\d.]+ [kM]B/s, about \d+ s left", seen), seen
        assert "HTTP Request" not in seen  # the HTTP client's log lines would break the progress line
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=30)[1]
        # Stopped mid-download, not at its end: the file is still partial. The seconds are a loose bound (Python's
        # exit on a loaded machine takes some); the partial file is what shows the download did not run on.
        assert time.monotonic() - interrupted < 15 and process.returncode == 130, rest[-2000:]
        partial = list((tmp_path / "hf" / "hub").rglob("*.incomplete"))
        assert partial and partial[0].stat().st_size > 0
        kept = partial[0].stat().st_size
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (tmp_path / "out.mp4").stat().st_size > 0
    assert any(start == kept for _, start in stand_in.ranges)  # continued from the byte where it stopped
    assert not list((tmp_path / "hf" / "hub").rglob("*.incomplete"))


def test_a_hub_lora_comes_through_the_same_path(online, tiny_settings, tmp_path):
    from optional_deps import require

    require("peft", "pip install -r requirements.txt")
    from svd_demo.core.params import ImageParams
    from svd_demo.studio.studio import Studio
    from svd_demo_testing.tiny_models import save_tiny_lora

    save_tiny_lora(tiny_settings.sdxl_model, tmp_path / "lora", seed=1)
    (tmp_path / "lora" / "README.md").write_text("a tiny LoRA")
    texts: list[str] = []
    with online({"someone/tiny-lora": tmp_path / "lora"}, bytes_per_s=20_000):
        still = Studio(tiny_settings).text_to_image(
            ImageParams.from_raw({"prompt": "a lighthouse", "resolution": 256, "sdxl_steps": 2,
                                  "randomize_seed": False, "loras": "someone/tiny-lora:0.8"}),
            progress=lambda fraction, text: texts.append(text))
    assert any(text.startswith("Downloading someone/tiny-lora: ") and "pytorch_lora_weights" in text
               for text in texts), texts
    assert "someone/tiny-lora" in str(still.record)


def test_animatelcm_and_its_base_come_through_the_same_path(online, tiny_models_dir, tmp_path):
    from diffusers import UNetSpatioTemporalConditionModel
    from safetensors.torch import save_file

    from svd_demo.core.settings import Settings
    from svd_demo.engine import animatelcm
    from svd_demo.engine.pipelines import PipelineCache

    distilled = tmp_path / "animatelcm"
    distilled.mkdir()
    unet = UNetSpatioTemporalConditionModel.from_pretrained(tiny_models_dir / "svd" / "unet")
    save_file({k: v.contiguous() * 0.9 for k, v in unet.state_dict().items()}, distilled / animatelcm.WEIGHTS_FILE)
    (distilled / "AnimateLCM-SVD-xt-1.1.safetensors").write_bytes(b"not asked for")
    repos: list[str] = []
    with online({animatelcm.HUB_ID: distilled, animatelcm.BASE_MODEL: tiny_models_dir / "svd"}) as stand_in:
        cache = PipelineCache(Settings(device="cpu", output_dir=tmp_path / "outputs"))
        loaded = cache.get("svd", animatelcm.HUB_ID, download=lambda event: repos.append(event.repo_id))
    assert set(repos) == {animatelcm.HUB_ID, animatelcm.BASE_MODEL}
    assert not [path for path in stand_in.downloads() if "1.1" in path]
    first = next(iter(loaded.pipe.unet.state_dict().items()))
    assert first[1].allclose(unet.state_dict()[first[0]] * 0.9)


def test_the_page_progress_shows_the_download(online, tiny_models_dir, tmp_path, photo):
    """A first generation with a hub model, through Gradio's queue as the page runs it: the progress updates the
    page's bar shows carry the download (bytes of the total, speed, time left), and the clip follows."""
    from gradio_client import Client, handle_file
    from helpers import FAST, launched

    from svd_demo.core.settings import Settings
    from svd_demo.studio.studio import Studio

    settings = Settings(svd_model="tiny/svd", sdxl_model=str(tiny_models_dir / "sdxl"), device="cpu",
                        output_dir=tmp_path / "outputs")
    shown: list[str] = []
    with online({"tiny/svd": tiny_models_dir / "svd"}, bytes_per_s=RATE / 2):
        with launched(settings, Studio(settings), tmp_path / "gradio") as url:
            job = Client(url, verbose=False).submit(image=handle_file(str(photo)), **FAST,
                                                    api_name="/image_to_video")
            deadline = time.monotonic() + 240
            while not job.done() and time.monotonic() < deadline:
                shown += [unit.desc for unit in job.status().progress_data or [] if unit.desc not in shown[-1:]]
                time.sleep(0.1)
            video = job.result(timeout=5)[0]
    downloads = [text for text in shown if text and text.startswith("Downloading tiny/svd: ")]
    assert len(downloads) >= 2 and any(re.search(r"[kM]B/s, about \d+ s left", text) for text in downloads), shown
    assert pathlib.Path(video["video"] if isinstance(video, dict) else video).stat().st_size > 0
