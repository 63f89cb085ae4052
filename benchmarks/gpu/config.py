"""What the GPU benchmark runs: its constants (rows, budgets, cost factors), BenchConfig and the sizes the command
line's settings resolve to on a GPU (full size) or elsewhere (the tiny models)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from benchmarks.gpu.device import is_gpu

DEFAULT_BUDGET_S = 530.0
UPSCALE_ROWS = {"upscale-animevideov3": "SRVGGNetCompact", "upscale-x4plus": "RRDBNet"}  # real sizes, random weights
UPSCALE_FRAMES = 3  # timed frames per network, after one warm-up frame
# Feature caching settings (interval, DeepCache branch) the `cache` part compares against `high`, by row: DeepCache's
# published SVD setting (the app's default) first, then the app's earlier default (reuse on every other step below
# the first down block), so a GPU run can choose by speed and PSNR/SSIM.
CACHE_ROWS = {"cache": (3, 0), "cache-i2-b1": (2, 1)}
SVD_ROWS = ("baseline", "high", "fast", "balanced", "low", "minimal", "int8")
DEFAULT_CAPS_GB = (8, 12, 16, 24)
# Least seconds each part (parts.py runs them in order) needs on an H200 (SVD-XT at 1024x576, 25 frames: about 1 s a
# step), kept back for it by the parts before it: the first device sketch's sizing (shared/tools/gpu_check.sh) plus
# the 1-step warm-up every timed part has here.
PART_MIN_S = {"warmup": 15, "baseline": 50, "high": 35, "fast": 100, "balanced": 20, "low": 25, "caps": 45,
              "sdxl": 30, "minimal": 40, "switch": 5, "upscale": 20, "int8": 30,
              "cache": 60, "lane": 15,  # speed options: high with feature caching (each CACHE_ROWS setting);
              # AnimateLCM's 4 steps
              "keyframes": 40}  # a 1-step warm-up and 3 steps at twice high's s/step, extrapolated
PART_MIN_S_TINY = dict.fromkeys(PART_MIN_S, 1.0)  # tiny models on a CPU: about a second a clip
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

