"""The speed options' parts: feature caching (`cache`, one row per setting) and the AnimateLCM 4-step lane against
`high`, and `fast` (regional torch.compile), which runs in a child process under a hard cap."""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks.gpu.config import CACHE_ROWS, CHILD_MARGIN_S, FAST_MIN_S, LANE_STEPS, NOT_RUN
from benchmarks.gpu.device import env_with_repo, run_capped
from benchmarks.gpu.report import fmt

if TYPE_CHECKING:
    from benchmarks.gpu.runner import Runner


def part_cache(bench: Runner) -> None:
    """'high' with feature caching, one row per CACHE_ROWS setting, against 'high': the speed-up, and the
    frames' PSNR/SSIM against high's."""
    steps, high = bench.config.steps, bench.rows["high"]
    first, setting = next(iter(CACHE_ROWS.items()))
    if not bench.fits(first, bench.estimate("high", 1) + bench.estimate("high", steps),
                      f"a 1-step warm-up and {steps} cached steps of 'high'"):
        for row in CACHE_ROWS:
            if row != first:
                bench.skip(row, bench.rows[first]["reason"])
        return
    bench.ensure_pipe()
    warm = bench.app_run("high", 1, target=1, feature_cache=True, cache_setting=setting)
    if warm["status"] != "ok":
        for row in CACHE_ROWS:
            bench.set_row(row, {**warm, "reason": f"warm-up failed: {warm.get('reason')}"})
        return
    for row, setting in CACHE_ROWS.items():
        if row != first and not bench.fits(row, bench.estimate("high", steps), f"{steps} cached steps of 'high'"):
            continue
        r = bench.app_run("high", steps, keep_frames=True, feature_cache=True, cache_setting=setting)
        frames = r.pop("_frames", None)
        r["warmup_s"] = warm["total_s"]
        r["interval"], r["branch"] = setting
        if r["status"] == "ok" and high.get("status") == "ok" and high.get("steps_run") == steps:
            r["speedup_vs_high"] = high["total_s"] / r["total_s"]
            r["denoise_speedup"] = high["app_timings"]["denoise_s"] / r["app_timings"]["denoise_s"]
            if frames is not None and bench.high_frames is not None and frames.shape == bench.high_frames.shape:
                from benchmarks.interpolation import psnr, ssim

                r["psnr_vs_high_db"] = float(np.mean([psnr(a, b) for a, b in zip(frames, bench.high_frames,
                                                                                   strict=True)]))
                r["ssim_vs_high"] = float(np.mean([ssim(a, b) for a, b in zip(frames, bench.high_frames,
                                                                                strict=True)]))
        bench.set_row(row, r)
        bench.log_run(row, r)


def lane_run(bench: Runner, profile: str, steps: int) -> dict[str, Any]:
    """AnimateLCM's consistency sampler, guidance 1, on the pipeline's UNet (the distilled one with real
    weights; the same architecture with random ones, which times the lane exactly)."""
    from svd_demo.engine.schedulers import AnimateLCMScheduler

    original = bench.pipe.scheduler
    bench.pipe.scheduler = AnimateLCMScheduler()
    try:
        return bench.app_run(profile, steps, target=steps, min_guidance_scale=1.0, max_guidance_scale=1.0,
                             motion_bucket_id=80)
    finally:
        bench.pipe.scheduler = original


def part_lane(bench: Runner) -> None:
    """The 4-step lane end to end on 'high', against high's full step count (the same UNet architecture)."""
    high = bench.rows["high"]
    if not bench.fits("lane", bench.estimate("high", 1) + bench.estimate("high", LANE_STEPS),
                      f"a 1-step warm-up and {LANE_STEPS} steps of the lane"):
        return
    bench.ensure_pipe()
    warm = lane_run(bench, "high", 1)  # guidance 1 halves the UNet batch: new shapes, warmed up once
    if warm["status"] != "ok":
        bench.set_row("lane", {**warm, "reason": f"warm-up failed: {warm.get('reason')}"})
        return
    r = lane_run(bench, "high", LANE_STEPS)
    r["warmup_s"] = warm["total_s"]
    if r["status"] == "ok" and high.get("status") == "ok" and high.get("steps_run") == bench.config.steps:
        r["speedup_vs_high"] = high["total_s"] / r["total_s"]
        r["denoise_speedup"] = high["app_timings"]["denoise_s"] / r["app_timings"]["denoise_s"]
    bench.set_row("lane", r)
    bench.log_run("lane", r)


