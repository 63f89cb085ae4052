"""The GPU benchmark, `python -m benchmarks.gpu`: speed and memory per profile, the headline table in ONE
time-boxed command (recorded in BENCHMARKS.md with its command).

On a GPU (any `cuda` or `cuda:N` device): SVD-XT's architecture with random weights, built on the GPU (nothing is
downloaded; real weights with --svd-model), 25 frames, 1024x576, 25 steps. On a CPU the same parts run on the
tiny test models at 256x144 (control flow only, no GPU figures) and finish in well under a minute.

Parts, in order of importance (each keeps back time for the ones after it):
  warmup    'high', 2 steps: CUDA context, cuBLAS/attention kernels; the estimates the budget works with
  baseline  the plain diffusers recipe: fp16, enable_model_cpu_offload, default decode (all frames at once)
  high      the app's own path (generate_frames), everything on the GPU
  fast      high + regional torch.compile, in a child process with a hard cap (--fast-cap-s):
            a compile that overruns is killed with its process group and the later parts still run
  balanced  model offload: 25 steps when the time allows, else fewer, extrapolated
  low       block-level group offload (UNet on a CUDA stream) + fp8 UNet storage + forward chunking, same way;
            PSNR against `high`'s frames (same seed) when both ran every step
  caps      simulated 8/12/16/24 GB cards (a per-process memory cap = card - the measured CUDA context): what
            `auto` picks given that card's (total, free) memory, and whether its run completes
  sdxl      the SDXL architecture, random weights, a 1024x576 still with 'high'
  minimal   leaf-level group offload + fp8 + decode chunk 1: a few steps, s/step extrapolated to 25 (said so)
  switch    profile switches after an offloaded run (low -> minimal -> high) leave the weights intact
  upscale   the upscalers (realesr-animevideov3 and RealESRGAN_x4plus architectures, random weights; tiny ones on a
            CPU): seconds per frame and peak memory, 2x of a frame of the clip's size, in the app's 512-px tiles
  keyframes keyframes to video (ViBiDSampler: a forward and a backward half per step) under 'high' at the same
            size: s/step and peak memory against image to video's ('high'), a few steps extrapolated to 25
  int8      `--quantize int8` (torchao int8 weight-only UNet) under `low`, PSNR against `high`; last, because
            quantizing the shared pipeline cannot be undone
Every timed run follows a warm-up of the same part at the same shapes (1 step; 2 for SDXL and for `fast`'s
compile), is synchronized with torch.cuda.synchronize(device) and has the device's peak statistics reset for it.

Time budget: --budget-s seconds (default 530) counted from --t0 (default: the start of this command). A part that
does not fit the time left minus what the later parts need shrinks its step count (extrapolated and labelled) or
is skipped with the reason; at the budget a watchdog writes the results and exits (code 3). 530 s keeps a
9-minute device command clear of its limit with the start-up included.

Results: OUT/results.json and OUT/summary.md (Markdown), rewritten after every part, so a run that is killed
still leaves them; OUT/progress.log holds the progress lines, each stamped with the clock and the seconds since
--t0. Every row is present: measured, or with the reason it was not. Exit codes: 0 done (see the rows for
skipped parts), 3 stopped at the budget, 2 could not start. On a lent GPU: `bash benchmarks/gpu_run.sh`
(installs the carried diffusers wheel first; BENCHMARKS.md has the device call).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# The published SVD-XT architecture (FACTS.md): UNet 1.52 B, VAE 98 M, CLIP ViT-H/14 632 M parameters.
SVD_XT_VAE = {"block_out_channels": (128, 256, 512, 512), "down_block_types": ("DownEncoderBlock2D",) * 4,
              "layers_per_block": 2, "latent_channels": 4, "sample_size": 768, "scaling_factor": 0.18215,
              "force_upcast": True}
SVD_XT_CLIP = {"hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32, "num_attention_heads": 16,
               "image_size": 224, "patch_size": 14, "projection_dim": 1024, "hidden_act": "gelu"}
SVD_SCHEDULER = {"prediction_type": "v_prediction", "use_karras_sigmas": True, "sigma_min": 0.002,
                 "sigma_max": 700.0, "timestep_type": "continuous", "beta_schedule": "scaled_linear",
                 "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1, "timestep_spacing": "leading",
                 "interpolation_type": "linear"}


def build_full_size_svd(device: str, dtype: object) -> object:
    """SVD-XT's architecture with random weights, built directly on `device` (seconds instead of minutes)."""
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    with torch.device(device):  # `.to(device)` too: the temporal blocks' `torch.Tensor([x])` ignores the context
        unet = UNetSpatioTemporalConditionModel(sample_size=96, num_frames=25).to(device, dtype)
        vae = AutoencoderKLTemporalDecoder(**SVD_XT_VAE).to(device, dtype)
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**SVD_XT_CLIP)).to(device, dtype)
    processor = CLIPImageProcessor(crop_size=224, size=224, image_mean=[0.48145466, 0.4578275, 0.40821073],
                                   image_std=[0.26862954, 0.26130258, 0.27577711])
    pipe = StableVideoDiffusionPipeline(vae=vae, image_encoder=encoder, unet=unet,
                                        scheduler=EulerDiscreteScheduler(**SVD_SCHEDULER),
                                        feature_extractor=processor)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# --- profiles: the headline table in one time-boxed run ------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
GIB = 2**30
DEFAULT_BUDGET_S = 530.0
PART_ORDER = ("warmup", "baseline", "high", "cache", "lane", "fast", "balanced", "low", "caps", "sdxl", "minimal",
              "switch", "upscale", "keyframes", "int8")
UPSCALE_ROWS = {"upscale-animevideov3": "SRVGGNetCompact", "upscale-x4plus": "RRDBNet"}  # real sizes, random weights
UPSCALE_FRAMES = 3  # timed frames per network, after one warm-up frame
# Feature caching settings (interval, DeepCache branch) the `cache` part compares against `high`, by row: DeepCache's
# published SVD setting (the app's default) first, then the app's earlier default (reuse on every other step below
# the first down block), so a GPU run can choose by speed and PSNR/SSIM.
CACHE_ROWS = {"cache": (3, 0), "cache-i2-b1": (2, 1)}
SVD_ROWS = ("baseline", "high", "fast", "balanced", "low", "minimal", "int8")
DEFAULT_CAPS_GB = (8, 12, 16, 24)
# Least seconds each part needs on an H200 (SVD-XT at 1024x576, 25 frames: about 1 s a step), kept back for it by
# the parts before it: the first device sketch's sizing (shared/tools/gpu_check.sh) plus the 1-step warm-up every
# timed part has here.
PART_MIN_S = {"warmup": 15, "baseline": 50, "high": 35, "fast": 100, "balanced": 20, "low": 25, "caps": 45,
              "sdxl": 30, "minimal": 40, "switch": 5, "upscale": 20, "int8": 30,
              "cache": 60, "lane": 15,  # speed options: high with feature caching (each CACHE_ROWS setting);
              # AnimateLCM's 4 steps
              "keyframes": 40}  # a 1-step warm-up and 3 steps at twice high's s/step, extrapolated
PART_MIN_S_TINY = dict.fromkeys(PART_ORDER, 1.0)  # tiny models on a CPU: about a second a clip
FAST_CAP_S = 170.0  # the child's own build (~15 s), compiling ~16 graphs of UNet blocks, the timed run
FAST_MIN_S = {True: 90.0, False: 10.0}  # below this the child cannot finish even its compile warm-up (GPU / CPU)
CHILD_MARGIN_S = {True: 8.0, False: 2.0}  # the child's own watchdog fires this long before its hard cap
# Cost of a denoising step and the fixed cost of a clip (image encode, weight moves, decode) relative to `high`:
# first guesses, scaled by what the warm-up measures. Group offload re-sends the UNet's weights at every step (fp8:
# half the bytes), on a side stream for `low`; leaf level (`minimal`) one layer at a time.
STEP_FACTOR = {"baseline": 1.05, "high": 1.0, "fast": 0.8, "balanced": 1.05, "low": 1.3, "minimal": 2.5}
FIXED_FACTOR = {"baseline": 2.0, "high": 1.0, "fast": 1.0, "balanced": 1.5, "low": 2.0, "minimal": 3.5}
NOT_RUN = "not run"
LANE_STEPS = 4  # AnimateLCM-SVD-xt's default: 4 consistency steps, guidance 1 (one UNet pass a step)


def _env_with_repo() -> dict[str, str]:
    """This environment with the repository first on PYTHONPATH: a child `-m benchmarks.gpu` runs from any folder."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(REPO) + (os.pathsep + path if path else "")}


def is_gpu(device: str) -> bool:
    """Any CUDA device (`cuda`, `cuda:0`, `cuda:1`, ...) is a GPU: full-size models and CUDA statistics."""
    return device == "cuda" or device.startswith("cuda:")


class DeviceOps:
    """The CUDA calls the bench makes, each given the device (without one torch reads the *current* device, which
    need not be the benchmarked one); no-ops on other devices."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.cuda = is_gpu(device)

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)

    def empty_cache(self) -> None:
        gc.collect()
        if self.cuda:
            import torch

            with torch.cuda.device(self.device):  # empty_cache takes no device: it frees the current one's
                torch.cuda.empty_cache()

    def reset_peaks(self) -> None:
        self.empty_cache()
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats(self.device)

    def peaks(self) -> dict[str, float]:
        if not self.cuda:
            return {}
        import torch

        return {"peak_alloc_gib": torch.cuda.max_memory_allocated(self.device) / GIB,
                "peak_reserved_gib": torch.cuda.max_memory_reserved(self.device) / GIB}

    def allocated_gib(self) -> float:
        if not self.cuda:
            return 0.0
        import torch

        return torch.cuda.memory_allocated(self.device) / GIB

    def context_bytes(self) -> int:
        """Device memory in use outside this process's allocator: the CUDA context, library workspaces."""
        if not self.cuda:
            return 0
        import torch

        free, total = torch.cuda.mem_get_info(self.device)
        return max(0, total - free - torch.cuda.memory_reserved(self.device))

    def total_bytes(self) -> int:
        import torch

        return torch.cuda.get_device_properties(self.device).total_memory

    def describe(self) -> dict[str, object]:
        if not self.cuda:
            return {"gpu": "CPU: tiny models, control flow only (no GPU figures)"}
        import torch

        props = torch.cuda.get_device_properties(self.device)
        return {"gpu": torch.cuda.get_device_name(self.device), "total_gib": props.total_memory / GIB,
                "capability": f"{props.major}.{props.minor}", "sms": props.multi_processor_count}

    @contextlib.contextmanager
    def memory_cap(self, nbytes: int) -> Iterator[None]:
        """At most `nbytes` for this process's allocator on the device (a smaller card), lifted afterwards."""
        if not self.cuda:
            yield
            return
        import torch

        torch.cuda.set_per_process_memory_fraction(min(1.0, nbytes / self.total_bytes()), self.device)
        try:
            yield
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, self.device)


