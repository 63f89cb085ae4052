"""The GPU-only policy, run on the CPU: which memory profile each card gets, what stays on a GPU, several GPUs.

The offload profiles and out-of-memory recovery, which generate clips, are end to end
(tests/e2e/test_offload_and_oom_recovery.py).
"""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch

from svd_demo.engine import pipelines
from svd_demo.engine.memory import GIB, choose_profile, keep_other_on_gpu, resolve_devices
from svd_demo.engine.pipelines import PipelineCache

# Cards as sold, what CUDA reports for them (GiB), and what `auto` picks: the table docs/memory-and-speed.md shows.
# (name, total, free, SVD's pick, SDXL's pick); "display" rows have a desktop drawn on the same card.
CARDS = [
    ("80 GB (A100, H100)", 79.1, 78.5, "high", "high"),
    ("48 GB (L40S, RTX 6000 Ada)", 44.4, 44.0, "high", "high"),
    ("24 GB (RTX 4090), display", 23.6, 22.3, "high", "high"),
    ("24 GB (A10G)", 22.0, 21.6, "high", "high"),
    ("16 GB (RTX 4080), display", 15.6, 14.6, "balanced", "high"),
    ("16 GB (T4)", 14.6, 14.3, "balanced", "high"),
    ("12 GB (RTX 3060)", 11.7, 11.3, "balanced", "high"),
    ("12 GB (RTX 3060), display", 11.7, 10.4, "balanced", "balanced"),
    ("10 GB (RTX 3080), display", 9.8, 9.0, "low", "balanced"),
    ("8 GB (RTX 4060)", 7.8, 7.3, "low", "balanced"),
    ("8 GB (RTX 4060), display", 7.8, 6.5, "low", "low"),
    ("6 GB (RTX 2060)", 5.8, 5.6, "low", "low"),  # `low` is group offload + fp8: 6 GB cards get it (estimate)
    ("6 GB (RTX 2060), display", 5.8, 5.2, "low", "low"),
    ("4 GB (GTX 1650)", 3.8, 3.3, "minimal", "minimal"),
    ("4 GB (GTX 1650), display", 3.8, 2.9, "minimal", "minimal"),
]


@pytest.mark.parametrize(("card", "total", "free", "svd", "sdxl"), CARDS, ids=[c[0] for c in CARDS])
def test_auto_picks_by_card_as_sold(card, total, free, svd, sdxl):
    memory = (int(total * GIB), int(free * GIB))
    assert choose_profile("auto", "cuda", memory, "svd") == svd
    assert choose_profile("auto", "cuda", memory, "sdxl") == sdxl


def test_usable_memory_is_capped_by_the_total_less_the_cuda_context():
    """A reading taken before the CUDA context existed shows more free memory than a run will have."""
    assert choose_profile("auto", "cuda", (int(18.2 * GIB), int(18.2 * GIB))) == "balanced"


@pytest.mark.parametrize(("total", "running", "other", "stays"), [
    (80, ("svd", "high"), ("sdxl", "high"), True),
    (23.6, ("svd", "high"), ("sdxl", "high"), False),
    (15.6, ("svd", "balanced"), ("sdxl", "high"), False),  # SDXL fits alone, not beside SVD's working memory
    (23.6, ("sdxl", "high"), ("svd", "balanced"), True),  # an offloaded SVD waits in CPU memory anyway
    (23.6, ("svd", "high"), ("sdxl", "fast"), False),  # `fast` is resident like `high`
    (80, ("svd", "fast"), ("sdxl", "high"), True),
])
def test_the_idle_pipeline_leaves_the_gpu_when_both_do_not_fit(total, running, other, stays):
    assert keep_other_on_gpu(int(total * GIB), running, other) is stays


def test_fp32_weights_need_twice_the_room():
    assert keep_other_on_gpu(40 * GIB, ("svd", "high"), ("sdxl", "high"), dtype_bytes=2)
    assert not keep_other_on_gpu(40 * GIB, ("svd", "high"), ("sdxl", "high"), dtype_bytes=4)


