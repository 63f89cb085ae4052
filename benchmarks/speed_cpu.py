"""Feature caching and the 4-step lane on a CPU: `python -m benchmarks.speed_cpu --out DIR`.

What it measures, with random-weight models (nothing is downloaded):

* feature cache: denoising time with and without `svd_demo.engine.feature_cache` (its default, DeepCache's interval 3,
  branch 0) for the same seed, and how far the cached clip is from the plain one: PSNR and SSIM of the decoded
  frames (8-bit RGB; SSIM as in benchmarks.interpolation) and the relative error of the latents.
* lane: AnimateLCM's 4 steps without guidance against SVD's 25 steps with guidance (1 -> 3), on the same UNet: the
  denoising time ratio, which is what the lane saves (its quality needs the distilled weights and a GPU).

Models (`--models`):

* `tiny`: the test suite's tiny SVD (2 levels, 32/64 channels), 256x144, 6 frames.
* `narrow`: SVD-XT's UNet layout (4 levels, 2 layers each, the same block types and attention) at a fifth of its
  width (64/128/256/256 channels, 64-dim heads: 69 M instead of 1.52 B parameters), 512x288, 4 frames, with the
  tiny 8x VAE and a small image encoder projecting to SVD-XT's 1024 dimensions. The full width does not fit 2 CPU
  cores' time; a narrower UNet gives attention (which grows with the pixel count squared) a larger share than in
  SVD-XT, and most of it sits in the shallow level that caching recomputes, so its speed-up understates SVD-XT's.

Random weights do not have the slowly changing deep features of a trained UNet that caching relies on, so the
fidelity figures here bound nothing for real weights: they show the mechanism works end to end, and the GPU
benchmark (`python -m benchmarks.gpu`, parts `cache` and `lane`) measures both with `--svd-model` real weights.
Timings are denoising only (the decode is the same in both), the best and the median of `--repeat` rounds, with
the variants taking turns in each round; the 1-minute load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

NARROW_UNET = {"block_out_channels": (64, 128, 256, 256), "num_attention_heads": (1, 2, 4, 4),
               "cross_attention_dim": 1024, "num_frames": 25, "sample_size": 96}
SIZES = {"tiny": (256, 144, 6), "narrow": (512, 288, 4)}  # width, height, frames


def build(model: str) -> Any:
    """A random-weight SVD pipeline for `model` (see the module docstring), fp32 on the CPU."""
    import torch
    from diffusers import StableVideoDiffusionPipeline, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from svd_demo_testing.tiny_models import build_tiny_svd

    pipe = build_tiny_svd()
    if model == "narrow":
        torch.manual_seed(0)
        unet = UNetSpatioTemporalConditionModel(**NARROW_UNET)
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=32, projection_dim=1024, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            image_size=224, patch_size=32))
        pipe = StableVideoDiffusionPipeline(vae=pipe.vae, image_encoder=encoder, unet=unet, scheduler=pipe.scheduler,
                                            feature_extractor=pipe.feature_extractor)
    for module in (pipe.unet, pipe.vae, pipe.image_encoder):
        module.eval()  # as from_pretrained leaves them: a freshly built model is in training mode (3x slower here)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def photo(width: int, height: int) -> Any:
    """A structured input (gradients and a bright square), not noise."""
    from PIL import Image

    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 90)], axis=-1).astype(np.uint8)
    rgb[height // 3: 2 * height // 3, width // 3: width // 2] = (250, 240, 30)
    return Image.fromarray(rgb)


def denoise(pipe: Any, image: Any, frames: int, steps: int, guidance: tuple[float, float], seed: int = 0,
            cache: bool = False) -> tuple[Any, float]:
    """Latents of one run and its denoising seconds."""
    import torch

    from svd_demo.engine.feature_cache import feature_cache

    generator = torch.Generator().manual_seed(seed)
    if hasattr(pipe.scheduler, "noise_generator"):
        pipe.scheduler.noise_generator = generator
    start = time.perf_counter()
    with torch.no_grad(), feature_cache(pipe.unet) if cache else nullcontext():
        latents = pipe(image, height=image.height, width=image.width, num_frames=frames, num_inference_steps=steps,
                       min_guidance_scale=guidance[0], max_guidance_scale=guidance[1], generator=generator,
                       output_type="latent").frames
    return latents, time.perf_counter() - start


def decoded(pipe: Any, latents: Any, frames: int) -> np.ndarray:
    """8-bit RGB frames, decoded 2 at a time."""
    import torch

    with torch.no_grad():
        video = pipe.decode_latents(latents, frames, 2)
        out = pipe.video_processor.postprocess_video(video=video, output_type="np")[0]
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def timed_rounds(variants: dict[str, Callable[[], tuple[Any, float]]], repeat: int) -> dict[str, dict[str, Any]]:
    """Each variant once per round, in turns; the best and median seconds and the last result of each."""
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    results: dict[str, Any] = {}
    for _ in range(repeat):
        for name, run in variants.items():
            results[name], s = run()
            seconds[name].append(s)
    return {name: {"best_s": min(v), "median_s": statistics.median(v), "result": results[name]}
            for name, v in seconds.items()}


def bench_cache(pipe: Any, model: str, repeat: int) -> dict[str, Any]:
    from benchmarks.interpolation import psnr, ssim

    width, height, frames = SIZES[model]
    image = photo(width, height)
    denoise(pipe, image, frames, 2, (1.0, 3.0))  # warm-up: allocator, kernels
    steps = 8
    runs = timed_rounds({"plain": lambda: denoise(pipe, image, frames, steps, (1.0, 3.0)),
                         "cached": lambda: denoise(pipe, image, frames, steps, (1.0, 3.0), cache=True)}, repeat)
    plain, cached = runs["plain"]["result"], runs["cached"]["result"]
    a, b = decoded(pipe, plain, frames), decoded(pipe, cached, frames)
    return {"model": model, "size": f"{width}x{height}", "frames": frames, "steps": steps,
            "plain_s": runs["plain"]["best_s"], "cached_s": runs["cached"]["best_s"],
            "plain_median_s": runs["plain"]["median_s"], "cached_median_s": runs["cached"]["median_s"],
            "speedup": runs["plain"]["best_s"] / runs["cached"]["best_s"],
            "psnr_db": statistics.mean(psnr(x, y) for x, y in zip(a, b, strict=True)),
            "ssim": statistics.mean(ssim(x, y) for x, y in zip(a, b, strict=True)),
            "latent_rel_err": float((cached - plain).abs().mean() / plain.abs().mean())}


def bench_lane(pipe: Any, model: str, repeat: int) -> dict[str, Any]:
    from svd_demo.engine.schedulers import AnimateLCMScheduler

    width, height, frames = SIZES[model]
    image = photo(width, height)
    euler = pipe.scheduler
    lcm = AnimateLCMScheduler()

    def run(scheduler: Any, steps: int, guidance: tuple[float, float]) -> tuple[Any, float]:
        pipe.scheduler = scheduler
        return denoise(pipe, image, frames, steps, guidance)

    try:
        runs = timed_rounds({"svd_25": lambda: run(euler, 25, (1.0, 3.0)),
                             "lane_4": lambda: run(lcm, 4, (1.0, 1.0))}, repeat)
    finally:
        pipe.scheduler = euler
    return {"model": model, "size": f"{width}x{height}", "frames": frames, "svd_25_s": runs["svd_25"]["best_s"],
            "lane_4_s": runs["lane_4"]["best_s"], "ratio": runs["svd_25"]["best_s"] / runs["lane_4"]["best_s"]}


def render(rows: list[dict[str, Any]], lanes: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [f"torch threads {meta['threads']}, load average {meta['load_before']:.1f} before / "
             f"{meta['load_after']:.1f} after, {meta['wall_s']:.0f} s. Command: `{meta['command']}`", "",
             "| model | size, frames, steps | plain s (median) | cached s (median) | speed-up | PSNR dB | SSIM | "
             "latent rel. error |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['size']}, {r['frames']}, {r['steps']} | {r['plain_s']:.2f} "
                     f"({r['plain_median_s']:.2f}) | {r['cached_s']:.2f} ({r['cached_median_s']:.2f}) | "
                     f"{r['speedup']:.2f}x | {r['psnr_db']:.1f} | {r['ssim']:.3f} | {r['latent_rel_err']:.3f} |")
    if lanes:
        lines += ["", "| model | size, frames | SVD 25 steps, guidance 1-3, s | AnimateLCM 4 steps, guidance 1, s | "
                  "ratio |", "|---|---|---|---|---|"]
        for r in lanes:
            lines.append(f"| {r['model']} | {r['size']}, {r['frames']} | {r['svd_25_s']:.2f} | {r['lane_4_s']:.2f} "
                         f"| {r['ratio']:.1f}x |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.speed_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for speed_cpu.json and speed_cpu.md")
    parser.add_argument("--models", default="tiny,narrow", help="comma-separated: tiny, narrow")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best and the median are reported")
    parser.add_argument("--no-lane", action="store_true", help="skip the 4-step lane against 25 steps")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads [default 1: on shared, loaded cores two threads made steps 5-20x slower "
                             "at random, as benchmarks.gpu found]")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)

    started, load_before = time.perf_counter(), os.getloadavg()[0]
    rows, lanes = [], []
    for model in args.models.split(","):
        pipe = build(model.strip())
        rows.append(bench_cache(pipe, model.strip(), args.repeat))
        print(json.dumps(rows[-1]), flush=True)
        if not args.no_lane:
            lanes.append(bench_lane(pipe, model.strip(), args.repeat))
            print(json.dumps(lanes[-1]), flush=True)
        del pipe
    meta = {"threads": torch.get_num_threads(), "load_before": load_before, "load_after": os.getloadavg()[0],
            "wall_s": time.perf_counter() - started,
            "command": "python -m benchmarks.speed_cpu " + " ".join(argv if argv is not None else os.sys.argv[1:])}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed_cpu.json").write_text(json.dumps({"cache": rows, "lane": lanes, "meta": meta}, indent=2))
    table = render(rows, lanes, meta)
    (out / "speed_cpu.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
