"""The other parts: the simulated smaller cards (`caps`), the SDXL still, profile switches, the upscalers and
keyframes to video, each a function of the runner."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.gpu.config import UPSCALE_FRAMES, UPSCALE_ROWS
from benchmarks.gpu.device import GIB
from benchmarks.gpu.models import build_full_size_sdxl

if TYPE_CHECKING:
    from benchmarks.gpu.runner import Runner


def part_caps(bench: Runner) -> None:
    """Simulated 8/12/16/24 GB cards: what `auto` picks given the card's (total, free) memory, and whether a run of
    that profile completes under a per-process memory cap of (card - the measured CUDA context)."""
    from svd_demo.engine.memory import choose_profile

    few = bench.config.few_steps
    if not bench.config.caps_gb:
        return
    # The pick for a CUDA card of that size, also when this run is a CPU smoke run.
    card_device = bench.config.device if bench.config.gpu else "cuda:0"
    if not bench.config.gpu:
        bench.report.note("caps: no memory cap on a CPU; `auto`'s picks are computed and the runs check control flow")
    runs: list[tuple[str, int, str | None]] = [(f"cap-{gb}GB", gb, None) for gb in bench.config.caps_gb]
    top = max(bench.config.caps_gb)
    runs.append((f"cap-{top}GB-high", top, "high"))
    for row, gb, forced in runs:
        total = gb * GIB
        free = max(0, total - bench.ctx)
        auto = choose_profile("auto", card_device, (total, free))
        if forced and bench.rows[f"cap-{top}GB"].get("auto") == "high":
            bench.skip(row, "auto already picks high on this card")
            continue
        bench.rows[row].update(card_gb=gb, total_gib=total / GIB, free_gib=free / GIB, auto=auto,
                               sdxl_auto=choose_profile("auto", card_device, (total, free), "sdxl"))
        profile = forced or auto
        if not bench.fits(row, bench.estimate(profile, few), f"{few} steps of '{profile}'"):
            bench.report.save()
            continue
        bench.ensure_pipe()
        bench.park()  # weights off the GPU and the cache emptied before the cap goes on, as on a fresh card
        with bench.ops.memory_cap(free):
            r = bench.app_run(profile, few, target=few)  # a completion check: nothing extrapolated
        r["ran"] = profile
        bench.set_row(row, r)
        bench.report.log(f"{row}: auto picks {auto} (SDXL {bench.rows[row]['sdxl_auto']}); ran {profile}:")
        bench.log_run(row, r)
        bench.report.save()


def still_run(bench: Runner, loaded: Any, steps: int) -> dict[str, Any]:
    """One SDXL still through the app's own path (generate_still)."""
    from svd_demo.core.params import ImageParams
    from svd_demo.engine.text_to_image import generate_still

    params = ImageParams(prompt="a lighthouse at dusk, waves", sdxl_steps=steps, sdxl_guidance_scale=5.0,
                         orientation="landscape", seed=0, randomize_seed=False,
                         resolution=max(bench.config.width, bench.config.height))

    def call(mark: Callable[[], None]) -> dict[str, Any]:
        still = generate_still(loaded, params,
                               progress=lambda fraction, text: text.startswith("Denoising step") and mark())
        return {"size": "x".join(map(str, still.image.size))}

    return bench.timed(call, steps, bench.config.sdxl_steps, breaks_svd=False)


def part_sdxl(bench: Runner) -> None:
    """A still from SDXL's architecture (random weights) under 'high', measured alone (SVD's weights parked)."""
    from svd_demo.engine.memory import PLANS, apply_plan
    from svd_demo.engine.pipelines import LoadedPipeline

    c = bench.config
    if not bench.fits("sdxl", c.part_min_s["sdxl"], "building SDXL, a 2-step warm-up and the timed still",
                      needs_svd=False):
        return
    bench.park()  # SVD's weights off the GPU: SDXL measured alone
    start = time.perf_counter()
    if c.gpu:
        sd = build_full_size_sdxl(c.device, bench.dtype)
    else:
        from svd_demo_testing.tiny_models import build_tiny_sdxl

        sd = build_tiny_sdxl().to(bench.dtype)
        sd.set_progress_bar_config(disable=True)
    apply_plan(sd, PLANS["high"], c.device)
    bench.ops.sync()
    build_s = time.perf_counter() - start
    loaded = LoadedPipeline(kind="sdxl", model_ref="random", pipe=sd, device=c.device, dtype=bench.dtype,
                            profile="high", load_seconds=build_s, revision=None, random_weights=True,
                            current_profile="high")
    try:
        warm = still_run(bench, loaded, 2)
        if warm["status"] != "ok":
            bench.set_row("sdxl", {**warm, "build_s": build_s, "reason": f"warm-up failed: {warm.get('reason')}"})
            return
        per_step = warm["s_per_step"] or warm["total_s"] / 2
        steps = bench.steps_that_fit(lambda n: warm["total_s"] + (n - 2) * per_step, min(c.few_steps, 2),
                                     c.sdxl_steps)
        if not steps:
            bench.skip("sdxl", f"not enough time after its warm-up ({warm['total_s']:.1f} s)")
            return
        r = still_run(bench, loaded, steps)
        bench.set_row("sdxl", {**r, "build_s": build_s, "warmup_s": warm["total_s"], "profile": "high"})
        bench.log_run("sdxl", r)
    finally:
        del loaded, sd
        bench.ops.empty_cache()