@dataclass(frozen=True)
class BenchConfig:
    """What the profiles bench runs: full-size sizes on a GPU, tiny ones elsewhere."""

    device: str
    dtype: str  # a --dtype setting (auto: fp16 on GPUs, fp32 on CPU)
    width: int
    height: int
    frames: int
    steps: int
    few_steps: int  # minimal and the simulated cards: s/step measured on these, extrapolated to `steps`
    sdxl_steps: int
    caps_gb: tuple[int, ...]
    svd_model: str
    fast_cap_s: float

    @property
    def gpu(self) -> bool:
        return is_gpu(self.device)

    @property
    def part_min_s(self) -> dict[str, float]:
        return PART_MIN_S if self.gpu else PART_MIN_S_TINY


def bench_config(args: argparse.Namespace) -> BenchConfig:
    """Resolve the device (`cuda` becomes `cuda:N`, the current GPU) and the sizes it implies."""
    from svd_demo.engine.memory import resolve_device

    device = resolve_device(args.device)
    if device == "cuda":
        import torch

        device = f"cuda:{torch.cuda.current_device()}"
    gpu = is_gpu(device)
    steps = args.steps or (25 if gpu else 3)
    return BenchConfig(device=device, dtype=args.dtype, width=args.width or (1024 if gpu else 256),
                       height=args.height or (576 if gpu else 144), frames=args.frames or (25 if gpu else 2),
                       steps=steps, few_steps=min(steps, 3 if gpu else 2), sdxl_steps=args.sdxl_steps or
                       (30 if gpu else 3), caps_gb=tuple(args.caps_gb), svd_model=args.svd_model,
                       fast_cap_s=args.fast_cap_s)


def row_parts(caps_gb: tuple[int, ...]) -> dict[str, str]:
    """Every row of the results, in table order, and the part that fills it."""
    rows = {"warmup": "warmup", **{name: name for name in SVD_ROWS}, **dict.fromkeys(CACHE_ROWS, "cache"),
            "lane": "lane"}
    rows.update({f"cap-{gb}GB": "caps" for gb in caps_gb})
    if caps_gb:
        rows[f"cap-{max(caps_gb)}GB-high"] = "caps"  # high forced on the largest card, when auto picks lower
    rows.update({"sdxl": "sdxl", "switch": "switch"})
    rows.update(dict.fromkeys(UPSCALE_ROWS, "upscale"))
    rows["preview"] = "high"  # the live preview's cost per step, against high's s/step (measured after it)
    rows["keyframes"] = "keyframes"
    return rows


