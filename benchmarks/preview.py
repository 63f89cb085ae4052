"""What the live preview costs a denoising step (svd_demo/engine/preview.py), on the tiny models at 1024x576.

Run: ``python -m benchmarks.preview [--svd-model DIR] [--frames 14] [--steps 6] [--repeats 3]``.

Two measurements, both on the denoising thread (where a preview is paid for):

* the preview's own cost: ``latents_to_rgb`` on latents of the clip's shape (batch 1, frames, 4, 72, 128), median of
  50 calls; divided by the step time and by PREVIEW_EVERY_STEPS it is the share of each step;
* the same denoising run (the app's `denoise`, no decode) with and without a preview sink, runs taking turns, the
  median step time of each (from the step callback's clock).

Encoding the animated WebP (`write_preview`) happens on the UI's thread, not in the step; its time is printed too.
The tiny UNet's steps are far faster than SVD-XT's, so the share measured here is an upper bound of the real one.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.preview", description=__doc__.splitlines()[0])
    parser.add_argument("--svd-model", default=None, help="a tiny SVD folder (default: build one in a temp dir)")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--frames", type=int, default=14)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import torch
    from PIL import Image

    from svd_demo.core.params import VideoParams
    from svd_demo.core.settings import Settings
    from svd_demo.engine import image_to_video
    from svd_demo.engine.pipelines import PipelineCache
    from svd_demo.engine.preview import PREVIEW_EVERY_STEPS, latents_to_rgb, write_preview
    from svd_demo_testing.tiny_models import save_tiny_models

    with tempfile.TemporaryDirectory() as tmp:
        model = args.svd_model or str(save_tiny_models(tmp, which=("svd",))["svd"])
        cache = PipelineCache(Settings(svd_model=model, device="cpu", output_dir=Path(tmp) / "out"), "cpu")
        loaded = cache.get("svd", model)
        image = Image.new("RGB", (args.width, args.height), (120, 90, 60))
        params = VideoParams(num_frames=args.frames, num_inference_steps=args.steps, seed=0, randomize_seed=False,
                             fps=7, resolution=max(args.width, args.height))

        latents = torch.randn(1, args.frames, 4, args.height // 8, args.width // 8)
        latents_to_rgb(latents)
        calls = []
        for _ in range(50):
            start = time.perf_counter()
            frames = latents_to_rgb(latents)
            calls.append(time.perf_counter() - start)
        preview_s = statistics.median(calls)
        encodes = []
        for _ in range(5):
            start = time.perf_counter()
            write_preview(frames, Path(tmp) / "p.webp")
            encodes.append(time.perf_counter() - start)

        def step_times(with_preview: bool) -> list[float]:
            marks: list[float] = []
            previews: list[np.ndarray] = []
            original = image_to_video.step_callback

            def timed(total, progress, cancel):  # the app's callback, with a clock at the end of every step
                inner = original(total, progress, cancel)
                return lambda pipe, step, t, kwargs: (marks.append(time.perf_counter()), inner(pipe, step, t,
                                                                                             kwargs))[1]

            image_to_video.step_callback = timed
            try:
                start = time.perf_counter()
                image_to_video.denoise(loaded, image, params, preview=previews.append if with_preview else None)
            finally:
                image_to_video.step_callback = original
            assert len(previews) == (len(range(PREVIEW_EVERY_STEPS, args.steps, PREVIEW_EVERY_STEPS))
                                     if with_preview else 0)
            return list(np.diff([start, *marks]))[1:]  # the first step also encodes the image: left out

        image_to_video.denoise(loaded, image, params)  # warm-up
        runs: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeats):
            for with_preview in (False, True):
                runs[with_preview] += step_times(with_preview)
        without, with_ = statistics.median(runs[False]), statistics.median(runs[True])

    print(f"tiny SVD, {args.width}x{args.height}, {args.frames} frames, {args.steps} steps x {args.repeats} runs "
          f"each; torch threads {torch.get_num_threads()}")
    print(f"preview (latents -> RGB, on the denoising thread): {preview_s * 1000:.2f} ms per preview, every "
          f"{PREVIEW_EVERY_STEPS} steps")
    print(f"WebP encoding (on the UI thread, not in the step): {statistics.median(encodes) * 1000:.1f} ms")
    print(f"step without preview: {without:.3f} s (median); with: {with_:.3f} s")
    print(f"preview cost per step: {100 * preview_s / without:.2f} % of a step when it previews, "
          f"{100 * preview_s / without / PREVIEW_EVERY_STEPS:.2f} % averaged over steps (limit 5 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