def part_fast(bench: Runner) -> None:
    """`fast` in a child process with a hard cap: an overrunning compile is killed there, not here."""
    if bench.child:
        fast_in_process(bench)
        return
    reserve = bench.reserve()
    cap = min(bench.config.fast_cap_s, bench.report.left() - reserve)
    if cap < FAST_MIN_S[bench.config.gpu]:
        bench.skip("fast", f"only {max(cap, 0):.0f} s could be given to it ({reserve:.0f} s kept for the parts "
                           f"after it); it needs {FAST_MIN_S[bench.config.gpu]:.0f} s")
        return
    frames_file = None
    if bench.high_frames is not None:
        frames_file = Path(tempfile.mkdtemp(prefix="svd-bench-")) / "high-frames.npy"
        np.save(frames_file, bench.high_frames)
    bench.park()  # this process's SVD weights off the GPU while the child runs
    child_out = bench.report.out / "fast-child"
    shutil.rmtree(child_out, ignore_errors=True)  # never read an earlier run's results
    c = bench.config
    budget = bench.report.elapsed() + cap - CHILD_MARGIN_S[c.gpu]
    cmd = [sys.executable, "-m", "benchmarks.gpu", "--child", "--parts", "fast",
           "--out", str(child_out), "--t0", repr(bench.report.t0), "--budget-s", f"{budget:.1f}",
           "--device", c.device, "--dtype", c.dtype, "--svd-model", c.svd_model, "--width", str(c.width),
           "--height", str(c.height), "--frames", str(c.frames), "--steps", str(c.steps)]
    if frames_file:
        cmd += ["--compare-frames", str(frames_file)]
    bench.report.log(f"fast: child process with a hard cap of {cap:.0f} s (its own build, compile warm-up, timed run)")
    rc = run_capped(cmd, cap, started=lambda proc: setattr(bench, "child_proc", proc), env=env_with_repo())
    bench.child_proc = None
    exit_text = "killed at the cap" if rc is None else str(rc)
    try:
        child = json.loads((child_out / "results.json").read_text())
        row = child["rows"]["fast"]
        row.pop("part", None)
        if row.get("status") == NOT_RUN:  # started, never finished: its watchdog or the cap stopped it
            row["status"] = "failed"
            row["reason"] = (f"the child was killed at its hard cap of {cap:.0f} s: " if rc is None else "") + \
                str(child["meta"].get("stopped") or row.get("reason"))
        bench.set_row("fast", {**row, "child_exit": exit_text, "child_wall_s": child["meta"].get("wall_s"),
                               "child_build_s": child["meta"].get("svd_build_s")})
        bench.report.data["notes"] += [f"fast child: {n}" for n in child.get("notes", [])]
        bench.report.data["errors"].update({f"fast child {k}": v for k, v in child.get("errors", {}).items()})
    except (OSError, ValueError, KeyError) as exc:
        bench.set_row("fast", {"status": "failed", "reason": f"the child left no results (exit {exit_text}; "
                                                             f"{type(exc).__name__})", "child_exit": exit_text})
    if frames_file:
        shutil.rmtree(frames_file.parent, ignore_errors=True)
    bench.report.log(f"fast (child exit {exit_text}): {bench.rows['fast'].get('status')} "
                     f"{bench.rows['fast'].get('reason') or ''}")


def fast_in_process(bench: Runner) -> None:
    """In the child: compile warm-up (2 steps), then the timed run; frames compared with the parent's `high`."""
    if not bench.config.gpu:
        bench.skip("fast", "torch.compile of the UNet blocks takes minutes on a CPU: `fast` is measured on GPUs "
                           "only")
        return
    records: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    for name in ("torch._dynamo", "torch._dynamo.convert_frame"):
        logging.getLogger(name).addHandler(Catch())
    import torch._dynamo
    from torch._dynamo.utils import counters

    bench.report.data["meta"]["dynamo_recompile_limit"] = getattr(torch._dynamo.config, "recompile_limit", None)
    if not bench.fits("fast", bench.estimate("fast", 2) + 30, "building, compiling and 2 warm-up steps"):
        return
    bench.ensure_pipe()
    bench.rows["fast"]["reason"] = f"compile warm-up started at +{bench.report.elapsed():.0f} s, not finished"
    bench.report.save()
    before = dict(counters["stats"])
    warm = bench.app_run("fast", 2)
    rec: dict[str, Any] = {
        "compile_warmup_s": warm.get("total_s"),
        "dynamo_stats": {k: v - before.get(k, 0) for k, v in counters["stats"].items() if v != before.get(k, 0)},
        "recompile_limit_hits": sum("recompile_limit" in m for m in records),
        "recompile_limit_msgs": [m.splitlines()[0][:200] for m in records if "recompile_limit" in m][:5]}
    bench.report.log(f"fast compile warm-up: {warm['status']} in {fmt(warm.get('total_s'), 1)} s; recompile-limit "
                     f"warnings {rec['recompile_limit_hits']}")
    if warm["status"] != "ok":
        bench.set_row("fast", {**warm, **rec, "reason": f"compile warm-up failed: {warm.get('reason')}"})
        return
    per_step = warm["s_per_step"] or bench.s_step  # the second warm-up step ran compiled
    steps = bench.steps_that_fit(lambda n: bench.fixed + n * per_step, bench.config.few_steps, bench.config.steps)
    if not steps:
        bench.set_row("fast", {**rec, "status": "skipped", "reason": "no time left after the compile warm-up"})
        return
    r = bench.app_run("fast", steps, keep_frames=True)
    frames = r.pop("_frames", None)
    if frames is not None and bench.compare_frames and steps == bench.config.steps:
        high = np.load(bench.compare_frames)
        if high.shape == frames.shape:
            diff = np.abs(frames.astype(np.int16) - high.astype(np.int16))
            rec.update(max_abs_diff_vs_high=int(diff.max()), mean_abs_diff_vs_high=float(diff.mean()))
    bench.set_row("fast", {**r, **rec})
    bench.log_run("fast", r)
    # The lane on top of compilation: guidance 1 halves the batch, a new shape the warm-up step compiles.
    # Checked here, not with `fits`: that would mark the measured `fast` row skipped.
    if r["status"] == "ok" and 2 * bench.estimate("fast", LANE_STEPS) + 30 <= bench.report.left() - bench.reserve():
        warm = lane_run(bench, "fast", 1)
        lane = lane_run(bench, "fast", LANE_STEPS) if warm["status"] == "ok" else warm
        note = lane.get("reason") or f"compile warm-up {fmt(warm.get('total_s'), 1)} s"
        bench.rows["fast"].update(lane_total_s=lane.get("total_s"), lane_warmup_s=warm.get("total_s"),
                                  lane_note=note)
        bench.report.log(f"fast lane: {lane['status']}, {LANE_STEPS} steps in {fmt(lane.get('total_s'), 1)} s")
