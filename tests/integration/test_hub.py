"""Downloads from a stand-in hub on loopback (tests/fake_hub.py), served throttled so that one takes a few seconds:
progress events, cancel and resume, the room check, and a second load that asks the hub nothing."""

from __future__ import annotations

import hashlib
import pathlib
import shutil
import threading
import time

import pytest
from fake_hub import RATE, SVD_XT_FILES, SVD_XT_INDEX

from svd_demo.core.errors import GenerationCancelled
from svd_demo.engine import hub


def test_progress_events_grow_to_the_total(online, tiny_models_dir):
    source = tiny_models_dir / "svd"
    events: list[hub.DownloadProgress] = []
    with online({"tiny/svd": source}) as stand_in:
        folder = hub.fetch("tiny/svd", progress=events.append)
    expected = hub.pipeline_files([p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()],
                                  __import__("json").loads((source / "model_index.json").read_text()), None)
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == sorted(expected)
    total = sum((source / name).stat().st_size for name in expected)
    assert len(events) >= 4 and {e.total for e in events} == {total}
    done = [e.done for e in events]
    assert done == sorted(done) and done[0] < total / 2 and done[-1] == total
    moving = [e for e in events if e.file == "unet/diffusion_pytorch_model.safetensors"]
    assert moving and all(0 <= e.file_done <= e.file_total == (source / e.file).stat().st_size for e in moving)
    assert any(e.bytes_per_s > RATE / 4 and e.seconds_left for e in events)
    text = moving[-1].describe()
    assert text.startswith("Downloading tiny/svd: ") and "MB/s" in text and "left" in text and "unet/" in text
    for name in expected:  # the bytes arrived whole, through the CDN redirect for the large ones
        assert (folder / name).read_bytes() == (source / name).read_bytes()
    assert any(path.startswith("/cdn/") for path in stand_in.downloads())


def test_cancel_stops_within_seconds_and_the_next_run_resumes(online, tiny_models_dir):
    source = tiny_models_dir / "svd"
    unet = "unet/diffusion_pytorch_model.safetensors"
    cancel, events, stopped = threading.Event(), [], {}

    def on_progress(event):
        events.append(event)
        if event.file == unet and event.file_done > event.file_total / 4 and not cancel.is_set():
            cancel.set()
            stopped["set"] = time.monotonic()

    with online({"tiny/svd": source}, bytes_per_s=RATE / 2) as stand_in:
        with pytest.raises(GenerationCancelled, match="continues"):
            hub.fetch("tiny/svd", progress=on_progress, cancel=cancel)
        assert time.monotonic() - stopped["set"] < 2
        partial = list(hub.cache_folder().rglob("*.incomplete"))
        assert len(partial) == 1 and 0 < partial[0].stat().st_size < (source / unet).stat().st_size
        kept = partial[0].stat().st_size
        served_before = len(stand_in.downloads())
        stand_in.requests.clear()
        second: list[hub.DownloadProgress] = []
        folder = hub.fetch("tiny/svd", progress=second.append)
    # The second run starts with what the first left (the image encoder, finished before the UNet, and the UNet's
    # first part) counted as done, asks for the UNet from where it stopped, and never again for a finished file.
    assert second[0].done >= kept + (source / "image_encoder/model.safetensors").stat().st_size
    unet_sha = hashlib.sha256((source / unet).read_bytes()).hexdigest()
    assert (f"/cdn/{unet_sha}", kept) in stand_in.ranges
    assert served_before and all("image_encoder" not in path for path in stand_in.downloads())
    assert hashlib.sha256((folder / unet).read_bytes()).hexdigest() == unet_sha
    assert not list(hub.cache_folder().rglob("*.incomplete"))


def test_no_room_refuses_before_any_weight_with_the_sizes_and_the_cache(online, tiny_models_dir, monkeypatch):
    monkeypatch.setattr(hub, "free_bytes", lambda folder: 1234)
    with online({"tiny/svd": tiny_models_dir / "svd"}) as stand_in:
        with pytest.raises(hub.NotEnoughDiskSpace) as refused:
            hub.fetch("tiny/svd")
    message = str(refused.value)
    assert "tiny/svd" in message and "9.5 MB" in message and "1 kB free" in message
    assert str(hub.cache_folder()) in message and "HF_HOME" in message
    assert not [path for path in stand_in.downloads() if path.endswith(".safetensors") or "/cdn/" in path]
    assert not list(hub.cache_folder().rglob("*.safetensors*"))


def test_a_second_load_asks_the_hub_nothing(online, tiny_models_dir):
    from svd_demo.core.settings import Settings
    from svd_demo.engine.pipelines import PipelineCache

    with online({"tiny/svd": tiny_models_dir / "svd"}, bytes_per_s=None) as stand_in:
        settings = Settings(svd_model="tiny/svd", device="cpu", output_dir=tiny_models_dir / "unused-outputs")
        first = PipelineCache(settings).get("svd", "tiny/svd")
        assert stand_in.requests and first.revision == stand_in.repos["tiny/svd"]["sha"]
        stand_in.requests.clear()
        again = PipelineCache(settings).get("svd", "tiny/svd")  # a new cache: as after a restart
        assert stand_in.requests == []
    assert again.revision == first.revision and again.model_ref == "tiny/svd"


def test_a_dropped_connection_resumes_where_it_broke(online, tiny_models_dir):
    source = tiny_models_dir / "svd"
    unet = "unet/diffusion_pytorch_model.safetensors"
    with online({"tiny/svd": source}, bytes_per_s=None) as stand_in:
        stand_in.drop_once_after = 2_000_000  # the first large body stops there
        folder = hub.fetch("tiny/svd")
    resumed = [start for _, start in stand_in.ranges if start]
    assert len(resumed) == 1 and resumed[0] >= 2_000_000
    assert (folder / unet).read_bytes() == (source / unet).read_bytes()
    assert (folder / "image_encoder/model.safetensors").read_bytes() == \
        (source / "image_encoder/model.safetensors").read_bytes()