def run_capped(cmd: list[str], cap_s: float, started: Callable[[subprocess.Popen], None] | None = None,
               env: dict[str, str] | None = None) -> int | None:
    """Run `cmd` in its own process group; at `cap_s` kill the whole group (compile workers included).

    Returns the exit code, or None when it was killed at the cap.
    """
    proc = subprocess.Popen(cmd, start_new_session=True, env=env)
    if started is not None:
        started(proc)
    try:
        return proc.wait(timeout=cap_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def step_stats(marks: list[float], start: float, end: float, steps: int, target: int) -> dict[str, object]:
    """Timings of one run from the synchronized end-of-step marks; fewer steps than `target` are extrapolated."""
    intervals = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    per_step = statistics.median(intervals) if intervals else None
    stats: dict[str, object] = {
        "steps_run": steps, "s_per_step": per_step, "first_step_s": marks[0] - start if marks else None,
        "decode_s": end - marks[-1] if marks else None, "total_s": end - start, "total_est_s": end - start}
    if per_step is not None and steps < target:
        stats["total_est_s"] = end - start + (target - steps) * per_step
        stats["extrapolated"] = (f"ran {steps} of {target} steps: the {target}-step total is the measured total + "
                                 f"{target - steps} x the median s/step")
    return stats


# --- results: JSON and Markdown ------------------------------------------------------------------------------------

def _fmt(value: object, digits: int = 2) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def derive(data: dict[str, Any]) -> None:
    """Ratios against the diffusers recipe and the headline sentence, from the rows."""
    rows, meta = data["rows"], data["meta"]
    base = rows.get("baseline", {})
    measured = {name: rows[name] for name in SVD_ROWS[1:] if rows.get(name, {}).get("status") == "ok"
                and rows[name].get("total_est_s")}
    data["headline"] = None
    if base.get("status") != "ok" or not base.get("total_s") or not measured:
        return
    for row in measured.values():
        row["vs_recipe"] = base["total_s"] / row["total_est_s"]
    best = min(measured, key=lambda name: measured[name]["total_est_s"])
    row = measured[best]
    est = " (extrapolated)" if row.get("extrapolated") else ""

    def peak(r: dict[str, Any]) -> str:
        return f", peak alloc {r['peak_alloc_gib']:.1f} GiB" if r.get("peak_alloc_gib") is not None else ""

    data["headline"] = (
        f"{meta.get('svd')}, {meta.get('frames')} frames {meta.get('size')} {meta.get('steps')} steps: the fastest "
        f"profile, '{best}', {row['total_est_s']:.1f} s{est} ({_fmt(row.get('s_per_step'), 3)} s/step, decode "
        f"{_fmt(row.get('decode_s'))} s{peak(row)}), against the diffusers recipe's {base['total_s']:.1f} s "
        f"({_fmt(base.get('s_per_step'), 3)} s/step, decode {_fmt(base.get('decode_s'))} s{peak(base)}): "
        f"{row['vs_recipe']:.2f}x as fast{est}")


def psnr_db(frames: np.ndarray, reference: np.ndarray) -> float:
    """PSNR (dB) of uint8 frames against a reference of the same shape; inf when identical."""
    mse = float(np.mean((frames.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _why(row: dict[str, Any]) -> str:
    parts = [row.get("reason") or "", row.get("extrapolated") or "", row.get("changes") or "",
             "output had NaN (random weights): timing and memory are valid" if row.get("nan_output") else ""]
    return "; ".join(p for p in parts if p)


def render_markdown(data: dict[str, Any]) -> str:
    """summary.md: the headline, one table per part, and why any row was not measured."""
    meta, rows = data["meta"], data["rows"]
    state = f"STOPPED: {meta['stopped']}" if meta.get("stopped") else ("completed" if meta.get("done") else "running")
    out = [f"# svd-demo bench: {meta.get('gpu', '?')}", "",
           f"{meta.get('model', '?')}; {meta.get('dtype')}; {meta.get('size')}, {meta.get('frames')} frames, "
           f"{meta.get('steps')} steps; torch {meta.get('torch')}, diffusers {meta.get('diffusers')}, transformers "
           f"{meta.get('transformers')}, accelerate {meta.get('accelerate')}; device {meta.get('device')}"
           f"{', CUDA context ' + _fmt(meta['ctx_gib']) + ' GiB' if meta.get('ctx_gib') else ''}. {state} after "
           f"{_fmt(meta.get('wall_s'), 0)} s of a {meta.get('budget_s'):g} s budget. Command: "
           f"`{meta.get('command')}`", ""]
    if data.get("headline"):
        out += ["## Headline", "", data["headline"], ""]
    out += [f"## SVD per profile ({meta.get('frames')} frames, {meta.get('size')}, {meta.get('steps')} steps; each "
            "timed run after a 1-step warm-up of the same part)", "",
            "| profile | status | steps run | s/step (median) | decode s | total s (as run) | total s for "
            f"{meta.get('steps')} steps | peak alloc GiB | peak reserved GiB | card GiB needed (reserved + context) "
            "| vs recipe | PSNR vs high dB | notes |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    names = {"baseline": "diffusers recipe (model CPU offload, default decode)", "int8": "int8 (low, int8 UNet)"}
    for name in SVD_ROWS:
        r = rows.get(name, {})
        ratio = f"{r['vs_recipe']:.2f}x" if r.get("vs_recipe") else ""
        out.append(f"| {names.get(name, name)} | {r.get('status')} | {_fmt(r.get('steps_run'))} | "
                   f"{_fmt(r.get('s_per_step'), 3)} | {_fmt(r.get('decode_s'))} | {_fmt(r.get('total_s'), 1)} | "
                   f"{_fmt(r.get('total_est_s'), 1)} | {_fmt(r.get('peak_alloc_gib'))} | "
                   f"{_fmt(r.get('peak_reserved_gib'))} | {_fmt(r.get('card_need_gib'))} | {ratio} | "
                   f"{_fmt(r.get('psnr_vs_high_db'), 1)} | {_why(r)} |")
    fast = rows.get("fast", {})
    if "compile_warmup_s" in fast:
        out += ["", f"fast: compile warm-up {_fmt(fast.get('compile_warmup_s'), 1)} s (2 steps); recompile-limit "
                f"warnings {fast.get('recompile_limit_hits')}; max |frame diff| vs high (uint8) "
                f"{fast.get('max_abs_diff_vs_high')}; child exit {fast.get('child_exit')}"]
    caps = [(name, r) for name, r in rows.items() if r.get("part") == "caps"]
    if caps:
        out += ["", "## Simulated smaller GPUs", "",
                "A per-process memory cap of (card - the measured CUDA context); `auto` is given (total = card, "
                "free = card - context). Real cards report a little less in total (a '24 GB' card about 22-23.5 "
                f"GiB). Completion checks of {meta.get('few_steps')} steps, after the profile's own part warmed it "
                "up; s/step is not a headline figure here.", "",
                "| card | auto sees total / free GiB | auto picks (SVD) | auto (SDXL) | ran | status | steps | s/step "
                "| peak alloc GiB | peak reserved GiB | notes |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, r in caps:
            out.append(f"| {name} | {_fmt(r.get('total_gib'), 1)} / {_fmt(r.get('free_gib'), 1)} | "
                       f"{_fmt(r.get('auto'))} | {_fmt(r.get('sdxl_auto'))} | {_fmt(r.get('ran'))} | {r.get('status')}"
                       f" | {_fmt(r.get('steps_run'))} | {_fmt(r.get('s_per_step'), 3)} | "
                       f"{_fmt(r.get('peak_alloc_gib'))} | {_fmt(r.get('peak_reserved_gib'))} | {_why(r)} |")
    out += speed_options_markdown(rows, meta)
    s = rows.get("sdxl", {})
    out += ["", f"## SDXL still ({_fmt(s.get('size')) or meta.get('size')}, profile high, after a 2-step warm-up)",
            "", "| status | build s | steps run | s/step (median) | decode s | total s | total s for "
            f"{meta.get('sdxl_steps')} steps | peak alloc GiB | peak reserved GiB | notes |",
            "|---|---|---|---|---|---|---|---|---|---|",
            f"| {s.get('status')} | {_fmt(s.get('build_s'), 1)} | {_fmt(s.get('steps_run'))} | "
            f"{_fmt(s.get('s_per_step'), 3)} | {_fmt(s.get('decode_s'))} | {_fmt(s.get('total_s'), 1)} | "
            f"{_fmt(s.get('total_est_s'), 1)} | {_fmt(s.get('peak_alloc_gib'))} | {_fmt(s.get('peak_reserved_gib'))}"
            f" | {_why(s)} |"]
    w, sw, pv = rows.get("warmup", {}), rows.get("switch", {}), rows.get("preview", {})
    out += ["", "## Warm-up and profile switches", "",
            f"- warm-up ('high', 2 steps, the first run): {w.get('status')}, {_fmt(w.get('total_s'), 1)} s. {_why(w)}",
            f"- switch (a low run, then minimal, then high): {sw.get('status')}; inference tensors while in minimal: "
            f"{sw.get('inference_params')}. {_why(sw)} {sw.get('note') or ''}",
            f"- live preview (latents -> RGB every {pv.get('every_steps')} steps): {pv.get('status')}, "
            f"{_fmt(pv.get('preview_ms'), 2)} ms per preview = {_fmt(pv.get('pct_of_a_step'), 2)} % of a 'high' step,"
            f" {_fmt(pv.get('pct_per_step'), 2)} % per step on average (limit 5 %); WebP encoding (UI thread) "
            f"{_fmt(pv.get('encode_ms'), 1)} ms. {_why(pv)}"]
    k, h = rows.get("keyframes", {}), rows.get("high", {})
    out += ["", f"## Keyframes to video (ViBiDSampler) against image to video, 'high', {meta.get('size')}, "
            f"{meta.get('frames')} frames", "",
            "| mode | status | steps run | s/step | total s (est. for all steps) | peak alloc GiB | notes |",
            "|---|---|---|---|---|---|---|",
            f"| image to video ('high') | {h.get('status')} | {_fmt(h.get('steps_run'))} | "
            f"{_fmt(h.get('s_per_step'), 3)} | {_fmt(h.get('total_est_s'), 1)} | {_fmt(h.get('peak_alloc_gib'))} | "
            f"{_why(h)} |",
            f"| keyframes | {k.get('status')} | {_fmt(k.get('steps_run'))} | {_fmt(k.get('s_per_step'), 3)} | "
            f"{_fmt(k.get('total_est_s'), 1)} | {_fmt(k.get('peak_alloc_gib'))} | "
            + (f"s/step x{_fmt(k['step_ratio_vs_high'])} of image to video" if k.get("step_ratio_vs_high") else "")
            + (f", peak memory x{_fmt(k['peak_ratio_vs_high'])}" if k.get("peak_ratio_vs_high") else "")
            + f". {_why(k)} |"]
    ups = [(name, rows[name]) for name in UPSCALE_ROWS if name in rows]
    if ups:
        out += ["", f"## Upscaling (2x of {meta.get('size')}, 512-px tiles, after a warm-up frame)", "",
                "| network | status | parameters M | s/frame (median) | frames | peak alloc GiB | notes |",
                "|---|---|---|---|---|---|---|"]
        out += [f"| {name} | {r.get('status')} | {_fmt(r.get('parameters_m'))} | {_fmt(r.get('s_per_frame'), 3)} | "
                f"{_fmt(r.get('frames'))} | {_fmt(r.get('peak_alloc_gib'))} | {_why(r)} |" for name, r in ups]
    out += ["", "## Parts", "", "| part | status | started at +s | took s | note |", "|---|---|---|---|---|"]
    for name, p in data["parts"].items():
        out.append(f"| {name} | {p.get('status')} | {_fmt(p.get('start_s'), 1)} | {_fmt(p.get('took_s'), 1)} | "
                   f"{p.get('note', '')} |")
    if data["notes"] or data["errors"]:
        out += ["", "## Notes and errors", ""] + [f"- {n}" for n in data["notes"]]
        out += [f"- {k}: {v.strip().splitlines()[-1][:300]}" for k, v in data["errors"].items() if v]
    return "\n".join(out) + "\n"


def speed_options_markdown(rows: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """The speed options against `high`: feature caching (speed-up, fidelity) and the 4-step lane (end to end)."""
    lane, fast = rows.get("lane", {}), rows.get("fast", {})
    cache_lines = []
    for index, (row, (interval, branch)) in enumerate(CACHE_ROWS.items()):
        c = rows.get(row, {})
        which = "DeepCache's SVD setting, the default" if index == 0 else "the earlier default"
        cache_lines.append(
            f"| feature cache (interval {interval}, branch {branch}: {which}) | {c.get('status')} | "
            f"{_fmt(c.get('steps_run'))} | {_fmt((c.get('app_timings') or {}).get('denoise_s'))} | "
            f"{_fmt(c.get('total_s'), 1)} | {_fmt(c.get('denoise_speedup'))} / {_fmt(c.get('speedup_vs_high'))} | "
            f"{_fmt(c.get('psnr_vs_high_db'), 1)} | {_fmt(c.get('ssim_vs_high'), 3)} | "
            f"{_fmt(c.get('peak_alloc_gib'))} | {_why(c)} |")
    return ["", f"## Speed options against 'high' ({meta.get('frames')} frames, {meta.get('size')})", "",
            "| option | status | steps | denoise s | total s | speed-up vs high (denoise / end to end) | PSNR dB vs "
            "high | SSIM vs high | peak alloc GiB | notes |", "|---|---|---|---|---|---|---|---|---|---|",
            *cache_lines,
            f"| AnimateLCM lane ({LANE_STEPS} steps, guidance 1) vs {meta.get('steps')}-step high | "
            f"{lane.get('status')} | {_fmt(lane.get('steps_run'))} | "
            f"{_fmt((lane.get('app_timings') or {}).get('denoise_s'))} | {_fmt(lane.get('total_s'), 1)} | "
            f"{_fmt(lane.get('denoise_speedup'))} / {_fmt(lane.get('speedup_vs_high'))} | | | "
            f"{_fmt(lane.get('peak_alloc_gib'))} | {_why(lane)} |",
            f"| AnimateLCM lane on 'fast' (compiled) | {fast.get('status') if 'lane_total_s' in fast else 'not run'}"
            f" | {LANE_STEPS if 'lane_total_s' in fast else ''} | | {_fmt(fast.get('lane_total_s'), 1)} | | | | | "
            f"{fast.get('lane_note') or ''} |",
            "", "Random weights (no --svd-model): timings hold, PSNR/SSIM do not say how real weights fare (a random "
            "UNet lacks the slowly changing deep features caching relies on), and the lane's frames are noise."]


class Report:
    """results.json + summary.md in `out`, rewritten after every part; progress lines stamped with the clock and the
    seconds since `t0` (also appended to out/progress.log)."""

    def __init__(self, out: Path, t0: float, budget_s: float, tag: str = "") -> None:
        self.out, self.t0, self.budget_s, self.tag = out, t0, budget_s, tag
        out.mkdir(parents=True, exist_ok=True)
        (out / "progress.log").write_text("")
        self.data: dict[str, Any] = {"meta": {"budget_s": budget_s, "stopped": None, "done": False}, "rows": {},
                                     "parts": {}, "notes": [], "errors": {}, "headline": None}
        self._lock = threading.Lock()

    def elapsed(self) -> float:
        return time.time() - self.t0

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def log(self, message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')} +{self.elapsed():.1f}s] {self.tag}{message}"
        print(line, flush=True)
        with open(self.out / "progress.log", "a") as f:
            f.write(line + "\n")

    def note(self, message: str) -> None:
        self.data["notes"].append(message)
        self.log("note: " + message)

    def save(self) -> None:
        with self._lock:
            self.data["meta"]["wall_s"] = self.elapsed()
            for _ in range(5):  # the watchdog thread may catch a dict mid-update: then try again
                try:
                    derive(self.data)
                    texts = {"results.json": json.dumps(self.data, indent=2, default=str),
                             "summary.md": render_markdown(self.data)}
                    break
                except RuntimeError:
                    time.sleep(0.05)
            else:
                return
            for name, text in texts.items():
                tmp = self.out / (name + ".tmp")
                tmp.write_text(text)
                os.replace(tmp, self.out / name)


def build_full_size_sdxl(device: str, dtype: object) -> object:
    """SDXL base 1.0's published architecture with random weights, built on `device` (UNet 2.57 B, text encoders
    123 M + 695 M, VAE 84 M)."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from svd_demo_testing.tiny_models import offline_clip_tokenizer

    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(
            sample_size=128, in_channels=4, out_channels=4, layers_per_block=2,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(320, 640, 1280), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
            transformer_layers_per_block=(1, 2, 10), use_linear_projection=True, addition_embed_type="text_time",
            addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816).to(dtype)
        vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                            up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4,
                            sample_size=1024, scaling_factor=0.13025, force_upcast=True).to(dtype)
        # eos_token_id 2: the pooled output is taken at the argmax id's position (the offline tokenizer's eos is the
        # largest id it produces)
        common = {"vocab_size": 49408, "max_position_embeddings": 77, "bos_token_id": 0, "eos_token_id": 2,
                  "pad_token_id": 1}
        text_encoder = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                                    num_attention_heads=12, hidden_act="quick_gelu",
                                                    projection_dim=768, **common)).to(dtype)
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(
            hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
            hidden_act="gelu", projection_dim=1280, **common)).to(dtype)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = offline_clip_tokenizer(Path(tmp) / "t1")
        tokenizer_2 = offline_clip_tokenizer(Path(tmp) / "t2")
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       interpolation_type="linear", num_train_timesteps=1000,
                                       prediction_type="epsilon", steps_offset=1, timestep_spacing="leading",
                                       use_karras_sigmas=False)
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler,
                                     force_zeros_for_empty_prompt=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


class ProfilesBench:
    """The parts of the profiles bench, run in PART_ORDER against one time budget."""

    def __init__(self, config: BenchConfig, report: Report, parts: list[str], *, child: bool = False,
                 compare_frames: str | None = None) -> None:
        self.c, self.r, self.parts = config, report, parts
        self.child, self.compare_frames = child, compare_frames
        self.ops = DeviceOps(config.device)
        self.rows: dict[str, dict[str, Any]] = report.data["rows"]
        for name, part in row_parts(config.caps_gb).items():
            asked = part in parts
            self.rows[name] = {"part": part, "status": NOT_RUN if asked else "skipped",
                               "reason": "not reached" if asked else "not in --parts"}
        self.pipe: Any = None
        self.broken = False
        self.profile: str | None = None  # the memory plan the SVD pipeline is in now
        self.ctx = 0  # bytes of device memory outside the allocator (CUDA context, workspaces)
        gpu = config.gpu
        self.s_step, self.fixed, self.build_s = (1.0, 8.0, 20.0) if gpu else (0.3, 0.5, 3.0)  # refined as measured
        self.high_frames: np.ndarray | None = None
        self.child_proc: subprocess.Popen | None = None
        self.part, self.part_since = "setup", time.time()
        self.cache: Any = None
        self.image: Any = None
        self.dtype: Any = None
        c = config
        if c.svd_model not in ("", "random"):
            model = short = c.svd_model
        elif gpu:
            model, short = "SVD-XT and SDXL architectures, random weights (nothing downloaded)", "SVD-XT"
        else:
            model, short = "tiny random-weight SVD and SDXL (the tests' configs)", "tiny SVD"
        report.data["meta"].update(
            command=" ".join(["python -m benchmarks.gpu", *sys.argv[1:]]), device=c.device, dtype=c.dtype, model=model,
            svd=short, size=f"{c.width}x{c.height}", frames=c.frames, steps=c.steps, few_steps=c.few_steps,
            sdxl_steps=c.sdxl_steps, parts=parts, child=child, gpu="CUDA GPU" if gpu else "CPU",
            started=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(report.t0)))

    # -- budget ---------------------------------------------------------------------------------------------------

    def reserve(self) -> float:
        """Seconds kept back for the requested parts after the current one."""
        later = PART_ORDER[PART_ORDER.index(self.part) + 1:] if self.part in PART_ORDER else PART_ORDER
        return float(sum(self.c.part_min_s[p] for p in later if p in self.parts))

    def estimate(self, profile: str, steps: int) -> float:
        return self.fixed * FIXED_FACTOR[profile] + steps * self.s_step * STEP_FACTOR[profile]

    def fits(self, row: str, need: float, what: str, *, needs_svd: bool = True) -> bool:
        """Whether `need` seconds (plus building SVD if due) fit the time left minus the reserve; else skip `row`."""
        if needs_svd and (self.pipe is None or self.broken):
            need += self.build_s
        left, reserve = max(0.0, self.r.left()), self.reserve()
        if need <= left - reserve:
            return True
        self.skip(row, f"not enough time: {what} need ~{need:.0f} s; {left:.0f} s were left and {reserve:.0f} s "
                       "kept for the parts after it")
        return False

    def steps_that_fit(self, cost: Callable[[int], float], lo: int, hi: int) -> int:
        """The most steps in (hi, 15, 10, 6, lo) whose `cost` fits the time left minus the reserve, or 0."""
        room = self.r.left() - self.reserve()
        for steps in sorted({hi, 15, 10, 6, lo}, reverse=True):
            if lo <= steps <= hi and cost(steps) <= room:
                return steps
        return 0

    # -- rows ------------------------------------------------------------------------------------------------------

    def skip(self, row: str, reason: str) -> None:
        self.rows[row].update(status="skipped", reason=reason)
        self.r.log(f"{row}: skipped: {reason}")

    def set_row(self, row: str, record: dict[str, Any]) -> None:
        record = {k: v for k, v in record.items() if not k.startswith("_")}
        if record.get("status") == "ok":
            record["reason"] = None
        self.rows[row].update(record)

    def log_run(self, row: str, r: dict[str, Any]) -> None:
        peaks = (f", peak alloc {r['peak_alloc_gib']:.2f} / reserved {r['peak_reserved_gib']:.2f} GiB"
                 if "peak_alloc_gib" in r else "")
        self.r.log(f"{row}: {r.get('status')}{' (' + r['reason'] + ')' if r.get('reason') else ''}, "
                   f"{r.get('steps_run', '?')} steps, total {_fmt(r.get('total_s'), 1)} s"
                   f"{' (extrapolated: ' + _fmt(r.get('total_est_s'), 1) + ' s)' if r.get('extrapolated') else ''}, "
                   f"s/step {_fmt(r.get('s_per_step'), 3)}, decode {_fmt(r.get('decode_s'))} s{peaks}"
                   f"{'; ' + r['changes'] if r.get('changes') else ''}")

    # -- set-up and the pipeline --------------------------------------------------------------------------------

    def setup(self) -> None:
        import diffusers
        import torch
        import transformers
        from PIL import Image

        from svd_demo.core.settings import Settings
        from svd_demo.engine.memory import resolve_dtype
        from svd_demo.engine.pipelines import PipelineCache

        try:
            import accelerate

            accelerate_version = accelerate.__version__
        except ImportError:
            accelerate_version = None
        c = self.c
        self.dtype = resolve_dtype(c.dtype, c.device)
        self.cache = PipelineCache(Settings(device=c.device), device=c.device)
        self.image = Image.new("RGB", (c.width, c.height), (110, 90, 60))
        meta = self.r.data["meta"]
        meta.update(dtype=str(self.dtype).replace("torch.", ""), torch=torch.__version__,
                    diffusers=diffusers.__version__, diffusers_file=diffusers.__file__,
                    transformers=transformers.__version__,
                    accelerate=accelerate_version, python=sys.version.split()[0],
                    PYTORCH_CUDA_ALLOC_CONF=os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""), **self.ops.describe())
        if not c.gpu:
            # Control flow only: one thread keeps the tiny runs from stalling against other processes on shared
            # cores (two threads on a loaded 2-core machine made single steps 5-20x slower, at random).
            torch.set_num_threads(1)
            meta["cpu_threads"] = 1
        if c.gpu:
            torch.empty(1, device=c.device)  # create the CUDA context, then measure it
            self.ctx = self.ops.context_bytes()
        meta["ctx_gib"] = self.ctx / GIB
        self.r.log(f"bench on {meta['gpu']} ({c.device}, {meta['dtype']}): {meta['model']}; {meta['size']}, "
                   f"{c.frames} frames, {c.steps} steps; budget {self.r.budget_s:g} s, {self.r.left():.0f} s left; "
                   f"parts {','.join(self.parts)}")

    def build_svd(self) -> Any:
        import torch

        c = self.c
        if c.svd_model not in ("", "random"):
            from diffusers import StableVideoDiffusionPipeline

            pipe = StableVideoDiffusionPipeline.from_pretrained(c.svd_model, dtype=self.dtype)
        elif c.gpu:
            pipe = build_full_size_svd(c.device, self.dtype)
        else:
            from svd_demo_testing.tiny_models import build_tiny_svd

            pipe = build_tiny_svd().to(self.dtype)
        pipe.set_progress_bar_config(disable=True)
        # The device image's transformers may pick another CLIPImageProcessor backend (torchvision) than the dev
        # machines (PIL): call it exactly as the SVD pipeline does, and fall back to the PIL one if that fails.
        try:
            pipe.feature_extractor(images=torch.rand(1, 3, 224, 224), do_normalize=True, do_center_crop=False,
                                   do_resize=False, do_rescale=False, return_tensors="pt")
        except Exception as exc:  # noqa: BLE001  (any failure here is reported and worked around)
            self.r.note(f"the CLIP image processor failed as the SVD pipeline calls it ({type(exc).__name__}: {exc});"
                        " using CLIPImageProcessorPil instead")
            from transformers import CLIPImageProcessorPil

            pipe.feature_extractor = CLIPImageProcessorPil(**pipe.feature_extractor.to_dict())
        return pipe

    def ensure_pipe(self) -> None:
        """The SVD pipeline, built on first use and rebuilt when a failure may have left it half-moved."""
        if self.pipe is not None and not self.broken:
            return
        if self.broken:
            self.r.note(f"the SVD pipeline was left broken before part {self.part}: rebuilt from scratch")
        if self.pipe is not None:
            with contextlib.suppress(Exception):
                self.pipe.remove_all_hooks()
            self.pipe = None
        self.ops.empty_cache()
        start = time.perf_counter()
        self.pipe = self.build_svd()
        self.ops.sync()
        self.build_s = time.perf_counter() - start
        self.broken, self.profile = False, None
        self.r.data["meta"].setdefault("svd_build_s", self.build_s)
        self.r.log(f"SVD pipeline built on {self.c.device} in {self.build_s:.1f} s; {self.ops.allocated_gib():.2f} "
                   "GiB allocated")

    def use(self, profile: str) -> None:
        from svd_demo.engine.memory import PLANS, apply_plan

        if self.profile != profile:
            self.profile = None
            apply_plan(self.pipe, PLANS[profile], self.c.device)
            self.profile = profile

    def park(self) -> None:
        """SVD weights off the GPU (model offload keeps them in CPU memory) and the allocator's cache emptied; a
        broken pipeline is dropped instead (the next part that needs one builds it again)."""
        if self.pipe is not None and not self.broken:
            try:
                self.use("balanced")
            except Exception as exc:  # noqa: BLE001  a pipeline that cannot move is thrown away
                self.r.note(f"parking the SVD pipeline failed ({type(exc).__name__}: {str(exc)[:150]}): dropped")
                self.broken = True
        if self.pipe is not None and self.broken:
            with contextlib.suppress(Exception):
                self.pipe.remove_all_hooks()
            self.pipe, self.profile = None, None
        self.ops.empty_cache()

    # -- one run -------------------------------------------------------------------------------------------------

    def timed(self, call: Callable[[Callable[[], None]], dict[str, Any]], steps: int, target: int, *,
              breaks_svd: bool = True) -> dict[str, Any]:
        """Run `call(mark)` between synchronizations, with the device's peak statistics reset first; `call` calls
        `mark()` at the end of every denoising step and returns fields for the record. Failures are results."""
        from svd_demo.core.errors import UserFacingError

        marks: list[float] = []

        def mark() -> None:
            self.ops.sync()
            marks.append(time.perf_counter())

        rec: dict[str, Any] = {}
        self.ops.reset_peaks()
        self.ops.sync()
        start = time.perf_counter()
        try:
            rec.update(call(mark))
            self.ops.sync()
            rec["status"] = "ok"
        except UserFacingError as exc:  # out of memory after every retry, or NaN frames
            self.ops.sync()
            if "invalid values" in str(exc):  # to_uint8's NaN check comes after the whole run: the timing holds
                rec.update(status="ok", nan_output=True)
            else:
                rec.update(status="failed", reason=f"{type(exc).__name__}: {exc}"[:300])
        except Exception as exc:  # noqa: BLE001  a raw OOM, a broken profile switch, anything: a result here
            rec.update(status="failed", reason=f"{type(exc).__name__}: {str(exc).splitlines()[0][:250]}",
                       traceback=traceback.format_exc()[-3000:])
            self.broken = self.broken or breaks_svd
        end = time.perf_counter()
        rec.update(step_stats(marks, start, end, steps, target), **self.ops.peaks())
        if "peak_reserved_gib" in rec:
            rec["card_need_gib"] = rec["peak_reserved_gib"] + self.ctx / GIB
        return rec

    def prepare(self, what: str, fn: Callable[[], None]) -> dict[str, Any] | None:
        """A profile switch before a timed run (not timed itself): None, or the failure as a record."""
        try:
            fn()
            self.ops.sync()
            return None
        except Exception as exc:  # noqa: BLE001  e.g. out of memory under a cap, the inference-tensor trap
            self.broken = True
            return {"status": "failed", "reason": f"{what}: {type(exc).__name__}: {str(exc).splitlines()[0][:250]}",
                    "traceback": traceback.format_exc()[-3000:]}

    def app_run(self, profile: str, steps: int, *, frames: int | None = None, keep_frames: bool = False,
                target: int | None = None, keyframes: bool = False,
                cache_setting: tuple[int, int] | None = None, **options: Any) -> dict[str, Any]:
        """One clip through the app's own path (generate_frames) in `profile`; `options` are VideoParams fields,
        `cache_setting` the feature cache's (interval, branch) when `feature_cache` is on. With `keyframes`, the
        keyframes sampler from this image to a second one (two UNet halves a step)."""
        from svd_demo.core.params import VideoParams
        from svd_demo.engine.image_to_video import generate_frames
        from svd_demo.engine.pipelines import LoadedPipeline

        start = time.perf_counter()
        failed = self.prepare(f"switching to '{profile}'", lambda: self.use(profile))
        if failed:
            return failed
        apply_s = time.perf_counter() - start
        loaded = LoadedPipeline(kind="svd", model_ref=self.c.svd_model, pipe=self.pipe, device=self.c.device,
                                dtype=self.dtype, profile=profile, load_seconds=0.0, revision=None,
                                random_weights=self.c.svd_model in ("", "random"), current_profile=profile)
        params = VideoParams(num_frames=frames or self.c.frames, num_inference_steps=steps, seed=0,
                             randomize_seed=False, fps=7, resolution=max(self.c.width, self.c.height), **options)

        source, sampler = self.image, None
        if keyframes:
            from PIL import Image

            from svd_demo.engine.keyframes import Keyframes, denoise_keyframes

            source = Keyframes(self.image, Image.new("RGB", self.image.size, (40, 70, 130)))
            sampler = denoise_keyframes

        def call(mark: Callable[[], None]) -> dict[str, Any]:
            caching = {}
            if cache_setting is not None:
                caching = {"cache_interval": cache_setting[0], "cache_branch": cache_setting[1]}
            result = generate_frames(self.cache, loaded, source, params, sampler=sampler,
                                     progress=lambda fraction, text: text.startswith(("Denoising step", "Step "))
                                     and mark(), **caching)
            return {"profile_used": result.memory_profile, "decode_chunk": result.decode_chunk_size,
                    "changes": "; ".join(result.memory_changes), "app_timings": result.timings,
                    **({"_frames": result.frames} if keep_frames else {})}

        return {"profile": profile, "apply_plan_s": apply_s, **self.timed(call, steps, target or self.c.steps)}

    def recipe_run(self, steps: int) -> dict[str, Any]:
        """The plain diffusers recipe: fp16, enable_model_cpu_offload, default decode_chunk_size (all frames)."""
        import torch

        pipe, c = self.pipe, self.c

        def offload() -> None:
            self.profile = None
            pipe.remove_all_hooks()
            pipe.to("cpu")
            # On a CPU, "cpu:0" takes the offload code path a GPU takes (the hooks copy the weights at every move).
            pipe.enable_model_cpu_offload(device=c.device if c.gpu else "cpu:0")

        failed = self.prepare("enable_model_cpu_offload", offload)
        if failed:
            return failed

        def call(mark: Callable[[], None]) -> dict[str, Any]:
            out = pipe(self.image, height=c.height, width=c.width, num_frames=c.frames, num_inference_steps=steps,
                       generator=torch.Generator("cpu").manual_seed(0), output_type="np",
                       callback_on_step_end=lambda p, i, t, kwargs: mark() or kwargs)
            return {"nan_output": not bool(np.isfinite(np.asarray(out.frames[0])).all())}

        rec = {"decode_chunk": c.frames, **self.timed(call, steps, c.steps)}
        with contextlib.suppress(Exception):
            pipe.remove_all_hooks()
        return rec

    def still_run(self, loaded: Any, steps: int) -> dict[str, Any]:
        """One SDXL still through the app's own path (generate_still)."""
        from svd_demo.core.params import ImageParams
        from svd_demo.engine.text_to_image import generate_still

        params = ImageParams(prompt="a lighthouse at dusk, waves", sdxl_steps=steps, sdxl_guidance_scale=5.0,
                             orientation="landscape", seed=0, randomize_seed=False,
                             resolution=max(self.c.width, self.c.height))

        def call(mark: Callable[[], None]) -> dict[str, Any]:
            still = generate_still(loaded, params,
                                   progress=lambda fraction, text: text.startswith("Denoising step") and mark())
            return {"size": "x".join(map(str, still.image.size))}

        return self.timed(call, steps, self.c.sdxl_steps, breaks_svd=False)

    # -- the parts -----------------------------------------------------------------------------------------------

    def part_warmup(self) -> None:
        if not self.fits("warmup", self.estimate("high", 2), "2 steps of 'high'"):
            return
        self.ensure_pipe()
        r = self.app_run("high", 2, target=2)
        self.set_row("warmup", r)
        self.log_run("warmup", r)
        if r["status"] != "ok":
            return
        self.s_step = r["s_per_step"] or self.s_step
        self.fixed = max(self.fixed / 4, r["total_s"] - 2 * self.s_step)
        if self.c.gpu:  # cuBLAS/cuDNN/attention kernels load lazily: the context grows after the first real run
            self.ctx = max(self.ctx, self.ops.context_bytes())
            self.r.data["meta"]["ctx_gib"] = self.ctx / GIB

    def part_baseline(self) -> None:
        # The headline's denominator: the full step count or nothing.
        steps = self.c.steps
        if not self.fits("baseline", self.estimate("baseline", 1) + self.estimate("baseline", steps),
                         f"a 1-step warm-up and {steps} steps of the diffusers recipe"):
            return
        self.ensure_pipe()
        warm = self.recipe_run(1)
        if warm["status"] != "ok":
            self.set_row("baseline", {**warm, "reason": f"warm-up failed: {warm.get('reason')}"})
            return
        r = self.recipe_run(steps)
        r["warmup_s"] = warm["total_s"]
        self.set_row("baseline", r)
        self.log_run("baseline", r)

    def profile_part(self, profile: str, *, lo: int | None = None, hi: int | None = None,
                     keep_frames: bool = False, row: str | None = None) -> dict[str, Any] | None:
        """A 1-step warm-up, then as many steps as the time allows between `lo` and `hi` (extrapolated if < all).

        The frames are compared with `high`'s (PSNR) when both ran every step with the same seed."""
        lo, hi, row = lo or self.c.few_steps, hi or self.c.steps, row or profile
        if not self.fits(row, self.estimate(profile, 1) + self.estimate(profile, lo),
                         f"a 1-step warm-up and {lo} steps of '{profile}'"):
            return None
        self.ensure_pipe()
        warm = self.app_run(profile, 1)
        if warm["status"] != "ok":
            self.set_row(row, {**warm, "reason": f"warm-up failed: {warm.get('reason')}"})
            return None
        per_step = self.s_step * STEP_FACTOR[profile]
        steps = self.steps_that_fit(lambda n: warm["total_s"] + (n - 1) * per_step, lo, hi)
        if not steps:
            self.skip(row, f"not enough time after its warm-up ({warm['total_s']:.1f} s) for {lo} steps")
            return None
        r = self.app_run(profile, steps, keep_frames=True)
        r["warmup_s"] = warm["total_s"]
        frames = r.get("_frames") if keep_frames else r.pop("_frames", None)
        if profile != "high":
            r["psnr_vs_high_db"] = None
            if frames is not None and self.high_frames is not None and steps == self.c.steps:
                r["psnr_vs_high_db"] = psnr_db(frames, self.high_frames)
        self.set_row(row, r)
        self.log_run(row, r)
        return r

    def preview_cost(self) -> dict[str, Any]:
        """The live preview's cost (svd_demo/engine/preview.py): `latents_to_rgb` on latents of this run's shape on the
        device, synchronized, median of 20, and as a share of high's step; the WebP encoding (on the UI's thread)."""
        import torch

        from svd_demo.engine.preview import PREVIEW_EVERY_STEPS, latents_to_rgb, write_preview

        latents = torch.randn(1, self.c.frames, 4, self.c.height // 8, self.c.width // 8, device=self.c.device,
                              dtype=self.dtype)
        latents_to_rgb(latents)
        times = []
        for _ in range(20):
            self.ops.sync()
            start = time.perf_counter()
            frames = latents_to_rgb(latents)  # ends with a copy to the CPU: synchronizes like the callback
            times.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            write_preview(frames, Path(tmp) / "p.webp")
            encode_s = time.perf_counter() - start
        rec: dict[str, Any] = {"status": "ok", "preview_ms": 1000 * statistics.median(times),
                               "encode_ms": 1000 * encode_s, "every_steps": PREVIEW_EVERY_STEPS}
        step = self.rows["high"].get("s_per_step")
        if step:
            rec["pct_of_a_step"] = rec["preview_ms"] / 10 / step
            rec["pct_per_step"] = rec["pct_of_a_step"] / PREVIEW_EVERY_STEPS  # the 5 % limit applies to this
        return rec

    def part_high(self) -> None:
        r = self.profile_part("high", keep_frames=True)
        if r and r["status"] == "ok":
            try:
                self.set_row("preview", self.preview_cost())
            except Exception as exc:  # noqa: BLE001  a result like any other
                self.set_row("preview", {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:300]})
        else:
            self.skip("preview", f"measured against 'high', which was not: {self.rows['high'].get('reason')}")
        if r and r["status"] == "ok":
            self.s_step = r["s_per_step"] or self.s_step
            self.fixed = max(self.fixed / 4, r["total_s"] - r["steps_run"] * self.s_step)
            if r["steps_run"] == self.c.steps:
                self.high_frames = r.get("_frames")

    def part_keyframes(self) -> None:
        """Keyframes to video under 'high' at the same size as image to video: s/step and peak memory, against
        high's. Each step is two guided UNet passes (forward and backward), so about twice high's s/step."""
        lo, hi = min(3, self.c.steps), self.c.steps
        cost = 2.0 * self.s_step
        if not self.fits("keyframes", self.fixed + 2 * cost + lo * cost, f"a 1-step warm-up and {lo} keyframes steps"):
            return
        self.ensure_pipe()
        warm = self.app_run("high", 1, target=1, keyframes=True)
        if warm["status"] != "ok":
            self.set_row("keyframes", {**warm, "reason": f"warm-up failed: {warm.get('reason')}"})
            return
        steps = self.steps_that_fit(lambda n: warm["total_s"] + (n - 1) * cost, lo, hi)
        if not steps:
            self.skip("keyframes", f"not enough time after its warm-up ({warm['total_s']:.1f} s) for {lo} steps")
            return
        r = self.app_run("high", steps, keyframes=True)
        r["warmup_s"] = warm["total_s"]
        high = self.rows["high"]
        if r["status"] == "ok" and high.get("status") == "ok":
            if r.get("s_per_step") and high.get("s_per_step"):
                r["step_ratio_vs_high"] = r["s_per_step"] / high["s_per_step"]
            if r.get("peak_alloc_gib") and high.get("peak_alloc_gib"):
                r["peak_ratio_vs_high"] = r["peak_alloc_gib"] / high["peak_alloc_gib"]
        self.set_row("keyframes", r)
        self.log_run("keyframes", r)

    def part_cache(self) -> None:
        """'high' with feature caching, one row per CACHE_ROWS setting, against 'high': the speed-up, and the
        frames' PSNR/SSIM against high's."""
        steps, high = self.c.steps, self.rows["high"]
        first, setting = next(iter(CACHE_ROWS.items()))
        if not self.fits(first, self.estimate("high", 1) + self.estimate("high", steps),
                         f"a 1-step warm-up and {steps} cached steps of 'high'"):
            for row in CACHE_ROWS:
                if row != first:
                    self.skip(row, self.rows[first]["reason"])
            return
        self.ensure_pipe()
        warm = self.app_run("high", 1, target=1, feature_cache=True, cache_setting=setting)
        if warm["status"] != "ok":
            for row in CACHE_ROWS:
                self.set_row(row, {**warm, "reason": f"warm-up failed: {warm.get('reason')}"})
            return
        for row, setting in CACHE_ROWS.items():
            if row != first and not self.fits(row, self.estimate("high", steps), f"{steps} cached steps of 'high'"):
                continue
            r = self.app_run("high", steps, keep_frames=True, feature_cache=True, cache_setting=setting)
            frames = r.pop("_frames", None)
            r["warmup_s"] = warm["total_s"]
            r["interval"], r["branch"] = setting
            if r["status"] == "ok" and high.get("status") == "ok" and high.get("steps_run") == steps:
                r["speedup_vs_high"] = high["total_s"] / r["total_s"]
                r["denoise_speedup"] = high["app_timings"]["denoise_s"] / r["app_timings"]["denoise_s"]
                if frames is not None and self.high_frames is not None and frames.shape == self.high_frames.shape:
                    from benchmarks.interpolation import psnr, ssim

                    r["psnr_vs_high_db"] = float(np.mean([psnr(a, b) for a, b in zip(frames, self.high_frames,
                                                                                       strict=True)]))
                    r["ssim_vs_high"] = float(np.mean([ssim(a, b) for a, b in zip(frames, self.high_frames,
                                                                                    strict=True)]))
            self.set_row(row, r)
            self.log_run(row, r)

    def lane_run(self, profile: str, steps: int) -> dict[str, Any]:
        """AnimateLCM's consistency sampler, guidance 1, on the pipeline's UNet (the distilled one with real
        weights; the same architecture with random ones, which times the lane exactly)."""
        from svd_demo.engine.schedulers import AnimateLCMScheduler

        original = self.pipe.scheduler
        self.pipe.scheduler = AnimateLCMScheduler()
        try:
            return self.app_run(profile, steps, target=steps, min_guidance_scale=1.0, max_guidance_scale=1.0,
                                motion_bucket_id=80)
        finally:
            self.pipe.scheduler = original

    def part_lane(self) -> None:
        """The 4-step lane end to end on 'high', against high's full step count (the same UNet architecture)."""
        high = self.rows["high"]
        if not self.fits("lane", self.estimate("high", 1) + self.estimate("high", LANE_STEPS),
                         f"a 1-step warm-up and {LANE_STEPS} steps of the lane"):
            return
        self.ensure_pipe()
        warm = self.lane_run("high", 1)  # guidance 1 halves the UNet batch: new shapes, warmed up once
        if warm["status"] != "ok":
            self.set_row("lane", {**warm, "reason": f"warm-up failed: {warm.get('reason')}"})
            return
        r = self.lane_run("high", LANE_STEPS)
        r["warmup_s"] = warm["total_s"]
        if r["status"] == "ok" and high.get("status") == "ok" and high.get("steps_run") == self.c.steps:
            r["speedup_vs_high"] = high["total_s"] / r["total_s"]
            r["denoise_speedup"] = high["app_timings"]["denoise_s"] / r["app_timings"]["denoise_s"]
        self.set_row("lane", r)
        self.log_run("lane", r)

    def part_balanced(self) -> None:
        self.profile_part("balanced")

    def part_low(self) -> None:
        self.profile_part("low")

    def part_minimal(self) -> None:
        # A few steps: leaf level moves one layer at a time; s/step is extrapolated to all steps (no PSNR then).
        self.profile_part("minimal", lo=self.c.few_steps, hi=self.c.few_steps)

    def part_int8(self) -> None:
        """`low` with an int8 UNet. The random-weight UNet is quantized in place with torchao's `quantize_` and the
        config object diffusers' `TorchAoConfig` applies at load (`--quantize int8` loads through
        `from_pretrained`); it cannot be undone, so this part comes last and drops the pipeline afterwards."""
        from svd_demo.engine.memory import TORCHAO_PIN

        if not self.fits("int8", self.estimate("low", 1) + self.estimate("low", self.c.few_steps),
                         f"a 1-step warm-up and {self.c.few_steps} steps of 'low' with an int8 UNet"):
            return
        try:
            from torchao.quantization import Int8WeightOnlyConfig, quantize_
        except ImportError:
            self.skip("int8", f"torchao is not installed (pip install {TORCHAO_PIN})")
            return
        self.ensure_pipe()
        failed = self.prepare("quantizing the UNet to int8", lambda: (
            self.use("balanced"), quantize_(self.pipe.unet, Int8WeightOnlyConfig())))  # weights in CPU memory first
        if failed:
            self.set_row("int8", failed)
            return
        self.profile = None
        try:
            self.profile_part("low", row="int8")
        finally:
            self.broken = True  # nothing after this may reuse an int8 UNet as if it were the fp16 one

    def part_caps(self) -> None:
        from svd_demo.engine.memory import choose_profile

        few = self.c.few_steps
        if not self.c.caps_gb:
            return
        # The pick for a CUDA card of that size, also when this run is a CPU smoke run.
        card_device = self.c.device if self.c.gpu else "cuda:0"
        if not self.c.gpu:
            self.r.note("caps: no memory cap on a CPU; `auto`'s picks are computed and the runs check control flow")
        runs: list[tuple[str, int, str | None]] = [(f"cap-{gb}GB", gb, None) for gb in self.c.caps_gb]
        top = max(self.c.caps_gb)
        runs.append((f"cap-{top}GB-high", top, "high"))
        for row, gb, forced in runs:
            total = gb * GIB
            free = max(0, total - self.ctx)
            auto = choose_profile("auto", card_device, (total, free))
            if forced and self.rows[f"cap-{top}GB"].get("auto") == "high":
                self.skip(row, "auto already picks high on this card")
                continue
            self.rows[row].update(card_gb=gb, total_gib=total / GIB, free_gib=free / GIB, auto=auto,
                                  sdxl_auto=choose_profile("auto", card_device, (total, free), "sdxl"))
            profile = forced or auto
            if not self.fits(row, self.estimate(profile, few), f"{few} steps of '{profile}'"):
                self.r.save()
                continue
            self.ensure_pipe()
            self.park()  # weights off the GPU and the cache emptied before the cap goes on, as on a fresh card
            with self.ops.memory_cap(free):
                r = self.app_run(profile, few, target=few)  # a completion check: nothing extrapolated
            r["ran"] = profile
            self.set_row(row, r)
            self.r.log(f"{row}: auto picks {auto} (SDXL {self.rows[row]['sdxl_auto']}); ran {profile}:")
            self.log_run(row, r)
            self.r.save()

    def part_sdxl(self) -> None:
        from svd_demo.engine.memory import PLANS, apply_plan
        from svd_demo.engine.pipelines import LoadedPipeline

        c = self.c
        if not self.fits("sdxl", c.part_min_s["sdxl"], "building SDXL, a 2-step warm-up and the timed still",
                         needs_svd=False):
            return
        self.park()  # SVD's weights off the GPU: SDXL measured alone
        start = time.perf_counter()
        if c.gpu:
            sd = build_full_size_sdxl(c.device, self.dtype)
        else:
            from svd_demo_testing.tiny_models import build_tiny_sdxl

            sd = build_tiny_sdxl().to(self.dtype)
            sd.set_progress_bar_config(disable=True)
        apply_plan(sd, PLANS["high"], c.device)
        self.ops.sync()
        build_s = time.perf_counter() - start
        loaded = LoadedPipeline(kind="sdxl", model_ref="random", pipe=sd, device=c.device, dtype=self.dtype,
                                profile="high", load_seconds=build_s, revision=None, random_weights=True,
                                current_profile="high")
        try:
            warm = self.still_run(loaded, 2)
            if warm["status"] != "ok":
                self.set_row("sdxl", {**warm, "build_s": build_s, "reason": f"warm-up failed: {warm.get('reason')}"})
                return
            per_step = warm["s_per_step"] or warm["total_s"] / 2
            steps = self.steps_that_fit(lambda n: warm["total_s"] + (n - 2) * per_step, min(c.few_steps, 2),
                                        c.sdxl_steps)
            if not steps:
                self.skip("sdxl", f"not enough time after its warm-up ({warm['total_s']:.1f} s)")
                return
            r = self.still_run(loaded, steps)
            self.set_row("sdxl", {**r, "build_s": build_s, "warmup_s": warm["total_s"], "profile": "high"})
            self.log_run("sdxl", r)
        finally:
            del loaded, sd
            self.ops.empty_cache()

    def part_switch(self) -> None:
        """After an offloaded run, switching to minimal and back must keep the weights (no inference tensors)."""
        if not self.fits("switch", self.estimate("low", 1), "a 1-step 'low' run and two profile switches"):
            return
        self.ensure_pipe()
        r = self.app_run("low", 1, frames=2)
        rec: dict[str, Any] = {"low_run": r["status"]}

        def to_minimal() -> None:
            self.use("minimal")
            rec["inference_params"] = {name: sum(p.is_inference() for p in getattr(self.pipe, name).parameters())
                                       for name in ("image_encoder", "unet", "vae")}

        failed = (self.prepare("switching to minimal", to_minimal) or
                  self.prepare("leaving minimal for high", lambda: self.use("high")))  # the inference-tensor trap
        if failed:
            rec.update(failed)
        elif r["status"] != "ok":
            rec.update(status="failed", reason=f"the low run failed: {r.get('reason')}")
        else:
            rec.update(status="ok")
        if not self.c.gpu:
            rec["note"] = "on a CPU no profile offloads, so this only checks the control flow"
        self.set_row("switch", rec)
        self.r.log(f"switch: {rec['status']}{' (' + rec['reason'] + ')' if rec.get('reason') else ''}; inference "
                   f"tensors while in minimal: {rec.get('inference_params')}")

    def part_upscale(self) -> None:
        """Seconds per frame of each upscaler at 2x of the clip's frame size, loaded by the app's own loader."""
        import torch

        from svd_demo.engine.upscale import DEFAULT_TILE, load_upscaler, upscale_frame
        from svd_demo.engine.upscale.networks import RRDBNet, SRVGGNetCompact
        from svd_demo_testing.tiny_models import save_tiny_upscalers

        c = self.c
        if not self.fits("upscale-animevideov3", c.part_min_s["upscale"], "two networks, a warm-up and "
                         f"{UPSCALE_FRAMES} frames each", needs_svd=False):
            self.skip("upscale-x4plus", self.rows["upscale-animevideov3"]["reason"])
            return
        self.park()  # the SVD weights off the GPU: the upscaler is measured alone, as it runs after a generation
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
                if self.r.left() < 5:
                    self.skip(row, "not enough time left")
                    continue
                upscaler = load_upscaler(str(path), c.device, self.dtype)
                try:
                    upscale_frame(upscaler, frame, 2, tile=DEFAULT_TILE)
                    self.ops.sync()
                    self.ops.reset_peaks()
                    times = []
                    for _ in range(UPSCALE_FRAMES):
                        start = time.perf_counter()
                        upscale_frame(upscaler, frame, 2, tile=DEFAULT_TILE)
                        self.ops.sync()
                        times.append(time.perf_counter() - start)
                    rec = {"status": "ok", "parameters_m": upscaler.parameters / 1e6, "frames": len(times),
                           "s_per_frame": statistics.median(times), "architecture": upscaler.architecture.name,
                           **self.ops.peaks()}
                    if not c.gpu:
                        rec["note"] = "tiny networks on a CPU: control flow only"
                    self.set_row(row, rec)
                    self.r.log(f"{row}: {rec['s_per_frame']:.3f} s/frame, {rec['parameters_m']:.2f} M parameters")
                finally:
                    del upscaler
                    self.ops.empty_cache()
                self.r.save()

    def part_fast(self) -> None:
        """`fast` in a child process with a hard cap: an overrunning compile is killed there, not here."""
        if self.child:
            self.fast_in_process()
            return
        reserve = self.reserve()
        cap = min(self.c.fast_cap_s, self.r.left() - reserve)
        if cap < FAST_MIN_S[self.c.gpu]:
            self.skip("fast", f"only {max(cap, 0):.0f} s could be given to it ({reserve:.0f} s kept for the parts "
                              f"after it); it needs {FAST_MIN_S[self.c.gpu]:.0f} s")
            return
        frames_file = None
        if self.high_frames is not None:
            frames_file = Path(tempfile.mkdtemp(prefix="svd-bench-")) / "high-frames.npy"
            np.save(frames_file, self.high_frames)
        self.park()  # this process's SVD weights off the GPU while the child runs
        child_out = self.r.out / "fast-child"
        shutil.rmtree(child_out, ignore_errors=True)  # never read an earlier run's results
        c = self.c
        budget = self.r.elapsed() + cap - CHILD_MARGIN_S[c.gpu]
        cmd = [sys.executable, "-m", "benchmarks.gpu", "--child", "--parts", "fast",
               "--out", str(child_out), "--t0", repr(self.r.t0), "--budget-s", f"{budget:.1f}",
               "--device", c.device, "--dtype", c.dtype, "--svd-model", c.svd_model, "--width", str(c.width),
               "--height", str(c.height), "--frames", str(c.frames), "--steps", str(c.steps)]
        if frames_file:
            cmd += ["--compare-frames", str(frames_file)]
        self.r.log(f"fast: child process with a hard cap of {cap:.0f} s (its own build, compile warm-up, timed run)")
        rc = run_capped(cmd, cap, started=lambda proc: setattr(self, "child_proc", proc), env=_env_with_repo())
        self.child_proc = None
        exit_text = "killed at the cap" if rc is None else str(rc)
        try:
            child = json.loads((child_out / "results.json").read_text())
            row = child["rows"]["fast"]
            row.pop("part", None)
            if row.get("status") == NOT_RUN:  # started, never finished: its watchdog or the cap stopped it
                row["status"] = "failed"
                row["reason"] = (f"the child was killed at its hard cap of {cap:.0f} s: " if rc is None else "") + \
                    str(child["meta"].get("stopped") or row.get("reason"))
            self.set_row("fast", {**row, "child_exit": exit_text, "child_wall_s": child["meta"].get("wall_s"),
                                  "child_build_s": child["meta"].get("svd_build_s")})
            self.r.data["notes"] += [f"fast child: {n}" for n in child.get("notes", [])]
            self.r.data["errors"].update({f"fast child {k}": v for k, v in child.get("errors", {}).items()})
        except (OSError, ValueError, KeyError) as exc:
            self.set_row("fast", {"status": "failed", "reason": f"the child left no results (exit {exit_text}; "
                                                                f"{type(exc).__name__})", "child_exit": exit_text})
        if frames_file:
            shutil.rmtree(frames_file.parent, ignore_errors=True)
        self.r.log(f"fast (child exit {exit_text}): {self.rows['fast'].get('status')} "
                   f"{self.rows['fast'].get('reason') or ''}")

    def fast_in_process(self) -> None:
        """In the child: compile warm-up (2 steps), then the timed run; frames compared with the parent's `high`."""
        if not self.c.gpu:
            self.skip("fast", "torch.compile of the UNet blocks takes minutes on a CPU: `fast` is measured on GPUs "
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

        self.r.data["meta"]["dynamo_recompile_limit"] = getattr(torch._dynamo.config, "recompile_limit", None)
        if not self.fits("fast", self.estimate("fast", 2) + 30, "building, compiling and 2 warm-up steps"):
            return
        self.ensure_pipe()
        self.rows["fast"]["reason"] = f"compile warm-up started at +{self.r.elapsed():.0f} s, not finished"
        self.r.save()
        before = dict(counters["stats"])
        warm = self.app_run("fast", 2)
        rec: dict[str, Any] = {
            "compile_warmup_s": warm.get("total_s"),
            "dynamo_stats": {k: v - before.get(k, 0) for k, v in counters["stats"].items() if v != before.get(k, 0)},
            "recompile_limit_hits": sum("recompile_limit" in m for m in records),
            "recompile_limit_msgs": [m.splitlines()[0][:200] for m in records if "recompile_limit" in m][:5]}
        self.r.log(f"fast compile warm-up: {warm['status']} in {_fmt(warm.get('total_s'), 1)} s; recompile-limit "
                   f"warnings {rec['recompile_limit_hits']}")
        if warm["status"] != "ok":
            self.set_row("fast", {**warm, **rec, "reason": f"compile warm-up failed: {warm.get('reason')}"})
            return
        per_step = warm["s_per_step"] or self.s_step  # the second warm-up step ran compiled
        steps = self.steps_that_fit(lambda n: self.fixed + n * per_step, self.c.few_steps, self.c.steps)
        if not steps:
            self.set_row("fast", {**rec, "status": "skipped", "reason": "no time left after the compile warm-up"})
            return
        r = self.app_run("fast", steps, keep_frames=True)
        frames = r.pop("_frames", None)
        if frames is not None and self.compare_frames and steps == self.c.steps:
            high = np.load(self.compare_frames)
            if high.shape == frames.shape:
                diff = np.abs(frames.astype(np.int16) - high.astype(np.int16))
                rec.update(max_abs_diff_vs_high=int(diff.max()), mean_abs_diff_vs_high=float(diff.mean()))
        self.set_row("fast", {**r, **rec})
        self.log_run("fast", r)
        # The lane on top of compilation: guidance 1 halves the batch, a new shape the warm-up step compiles.
        # Checked here, not with `fits`: that would mark the measured `fast` row skipped.
        if r["status"] == "ok" and 2 * self.estimate("fast", LANE_STEPS) + 30 <= self.r.left() - self.reserve():
            warm = self.lane_run("fast", 1)
            lane = self.lane_run("fast", LANE_STEPS) if warm["status"] == "ok" else warm
            note = lane.get("reason") or f"compile warm-up {_fmt(warm.get('total_s'), 1)} s"
            self.rows["fast"].update(lane_total_s=lane.get("total_s"), lane_warmup_s=warm.get("total_s"),
                                     lane_note=note)
            self.r.log(f"fast lane: {lane['status']}, {LANE_STEPS} steps in {_fmt(lane.get('total_s'), 1)} s")

    # -- running ---------------------------------------------------------------------------------------------------

    def stop(self, why: str) -> None:
        """The budget ran out (or a signal came): every row not measured says so, results written, exit 3."""
        stopped = f"{why} during part '{self.part}', {time.time() - self.part_since:.0f} s into it"
        self.r.data["meta"]["stopped"] = stopped
        for row in self.rows.values():
            if row["status"] == NOT_RUN:
                row["reason"] = stopped
        if self.child_proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.child_proc.pid, signal.SIGKILL)
        self.r.log(f"STOP: {stopped}; results written to {self.r.out}")
        try:
            self.r.save()
        finally:
            os._exit(3)

    def run_part(self, name: str) -> None:
        if name not in self.parts:
            return
        self.part, self.part_since = name, time.time()
        start = self.r.elapsed()
        self.r.log(f"--- part {name}: {max(0.0, self.r.left()):.0f} s left, {self.reserve():.0f} s kept for later "
                   "parts")
        status = "done"
        try:
            getattr(self, f"part_{name}")()
        except Exception as exc:  # noqa: BLE001  one failed part must not cost the others their results
            self.r.data["errors"][name] = traceback.format_exc()[-4000:]
            status = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
            self.r.log(f"part {name} {status}")
            self.broken = True
        for row in self.rows.values():
            if row["part"] == name and row["status"] == NOT_RUN:
                row.update(status="failed" if status != "done" else "skipped",
                           reason=status if status != "done" else "the part ended without measuring it")
        self.r.data["parts"][name] = {"status": status, "start_s": start, "took_s": self.r.elapsed() - start,
                                      "note": "; ".join(f"{k}: {v['status']}" for k, v in self.rows.items()
                                                        if v["part"] == name)}
        self.r.save()

    def run(self) -> int:
        timer = threading.Timer(max(0.0, self.r.left()), self.stop, args=(
            f"the time budget ({self.r.budget_s:g} s) ran out",))
        timer.daemon = True
        timer.start()
        with contextlib.suppress(ValueError):  # only the main thread may set signal handlers
            signal.signal(signal.SIGTERM, lambda *_: self.stop("terminated by SIGTERM"))
        self.r.save()
        self.setup()
        self.r.save()
        for name in PART_ORDER:
            self.run_part(name)
        self.part = "end"
        self.r.data["meta"]["done"] = True
        self.r.save()
        timer.cancel()
        if self.r.data.get("headline"):
            self.r.log("HEADLINE " + self.r.data["headline"])
        self.r.log(f"done: results in {self.r.out / 'results.json'} and {self.r.out / 'summary.md'}")
        return 0


def run_profiles(args: argparse.Namespace, t0: float) -> int:
    parts = [p for p in args.parts.split(",") if p]
    unknown = sorted(set(parts) - set(PART_ORDER))
    if unknown:
        print(f"error: unknown part(s) {', '.join(unknown)}; choose from {','.join(PART_ORDER)}", file=sys.stderr)
        return 2
    report = Report(Path(args.out), args.t0 or t0, args.budget_s, tag="[fast child] " if args.child else "")
    try:
        config = bench_config(args)
    except ValueError as exc:
        report.data["meta"]["stopped"] = str(exc)
        report.save()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return ProfilesBench(config, report, parts, child=args.child, compare_frames=args.compare_frames).run()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S,
                        help="Time budget in seconds for the whole run, counted from --t0. Parts are run in order "
                             "of importance, each keeping back the least time the later ones need; a part that "
                             "does not fit shrinks its step count (extrapolated, said so) or is skipped with the "
                             "reason; at the budget a watchdog writes the results and exits with code 3. "
                             f"[default {DEFAULT_BUDGET_S:.0f}: a 9-minute device command with its start-up]")
    parser.add_argument("--t0", type=float, default=None,
                        help="Epoch seconds the budget counts from [default: the start of this command]; a "
                             "wrapper script passes its own start so that its set-up counts too.")
    parser.add_argument("--out", default="outputs/bench",
                        help="Folder for results.json, summary.md and progress.log, rewritten after every part "
                             "[default outputs/bench]")
    parser.add_argument("--parts", default=",".join(PART_ORDER),
                        help=f"Comma-separated subset of the parts, run in their fixed order [default "
                             f"{','.join(PART_ORDER)}]")
    parser.add_argument("--fast-cap-s", type=float, default=FAST_CAP_S,
                        help="Hard cap in seconds for the `fast` child process (build, compile warm-up, timed "
                             f"run); it is killed with its process group at the cap [default {FAST_CAP_S:.0f}]")
    parser.add_argument("--caps-gb", type=lambda t: [int(x) for x in t.split(",") if x],
                        default=list(DEFAULT_CAPS_GB), help="Card sizes (GB) to simulate with a per-process "
                        "memory cap [default 8,12,16,24]")
    parser.add_argument("--width", type=int, default=None, help="default 1024 on a GPU, 256 elsewhere")
    parser.add_argument("--height", type=int, default=None, help="default 576 on a GPU, 144 elsewhere")
    parser.add_argument("--frames", type=int, default=None, help="default 25 on a GPU, 2 elsewhere")
    parser.add_argument("--steps", type=int, default=None, help="default 25 on a GPU, 3 elsewhere")
    parser.add_argument("--sdxl-steps", type=int, default=None, help="default 30 on a GPU, 3 elsewhere")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # the `fast` child process
    parser.add_argument("--compare-frames", default=None, help=argparse.SUPPRESS)  # the parent's `high` frames
    parser.add_argument("--svd-model", default="random",
                        help="'random' (SVD-XT's architecture built on a GPU, tiny models elsewhere) or a model "
                             "folder/id.")
    parser.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu: any CUDA device is a GPU")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp16", "bf16", "fp32"])
    return parser


def main(argv: list[str] | None = None) -> int:
    t0 = time.time()
    return run_profiles(build_parser().parse_args(argv), t0)


if __name__ == "__main__":
    sys.exit(main())