def part_switch(bench: Runner) -> None:
    """After an offloaded run, switching to minimal and back must keep the weights (no inference tensors)."""
    if not bench.fits("switch", bench.estimate("low", 1), "a 1-step 'low' run and two profile switches"):
        return
    bench.ensure_pipe()
    r = bench.app_run("low", 1, frames=2)
    rec: dict[str, Any] = {"low_run": r["status"]}

    def to_minimal() -> None:
        bench.use("minimal")
        rec["inference_params"] = {name: sum(p.is_inference() for p in getattr(bench.pipe, name).parameters())
                                   for name in ("image_encoder", "unet", "vae")}

    failed = (bench.prepare("switching to minimal", to_minimal) or
              bench.prepare("leaving minimal for high", lambda: bench.use("high")))  # the inference-tensor trap
    if failed:
        rec.update(failed)
    elif r["status"] != "ok":
        rec.update(status="failed", reason=f"the low run failed: {r.get('reason')}")
    else:
        rec.update(status="ok")
    if not bench.config.gpu:
        rec["note"] = "on a CPU no profile offloads, so this only checks the control flow"
    bench.set_row("switch", rec)
    bench.report.log(f"switch: {rec['status']}{' (' + rec['reason'] + ')' if rec.get('reason') else ''}; inference "
                     f"tensors while in minimal: {rec.get('inference_params')}")


def part_upscale(bench: Runner) -> None:
    """Seconds per frame of each upscaler at 2x of the clip's frame size, loaded by the app's own loader."""
    import torch

    from svd_demo.engine.upscale import DEFAULT_TILE, load_upscaler, upscale_frame
    from svd_demo.engine.upscale.networks import RRDBNet, SRVGGNetCompact
    from svd_demo_testing.tiny_models import save_tiny_upscalers

    c = bench.config
    if not bench.fits("upscale-animevideov3", c.part_min_s["upscale"], "two networks, a warm-up and "
                      f"{UPSCALE_FRAMES} frames each", needs_svd=False):
        bench.skip("upscale-x4plus", bench.rows["upscale-animevideov3"]["reason"])
        return
    bench.park()  # the SVD weights off the GPU: the upscaler is measured alone, as it runs after a generation
    frame = np.random.default_rng(0).integers(0, 256, (c.height, c.width, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        if c.gpu:
            torch.manual_seed(0)
            files = {}
            for row, (cls, key) in zip(UPSCALE_ROWS, ((SRVGGNetCompact, "params"), (RRDBNet, "params_ema")),
                                       strict=True):
                files[row] = Path(folder) / f"{row}.pth"
                torch.save({key: cls().state_dict()}, files[row])
        else:
            tiny = save_tiny_upscalers(folder)
            files = dict(zip(UPSCALE_ROWS, (tiny["srvgg"], tiny["rrdb"]), strict=True))
        for row, path in files.items():
            if bench.report.left() < 5:
                bench.skip(row, "not enough time left")
                continue
            upscaler = load_upscaler(str(path), c.device, bench.dtype)
            try:
                upscale_frame(upscaler, frame, 2, tile=DEFAULT_TILE)
                bench.ops.sync()
                bench.ops.reset_peaks()
                times = []
                for _ in range(UPSCALE_FRAMES):
                    start = time.perf_counter()
                    upscale_frame(upscaler, frame, 2, tile=DEFAULT_TILE)
                    bench.ops.sync()
                    times.append(time.perf_counter() - start)
                rec = {"status": "ok", "parameters_m": upscaler.parameters / 1e6, "frames": len(times),
                       "s_per_frame": statistics.median(times), "architecture": upscaler.architecture.name,
                       **bench.ops.peaks()}
                if not c.gpu:
                    rec["note"] = "tiny networks on a CPU: control flow only"
                bench.set_row(row, rec)
                bench.report.log(f"{row}: {rec['s_per_frame']:.3f} s/frame, {rec['parameters_m']:.2f} M parameters")
            finally:
                del upscaler
                bench.ops.empty_cache()
            bench.report.save()


def part_keyframes(bench: Runner) -> None:
    """Keyframes to video under 'high' at the same size as image to video: s/step and peak memory, against
    high's. Each step is two guided UNet passes (forward and backward), so about twice high's s/step."""
    lo, hi = min(3, bench.config.steps), bench.config.steps
    cost = 2.0 * bench.s_step
    if not bench.fits("keyframes", bench.fixed + 2 * cost + lo * cost, f"a 1-step warm-up and {lo} keyframes steps"):
        return
    bench.ensure_pipe()
    warm = bench.app_run("high", 1, target=1, keyframes=True)
    if warm["status"] != "ok":
        bench.set_row("keyframes", {**warm, "reason": f"warm-up failed: {warm.get('reason')}"})
        return
    steps = bench.steps_that_fit(lambda n: warm["total_s"] + (n - 1) * cost, lo, hi)
    if not steps:
        bench.skip("keyframes", f"not enough time after its warm-up ({warm['total_s']:.1f} s) for {lo} steps")
        return
    r = bench.app_run("high", steps, keyframes=True)
    r["warmup_s"] = warm["total_s"]
    high = bench.rows["high"]
    if r["status"] == "ok" and high.get("status") == "ok":
        if r.get("s_per_step") and high.get("s_per_step"):
            r["step_ratio_vs_high"] = r["s_per_step"] / high["s_per_step"]
        if r.get("peak_alloc_gib") and high.get("peak_alloc_gib"):
            r["peak_ratio_vs_high"] = r["peak_alloc_gib"] / high["peak_alloc_gib"]
    bench.set_row("keyframes", r)
    bench.log_run("keyframes", r)