def test_offline_a_cached_model_loads_and_a_missing_one_says_so(online, tiny_models_dir, monkeypatch):
    from huggingface_hub import constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    with online({"tiny/svd": tiny_models_dir / "svd"}, bytes_per_s=None):
        folder = hub.fetch("tiny/svd")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hub.fetch("tiny/svd") == folder
    # A cache another downloader filled (no tree listing of ours): used as it is when the hub cannot be asked
    from huggingface_hub import _tree_cache

    for listing in hub.cache_folder().rglob("trees"):
        shutil.rmtree(listing)
    monkeypatch.setattr(_tree_cache, "_IN_MEMORY_TREE_CACHE", {})  # the library's copy of what was just removed
    assert hub.cached_snapshot("tiny/svd") is None
    assert hub.fetch("tiny/svd") == folder
    with pytest.raises(OfflineModeIsEnabled):
        hub.fetch("tiny/other")


def test_errors_from_the_hub_keep_their_explanations(online, tiny_models_dir):
    from svd_demo.core.errors import ModelLoadError
    from svd_demo.core.settings import Settings
    from svd_demo.engine.pipelines import PipelineCache

    with online({"tiny/svd": tiny_models_dir / "svd"}, bytes_per_s=None):
        cache = PipelineCache(Settings(device="cpu", output_dir=tiny_models_dir / "unused-outputs"))
        with pytest.raises(ModelLoadError, match="There is no model 'nobody/nothing'"):
            cache.get("svd", "nobody/nothing")


def test_the_fp16_files_and_nothing_else():
    chosen = hub.pipeline_files(SVD_XT_FILES, SVD_XT_INDEX, "fp16")
    assert chosen == ["model_index.json", "feature_extractor/preprocessor_config.json", "image_encoder/config.json",
                      "image_encoder/model.fp16.safetensors", "scheduler/scheduler_config.json", "unet/config.json",
                      "unet/diffusion_pytorch_model.fp16.safetensors", "vae/config.json",
                      "vae/diffusion_pytorch_model.fp16.safetensors"]
    plain = hub.pipeline_files(SVD_XT_FILES, SVD_XT_INDEX, None)
    assert "unet/diffusion_pytorch_model.safetensors" in plain and not [n for n in plain if "fp16" in n]
    assert "svd_xt.safetensors" not in plain  # the original 9.5 GB checkpoint is not what diffusers loads
    # A VAE repo (one model at the top level), with a second checkpoint under another name
    assert hub.pipeline_files(["config.json", "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin",
                               "sdxl_vae.safetensors", "README.md"], None, None) == \
        ["config.json", "diffusion_pytorch_model.safetensors"]
    assert hub.lora_file(["README.md", "checkpoint-500/pytorch_lora_weights.safetensors", "x.safetensors",
                          "pytorch_lora_weights.safetensors"]) == ["pytorch_lora_weights.safetensors"]


def test_progress_text():
    event = hub.DownloadProgress("stabilityai/stable-video-diffusion-img2vid-xt", done=1_230_000_000,
                                 total=4_520_000_000, file="unet/diffusion_pytorch_model.fp16.safetensors",
                                 file_done=810_000_000, file_total=3_050_000_000, files_done=4, files_total=9,
                                 bytes_per_s=35_200_000)
    assert event.describe() == (
        "Downloading stabilityai/stable-video-diffusion-img2vid-xt: 1.23 of 4.52 GB at 35.2 MB/s, about 1 min 33 s "
        "left (file 5/9 unet/diffusion_pytorch_model.fp16.safetensors: 0.81 of 3.05 GB)")
    assert abs(event.fraction - 1.23 / 4.52) < 1e-9


# ---------------------------------------------------------------------- every hub download takes the same path


def test_an_upscaler_preset_comes_through_the_same_path(online, tmp_path):
    import torch

    from svd_demo.engine.upscale import UPSCALER_PRESETS, load_upscaler
    from svd_demo.engine.upscale.networks import SRVGGNetCompact

    preset = UPSCALER_PRESETS[0]
    repo = tmp_path / "repo"
    repo.mkdir()
    torch.manual_seed(0)
    torch.save({"params": SRVGGNetCompact(num_feat=16, num_conv=4).state_dict()}, repo / preset.filename)
    (repo / "RealESRGAN_x4plus.pth").write_bytes(b"not asked for")
    events: list[hub.DownloadProgress] = []
    with online({preset.repo_id: repo}, bytes_per_s=100_000) as stand_in:
        loaded = load_upscaler(preset.name, download=events.append)
    assert loaded.architecture.name == "SRVGGNetCompact" and loaded.scale == 4
    assert events and events[-1].done == events[-1].total == (repo / preset.filename).stat().st_size
    assert not [path for path in stand_in.downloads() if "x4plus" in path]  # only the file asked for


def test_only_the_hub_module_calls_the_hub_librarys_downloads():
    """One path: nothing else in the app downloads by itself (and so skips progress, the room check, cancel)."""
    package = pathlib.Path(hub.__file__).parent
    calls = ("hf_hub_download(", "snapshot_download(", ".model_info(", "load_lora_weights(ref")
    offenders = [f"{path.relative_to(package)}: {call}" for path in package.rglob("*.py") if path.name != "hub.py"
                 for call in calls if call in path.read_text()]
    assert not offenders
