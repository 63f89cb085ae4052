"""The memory profiles' parts: the warm-up, the diffusers recipe (the headline's denominator), `high` (with the
live preview's cost), `balanced`, `low`, `minimal` and `int8`, each a function of the runner."""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.gpu.config import STEP_FACTOR
from benchmarks.gpu.device import GIB

if TYPE_CHECKING:
    from benchmarks.gpu.runner import Runner


def psnr_db(frames: np.ndarray, reference: np.ndarray) -> float:
    """PSNR (dB) of uint8 frames against a reference of the same shape; inf when identical."""
    mse = float(np.mean((frames.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def part_warmup(bench: Runner) -> None:
    """'high', 2 steps, the first run: the CUDA context, the kernels, and the estimates the budget works with."""
    if not bench.fits("warmup", bench.estimate("high", 2), "2 steps of 'high'"):
        return
    bench.ensure_pipe()
    r = bench.app_run("high", 2, target=2)
    bench.set_row("warmup", r)
    bench.log_run("warmup", r)
    if r["status"] != "ok":
        return
    bench.s_step = r["s_per_step"] or bench.s_step
    bench.fixed = max(bench.fixed / 4, r["total_s"] - 2 * bench.s_step)
    if bench.config.gpu:  # cuBLAS/cuDNN/attention kernels load lazily: the context grows after the first real run
        bench.ctx = max(bench.ctx, bench.ops.context_bytes())
        bench.report.data["meta"]["ctx_gib"] = bench.ctx / GIB


def recipe_run(bench: Runner, steps: int) -> dict[str, Any]:
    """The plain diffusers recipe: fp16, enable_model_cpu_offload, default decode_chunk_size (all frames)."""
    import torch

    pipe, c = bench.pipe, bench.config

    def offload() -> None:
        bench.profile = None
        pipe.remove_all_hooks()
        pipe.to("cpu")
        # On a CPU, "cpu:0" takes the offload code path a GPU takes (the hooks copy the weights at every move).
        pipe.enable_model_cpu_offload(device=c.device if c.gpu else "cpu:0")

    failed = bench.prepare("enable_model_cpu_offload", offload)
    if failed:
        return failed

    def call(mark: Callable[[], None]) -> dict[str, Any]:
        out = pipe(bench.image, height=c.height, width=c.width, num_frames=c.frames, num_inference_steps=steps,
                   generator=torch.Generator("cpu").manual_seed(0), output_type="np",
                   callback_on_step_end=lambda p, i, t, kwargs: mark() or kwargs)
        return {"nan_output": not bool(np.isfinite(np.asarray(out.frames[0])).all())}

    rec = {"decode_chunk": c.frames, **bench.timed(call, steps, c.steps)}
    with contextlib.suppress(Exception):
        pipe.remove_all_hooks()
    return rec


def part_baseline(bench: Runner) -> None:
    """The plain diffusers recipe after a 1-step warm-up of it."""
    # The headline's denominator: the full step count or nothing.
    steps = bench.config.steps
    if not bench.fits("baseline", bench.estimate("baseline", 1) + bench.estimate("baseline", steps),
                      f"a 1-step warm-up and {steps} steps of the diffusers recipe"):
        return
    bench.ensure_pipe()
    warm = recipe_run(bench, 1)
    if warm["status"] != "ok":
        bench.set_row("baseline", {**warm, "reason": f"warm-up failed: {warm.get('reason')}"})
        return
    r = recipe_run(bench, steps)
    r["warmup_s"] = warm["total_s"]
    bench.set_row("baseline", r)
    bench.log_run("baseline", r)


def profile_part(bench: Runner, profile: str, *, lo: int | None = None, hi: int | None = None,
                 keep_frames: bool = False, row: str | None = None) -> dict[str, Any] | None:
    """A 1-step warm-up, then as many steps as the time allows between `lo` and `hi` (extrapolated if < all).

    The frames are compared with `high`'s (PSNR) when both ran every step with the same seed."""
    lo, hi, row = lo or bench.config.few_steps, hi or bench.config.steps, row or profile
    if not bench.fits(row, bench.estimate(profile, 1) + bench.estimate(profile, lo),
                      f"a 1-step warm-up and {lo} steps of '{profile}'"):
        return None
    bench.ensure_pipe()
    warm = bench.app_run(profile, 1)
    if warm["status"] != "ok":
        bench.set_row(row, {**warm, "reason": f"warm-up failed: {warm.get('reason')}"})
        return None
    per_step = bench.s_step * STEP_FACTOR[profile]
    steps = bench.steps_that_fit(lambda n: warm["total_s"] + (n - 1) * per_step, lo, hi)
    if not steps:
        bench.skip(row, f"not enough time after its warm-up ({warm['total_s']:.1f} s) for {lo} steps")
        return None
    r = bench.app_run(profile, steps, keep_frames=True)
    r["warmup_s"] = warm["total_s"]
    frames = r.get("_frames") if keep_frames else r.pop("_frames", None)
    if profile != "high":
        r["psnr_vs_high_db"] = None
        if frames is not None and bench.high_frames is not None and steps == bench.config.steps:
            r["psnr_vs_high_db"] = psnr_db(frames, bench.high_frames)
    bench.set_row(row, r)
    bench.log_run(row, r)
    return r


def preview_cost(bench: Runner) -> dict[str, Any]:
    """The live preview's cost (svd_demo/engine/preview.py): `latents_to_rgb` on latents of this run's shape on the
    device, synchronized, median of 20, and as a share of high's step; the WebP encoding (on the UI's thread)."""
    import torch

    from svd_demo.engine.preview import PREVIEW_EVERY_STEPS, latents_to_rgb, write_preview

    c = bench.config
    latents = torch.randn(1, c.frames, 4, c.height // 8, c.width // 8, device=c.device, dtype=bench.dtype)
    latents_to_rgb(latents)
    times = []
    for _ in range(20):
        bench.ops.sync()
        start = time.perf_counter()
        frames = latents_to_rgb(latents)  # ends with a copy to the CPU: synchronizes like the callback
        times.append(time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_preview(frames, Path(tmp) / "p.webp")
        encode_s = time.perf_counter() - start
    rec: dict[str, Any] = {"status": "ok", "preview_ms": 1000 * statistics.median(times),
                           "encode_ms": 1000 * encode_s, "every_steps": PREVIEW_EVERY_STEPS}
    step = bench.rows["high"].get("s_per_step")
    if step:
        rec["pct_of_a_step"] = rec["preview_ms"] / 10 / step
        rec["pct_per_step"] = rec["pct_of_a_step"] / PREVIEW_EVERY_STEPS  # the 5 % limit applies to this
    return rec


def part_high(bench: Runner) -> None:
    """The app's own path, everything on the GPU; the live preview's cost against its step; its frames are the
    reference the other profiles' PSNR is measured against."""
    r = profile_part(bench, "high", keep_frames=True)
    if r and r["status"] == "ok":
        try:
            bench.set_row("preview", preview_cost(bench))
        except Exception as exc:  # noqa: BLE001  a result like any other
            bench.set_row("preview", {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:300]})
    else:
        bench.skip("preview", f"measured against 'high', which was not: {bench.rows['high'].get('reason')}")
    if r and r["status"] == "ok":
        bench.s_step = r["s_per_step"] or bench.s_step
        bench.fixed = max(bench.fixed / 4, r["total_s"] - r["steps_run"] * bench.s_step)
        if r["steps_run"] == bench.config.steps:
            bench.high_frames = r.get("_frames")


def part_balanced(bench: Runner) -> None:
    profile_part(bench, "balanced")


def part_low(bench: Runner) -> None:
    profile_part(bench, "low")


def part_minimal(bench: Runner) -> None:
    # A few steps: leaf level moves one layer at a time; s/step is extrapolated to all steps (no PSNR then).
    profile_part(bench, "minimal", lo=bench.config.few_steps, hi=bench.config.few_steps)


def part_int8(bench: Runner) -> None:
    """`low` with an int8 UNet. The random-weight UNet is quantized in place with torchao's `quantize_` and the
    config object diffusers' `TorchAoConfig` applies at load (`--quantize int8` loads through
    `from_pretrained`); it cannot be undone, so this part comes last and drops the pipeline afterwards."""
    from svd_demo.engine.memory import TORCHAO_PIN

    if not bench.fits("int8", bench.estimate("low", 1) + bench.estimate("low", bench.config.few_steps),
                      f"a 1-step warm-up and {bench.config.few_steps} steps of 'low' with an int8 UNet"):
        return
    try:
        from torchao.quantization import Int8WeightOnlyConfig, quantize_
    except ImportError:
        bench.skip("int8", f"torchao is not installed (pip install {TORCHAO_PIN})")
        return
    bench.ensure_pipe()
    failed = bench.prepare("quantizing the UNet to int8", lambda: (
        bench.use("balanced"), quantize_(bench.pipe.unet, Int8WeightOnlyConfig())))  # weights in CPU memory first
    if failed:
        bench.set_row("int8", failed)
        return
    bench.profile = None
    try:
        profile_part(bench, "low", row="int8")
    finally:
        bench.broken = True  # nothing after this may reuse an int8 UNet as if it were the fp16 one