class FakeCuda:
    """torch.cuda's memory functions for GPUs that are not there. Each call must name its device: without one,
    CUDA reads the current device (cuda:0) whatever GPU the pipeline is on."""

    def __init__(self, cards: dict[str, tuple[float, float]]) -> None:
        self.cards = cards  # "cuda:N" -> (total GiB, free GiB)
        self.calls: list[tuple[str, str]] = []
        self.current = "cuda:0"

    def _card(self, fn: str, device) -> tuple[float, float]:
        if device is None:
            raise AssertionError(f"torch.cuda.{fn}() without a device reads cuda:0")
        name = str(torch.device(device))
        name = "cuda:0" if name == "cuda" else name
        self.calls.append((fn, name))
        return self.cards[name]

    def mem_get_info(self, device=None):
        total, free = self._card("mem_get_info", device)
        return int(free * GIB), int(total * GIB)

    def memory_reserved(self, device=None):  # nothing of ours is on these cards yet
        self._card("memory_reserved", device)
        return 0

    memory_allocated = memory_reserved

    def empty_cache(self):
        self.calls.append(("empty_cache", self.current))

    @contextlib.contextmanager
    def device(self, device):
        before, self.current = self.current, str(torch.device(device))
        try:
            yield
        finally:
            self.current = before

    def install(self, monkeypatch) -> FakeCuda:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: len(self.cards))
        for name in ("mem_get_info", "memory_reserved", "memory_allocated", "empty_cache", "device"):
            monkeypatch.setattr(torch.cuda, name, getattr(self, name))
        return self


def _placed(monkeypatch) -> list[tuple[str, str, str]]:
    """Record where `apply_plan` would put each pipeline (moving tiny weights to a GPU that is not there fails)."""
    placed: list[tuple[str, str, str]] = []
    monkeypatch.setattr(pipelines, "apply_plan",
                        lambda pipe, plan, device: placed.append((type(pipe).__name__, plan.profile, device)))
    return placed


def test_the_second_gpu_is_judged_by_its_own_memory(tiny_settings, monkeypatch):
    cuda = FakeCuda({"cuda:0": (23.6, 2.0), "cuda:1": (79.1, 78.5)}).install(monkeypatch)
    placed = _placed(monkeypatch)
    assert resolve_devices("cuda:0,cuda:1") == ["cuda:0", "cuda:1"]
    cache = PipelineCache(dataclasses.replace(tiny_settings, device="cuda:0,cuda:1"), device="cuda:1")
    loaded = cache.get("svd", tiny_settings.svd_model)
    assert loaded.profile == "high" and placed == [("StableVideoDiffusionPipeline", "high", "cuda:1")]
    cache.unload("svd")
    assert {device for _, device in cuda.calls} == {"cuda:1"}
    assert ("empty_cache", "cuda:1") in cuda.calls


def test_on_a_16_gb_card_a_resident_sdxl_leaves_before_svd_runs_offloaded(tiny_settings, monkeypatch):
    FakeCuda({"cuda:0": (15.6, 14.6)}).install(monkeypatch)
    placed = _placed(monkeypatch)
    cache = PipelineCache(dataclasses.replace(tiny_settings, device="cuda"), device="cuda:0")
    sdxl = cache.get("sdxl", tiny_settings.sdxl_model)
    svd = cache.get("svd", tiny_settings.svd_model)
    assert (svd.profile, sdxl.profile) == ("balanced", "high")
    cache.make_resident("sdxl")
    assert sdxl.resident  # an offloaded SVD leaves room
    cache.make_resident("svd")
    assert not sdxl.resident and next(sdxl.pipe.unet.parameters()).device.type == "cpu"
    placed.clear()
    cache.make_resident("sdxl")  # back where its profile puts it when its turn comes
    assert sdxl.resident and placed == [("StableDiffusionXLPipeline", "high", "cuda:0")]
